"""The package's shape, read from the AST (nothing is imported): no import cycle between the
top-level packages of factoryctl, no stage importing the CLI, no private name imported across
modules, and no arrow against the pipeline order.

Every import counts, also one inside a function or under TYPE_CHECKING: a lazy import hides
an arrow, it does not remove it. A top-level module (factoryctl/session.py) counts as a
package of its own; factoryctl/__init__.py is "factoryctl".
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "factoryctl"

# The pipeline, earliest first: a package may import packages of its own rank or earlier ones;
# an import of a later rank is a backward arrow. Packages on one line share a rank.
PIPELINE: list[tuple[str, ...]] = [
    ("factoryctl", "errors", "files", "ui", "workspace", "resources", "manifest"),
    ("findings",),
    ("load",),
    ("model", "catalog"),
    ("resolve",),
    ("rules",),
    ("session",),
    ("render",),
    ("engines",),
    ("bench",),
    ("health",),  # parsers and judge of health outputs; verify and quarantine use them
    ("verify",),
    ("ops",),
    ("drift",),
    ("report",),
    ("blueprints", "docsgen", "docsgen_fields"),  # a command's helpers: blueprint fork, the generated docs
    ("cli",),
]
RANK = {name: rank for rank, names in enumerate(PIPELINE) for name in names}

# Arrows against the order that stay, each with its reason: (importer, imported).
ALLOWED_BACKWARD: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name, e.g. factoryctl.render.context
    module: str  # the module imported from, e.g. factoryctl.verify.generate
    names: tuple[str, ...]  # names imported `from module` ( () for `import module`)
    line: int

    def where(self) -> str:
        return f"{self.importer}:{self.line}"


def _module_name(path: Path) -> tuple[str, list[str]]:
    """The dotted name of a source file and the package its relative imports start from."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
        return ".".join(parts), parts
    return ".".join(parts), parts[:-1]


@cache
def imports() -> tuple[Import, ...]:
    found: list[Import] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name, package = _module_name(path)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                found += [Import(name, a.name, (), node.lineno) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                found.append(Import(name, module, tuple(a.name for a in node.names), node.lineno))
    return tuple(i for i in found if i.module == "factoryctl" or i.module.startswith("factoryctl."))


def top(module: str) -> str:
    """The top-level package of a dotted module name (factoryctl itself for the root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "factoryctl"


def _targets(i: Import) -> list[str]:
    """The modules an import reaches: `from factoryctl import x` reaches factoryctl.x when x
    is a module (a subpackage imported by name), else factoryctl itself."""
    if i.module == "factoryctl" and i.names:
        out = []
        for n in i.names:
            sub = PACKAGE / n
            out.append(f"factoryctl.{n}" if sub.is_dir() or sub.with_suffix(".py").is_file() else "factoryctl")
        return out
    return [i.module]


def package_graph() -> dict[str, dict[str, list[str]]]:
    """importer package -> imported package -> where (module:line), without self-arrows."""
    graph: dict[str, dict[str, list[str]]] = {}
    for i in imports():
        a = top(i.importer)
        for t in _targets(i):
            b = top(t)
            if a != b:
                graph.setdefault(a, {}).setdefault(b, []).append(i.where())
    return graph


def cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """Every strongly connected component of more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, {})):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    nodes = set(graph) | {b for arrows in graph.values() for b in arrows}
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def test_the_scan_sees_the_package():
    graph = package_graph()
    assert "render" in graph and "resolve" in graph["render"], "the AST scan found no imports"
    every = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.is_dir() and (p / "__init__.py").is_file()) or (p.suffix == ".py" and p.stem != "__init__")}
    assert every <= set(RANK), f"packages missing from PIPELINE: {sorted(every - set(RANK))}"


def test_no_import_cycle_between_packages():
    graph = package_graph()
    found = []
    for comp in cycles(graph):
        arrows = [f"  {a} -> {b}: {', '.join(graph[a][b])}" for a in comp for b in comp if b in graph.get(a, {})]
        found.append(" <-> ".join(comp) + "\n" + "\n".join(arrows))
    assert not found, "import cycles between packages:\n" + "\n".join(found)


def test_no_stage_imports_the_cli():
    bad = [i.where() for i in imports() if top(i.importer) != "cli" and any(top(t) == "cli" for t in _targets(i))]
    assert not bad, "stages import factoryctl.cli: " + ", ".join(bad)


def test_no_stage_holds_a_console():
    # Stages report through ui.UI and return results; only the command line owns a terminal.
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("cli/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "rich.console":
                bad.append(f"{rel}:{node.lineno}")
            elif isinstance(node, ast.Import) and any(a.name == "rich.console" for a in node.names):
                bad.append(f"{rel}:{node.lineno}")
    assert not bad, "stages import rich.console (report through ui.UI instead): " + ", ".join(bad)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_no_private_name_imported_across_modules():
    bad = []
    for i in imports():
        privates = [n for n in i.names if _private(n)]
        # `import factoryctl._x` / `from . import _x` name a private module
        privates += [p for p in i.module.split(".") if _private(p)]
        if privates and i.module != i.importer:
            bad.append(f"{i.where()}: {i.module} {', '.join(privates)}")
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


def test_no_backward_arrow():
    graph = package_graph()
    bad = []
    for a, arrows in sorted(graph.items()):
        for b, where in sorted(arrows.items()):
            if RANK.get(b, -1) > RANK.get(a, len(PIPELINE)) and (a, b) not in ALLOWED_BACKWARD:
                bad.append(f"{a} -> {b}: {', '.join(where)}")
    assert not bad, "imports against the pipeline order (earlier -> later):\n" + "\n".join(bad)


def test_every_allowed_backward_arrow_still_exists():
    graph = package_graph()
    gone = [f"{a} -> {b}" for a, b in sorted(ALLOWED_BACKWARD) if b not in graph.get(a, {})]
    assert not gone, f"gone, drop them from ALLOWED_BACKWARD: {gone}"


def test_the_checks_see_what_they_look_for():
    assert cycles({"a": {"b": []}, "b": {"c": []}, "c": {"a": []}, "d": {"a": []}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b": []}}) == []
    assert _private("_x") and not _private("__version__") and not _private("x")
    assert top("factoryctl.render.kube") == "render" and top("factoryctl") == "factoryctl"
