from __future__ import annotations

import pytest

import vramcalc
from vramcalc.core.inference import estimate_inference, kv_cache_bytes
from vramcalc.errors import VramcalcError
from vramcalc.units import GIB


def test_kv_cache_llama2_7b_exactly_2_gib() -> None:
    # 2 (K,V) × 32 layers × 4096 tokens × 32 kv heads × 128 head_dim × 2 bytes = 2 GiB
    spec = vramcalc.get_model("llama-2-7b")
    assert kv_cache_bytes(spec, 1, 4096, 2) == 2 * GIB
    est = estimate_inference("llama-2-7b", dtype="fp16", batch_size=1, seq_len=4096)
    assert est.component("kv_cache") == 2 * GIB


def test_kv_cache_gqa_and_fp8() -> None:
    # Llama-3.1-8B: 8 kv heads: 2 × 32 × 8192 tokens × 8 × 128 × 1 byte (fp8) = 512 MiB per sequence
    est = estimate_inference("llama-3.1-8b", batch_size=4, seq_len=8192, kv_dtype="fp8")
    assert est.component("kv_cache") == 4 * 2 * 32 * 8192 * 8 * 128


def test_sliding_window_caps_kv() -> None:
    # Mistral-7B: all 32 layers use a 4096 window: 32k tokens cost what 4096 do
    capped = estimate_inference("mistral-7b", seq_len=32768).component("kv_cache")
    assert capped == 2 * 32 * 4096 * 8 * 128 * 2
    # Gemma-2-9B: 21 of 42 layers windowed at 4096; 8192 tokens: 21×8192 + 21×4096 token-layers
    gemma = estimate_inference("gemma-2-9b", seq_len=8192).component("kv_cache")
    assert gemma == 2 * (21 * 8192 + 21 * 4096) * 8 * 256 * 2


def test_weights_bf16_are_two_bytes_per_param() -> None:
    est = estimate_inference("llama-2-7b")
    assert est.component("weights") == 2 * 6_738_415_616
    assert est.params == 6_738_415_616


def test_total_is_sum_and_gpu_fit() -> None:
    est = estimate_inference("llama-2-7b", gpu="rtx-4090")
    assert est.total_bytes == sum(c.bytes for c in est.components)
    assert est.gpu is not None and est.gpu.fits
    assert est.gpu.headroom_bytes == est.gpu.memory_bytes - est.total_bytes
    big = estimate_inference("llama-2-70b", gpu="rtx-4090")
    assert big.gpu is not None and not big.gpu.fits and big.gpu.headroom_bytes < 0


def test_gpu_mem_gib() -> None:
    est = estimate_inference("llama-2-7b", gpu_mem_gib=16)
    assert est.gpu is not None and est.gpu.memory_bytes == 16 * GIB


def test_classic_weights_only_table() -> None:
    # 7e9 × bytes / 2^30: fp32 26.08, fp16 13.04, int8 6.52, int4 3.26 GiB
    for dtype, gib in [("fp32", 26.08), ("fp16", 13.04), ("int8", 6.52), ("int4", 3.26)]:
        est = estimate_inference(params="7B", dtype=dtype)
        assert est.weights_only
        assert round(est.total_bytes / GIB, 2) == gib


def test_large_vocab_logits_can_be_the_peak() -> None:
    # Scoring 4096 tokens of Qwen2.5-7B: 4096 × 152,064 × (2 + 4) bytes of logits ≈ 3.5 GiB
    est = estimate_inference("qwen2.5-7b", seq_len=4096, logits="all")
    assert "logits" in est.components[2].note
    assert est.component("activations") >= 4096 * 152_064 * 6


def test_eager_attention_keeps_scores() -> None:
    flash = estimate_inference("llama-2-7b", seq_len=4096).component("activations")
    eager = estimate_inference("llama-2-7b", seq_len=4096, attention="eager").component(
        "activations"
    )
    assert eager - flash >= 32 * 4096 * 4096 * 6 - 4096 * 3 * 11008 * 2  # 32 heads × s² × (2 + 4) B


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(batch_size=0),
        dict(seq_len=-1),
        dict(seq_len=10**9),
        dict(dtype="int3"),
        dict(kv_dtype="int2"),
        dict(gpu="h1000"),
        dict(gpu="h100", gpu_mem_gib=80),
        dict(quant="nf4", dtype="int8"),
    ],
)
def test_bad_input_raises_one_clear_error(kwargs: dict) -> None:
    with pytest.raises(VramcalcError) as err:
        estimate_inference("llama-2-7b", **kwargs)
    assert "\n" not in str(err.value)


def test_learned_positions_limit() -> None:
    with pytest.raises(VramcalcError, match="1024"):
        estimate_inference("gpt2", seq_len=2048)


def test_top_level_api() -> None:
    est = vramcalc.estimate_inference("llama-2-7b", dtype="int8", batch_size=4, seq_len=4096)
    assert isinstance(est, vramcalc.Estimate)
    # 4 sequences × 2 GiB of fp16 KV cache each (bf16 by default: same width)
    assert est.component("kv_cache") == 8 * GIB
    train = vramcalc.estimate_training("gpt2", batch_size=2, seq_len=256)
    assert train.kind == "training"
    with pytest.raises(AttributeError):
        vramcalc.no_such_thing  # noqa: B018


def test_units_gb_rendering() -> None:
    from typer.testing import CliRunner

    from vramcalc.cli.app import app

    out = CliRunner().invoke(app, ["infer", "llama-2-7b", "--units", "GB"])
    assert out.exit_code == 0 and "GB" in out.stdout
    # 2 × 6,738,415,616 bytes = 13.48 GB (10^9) = 12.55 GiB
    assert "13.48" in out.stdout


def test_memoised_terms_match_a_fresh_build() -> None:
    """The per-spec memo (core/inference_terms.py) hands back what a fresh build makes, also after
    it overflows and starts again, and for equal specs that are different objects."""
    from vramcalc.core.inference_terms import MEMO_ENTRIES, spec_terms

    spec = vramcalc.get_model("llama-3.1-8b")
    first = estimate_inference(spec, batch_size=7, seq_len=1000, kv_dtype="fp8")
    for batch in range(1, MEMO_ENTRIES + 3):  # more shapes than a memo keeps
        estimate_inference(spec, batch_size=batch, seq_len=1000, kv_dtype="fp8")
    spec_terms.cache_clear()
    fresh = estimate_inference(spec.model_copy(), batch_size=7, seq_len=1000, kv_dtype="fp8")
    assert first.model_dump() == fresh.model_dump()
    # 7 seqs × 32 layers × 2 × 8 kv heads × 128 × 1000 tokens × 1 B (fp8)
    assert first.component("kv_cache") == 7 * 32 * 2 * 8 * 128 * 1000


def test_slack_memo_keeps_the_type_of_its_bytes() -> None:
    """Allocator slack is memoised for int bytes only: a float prints otherwise in the formula."""
    from vramcalc.core.inference import runtime_overhead_components

    as_int = runtime_overhead_components(1000)[1]
    as_float = runtime_overhead_components(1000.0)[1]  # type: ignore[arg-type]
    assert as_int.formula.endswith("× 1,000")
    assert as_float.formula.endswith("× 1,000.0")


def test_unhashable_argument_is_one_clear_error() -> None:
    """The validated-request cache cannot take a list: it is validated uncached and refused."""
    with pytest.raises(VramcalcError, match=r"gpu: Input should be a valid string"):
        estimate_inference("llama-2-7b", gpu=["h100"])  # type: ignore[arg-type]
