import ast
import inspect
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

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


def _uses_torch(function: Any, seen: set[str] | None = None) -> bool:
    """The test's body, or a function of its module that it calls (helpers such as a reference
    model builder), imports torch or its kin."""
    seen = set() if seen is None else seen
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return False
    if _TORCH_IN_BODY.search(source):
        return True
    module = sys.modules.get(getattr(function, "__module__", ""), None)
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in seen:
            seen.add(node.id)
            helper = getattr(module, node.id, None)
            if inspect.isfunction(helper) and helper.__module__ == function.__module__:
                if _uses_torch(helper, seen):
                    return True
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
        if Path(str(item.fspath)).name in SLOW_MODULES or any(
            item.get_closest_marker(m) for m in SLOW_MARKERS
        ):
            item.add_marker(pytest.mark.slow)
        function = getattr(item, "function", None)
        if _module_imports_torch(Path(str(item.fspath))) or (
            function is not None and _uses_torch(function)
        ):
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
