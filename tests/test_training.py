from __future__ import annotations

import pytest

import vramcalc
from vramcalc.core.optimizers import state_bytes
from vramcalc.core.training import estimate_training
from vramcalc.errors import VramcalcError
from vramcalc.spec.params import TensorGroup, param_count, tensor_groups

N7 = 6_738_415_616  # Llama-2-7B parameters


def test_model_states_adamw_mixed_precision() -> None:
    # short sequence so the optimizer step is the peak: fp32 weights + fp32 grads + 2 fp32 Adam
    # states + the foreach sqrt(exp_avg_sq) buffer = 4 + 4 + 8 + 4 = 20 bytes per parameter
    est = estimate_training("llama-2-7b", seq_len=128)
    assert est.phase == "optimizer step"
    assert est.component("weights") == 4 * N7
    assert est.component("gradients") == 4 * N7
    assert est.component("optimizer_state") == 8 * N7
    assert est.component("optimizer_temporaries") == 4 * N7


def test_fused_adamw_has_no_step_buffer_and_pure_bf16_halves_states() -> None:
    fused = estimate_training("llama-2-7b", seq_len=128, optimizer="adamw-fused")
    assert fused.component("optimizer_temporaries") == 0
    pure = estimate_training("llama-2-7b", seq_len=128, precision="bf16", optimizer="adamw-fused")
    # exp_avg + exp_avg_sq in bf16, plus fused AdamW's fp32 `step` tensor on the GPU per parameter tensor
    n_tensors = sum(g.count for g in tensor_groups(vramcalc.get_model("llama-2-7b")))
    assert pure.component("optimizer_state") == 2 * 2 * N7 + 4 * n_tensors


def test_optimizer_state_per_optimizer() -> None:
    g = (TensorGroup("w", "linear", 1000, 100, 3), TensorGroup("n", "norm", 100, 1, 2))
    n = 3 * 100_000 + 200
    assert state_bytes(g, "adamw", 4) == 8 * n
    assert state_bytes(g, "sgd", 4) == 0
    assert state_bytes(g, "sgd-momentum", 4) == 4 * n
    assert state_bytes(g, "lion", 2) == 2 * n
    # Adafactor: rows + cols per matrix, full vector for 1-D tensors
    assert state_bytes(g, "adafactor", 4) == 4 * (3 * (1000 + 100) + 2 * 100)
    # 8-bit AdamW: 2 × (1 byte + fp32 absmax per 256) for tensors ≥ 4096 elements; small ones 32-bit
    assert state_bytes(g, "adamw-8bit", 4) == 3 * 2 * (100_000 + 4 * 391) + 2 * 100 * 8


def test_activations_dominate_at_long_context_and_checkpointing_cuts_them() -> None:
    full = estimate_training("llama-2-7b", batch_size=8, seq_len=2048)
    ckpt = estimate_training("llama-2-7b", batch_size=8, seq_len=2048, grad_checkpointing="full")
    assert full.phase.startswith("backward")
    assert full.component("activations") > full.component("optimizer_state")
    # checkpointing keeps one fp32 layer input per layer: 32 × 16384 tokens × 4096 × 4 B = 8 GiB
    assert ckpt.total_bytes < full.total_bytes / 1.5


def test_grad_accum_keeps_gradients_through_forward() -> None:
    one = estimate_training("llama-2-7b", batch_size=8, seq_len=2048)
    acc = estimate_training("llama-2-7b", batch_size=8, seq_len=2048, grad_accum=4)
    assert acc.component("gradients") == 4 * N7
    assert acc.total_bytes - one.total_bytes == pytest.approx(4 * N7, rel=0.06)


def test_total_is_sum() -> None:
    for kw in (
        dict(),
        dict(precision="fp32", optimizer="sgd"),
        dict(optimizer="adafactor", batch_size=4),
    ):
        est = estimate_training("gpt2", **kw)
        assert est.total_bytes == sum(c.bytes for c in est.components)
        assert est.params == param_count(vramcalc.get_model("gpt2"))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(optimizer="adamw9"),
        dict(precision="int8"),
        dict(grad_accum=0),
        dict(grad_checkpointing="some"),
    ],
)
def test_bad_input(kwargs: dict) -> None:
    with pytest.raises(VramcalcError):
        estimate_training("llama-2-7b", **kwargs)
