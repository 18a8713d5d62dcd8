"""XMP: parse a source's packet and rebuild one holding only the properties groups keep.

The packet is never copied. It is parsed by a real XML parser with DTDs (and so entity
declarations, billion laughs, external entities) refused (defusedxml), reduced to a
small model (text, arrays, structures), filtered by the one table (metadata_table.py)
and serialised anew as UTF-8. A packet that cannot be read is dropped whole: none of
it is written. Pure Python: no Pillow here.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape, quoteattr

import defusedxml
import defusedxml.ElementTree

from amberpicd.imaging.metadata_table import GROUPS, XMP_NAMESPACES, XMP_STRUCT_FIELDS, never_xmp

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
MAX_PACKET = 16 * 1024**2  # a bigger "XMP packet" is not metadata anyone needs kept
MAX_DEPTH = 8  # property > array > struct > field > array: real XMP needs about 5
_ARRAYS = {f"{{{RDF}}}{kind}": kind for kind in ("Seq", "Bag", "Alt")}
_PREFIXES = {uri: prefix for prefix, uri in XMP_NAMESPACES.items()}
_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")

# The model: a value is text, an array (kind, [(xml:lang or None, value)]) or a
# structure {prefix:Name: value}.


class BadXmp(ValueError):
    """The packet is not XMP we can read: not XML, a DTD, a bad encoding, too big."""


def rebuild(packet: bytes, groups: Collection[str]) -> bytes | None:
    """A new UTF-8 packet with only the properties ``groups`` keep, or None when there is
    none of them (or the source packet is unreadable: then nothing of it is kept)."""
    allowed = kept_properties(groups)
    if not allowed:
        return None
    try:
        properties = parse(packet)
    except BadXmp:
        return None
    kept = {}
    for name, value in properties.items():
        if _allowed(name, allowed):
            value = _clean(name, value, 0)
            if value is not None:
                kept[name] = value
    return serialise(kept) if kept else None


def kept_properties(groups: Collection[str]) -> set[str]:
    """The ``prefix:Name`` (or ``prefix:*``) entries the groups keep."""
    return {prop for name in groups for prop in GROUPS[name].xmp if not never_xmp(prop)}


def _allowed(name: str, allowed: set[str]) -> bool:
    if never_xmp(name):
        return False
    return name in allowed or f"{name.partition(':')[0]}:*" in allowed


def parse(packet: bytes) -> dict:
    """The top-level properties of ``packet``: ``{prefix:Name: value}``, for namespaces
    the table knows (others cannot be kept, so they are not even read)."""
    if len(packet) > MAX_PACKET:
        raise BadXmp(f"XMP packet of {len(packet)} bytes")
    text = _text(packet)
    text = text[text.find("<") : text.rfind(">") + 1]  # padding, NULs, junk around it
    text = _DECLARATION.sub("", text)  # the string is decoded already
    try:
        root = defusedxml.ElementTree.fromstring(text, forbid_dtd=True)
    except (ParseError, defusedxml.DefusedXmlException, ValueError, RecursionError) as exc:
        raise BadXmp(str(exc)) from None
    rdf = root if root.tag == f"{{{RDF}}}RDF" else root.find(f".//{{{RDF}}}RDF")
    if rdf is None:
        raise BadXmp("no rdf:RDF element")
    properties: dict = {}
    for description in rdf.findall(f"{{{RDF}}}Description"):
        properties.update(_properties(description, 0))
    return properties


def _text(packet: bytes) -> str:
    """The packet as text. XMP is UTF-8, UTF-16 or UTF-32, with or without a BOM."""
    encodings = (
        (b"\xef\xbb\xbf", "utf-8"),
        (b"\xff\xfe\x00\x00", "utf-32-le"),
        (b"\x00\x00\xfe\xff", "utf-32-be"),
        (b"\xff\xfe", "utf-16-le"),
        (b"\xfe\xff", "utf-16-be"),
    )
    for bom, encoding in encodings:
        if packet.startswith(bom):
            packet, chosen = packet[len(bom) :], encoding
            break
    else:  # no BOM: zero bytes next to the first "<", and its alignment, tell the form
        at = packet.find(b"<")
        before, after = packet[max(0, at - 3) : max(0, at)], packet[at + 1 : at + 4]
        chosen = "utf-8"
        if at >= 0 and at % 4 == 0 and after == b"\0\0\0":
            chosen = "utf-32-le"
        elif at % 4 == 3 and before == b"\0\0\0":
            chosen = "utf-32-be"
        elif at >= 0 and at % 2 == 0 and after[:1] == b"\0":
            chosen = "utf-16-le"
        elif at % 2 == 1 and before[-1:] == b"\0":
            chosen = "utf-16-be"
    try:
        return packet.decode(chosen).lstrip("\ufeff")
    except UnicodeDecodeError:
        raise BadXmp(f"not valid {chosen.upper()}") from None


def _name(tag: str) -> str | None:
    """``{uri}Local`` as ``prefix:Local`` when the table knows the namespace."""
    if not tag.startswith("{"):
        return None
    uri, _, local = tag[1:].partition("}")
    prefix = _PREFIXES.get(uri)
    return f"{prefix}:{local}" if prefix else None


def _properties(node: Element, depth: int) -> dict:
    out: dict = {}
    for attr, value in node.attrib.items():
        name = _name(attr)
        if name is not None:
            out[name] = value
    for child in node:
        name = _name(child.tag)
        if name is not None:
            value = _value(child, depth + 1)
            if value is not None:
                out[name] = value
    return out


def _value(el: Element, depth: int):
    if depth > MAX_DEPTH:
        return None
    if el.get(f"{{{RDF}}}parseType") == "Resource":
        return _properties(el, depth)
    resource = el.get(f"{{{RDF}}}resource")
    if resource is not None:
        return resource
    children = list(el)
    if not children:
        if any(_name(attr) for attr in el.attrib):
            return _properties(el, depth)  # a structure written as attributes
        return el.text or ""
    first = children[0]
    if first.tag in _ARRAYS:
        items = []
        for li in first.findall(f"{{{RDF}}}li"):
            value = _value(li, depth + 1)
            if value is not None:
                items.append((li.get(XML_LANG), value))
        return (_ARRAYS[first.tag], items)
    if first.tag == f"{{{RDF}}}Description":
        return _properties(first, depth)
    return None  # rdf:value qualifiers and other forms we cannot place: dropped


def _clean(name: str, value, depth: int):
    """``value`` with only what ``name`` may hold: text and arrays of text, and for the
    structure properties in the table, their listed fields."""
    if isinstance(value, str):
        return value
    if isinstance(value, tuple):
        kind, items = value
        cleaned = [(lang, v) for lang, v in ((lg, _clean(name, x, depth + 1)) for lg, x in items)]
        cleaned = [(lang, v) for lang, v in cleaned if v is not None]
        return (kind, cleaned) if cleaned else None
    fields = XMP_STRUCT_FIELDS.get(name)
    if fields is None or depth > 2:
        return None
    kept = {f: v for f, v in value.items() if f in fields and not never_xmp(f)}
    kept = {f: c for f, v in kept.items() if (c := _clean_field(v)) is not None}
    return kept or None


def _clean_field(value):
    if isinstance(value, str):
        return value
    if isinstance(value, tuple):
        items = [(lang, v) for lang, v in value[1] if isinstance(v, str)]
        return (value[0], items) if items else None
    return None  # no structures inside structure fields


def serialise(properties: dict) -> bytes:
    """An XMP packet (UTF-8, with the xpacket wrapper) holding ``properties``."""
    used = sorted({name.partition(":")[0] for name in _names(properties)})
    xmlns = "".join(f"\n    xmlns:{p}={quoteattr(XMP_NAMESPACES[p])}" for p in used)
    body = "".join(_element(name, value, "   ") for name, value in properties.items())
    text = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        f' <rdf:RDF xmlns:rdf="{RDF}">\n'
        f'  <rdf:Description rdf:about=""{xmlns}>\n'
        f"{body}"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    )
    return text.encode("utf-8")


def _names(value) -> list[str]:
    if isinstance(value, dict):
        return [n for k, v in value.items() for n in (k, *_names(v))]
    if isinstance(value, tuple):
        return [n for _, v in value[1] for n in _names(v)]
    return []


def _element(name: str, value, indent: str, lang: str | None = None, tag: str = "") -> str:
    tag = tag or name
    attrs = f" xml:lang={quoteattr(lang)}" if lang else ""
    if isinstance(value, str):
        return f"{indent}<{tag}{attrs}>{escape(_xml_chars(value))}</{tag}>\n"
    if isinstance(value, dict):
        inner = "".join(_element(k, v, indent + " ") for k, v in value.items())
        return f'{indent}<{tag}{attrs} rdf:parseType="Resource">\n{inner}{indent}</{tag}>\n'
    kind, items = value
    lis = "".join(_element(name, v, indent + "  ", lg, "rdf:li") for lg, v in items)
    return (
        f"{indent}<{tag}{attrs}>\n{indent} <rdf:{kind}>\n{lis}{indent} </rdf:{kind}>\n"
        f"{indent}</{tag}>\n"
    )


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_chars(text: str) -> str:
    """Text as XML 1.0 allows it (parsed values already are; attribute values too)."""
    return _NOT_XML.sub("", text)
