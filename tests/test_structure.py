"""The package's shape (issue 24, item 7): no import circle, no module over MAX_LINES lines, and a
data layer that knows nothing of the attacks (not even through another module).

The import graph is read from the source with :mod:`ast` (nothing is imported): every
``import paperlib.x`` and ``from paperlib.x import y`` of a module, at its top level or inside a
function (a lazy import that closes a circle is a circle too).  ``from paperlib.x import y`` is an
edge to ``paperlib.x``, or to the submodule ``paperlib.x.y`` when ``y`` is one; importing a
submodule is also an edge to each package above it (importing it runs their ``__init__``), except
the packages the importing module itself lives in: Python runs those before the module, so an
import of a sibling adds nothing (``paperlib.attacks.lc`` importing ``paperlib.attacks.badnet``).
An explicit import of such a package's own names (``from paperlib.attacks import REGISTRY`` inside
``paperlib.attacks.lc``) does count.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "paperlib"
MAX_LINES = 530

# modules allowed over MAX_LINES, each with its line count: a listed module may shrink, never
# grow, and comes off the list once it is under MAX_LINES.  None today.
LONG_MODULES: dict[str, int] = {}

# import circles allowed (each as its set of modules); a listed one that is broken comes off the
# list.  None today.
KNOWN_CYCLES: list[set[str]] = []


def package_modules(root: Path = PACKAGE) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package's ``__init__``) for every module under ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_pkg)
    return out


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph(root: Path = PACKAGE) -> dict[str, dict[str, int]]:
    """Module -> {imported module of the package: line of the first such import}."""
    modules = package_modules(root)
    top = root.name
    graph: dict[str, dict[str, int]] = {m: {} for m in modules}
    for name, (path, is_pkg) in modules.items():
        own = set(_ancestors(name)) | ({name} if is_pkg else set())   # packages ``name`` lives in
        here = name if is_pkg else name.rpartition(".")[0]

        def add(target: str, line: int, explicit: bool, name=name, own=own):
            if target not in modules:
                return
            for anc in _ancestors(target):          # their __init__ runs first, unless already ours
                if anc in modules and anc not in own and anc != name:
                    graph[name].setdefault(anc, line)
            if target != name and (explicit or target not in own):
                graph[name].setdefault(target, line)

        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == top:
                        add(alias.name, node.lineno, explicit=False)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[:len(here.split(".")) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                if module.split(".")[0] != top:
                    continue
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    if sub in modules:               # from paperlib.x import submodule
                        add(sub, node.lineno, explicit=False)
                    else:                            # a name defined in paperlib.x
                        add(module, node.lineno, explicit=True)
    return graph


def strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The import circles: strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def describe_cycle(graph: dict[str, dict[str, int]], comp: list[str]) -> str:
    """One circle through the component, each module with the line of its import of the next:
    ``paperlib.a:3 -> paperlib.b:12 -> paperlib.a``."""
    path = _path(graph, comp[0], {comp[0]}, set(comp))
    return _chain(graph, path) if path else ", ".join(comp)


def _chain(graph: dict[str, dict[str, int]], path: list[str]) -> str:
    return " -> ".join(f"{a}:{graph[a][b]}" for a, b in zip(path, path[1:])) + f" -> {path[-1]}"


def _path(graph: dict[str, dict[str, int]], start: str, goals: set[str],
          inside: set[str] | None = None) -> list[str]:
    """The shortest chain of imports from ``start`` to one of ``goals`` (through ``inside`` only)."""
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v]):
            if inside is not None and w not in inside:
                continue
            if w in goals:
                return paths[v] + [w]
            if w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    return []


def test_the_cycle_finder_sees_lazy_imports_and_package_inits(tmp_path):
    pkg = tmp_path / "paperlib"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from paperlib.sub.b import g\n")
    (pkg / "sub" / "__init__.py").write_text("from paperlib.sub.b import g\n")
    (pkg / "sub" / "b.py").write_text("from paperlib.sub.c import h\n")      # a sibling: no edge to sub
    (pkg / "sub" / "c.py").write_text("h = 1\n")
    (pkg / "d.py").write_text("import paperlib.e\n")
    (pkg / "e.py").write_text("from paperlib import d\n")
    (pkg / "sub" / "x.py").write_text("from paperlib.sub import g\n")          # a name of its own package
    graph = import_graph(pkg)
    assert graph["paperlib.a"] == {"paperlib.sub": 2, "paperlib.sub.b": 2}
    assert graph["paperlib.sub.b"] == {"paperlib.sub.c": 1}
    assert graph["paperlib.sub.x"] == {"paperlib.sub": 1}
    assert strongly_connected(graph) == [["paperlib.d", "paperlib.e"]]
    (pkg / "sub" / "c.py").write_text("def h():\n    from paperlib.a import f\n")
    cycles = strongly_connected(import_graph(pkg))
    assert cycles == [["paperlib.a", "paperlib.sub", "paperlib.sub.b", "paperlib.sub.c"], ["paperlib.d", "paperlib.e"]]
    assert describe_cycle(import_graph(pkg), cycles[1]) == "paperlib.d:1 -> paperlib.e:1 -> paperlib.d"


def test_no_import_cycles():
    graph = import_graph()
    known = [set(c) for c in KNOWN_CYCLES]
    new = [c for c in strongly_connected(graph) if set(c) not in known]
    assert not new, "import circles in paperlib (module:line of its import of the next; move the shared " \
                    "piece to a leaf module):\n" + "\n".join(
        describe_cycle(graph, c) for c in new)


def test_known_cycles_still_exist():
    """A known circle that was broken comes off the list, so it cannot come back unnoticed."""
    found = [set(c) for c in strongly_connected(import_graph())]
    gone = [sorted(c) for c in KNOWN_CYCLES if c not in found]
    assert not gone, f"these circles are gone: remove them from KNOWN_CYCLES: {gone}"


def _line_counts() -> dict[str, int]:
    return {path.relative_to(PACKAGE.parent).as_posix(): len(path.read_text().splitlines())
            for path, _ in package_modules().values()}


def test_no_module_over_max_lines():
    counts = _line_counts()
    long = {m: n for m, n in counts.items() if n > MAX_LINES and n > LONG_MODULES.get(m, 0)}
    assert not long, (f"modules over {MAX_LINES} lines (split them along their seams): "
                      + ", ".join(f"{m} ({n} lines)" for m, n in sorted(long.items())))


def test_long_module_list_is_current():
    counts = _line_counts()
    stale = [m for m in LONG_MODULES if counts.get(m, 0) <= MAX_LINES]
    assert not stale, f"no longer over {MAX_LINES} lines (or gone): remove from LONG_MODULES: {stale}"


def test_data_layer_imports_nothing_from_attacks():
    """Not directly, and not through another module (paperlib.data -> x -> paperlib.attacks)."""
    graph = import_graph()
    attacks = {m for m in graph if m == "paperlib.attacks" or m.startswith("paperlib.attacks.")}
    data = sorted(m for m in graph if m == "paperlib.data" or m.startswith("paperlib.data."))
    chains = [p for p in (_path(graph, d, attacks) for d in data) if p]   # the shortest chain of each
    assert not chains, "the data layer must not import paperlib.attacks:\n" + "\n".join(
        _chain(graph, p) for p in chains)
