"""Every --explain formula evaluates to its component's bytes (issue 12), and the copies-disagreed bugs."""

from __future__ import annotations

import itertools
import math
import re

import pytest

from vramcalc.core.training import estimate_training

PSI = 6_738_415_616  # Llama-2-7B parameters (tests/test_params.py)


def evaluate(formula: str) -> tuple[float, int]:
    """The formula's arithmetic: [remarks] and words dropped, × ÷ − as * / -; (value, divisions)."""
    text = re.sub(r"\[[^\]]*\]", "", formula)
    text = re.sub(
        r"(?<![\d.])[A-Za-z_][A-Za-z_0-9.\-']*",
        lambda m: m.group(0) if m.group(0) == "max" else "",
        text,
    )
    text = (
        re.sub(r"(?<=\d),(?=\d{3})", "", text).replace("×", "*").replace("÷", "/").replace("−", "-")
    )
    return float(eval(text, {"__builtins__": {}}, {"max": max})), formula.count("÷") + 1


MODELS = ["llama-2-7b", "gemma-2-9b", "mixtral-8x7b", "gpt2"]
JOBS: list[dict[str, object]] = [
    {},
    {"grad_checkpointing": "full", "batch_size": 4},
    {"precision": "bf16", "grad_accum": 2},
    {"method": "lora"},
    {"method": "qlora", "grad_checkpointing": "full"},
    {"zero": 3, "num_gpus": 8},
    {"zero": 2, "num_gpus": 8, "method": "lora"},
    {"zero": 3, "num_gpus": 8, "offload": "optimizer"},
    {"fsdp": "full", "num_gpus": 8},
    {"tp": 2, "num_gpus": 4, "sp": True},
    {"tp": 2, "pp": 2, "num_gpus": 8, "grad_accum": 4},
]


@pytest.mark.parametrize(("model", "kw"), list(itertools.product(MODELS, JOBS)))
def test_every_formula_evaluates_to_its_bytes(model: str, kw: dict[str, object]) -> None:
    try:
        est = estimate_training(model, seq_len=1024, **kw)  # type: ignore[arg-type]
    except Exception as e:  # a plan the model cannot take (heads or layers not divisible)
        pytest.skip(str(e))
    for c in est.components:
        if not c.bytes:
            continue
        assert c.formula, c.name
        value, slack = evaluate(c.formula)
        # each ÷ rounds up (< 1 byte) and an int() truncation (< 1 byte)
        assert abs(value - c.bytes) < slack + 1, (c.name, c.formula, c.bytes, value)


def test_gemma2_logits_formula_shows_softcapping_bytes() -> None:
    # bug: the formula printed 12 B per value while the component held 14 B (12 B fp32
    # log-softmax + two gradients, plus soft-capping's 2-byte tanh output): 1024 × 14 × 256,000
    est = estimate_training("gemma-2-9b", method="lora", seq_len=1024)
    c = next(c for c in est.components if c.name == "logits_buffer")
    assert c.bytes == 1024 * 14 * 256_000
    assert "× 14 B ×" in c.formula


def test_lora_under_zero_is_16bit_adapters_with_fp32_masters_by_hand() -> None:
    # bug: under --zero the adapters were computed at 2 B while the note said fp32. DeepSpeed's
    # engine casts the module, adapters included, to bf16 (engine.py _configure_distributed_model)
    # and keeps fp32 masters + Adam in the optimizer: Llama-2-7B all-linear r=8 adapters,
    # per layer 8·(3·(4096+4096) + (4096+4096) + 2·(4096+11008) + (11008+4096)) = 8·(32768 + 45312)
    # = 624,640, × 32 layers = 19,988,480 params. ZeRO-2 over 8 GPUs: weights 2 B each (replicated),
    # master 4 B ÷ 8, Adam 8 B ÷ 8.
    n = 19_988_480
    est = estimate_training(
        "llama-2-7b", method="lora", zero=2, num_gpus=8, seq_len=512, grad_accum=2
    )
    assert est.inputs["trainable_params"] == n
    assert est.component("adapter_weights") == 2 * n
    assert est.component("master_weights") == math.ceil(4 * n / 8)
    assert est.component("optimizer_state") == math.ceil(8 * n / 8)
    assert est.component("gradients") == math.ceil(2 * n / 8)  # ZeRO-2 partitions gradients
    note = next(c.note for c in est.components if c.name == "adapter_weights")
    assert "bf16" in note and "fp32" not in note.split("(")[0]
    assert any("adapters bf16" in a for a in est.assumptions)
    # the frozen base: 2Ψ bf16, replicated under ZeRO-2
    assert est.component("weights") == 2 * PSI


def test_estimate_refuses_a_total_that_is_not_the_sum() -> None:
    from vramcalc.core.results import Component, Estimate

    with pytest.raises(ValueError, match="Σ components"):
        Estimate(kind="training", model="m", params=1, active_params=1,
                 components=[Component(name="weights", bytes=1)], total_bytes=2)  # fmt: skip
