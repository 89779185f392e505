"""docs/architectures.md is what scripts/architecture_coverage.py generates from the installed
transformers: a transformers upgrade that adds (or breaks) an architecture fails here until the
table is regenerated and each new row is looked at."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_coverage_table_is_current() -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    spec = importlib.util.spec_from_file_location(
        "architecture_coverage", ROOT / "scripts" / "architecture_coverage.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (ROOT / "docs" / "architectures.md").read_text()
    assert module.render() == committed, "run: python scripts/architecture_coverage.py"


def test_every_mapped_type_is_a_causal_lm_of_transformers() -> None:
    pytest.importorskip("transformers")
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    from vramcalc.sources.hf_config import SUPPORTED_MODEL_TYPES

    assert set(SUPPORTED_MODEL_TYPES) <= set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)
