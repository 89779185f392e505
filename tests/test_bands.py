"""Error bands: the likely range brackets the estimate and the verdict follows it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vramcalc.core.inference import estimate_inference
from vramcalc.core.results import error_band
from vramcalc.core.training import estimate_training
from vramcalc.sources.calibration import runtime, trace_residuals
from vramcalc.units import GIB, MIB

MODELS = ["llama-2-7b", "mistral-7b", "gpt2", "mixtral-8x7b", "qwen2.5-0.5b"]


@settings(max_examples=40, deadline=None)
@given(
    model=st.sampled_from(MODELS),
    batch=st.integers(1, 16),
    seq=st.integers(16, 1024),
    training=st.booleans(),
    mem_gib=st.floats(1, 400),
)
def test_band_brackets_estimate_and_verdict_agrees(
    model: str, batch: int, seq: int, training: bool, mem_gib: float
) -> None:
    if training:
        est = estimate_training(model, batch_size=batch, seq_len=seq, gpu_mem_gib=mem_gib)
    else:
        est = estimate_inference(model, batch_size=batch, seq_len=seq, gpu_mem_gib=mem_gib)
    assert 0 < est.low_bytes <= est.total_bytes <= est.high_bytes
    g = est.gpu
    assert g is not None
    if est.high_bytes <= g.memory_bytes:
        assert g.verdict == "fits" and g.fits
    elif est.low_bytes > g.memory_bytes:
        assert g.verdict == "does not fit" and not g.fits
    else:
        assert g.verdict == "tight"


def test_band_by_hand() -> None:
    est = estimate_inference("llama-2-7b", seq_len=4096)
    rt, res = runtime(), trace_residuals()
    tensor = sum(
        c.bytes for c in est.components if c.name not in ("cuda_context", "allocator_slack")
    )
    slack = est.component("allocator_slack")
    # low: tensor / (1 + high residual) + 300 MiB context + slack × 0 / 0.05
    low = tensor / (1 + res.inference_high) + rt.cuda_context_low_mib * MIB
    low += slack * rt.allocator_slack_low_fraction / rt.allocator_slack_fraction
    # high: tensor / (1 + low residual) + 1,400 MiB context + slack × 0.15 / 0.05
    high = tensor / (1 + res.inference_low) + rt.cuda_context_high_mib * MIB
    high += slack * rt.allocator_slack_high_fraction / rt.allocator_slack_fraction
    assert (est.low_bytes, est.high_bytes) == (int(low), int(high))
    # the band is about a GiB wide at this size: the context's spread dominates
    assert 0.5 * GIB < est.high_bytes - est.low_bytes < 3 * GIB


def test_weights_only_has_no_band() -> None:
    est = estimate_inference(params="7B")
    assert est.low_bytes == est.total_bytes == est.high_bytes
    assert error_band(est.components, "inference", weights_only=True) == (est.total_bytes,) * 2
