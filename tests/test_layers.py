"""The package's layers, checked on the source (every import statement, function-level and
TYPE_CHECKING ones included, which an import-time check would miss).

    base (errors, units, safe_io) < spec < sources (+ nvml) < core < api < report < cli

A module may import its own layer and the layers below it, never a higher one. ``measure`` (the
only torch/transformers importer) may import anything; nothing imports it except the lazy
exceptions listed in ``LAZY_MEASURE``. Third-party imports are held to their own package:
rich under report/, typer under cli/, torch/transformers/numpy under measure/, pynvml in nvml.py.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "vramcalc"

RANK = {"base": 0, "spec": 1, "sources": 2, "core": 3, "api": 4, "report": 5, "cli": 6}

# Function-level imports of measure/ allowed outside it: the torch-backed commands (cli/measure.py
# imports measure/ when `trace`, `measure`, `validate` run) and the exact meta-device route of a
# config.json (sources/__init__.py, only when the formula route cannot map the architecture).
LAZY_MEASURE = {"vramcalc.cli.measure", "vramcalc.sources"}

# No known offenders: a cycle, a long module or function fails at once.
CYCLE_ALLOWLIST: set[frozenset[str]] = set()
LONG_MODULE_ALLOWLIST: set[str] = set()
LONG_FUNCTION_ALLOWLIST: set[str] = set()
PRIVATE_ALLOWLIST: dict[str, str] = {}
# rich consoles are made by report.console.make_console only
CONSOLE_ALLOWLIST: set[str] = set()
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 150

THIRD_PARTY_HOME = {
    "rich": "vramcalc.report",
    "typer": "vramcalc.cli",
    "click": "vramcalc.cli",
    "torch": "vramcalc.measure",
    "transformers": "vramcalc.measure",
    "numpy": "vramcalc.measure",
    "peft": "vramcalc.measure",
    "pynvml": "vramcalc.nvml",
}


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # the module imported (for `from m import name`: m, or m.name when a module)
    names: tuple[str, ...]  # names taken by `from m import ...` (empty for `import m`)
    line: int
    nested: bool  # inside a function (runs only when called)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in MODULES.items()}
LINES = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in MODULES.items()}


def _imports(name: str, path: Path) -> Iterator[Import]:
    tree = TREES[name]
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]

    def walk(node: ast.AST, nested: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(name, alias.name, (), child.lineno, nested)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package[: len(package) - child.level + 1]
                    target = ".".join([*base, *([child.module] if child.module else [])])
                else:
                    target = child.module or ""
                names = tuple(a.name for a in child.names)
                yield Import(name, target, names, child.lineno, nested)
                for n in names:  # `from vramcalc.core import training` imports a module
                    if f"{target}.{n}" in MODULES:
                        yield Import(name, f"{target}.{n}", (), child.lineno, nested)
            yield from walk(child, inner)

    yield from walk(tree, False)


IMPORTS = [imp for name, path in MODULES.items() for imp in _imports(name, path)]


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "package"  # vramcalc/__init__.py: lazy re-exports of api
    head = parts[1]
    if head in ("errors", "units", "safe_io"):
        return "base"
    if head == "nvml":
        return "sources"  # I/O like sources/: the machine's GPUs
    if head == "__main__":
        return "cli"
    return head


def test_every_module_has_a_layer() -> None:
    known = {*RANK, "measure", "package"}
    assert {m: layer(m) for m in MODULES if layer(m) not in known} == {}


def layer_violations(imports: list[Import]) -> list[str]:
    bad = []
    for imp in imports:
        if not imp.target.startswith("vramcalc"):
            continue
        src, dst = layer(imp.importer), layer(imp.target)
        if src in ("measure", "package") or dst == "measure":
            continue  # measure may import anything; measure's importers: next test
        if dst == "package" or RANK[dst] > RANK[src]:
            bad.append(f"{imp.importer}:{imp.line} ({src}) imports {imp.target} ({dst})")
    return bad


def test_lower_layers_never_import_higher_ones() -> None:
    assert layer_violations(IMPORTS) == []


def test_a_function_level_upward_import_is_caught() -> None:
    """core importing report inside a function (never run by an import-time check) is refused."""
    imp = Import("vramcalc.core.inference", "vramcalc.report.console", ("plain",), 9, True)
    assert layer_violations([imp]) == [
        "vramcalc.core.inference:9 (core) imports vramcalc.report.console (report)"
    ]


def test_measure_is_imported_only_lazily_by_the_listed_modules() -> None:
    bad = [
        f"{imp.importer}:{imp.line} imports {imp.target}"
        + ("" if imp.nested else " at module level")
        for imp in IMPORTS
        if layer(imp.target) == "measure"
        and layer(imp.importer) != "measure"
        and not (imp.nested and imp.importer in LAZY_MEASURE)
    ]
    assert bad == []


def test_package_init_reexports_only_api() -> None:
    targets = {
        imp.target
        for imp in IMPORTS
        if imp.importer == "vramcalc" and imp.target.startswith("vramcalc")
    }
    assert targets <= {"vramcalc.api"}


@pytest.mark.parametrize("package, home", sorted(THIRD_PARTY_HOME.items()))
def test_third_party_package_stays_in_its_home(package: str, home: str) -> None:
    bad = [
        f"{imp.importer}:{imp.line}"
        for imp in IMPORTS
        if imp.target.split(".")[0] == package
        and not (imp.importer == home or imp.importer.startswith(home + "."))
    ]
    assert bad == []


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for imp in IMPORTS:
        if imp.target in MODULES and imp.target != imp.importer:
            graph[imp.importer].add(imp.target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components of more than one module (Tarjan), a package's __init__
    importing its own submodules excepted (that is how a package re-exports)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
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
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(frozenset(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_between_modules() -> None:
    graph = _graph()
    for pkg in graph:  # a package's __init__ may import its submodules (re-exports)
        graph[pkg] = {t for t in graph[pkg] if not t.startswith(pkg + ".")}
    assert set(_cycles(graph)) - CYCLE_ALLOWLIST == set()


def test_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [frozenset({"a", "b", "c"})]


def test_no_module_over_500_lines() -> None:
    long = {name: n for name, n in LINES.items() if n > MAX_MODULE_LINES}
    assert set(long) - LONG_MODULE_ALLOWLIST == set(), long


def test_no_function_over_150_lines() -> None:
    long = {}
    for name, tree in TREES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long[f"{name}:{node.name}"] = n
    assert set(long) - LONG_FUNCTION_ALLOWLIST == set(), long


def _private_uses() -> list[str]:
    """`from vramcalc.x import _name` and `module._name` where `module` is another vramcalc
    module bound by an import: a private name used outside the module that defines it."""
    bad = []
    for name, path in MODULES.items():
        tree = TREES[name]
        bound: dict[str, str] = {}  # local name -> vramcalc module it is bound to
        for imp in _imports(name, path):
            if not imp.target.startswith("vramcalc") or imp.target == name:
                continue
            for n in imp.names:
                if n.startswith("_") and not n.startswith("__"):
                    bad.append(f"{name}:{imp.line} imports {imp.target}.{n}")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                for a in node.names:
                    if f"{node.module}.{a.name}" in MODULES:
                        bound[a.asname or a.name] = f"{node.module}.{a.name}"
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname and a.name in MODULES:
                        bound[a.asname] = a.name
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in bound
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                bad.append(f"{name}:{node.lineno} uses {bound[node.value.id]}.{node.attr}")
    return bad


def test_no_module_uses_another_modules_private_names() -> None:
    bad = [use for use in _private_uses() if use.split(":")[0] not in PRIVATE_ALLOWLIST]
    assert bad == []


def _calls(name: str, module: str) -> list[int]:
    """Lines of `module` that call something named `name` (a function or a method)."""
    return [
        node.lineno
        for node in ast.walk(TREES[module])
        if isinstance(node, ast.Call)
        and (getattr(node.func, "id", None) == name or getattr(node.func, "attr", None) == name)
    ]


def test_one_console_factory() -> None:
    builders = {m for m in MODULES if _calls("Console", m)}
    assert builders - CONSOLE_ALLOWLIST == {"vramcalc.report.console"}


def test_one_json_writer_on_the_command_line() -> None:
    """Every --json document goes through cli.options.print_json (schema_version and kind first,
    strict JSON); cli/measure.py prints a raw record (JSONL, as in the record file) when the file
    cannot take it."""
    writers = {
        m
        for m in MODULES
        if m.startswith("vramcalc.cli") and (_calls("dumps_json", m) or _calls("dumps", m))
    }
    assert writers == {"vramcalc.cli.options", "vramcalc.cli.measure"}


REFERENCES_ALLOWLIST: set[str] = set()


def test_sources_cite_primary_sources_not_a_missing_file() -> None:
    """REFERENCES.md is not in the repository: code and docs cite the paper or file itself."""
    root = PACKAGE.parent
    texts = [*PACKAGE.rglob("*.py"), *(root / "docs").glob("*.md"), root / "README.md"]
    citing = {
        str(path.relative_to(root))
        for path in texts
        if path.is_file() and "REFERENCES" in path.read_text(encoding="utf-8")
    }
    assert citing - REFERENCES_ALLOWLIST == set()
