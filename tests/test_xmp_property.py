"""A property over random XMP packets: whatever the packet and the groups, the rebuilt
packet is valid UTF-8 XML holding only properties the groups name (never one on the
never-list), with struct fields only from the table, and nothing it was not given.
And each kept plain-text property does come through."""

from __future__ import annotations

from xml.etree import ElementTree
from xml.sax.saxutils import escape, quoteattr

from hypothesis import given, settings
from hypothesis import strategies as st

from amberpicd.config.schema import METADATA_GROUPS
from amberpicd.imaging.metadata_table import (
    GROUPS,
    NEVER_XMP,
    XMP_NAMESPACES,
    XMP_STRUCT_FIELDS,
    never_xmp,
)
from amberpicd.imaging.xmp import kept_properties, rebuild

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NAMESPACES = {**XMP_NAMESPACES, "evil": "http://example.com/evil/"}
KNOWN = sorted(
    {p for g in GROUPS.values() for p in g.xmp if not p.endswith("*")}
    | {p for p in NEVER_XMP if not p.endswith("*")}
    | {f for fields in XMP_STRUCT_FIELDS.values() for f in fields}
    | {"xmpMM:DocumentID", "evil:GPSLatitude", "exif:SerialNumber", "dc:Secret"}
)
# Struct-valued properties drawn often: their fields are where a leak would hide.
names = st.one_of(st.sampled_from(sorted(XMP_STRUCT_FIELDS)), st.sampled_from(KNOWN))
# XML 1.0 has no U+FFFE/U+FFFF: a packet holding one is unreadable and dropped whole.
XML_CHARS = st.characters(
    codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters="\ufffe\uffff"
)
words = st.text(XML_CHARS, max_size=8)


def values(depth: int = 0):
    leaf = words.map(lambda w: ("text", w))
    if depth >= 2:
        return leaf
    arrays = st.tuples(
        st.sampled_from(["Seq", "Bag", "Alt"]), st.lists(values(depth + 1), max_size=3)
    ).map(lambda t: ("array", t))
    structs = st.dictionaries(names, values(depth + 1), max_size=3).map(lambda d: ("struct", d))
    return st.one_of(leaf, arrays, structs)


def element(name: str, value, style: int) -> str:
    kind, body = value
    if kind == "text":
        return f"<{name}>{escape(body)}</{name}>"
    if kind == "array":
        array, items = body
        lis = "".join(element("rdf:li", item, style) for item in items)
        return f"<{name}><rdf:{array}>{lis}</rdf:{array}></{name}>"
    fields = "".join(element(n, v, style) for n, v in body.items())
    if style % 2:
        return f'<{name} rdf:parseType="Resource">{fields}</{name}>'
    return f"<{name}><rdf:Description>{fields}</rdf:Description></{name}>"


def packet(props: dict, attrs: dict, style: int) -> bytes:
    xmlns = " ".join(f"xmlns:{p}={quoteattr(u)}" for p, u in NAMESPACES.items())
    attributes = " ".join(f"{n}={quoteattr(v)}" for n, v in attrs.items())
    body = "".join(element(n, v, style) for n, v in props.items())
    return (
        f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="{RDF}">'
        f'<rdf:Description rdf:about="" {xmlns} {attributes}>{body}</rdf:Description>'
        "</rdf:RDF></x:xmpmeta>"
    ).encode()


def texts(value) -> set[str]:
    kind, body = value
    if kind == "text":
        return {body}
    items = body[1] if kind == "array" else body.values()
    return set().union(*(texts(v) for v in items)) if items else set()


@settings(max_examples=300, deadline=None)
@given(
    props=st.dictionaries(names, values(), max_size=6),
    attrs=st.dictionaries(names, words, max_size=3),
    groups=st.lists(st.sampled_from(METADATA_GROUPS), unique=True),
    style=st.integers(0, 1),
)
def test_rebuilt_xmp_holds_only_what_the_groups_name(props, attrs, groups, style) -> None:
    attrs = {n: v for n, v in attrs.items() if n not in props}
    out = rebuild(packet(props, attrs, style), groups)
    if out is None:
        return
    root = ElementTree.fromstring(out.decode("utf-8"))
    prefixes = {uri: p for p, uri in NAMESPACES.items()}
    allowed = kept_properties(groups)
    given_texts = set(attrs.values()).union(*(texts(v) for v in props.values()))

    def name(tag: str) -> str:
        uri, _, local = tag[1:].partition("}")
        return f"{prefixes[uri]}:{local}"

    (description,) = root.iter(f"{{{RDF}}}Description")
    for prop in description:
        prop_name = name(prop.tag)
        assert prop_name in allowed and not never_xmp(prop_name), prop_name
        for inner in prop.iter():
            if not inner.tag.startswith(f"{{{RDF}}}") and inner is not prop:
                assert name(inner.tag) in XMP_STRUCT_FIELDS.get(prop_name, ()), inner.tag
            if inner.text and inner.text.strip():
                assert inner.text in given_texts


@settings(max_examples=100, deadline=None)
@given(attrs=st.dictionaries(names, words, min_size=1, max_size=6))
def test_kept_plain_text_properties_come_through(attrs) -> None:
    out = rebuild(packet({}, attrs, 0), METADATA_GROUPS)
    allowed = kept_properties(METADATA_GROUPS)
    expected = {n for n in attrs if n in allowed and not never_xmp(n)}
    found = set()
    if out is not None:
        root = ElementTree.fromstring(out)
        prefixes = {uri: p for p, uri in NAMESPACES.items()}
        for prop in next(root.iter(f"{{{RDF}}}Description")):
            uri, _, local = prop.tag[1:].partition("}")
            found.add(f"{prefixes[uri]}:{local}")
            assert (prop.text or "") == attrs[f"{prefixes[uri]}:{local}"]
    assert found == expected
