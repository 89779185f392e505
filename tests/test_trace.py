"""The analytic estimate against the exact fake-tensor trace of the transformers model."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from vramcalc.core.inference import kv_cache_bytes  # noqa: E402
from vramcalc.measure.trace import trace  # noqa: E402
from vramcalc.measure.validate import TINY_MODELS, ci_grid, compare, summary  # noqa: E402
from vramcalc.measure.workload import Workload  # noqa: E402
from vramcalc.spec.params import param_count  # noqa: E402

# Widest |estimate / trace - 1| the grid allows. Started at 10 % (first worst case: 38 %, MoE
# prefill); after following the implementation op by op the worst cases are 2.7 % (inference,
# GPT-2 fp32) and 2.2 % (training, GPT-2 eager), so the gate sits at the 3 % target.
TOLERANCE = 0.03

GRID = ci_grid()


@pytest.fixture(autouse=True)
def _quiet() -> None:
    warnings.filterwarnings("ignore")


def test_grid_covers_the_issue() -> None:
    kinds = {w.kind for w in GRID}
    assert len(GRID) >= 30 and kinds == {"inference", "training"}
    assert any(w.spec.is_moe for w in GRID) and any(
        w.spec.kv_heads < w.spec.num_attention_heads for w in GRID
    )
    assert {w.grad_checkpointing for w in GRID} == {"none", "full"}
    assert len({w.optimizer for w in GRID if w.kind == "training"}) >= 4
    assert len({w.precision for w in GRID if w.kind == "training"}) >= 4


@pytest.mark.parametrize("wl", GRID, ids=[w.label for w in GRID])
def test_estimate_within_tolerance_of_trace(wl: Workload) -> None:
    row = compare(wl)
    assert abs(row.error) <= TOLERANCE, row.to_json()


def test_parameters_and_kv_cache_are_exact() -> None:
    spec = TINY_MODELS["tiny-llama-gqa"]
    res = trace(Workload("inference", spec, 2, 256))
    # parameters: every weight in bf16 (2 B) + the rotary buffers inv_freq and original_inv_freq
    # (head_dim/2 = 16 fp32 values each)
    assert res.by_category["parameters"] == 2 * param_count(spec) + 2 * 16 * 4
    # KV: 2 × 2 layers × 2 seqs × 256 tokens × 2 kv heads × 32 head_dim × 2 B = 262,144
    assert res.by_category["kv_cache"] == kv_cache_bytes(spec, 2, 256, 2) == 262_144


def test_training_states_are_exact() -> None:
    spec = TINY_MODELS["tiny-llama"]
    res = trace(Workload("training", spec, 1, 128, precision="fp32", optimizer="sgd-momentum"))
    n = param_count(spec)
    # the peak is in backward with the momentum buffers (4 B/param) and fp32 weights (4 B/param)
    assert res.by_category["optimizer_state"] == 4 * n
    assert res.by_category["parameters"] == 4 * n + 2 * 16 * 4


def test_flash_keeps_no_score_matrix() -> None:
    spec = TINY_MODELS["tiny-llama"]
    flash = trace(Workload("training", spec, 1, 512, precision="fp32", optimizer="sgd"))
    eager = trace(
        Workload("training", spec, 1, 512, precision="fp32", optimizer="sgd", attention="eager")
    )
    # eager saves the fp32 softmax of each layer, 2 layers × 4 heads × 512² × 4 B = 8 MiB, in place
    # of flash's output + log-sum-exp (which eager also keeps in other forms): more than 7 MiB apart,
    # and flash keeps nothing of size s² (its activations stay under 12 MiB, less than 3 layers' scores)
    assert eager.by_category["activations"] - flash.by_category["activations"] > 7 * 2**20
    assert flash.by_category["activations"] < 3 * 4 * 512**2 * 4


def test_summary_statistics() -> None:
    rows = [compare(w) for w in GRID[:3]]
    s = summary(rows)
    assert s["all"]["n"] == 3
    assert s["all"]["worst_abs_error"] == max(abs(r.error) for r in rows)
