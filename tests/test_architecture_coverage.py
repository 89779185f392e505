"""docs/architectures.md is what scripts/architecture_coverage.py generates from the installed
transformers: a transformers upgrade that adds (or breaks) an architecture fails here until the
table is regenerated and each new row is looked at.

The always-run checks are the cheap part (which model_types there are, which are mapped, the
totals); the full regeneration runs the meta-device route on every unmapped type (minutes on two
cores) and is marked slow."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architectures.md"
ROW = re.compile(r"^\| `([^`]+)` \| (mapped|meta-device|refused) \| (.*) \|$")


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "architecture_coverage", ROOT / "scripts" / "architecture_coverage.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def committed_rows() -> dict[str, tuple[str, str]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        match = ROW.match(line)
        if match:
            rows[match.group(1)] = (match.group(2), match.group(3))
    return rows


def test_table_lists_every_causal_lm_type_and_the_mapped_ones() -> None:
    transformers = pytest.importorskip("transformers")
    from vramcalc.measure.coverage import causal_lm_types

    rows = committed_rows()
    assert list(rows) == causal_lm_types(), "run: python scripts/architecture_coverage.py"
    mapped = load_script().mapped_types()
    assert {t for t, (s, _) in rows.items() if s == "mapped"} == set(mapped) & set(rows)
    text = DOC.read_text()
    assert f"transformers {transformers.__version__} " in text
    counts = {s: sum(1 for v in rows.values() if v[0] == s) for s in ("mapped", "meta-device")}
    refused = len(rows) - counts["mapped"] - counts["meta-device"]
    assert (
        f"Totals: {len(rows)} architectures: {counts['mapped']} mapped, "
        f"{counts['meta-device']} meta-device, {refused} refused." in text
    )
    # every refusal says why, in one line; a meta-device row needs no note
    assert all(note for status, note in rows.values() if status == "refused")


def test_a_meta_device_row_is_one_the_route_answers() -> None:
    """The status is the real route's, not "transformers builds it": an encoder (BERT, no cache)
    builds on the meta device but the route refuses it; arcee's row is exact."""
    pytest.importorskip("torch")
    from vramcalc.measure.coverage import route_status

    rows = committed_rows()
    for model_type in ("bert", "roberta", "blenderbot"):
        if rows.get(model_type, ("mapped",))[0] == "mapped":
            continue
        status, why = route_status(model_type)
        assert status == "refused" and rows[model_type] == ("refused", why.replace("|", "\\|"))
    if rows.get("arcee", ("mapped",))[0] != "mapped":
        assert route_status("arcee")[0] == "exact" and rows["arcee"][0] == "meta-device"


@pytest.mark.slow
def test_coverage_table_is_current() -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    assert load_script().render() == DOC.read_text(), "run: python scripts/architecture_coverage.py"


def test_every_mapped_type_is_a_causal_lm_of_transformers() -> None:
    pytest.importorskip("transformers")
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    from vramcalc.sources.hf_config import SUPPORTED_MODEL_TYPES

    assert set(SUPPORTED_MODEL_TYPES) <= set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)
