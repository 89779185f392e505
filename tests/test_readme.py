"""Examples in README.md and docs/*.md are real CLI output: a stale block fails here.

Regenerate with ``python scripts/doc_examples.py``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "doc_examples", ROOT / "scripts" / "doc_examples.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DOCS = _module()


@pytest.mark.parametrize("path", DOCS.documents(), ids=lambda p: p.name)
def test_examples_are_current(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if path.name in ("README.md", "cost.md", "distributed.md"):
        assert len(DOCS.BLOCK.findall(text)) >= 4, "generated examples went missing"
    assert DOCS.render(text) == text, "run: python scripts/doc_examples.py"
