"""One FLOPs convention (vramcalc.core.flops) for `cost` and `rlhf`, hand-computed values, and the
rlhf fixes that came with it (the fp16 peak, typed training options)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vramcalc.core.cost import estimate_training_cost
from vramcalc.core.flops import (
    forward_flops_per_token,
    matmul_params,
    training_flops,
    training_flops_per_token,
)
from vramcalc.core.rlhf import estimate_rlhf
from vramcalc.errors import VramcalcError
from vramcalc.sources import presets
from vramcalc.sources.presets import get_model, use_gpus_file

# Llama-2-7B: 6,738,415,616 parameters, of which the untied token embedding 32,000 × 4,096 =
# 131,072,000 is a lookup: N = 6,607,343,616 matmul parameters; 32 layers, 32 heads × 128.
LLAMA2_7B_N = 6_738_415_616 - 32_000 * 4_096
# one trained token at T = 4096 (PaLM Appendix B):
#   6 · 6,607,343,616            = 39,644,061,696
# + 12 · 32 · 4,096 · 4,096      =  6,442,450,944
#                                = 46,086,512,640
LLAMA2_7B_TRAIN_4K = 46_086_512_640


@pytest.fixture(autouse=True)
def _shipped_catalog(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.delenv(presets.GPUS_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))
    use_gpus_file(None)
    yield
    use_gpus_file(None)


def test_llama2_7b_training_flops_per_token_by_hand() -> None:
    spec = get_model("llama-2-7b")
    assert matmul_params(spec) == LLAMA2_7B_N == 6_607_343_616
    per = training_flops_per_token(spec, 4096)
    assert (per.dense, per.attention) == (39_644_061_696, 6_442_450_944)
    assert per.total == LLAMA2_7B_TRAIN_4K
    # a forward is a third of it: 2·N + 4·L·H·Q·T
    assert forward_flops_per_token(spec, 4096).total * 3 == LLAMA2_7B_TRAIN_4K
    # LoRA: no weight gradients, 4·N; attention's backward stays (12·L·H·Q·T)
    lora = training_flops_per_token(spec, 4096, frozen_weights=True)
    assert lora.total == 4 * 6_607_343_616 + 6_442_450_944
    # full recomputation: one more forward, 8·N + 16·L·H·Q·T (Narayanan et al. 2021, §5.1)
    ckpt = training_flops_per_token(spec, 4096, recompute=True)
    assert ckpt.total == 8 * 6_607_343_616 + 16 * 32 * 4096 * 4096


def test_rlhf_sft_and_cost_train_price_a_token_alike() -> None:
    """The same job (Llama-2-7B, 8 sequences of 4096 tokens, A100 at 40 % MFU) costs the same
    FLOPs and seconds through `rlhf --stage sft` and `cost train`; before flops.py rlhf counted
    6 × 6,738,415,616 = 40,430,493,696 per token (embeddings in, attention out), 12 % fewer."""
    tokens = 8 * 4096
    sft = estimate_rlhf("llama-2-7b", stage="sft", batch_size=8, seq_len=4096, gpu="a100-80gb")
    cost = estimate_training_cost(
        "llama-2-7b", tokens=tokens, gpu="a100-80gb", seq_len=4096, dtype="bf16"
    )
    assert sft.total_flops == cost.flops.model_flops == LLAMA2_7B_TRAIN_4K * tokens
    # 46,086,512,640 × 32,768 / (312e12 × 0.40) = 12.10 s on one A100 (dense BF16 312 TFLOP/s)
    assert sft.time_s == pytest.approx(LLAMA2_7B_TRAIN_4K * tokens / (312e12 * 0.40), rel=1e-12)
    assert sft.time_s == pytest.approx(cost.gpu_hours * 3600, rel=1e-12)


def test_recomputation_agrees_between_cost_and_rlhf() -> None:
    """Full checkpointing: rlhf counts hardware FLOPs (×4/3) at the default MFU; cost train counts
    model FLOPs at MFU × 3/4: the same seconds."""
    sft = estimate_rlhf(
        "llama-2-7b", stage="sft", seq_len=4096, grad_checkpointing="full", gpu="a100-80gb"
    )
    cost = estimate_training_cost(
        "llama-2-7b", tokens=4096, gpu="a100-80gb", seq_len=4096, grad_checkpointing="full"
    )
    assert sft.total_flops == pytest.approx(cost.flops.hardware_flops, rel=1e-12)
    assert sft.time_s == pytest.approx(cost.gpu_hours * 3600, rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(seq=st.integers(1, 1 << 16), tokens=st.integers(1, 10**12))
def test_recompute_is_four_thirds_of_full_training(seq: int, tokens: int) -> None:
    flops = training_flops(get_model("mistral-7b"), tokens, seq, "full")
    assert flops.hardware_flops == pytest.approx(flops.model_flops * 4 / 3, rel=1e-12)


def test_pure_fp16_uses_the_fp16_peak(tmp_path: Path) -> None:
    """rlhf mapped --precision fp16 to the bf16 peak; its matmuls run in fp16
    (Precision.compute_dtype). A GPU whose fp16 and bf16 peaks differ tells them apart."""
    path = tmp_path / "gpus.toml"
    path.write_text(
        '[[gpu]]\nname = "split-peaks"\nmemory_mib = 81920\ngeneration = "ampere"\n'
        "peak_bf16_tflops = 200\npeak_fp16_tflops = 100\npeak_fp32_tflops = 20\n"
    )
    use_gpus_file(path)
    by_precision = {
        p: estimate_rlhf("gpt2", stage="sft", seq_len=1024, precision=p, gpu="split-peaks")
        for p in ("fp16", "fp16-mixed", "bf16", "bf16-mixed", "fp32")
    }
    flops = by_precision["fp16"].total_flops
    assert all(e.total_flops == flops for e in by_precision.values())
    peaks = {p: e.inputs["peak_tflops_used"] for p, e in by_precision.items()}
    assert peaks == {"fp16": 100, "fp16-mixed": 100, "bf16": 200, "bf16-mixed": 200, "fp32": 20}
    # ampere's default MFU, 0.40: time = FLOPs / (peak × 0.40)
    assert by_precision["fp16"].time_s == pytest.approx(flops / (100e12 * 0.40), rel=1e-12)


def test_unknown_training_option_is_a_clear_error() -> None:
    with pytest.raises(VramcalcError, match=r"training option not supported by rlhf: lora_rnak"):
        estimate_rlhf("gpt2", stage="sft", lora_rnak=8)
    with pytest.raises(VramcalcError, match=r"method"):
        estimate_rlhf("gpt2", stage="sft", method="dora")
    # a TypeError inside the estimate is no longer turned into "option not supported"
    est = estimate_rlhf("gpt2", stage="sft", method="lora", lora_rank=4, num_gpus=None)
    assert est.inputs["training_options"] == {"method": "lora", "lora_rank": 4}


def test_conventions_reach_every_trained_model() -> None:
    """A training stack's conventions (vramcalc.spec.conventions, --framework in the CLI) are one
    typed option forwarded to estimate_training: the SFT step is that estimate, byte for byte."""
    import inspect

    from vramcalc.core.training import estimate_training
    from vramcalc.spec.conventions import Conventions

    if "conventions" not in inspect.signature(estimate_training).parameters:
        pytest.skip("estimate_training takes no conventions here (the unified estimator adds it)")
    # each parameter stepped during backward: gradients never all alive at once
    stepped = Conventions(framework="test", optimizer_in_backward=True)
    sft = estimate_rlhf("llama-2-7b", stage="sft", seq_len=2048, conventions=stepped)
    train = estimate_training("llama-2-7b", seq_len=2048, conventions=stepped)
    plain = estimate_training("llama-2-7b", seq_len=2048)
    assert sft.total_bytes == train.total_bytes < plain.total_bytes
    assert sft.inputs["training_options"]["conventions"]["optimizer_in_backward"] is True
