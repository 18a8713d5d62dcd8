"""The house's shape, checked from the source (issue 12): no import cycle among amberpicd's
modules, no module over 400 lines, Pillow only where pixels are handled, few modules loose at
the package's top, and config/rules/journal/daemon importable without Pillow.

The import graph is read with ``ast``, so it sees every import: at module level, inside
functions and under ``if TYPE_CHECKING:``. Each checker gets a control run on a small
synthetic input where the bad case is present, so none of them can pass vacuously.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "amberpicd"
MAX_LINES = 400
MAX_TOP_MODULES = 6
PILLOW = ("PIL", "pillow_heif")
# Where Pillow may be imported: folders (any depth) and single files, relative to PACKAGE.
PILLOW_PLACES = ("imaging/", "ops/", "desktop/tray/icons.py")
NO_PILLOW_PACKAGES = ("config", "rules", "journal", "daemon")

HOUSE_DAEMON = "branch house-daemon restructures cli/, daemon/ and desktop/"


# --- reading the source -----------------------------------------------------------------


def module_files(package: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name → file, for every module of the package (``__init__`` as its
    package)."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imports(module: str, source: str, is_package: bool) -> list[tuple[str, ...]]:
    """What each import anywhere in ``source`` loads, as candidates, the first that is a
    module winning: ``import a.b`` is ``(a.b,)``; ``from a import b`` is ``(a.b, a)``: the
    submodule ``a.b`` if there is one, else the name ``b`` of ``a`` (as grimp and
    import-linter read it). Relative imports are resolved."""
    found: list[tuple[str, ...]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name,) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = module.split(".") if is_package else module.split(".")[:-1]
                here = here[: len(here) - (node.level - 1)]
                base = ".".join([*here, base] if base else here)
            found += [(f"{base}.{alias.name}", base) for alias in node.names]
    return found


def imported_names(module: str, source: str, is_package: bool) -> list[str]:
    """Every dotted name an import in ``source`` may load."""
    return [name for names in imports(module, source, is_package) for name in names]


def import_graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    """Module → the package's modules it imports (a name is cut back to the longest module
    it names: ``amberpicd.config.schema.Limits`` is ``amberpicd.config.schema``)."""
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = set()
        for candidates in imports(module, path.read_text(), path.name == "__init__.py"):
            name = next((c for c in candidates if c in modules), candidates[-1])
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component that has one, found
    by Tarjan's algorithm (iterative: no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, ()):
                    components.append(component)
    return [_cycle_in(graph, component) for component in components]


def _cycle_in(graph: Mapping[str, Iterable[str]], component: set[str]) -> list[str]:
    """A closed path through ``component`` from its smallest member (breadth first: short)."""
    start = min(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph.get(node, ())):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start] * 2
                if child in component and child not in parents:
                    parents[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle in component {sorted(component)}")


def pillow_importers(modules: Mapping[str, Path]) -> dict[str, list[str]]:
    """Module → the Pillow modules it imports anywhere in its source."""
    found = {}
    for module, path in modules.items():
        names = imported_names(module, path.read_text(), path.name == "__init__.py")
        pillow = sorted({n for n in names if n.split(".")[0] in PILLOW})
        if pillow:
            found[module] = pillow
    return found


def allowed_pillow(path: Path, package: Path = PACKAGE) -> bool:
    rel = path.relative_to(package).as_posix()
    return any(rel.startswith(p) if p.endswith("/") else rel == p for p in PILLOW_PLACES)


def top_modules(package: Path = PACKAGE) -> list[str]:
    return sorted(p.name for p in package.glob("*.py"))


def line_count(path: Path) -> int:
    return len(path.read_text().splitlines())


# --- cycles -------------------------------------------------------------------------------

MODULES = module_files()
GRAPH = import_graph(MODULES)


def test_no_import_cycle() -> None:
    found = cycles(GRAPH)
    assert not found, "import cycles:\n" + "\n".join(" → ".join(c) for c in found)


def test_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    """Control: a tiny package whose cycle runs through a function-level import, a
    TYPE_CHECKING import and a relative import is found, printed as a closed path."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from pkg.sub import b, VALUE\n")
    (package / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .c import C\n"
    )
    (package / "sub" / "c.py").write_text("import pkg.a.thing\nimport os\n")
    (package / "d.py").write_text("from pkg import a\n")  # on no cycle
    graph = import_graph(module_files(package))
    assert graph["pkg.a"] == {"pkg.sub.b", "pkg.sub"}  # a submodule, and a name of pkg.sub
    assert graph["pkg.d"] == {"pkg.a"}
    assert graph["pkg.sub.b"] == {"pkg.sub.c"}
    assert graph["pkg.sub.c"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.sub.b", "pkg.sub.c", "pkg.a"]]
    (package / "sub" / "c.py").write_text("import os\n")
    assert cycles(import_graph(module_files(package))) == []


def test_cycle_finder_on_synthetic_graphs() -> None:
    """Control: two separate cycles and a self-import are each reported; a DAG is clean."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"f"}, "f": {"e"}}
    assert sorted(cycles(graph)) == [["a", "b", "c", "a"], ["e", "f", "e"]]
    assert cycles({"a": {"a"}}) == [["a", "a"]]
    assert cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


# Nothing downstream imports upstream: a module matching the first prefix must not reach,
# through any chain of imports, a module matching the second.
NEVER_REACHES = [
    ("amberpicd.imaging", "amberpicd.config"),  # imaging knows no config
    ("amberpicd.ops", "amberpicd.config"),
    ("amberpicd.engine.pipeline", "amberpicd.workers"),  # the pipeline knows no worker process
    ("amberpicd.engine.derive", "amberpicd.workers"),
    ("amberpicd.imaging", "amberpicd.workers"),
    ("amberpicd.engine.pipeline", "amberpicd.daemon"),
    ("amberpicd.workers", "amberpicd.daemon"),
]


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def reaches(graph: Mapping[str, Iterable[str]], start: str, prefix: str) -> list[str] | None:
    """A chain of imports from ``start`` to a module under ``prefix``, or None."""
    parents: dict[str, str | None] = {start: None}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph.get(node, ())):
                if child in parents:
                    continue
                parents[child] = node
                if _under(child, prefix):
                    chain: list[str] = [child]
                    while parents[chain[-1]] is not None:
                        chain.append(parents[chain[-1]])  # type: ignore[arg-type]
                    return chain[::-1]
                following.append(child)
        frontier = following
    return None


@pytest.mark.parametrize(("lower", "upper"), NEVER_REACHES)
def test_lower_layers_never_import_upper_ones(lower: str, upper: str) -> None:
    starts = [m for m in GRAPH if _under(m, lower)]
    assert starts, f"no module under {lower}"
    chains = [c for m in starts if (c := reaches(GRAPH, m, upper))]
    assert not chains, "\n".join(" → ".join(c) for c in chains)


def test_reaches_control() -> None:
    assert reaches(GRAPH, "amberpicd.engine.batch", "amberpicd.workers")  # it runs the pool
    assert reaches({"a": {"b"}, "b": {"c.x"}, "c.x": set()}, "a", "c") == ["a", "b", "c.x"]
    assert reaches({"a": {"b"}, "b": {"a"}, "cc": set()}, "a", "c") is None


# --- sizes --------------------------------------------------------------------------------


def _rel(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def test_no_module_over_the_limit() -> None:
    over = {_rel(p): line_count(p) for p in MODULES.values() if line_count(p) > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines: {over}"


def test_line_count_control(tmp_path: Path) -> None:
    long = tmp_path / "long.py"
    long.write_text("x = 1\n" * (MAX_LINES + 1))
    assert line_count(long) > MAX_LINES
    long.write_text("x = 1\n" * MAX_LINES)
    assert line_count(long) == MAX_LINES


# --- Pillow -------------------------------------------------------------------------------


def test_pillow_only_where_pixels_are_handled() -> None:
    importers = pillow_importers(MODULES)
    assert "amberpicd.imaging.decode" in importers  # control: the finder sees real imports
    outside = {m: names for m, names in importers.items() if not allowed_pillow(MODULES[m])}
    assert not outside, f"Pillow imported outside {PILLOW_PLACES}: {outside}"


def test_pillow_finder_control(tmp_path: Path) -> None:
    package = tmp_path / "amberpicd"
    (package / "config").mkdir(parents=True)
    (package / "imaging").mkdir()
    (package / "config" / "x.py").write_text("def f():\n    import pillow_heif\n")
    (package / "config" / "y.py").write_text("from PIL.Image import open\n")
    (package / "imaging" / "z.py").write_text("from PIL import Image\n")
    (package / "desktop" / "tray").mkdir(parents=True)
    (package / "desktop" / "tray" / "icons.py").write_text("")
    (package / "desktop" / "tray" / "app.py").write_text("")
    modules = module_files(package)
    assert pillow_importers(modules) == {
        "amberpicd.config.x": ["pillow_heif"],
        "amberpicd.config.y": ["PIL.Image", "PIL.Image.open"],
        "amberpicd.imaging.z": ["PIL", "PIL.Image"],
    }
    allowed = {m: allowed_pillow(p, package) for m, p in modules.items()}
    assert allowed["amberpicd.imaging.z"] and allowed["amberpicd.desktop.tray.icons"]
    assert not allowed["amberpicd.config.x"] and not allowed["amberpicd.desktop.tray.app"]


# Imported in a fresh process, one forked child per module: which Pillow modules each loads.
_PROBE = """
import json, os, sys
import pydantic, yaml  # third-party, Pillow-free: loaded once, shared by the children
assert not any(m.split('.')[0] in {pillow} for m in sys.modules), 'parent has Pillow'
out = {{}}
for module in json.loads(sys.argv[1]):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            __import__(module)
            loaded = sorted(m for m in sys.modules if m.split('.')[0] in {pillow})
            report = {{'pillow': loaded}}
        except BaseException as exc:
            report = {{'error': repr(exc)}}
        os.write(w, json.dumps(report).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        out[module] = json.loads(f.read())
    os.waitpid(pid, 0)
print(json.dumps(out))
"""


def probe_imports(modules: list[str]) -> dict[str, dict[str, list[str] | str]]:
    script = _PROBE.format(pillow=set(PILLOW))
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(modules)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=PACKAGE.parent,
    )
    return json.loads(done.stdout)


NO_PILLOW_MODULES = sorted(
    m for m in MODULES if m.split(".")[1:2] and m.split(".")[1] in NO_PILLOW_PACKAGES
)


@pytest.fixture(scope="module")
def loaded() -> dict[str, dict[str, list[str] | str]]:
    return probe_imports([*NO_PILLOW_MODULES, "amberpicd.imaging.picture"])


@pytest.mark.parametrize("module", NO_PILLOW_MODULES)
def test_imports_without_pillow(module: str, loaded) -> None:
    report = loaded[module]
    assert "error" not in report, f"{module} failed to import: {report.get('error')}"
    assert report["pillow"] == [], f"{module} loads {report['pillow']} at import time"


def test_pillow_probe_control(loaded) -> None:
    """Control: a module that does import Pillow is seen to, and the list is not empty."""
    assert "PIL" in loaded["amberpicd.imaging.picture"]["pillow"]
    assert {"amberpicd.config.schema", "amberpicd.journal.store"} <= set(NO_PILLOW_MODULES)
    assert len(NO_PILLOW_MODULES) >= 20


# --- the package's top --------------------------------------------------------------------


def test_few_modules_at_the_top() -> None:
    top = top_modules()
    assert "errors.py" in top  # control: the listing sees the real top
    assert len(top) <= MAX_TOP_MODULES, f"{len(top)} modules at the top: {top}"


def test_top_listing_control(tmp_path: Path) -> None:
    for name in ("__init__.py", "a.py", "b.py"):
        (tmp_path / name).write_text("")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.py").write_text("")
    assert top_modules(tmp_path) == ["__init__.py", "a.py", "b.py"]
