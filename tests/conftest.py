import ast
import functools
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.testing

from vramcalc.spec.model import ModelSpec

# ---- markers: `torch` is set here, from the source, so the fast lane needs no bookkeeping -------
# The fast lane for everyday work: python -m pytest -m "not slow and not torch"
# A test is `torch` when its module imports torch, transformers, peft, vramcalc.measure or the
# transformers reference helpers (hf_reference) at the top, or when its own body does (most import
# them lazily through pytest.importorskip).
TORCH_MODULES = ("torch", "transformers", "peft", "deepspeed", "hf_reference", "vramcalc.measure")
_TORCH_NAME = r"(torch|transformers|peft|deepspeed|vramcalc\.measure)"
_TORCH_IN_BODY = re.compile(
    rf"importorskip\(\s*[\"']{_TORCH_NAME}"
    rf"|^\s*(import|from) {_TORCH_NAME}\b"
    r"|\bhf_reference\b",
    re.MULTILINE,
)
_MODULE_CACHE: dict[Path, bool] = {}


def _is_torch_module(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in TORCH_MODULES)


def _module_imports_torch(path: Path) -> bool:
    """Top-level imports (or `x = pytest.importorskip("torch")`) of torch and its kin."""
    if path not in _MODULE_CACHE:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = []
        for node in tree.body:
            if isinstance(node, ast.Import):
                names += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.append(node.module)
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                call = node.value
                if getattr(call.func, "attr", "") == "importorskip" and call.args:
                    arg = call.args[0]
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        names.append(arg.value)
        _MODULE_CACHE[path] = any(_is_torch_module(n) for n in names)
    return _MODULE_CACHE[path]


# A test that starts another Python process (a cold interpreter: ~0.3 s each) or draws charts
# with matplotlib is `slow`: the full suite runs it, the fast lane does not.
_SLOW_IN_BODY = re.compile(
    r"\bsubprocess\.|\bsys\.executable\b|importorskip\(\s*[\"'](matplotlib|huggingface_hub)"
)


@functools.cache
def _functions(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """Each function of a test module: its source and the names it uses (parsed once)."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    found: dict[str, tuple[str, frozenset[str]]] = {}
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            body = "\n".join(lines[node.lineno - 1 : node.end_lineno])
            names = frozenset(n.id for n in ast.walk(node) if isinstance(n, ast.Name))
            found.setdefault(node.name, (body, names))
    return found


@functools.cache
def _uses(pattern: re.Pattern[str], path: Path, name: str) -> bool:
    """The test's body, or a function of its module that it calls (a helper such as a reference
    model builder or a subprocess runner), matches `pattern`."""
    functions = _functions(path)
    todo, seen = [name], {name}
    while todo:
        body, names = functions[todo.pop()]
        if pattern.search(body):
            return True
        for n in names - seen:
            if n in functions:
                seen.add(n)
                todo.append(n)
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """A module that imports torch at the top is not even imported by a run whose -m expression
    deselects `torch` tests (collecting it would load torch: seconds of the fast lane)."""
    markexpr = config.getoption("markexpr", "") or ""
    if collection_path.suffix != ".py" or "torch" not in markexpr:
        return None
    if not collection_path.name.startswith("test_") or not _module_imports_torch(collection_path):
        return None
    try:
        from _pytest.mark.expression import Expression

        selected = Expression.compile(markexpr).evaluate(lambda name: name == "torch")
    except Exception:  # an expression pytest itself will report
        return None
    return True if not selected else None


# Tests that take seconds each go to `slow` with the rest of that kind: the hypothesis fuzz
# campaigns (`fuzz`), the real distributed ranks (`distributed`) and the regeneration of every
# documented example (tests/test_readme.py, about 12 s).
SLOW_MARKERS = ("fuzz", "distributed")
SLOW_MODULES = ("test_readme.py",)


@pytest.hookimpl(tryfirst=True)  # before -m deselects anything
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath))
        name = getattr(getattr(item, "function", None), "__name__", "")
        known = name in _functions(path)
        if path.name in SLOW_MODULES or any(item.get_closest_marker(m) for m in SLOW_MARKERS):
            item.add_marker(pytest.mark.slow)
        if known and _uses(_SLOW_IN_BODY, path, name):
            item.add_marker(pytest.mark.slow)
        if _module_imports_torch(path) or (known and _uses(_TORCH_IN_BODY, path, name)):
            item.add_marker(pytest.mark.torch)


@pytest.fixture(autouse=True)
def _torch_marker_is_honest(request: pytest.FixtureRequest) -> object:
    """A test not marked `torch` must not import torch: the fast lane would pay for it silently.
    (Only checked while torch is not yet loaded, i.e. in a run that deselects the torch tests.)"""
    before = "torch" in sys.modules
    yield
    if not before and "torch" in sys.modules and request.node.get_closest_marker("torch") is None:
        pytest.fail(
            "this test imported torch without the `torch` marker: import it in the test "
            "(pytest.importorskip) or mark it @pytest.mark.torch",
            pytrace=False,
        )


# CliRunner.invoke builds the click command tree of the app it is given on every call (~0.1 s for
# vramcalc's, most of a CLI test). The app is built once per process (cli.app.get_app) and never
# changed after, so its tree is built once per test session here too.
_COMMANDS: dict[int, tuple[Any, Any]] = {}
_build_command = typer.testing._get_command


def _cached_command(app: Any) -> Any:
    hit = _COMMANDS.get(id(app))
    if hit is None or hit[0] is not app:
        hit = _COMMANDS[id(app)] = (app, _build_command(app))
    return hit[1]


typer.testing._get_command = _cached_command  # type: ignore[attr-defined]


@pytest.fixture
def tiny_llama() -> ModelSpec:
    """A 2-layer GQA Llama small enough to count by hand."""
    return ModelSpec(
        name="tiny-llama",
        architecture="llama",
        vocab_size=100,
        hidden_size=16,
        num_layers=2,
        num_attention_heads=4,
        num_kv_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
