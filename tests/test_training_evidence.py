"""vramcalc's training estimate held to published fine-tuning peaks (validation/training/*.toml).

Every usable record is estimated through the public API by benchmarks/training_evidence.py (the
model preset or the record's model_config as a config.json; the framework profile of
presets/frameworks/ with the record's own flags on top) and compared with its published metric:
allocated = total − cuda_context − allocator_slack, reserved = total − cuda_context, nvidia-smi =
total, unknown = anywhere in [allocated, nvidia-smi] (docs/frameworks.md, "Evidence").

The band per framework is a product statement chosen from the mechanisms vramcalc does not model
for that stack (docs/frameworks.md gives each); a record outside its band must name the missing
mechanism in KNOWN_MISSES, and the test fails when such a record comes back inside (so the list
cannot go stale).
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "training_evidence", ROOT / "benchmarks" / "training_evidence.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["training_evidence"] = module
    spec.loader.exec_module(module)
    return module


ev = _runner()

BAND, KNOWN_MISSES, NOT_MODELLED = ev.BAND, ev.KNOWN_MISSES, ev.NOT_MODELLED


@pytest.fixture(scope="module")
def rows() -> dict[str, object]:
    return {r.id: r for r in ev.rows()}


def test_evidence_is_broad_enough() -> None:
    usable = [r for r in ev.load_records() if r["status"] == "usable"]
    assert len(usable) >= 40
    assert len({r["framework"] for r in usable}) >= 4
    for r in ev.load_records():
        assert r["status"] in ("usable", "skipped")
        assert r["status"] == "usable" or r.get("skip_reason"), r["id"]


def test_every_usable_record_is_estimated_or_refused_with_a_reason(rows: dict) -> None:  # type: ignore[type-arg]
    refused = {i: r.note for i, r in rows.items() if r.before is None}
    assert set(refused) == set(NOT_MODELLED)
    for i, why in NOT_MODELLED.items():
        assert why in refused[i]
    assert all(r.after is not None for r in rows.values() if r.before is not None), [
        (i, r.note) for i, r in rows.items() if r.before is not None and r.after is None
    ]


def test_known_misses_are_records() -> None:
    ids = {r["id"] for r in ev.load_records() if r["status"] == "usable"}
    assert set(KNOWN_MISSES) <= ids


@pytest.mark.parametrize(
    "record_id",
    sorted(
        r["id"]
        for r in ev.load_records()
        if r["status"] == "usable" and r["id"] not in NOT_MODELLED
    ),
)
def test_record_within_its_framework_band(record_id: str, rows: dict) -> None:  # type: ignore[type-arg]
    row = rows[record_id]
    band = BAND[row.framework]
    inside = ev.within_band(row)  # a cap record: the lower side only (the estimate is a bound)
    if record_id in KNOWN_MISSES:
        # a named missing mechanism: the miss must still be there (else drop it from the list)
        assert not inside, f"{record_id} is now within ±{band:.0%} ({row.after:+.1%})"
    else:
        assert inside, f"{record_id}: {row.after:+.1%} outside ±{band:.0%}"


def test_profiles_do_not_make_the_modelled_stacks_worse(rows: dict) -> None:  # type: ignore[type-arg]
    # the stacks whose conventions the profiles carry: the median error after is at most before
    # (litgpt: 12.5 % after, 13.5 % before, once its lora_dropout 0.05 is applied)
    for fw in ("torchtune", "peft", "litgpt"):
        mine = [r for r in rows.values() if r.framework == fw and r.before is not None]
        before = statistics.median(abs(r.before) for r in mine)
        after = statistics.median(abs(r.after) for r in mine)
        assert after <= before + 1e-9, (fw, before, after)


def test_metric_mapping() -> None:
    from vramcalc import estimate_training

    est = estimate_training("llama-3.1-8b", method="lora", seq_len=1024)
    ctx, slack = est.component("cuda_context"), est.component("allocator_slack")
    assert ctx > 0 and slack > 0
    tot = est.total_bytes
    assert ev.metric_range_bytes(est, "allocated") == (tot - ctx - slack,) * 2
    assert ev.metric_range_bytes(est, "reserved") == (tot - ctx,) * 2
    assert ev.metric_range_bytes(est, "nvidia-smi") == (tot, tot)
    assert ev.metric_range_bytes(est, "unknown") == (tot - ctx - slack, tot)
    # inside the unknown range: no error; outside: the distance to the nearer end
    rec = {"metric": "unknown", "peak_gib": (tot - ctx) / 2**30}
    assert ev.error(est, rec) == 0.0
    rec = {"metric": "nvidia-smi", "peak_gib": tot / 2**30 * 2}
    assert ev.error(est, rec) == pytest.approx(-0.5)


def test_model_config_becomes_the_same_model_as_the_preset(tmp_path: Path) -> None:
    # a record's model_config written as config.json reads back as the model it describes:
    # Llama 3 8B from LitGPT's definition has the parameters of the llama-3.1-8b preset (same shapes)
    from vramcalc.sources.presets import get_model
    from vramcalc.spec.params import param_count

    cfg = {
        "model_type": "llama", "vocab_size": 128256, "hidden_size": 4096,
        "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
        "head_dim": 128, "intermediate_size": 14336, "mlp_kind": "gated",
        "parallel_residual": False, "bias": False, "norm": "RMSNorm",
        "tie_word_embeddings": False, "max_position_embeddings": 8192,
    }  # fmt: skip
    spec = ev._model({"id": "x", "model_config": cfg}, tmp_path)
    assert param_count(spec) == param_count(get_model("llama-3.1-8b")) == 8_030_261_248


def test_litgpt_profile_versions_follow_its_bitsandbytes_pin() -> None:
    from vramcalc.sources.frameworks import get_framework

    # LitGPT pinned bitsandbytes==0.42.0 until 0.5.5 moved to >=0.44.0 (presets/frameworks/litgpt.toml)
    assert get_framework("litgpt", "0.4.0").conventions.bnb_keeps_4bit_inputs
    assert not get_framework("litgpt", "0.5.5").conventions.bnb_keeps_4bit_inputs
    assert ev.release({"framework_version": "0.4.0.dev0"}) == "0.4.0"
    assert ev.release({"framework_version": ""}) is None


def test_paged_state_spans_host_and_gpu() -> None:
    # a paged optimizer's state may be on the GPU or paged out: every metric spans the floor
    # (total − spillable) to the total; torchtune's low-memory row (32-bit paged AdamW, 25 GiB of
    # state beside 12.5 GiB of weights on a 24 GB card) is only possible paged out
    from vramcalc import estimate_training
    from vramcalc.spec.conventions import Conventions

    est = estimate_training(
        "llama-3.1-8b", method="qlora", seq_len=512, conventions=Conventions(paged_optimizer=True)
    )
    spill = est.spillable_bytes
    assert spill == est.component("optimizer_state") > 0
    ctx, slack = est.component("cuda_context"), est.component("allocator_slack")
    low, high = ev.metric_range_bytes(est, "allocated")
    assert (low, high) == (est.total_bytes - spill - ctx - slack, est.total_bytes - ctx - slack)


def test_cap_records_hold_the_lower_side_only() -> None:
    row = ev.Row("x", "unsloth", 1.0, 0.5, 0.9, cap=True)  # +90 % over a capped run: a bound
    assert ev.within_band(row)
    assert not ev.within_band(ev.Row("x", "unsloth", 1.0, 0.5, -0.3, cap=True))
    assert not ev.within_band(ev.Row("x", "unsloth", 1.0, 0.5, 0.9, cap=False))
