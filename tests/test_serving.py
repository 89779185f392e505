"""Serving engines (vramcalc.core.serving): each term by hand, the engines' rules, refusals,
llama.cpp's layer split, HF --tp / --prefill-chunk, and invariants (hypothesis)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.hostile_files import LLAMA_TENSORS, gguf_bytes
from vramcalc.core.inference import estimate_inference, inference_activation_terms
from vramcalc.core.serving import LlamaCppOptions, SglangOptions, VllmOptions, estimate_serving
from vramcalc.core.serving.common import kv_bytes_per_token_per_rank
from vramcalc.core.serving.gguf_mix import use_more_bits
from vramcalc.core.serving.gguf_weights import from_file_type, tensor_bytes
from vramcalc.core.serving.llamacpp import compute_buffer_bytes
from vramcalc.core.serving.sglang import chunked_prefill_default, mem_fraction_default
from vramcalc.core.serving.vllm import v0_batched_tokens, v1_batch_defaults
from vramcalc.errors import VramcalcError
from vramcalc.sources.presets import get_model
from vramcalc.units import GIB, MIB

LLAMA8 = "llama-3.1-8b"
# llama-3.1-8b: 8,030,261,248 parameters; 32 layers × 8 KV heads × 128 head_dim; vocab 128,256
WEIGHTS_BF16 = 8_030_261_248 * 2


@pytest.mark.parametrize(
    ("model", "tp", "pp", "expected"),
    [
        (LLAMA8, 1, 1, 131_072),  # 2 (K,V) × 32 layers × 8 heads × 128 × 2 B
        (LLAMA8, 2, 1, 65_536),  # 4 heads per rank
        (LLAMA8, 8, 1, 16_384),  # 1 head per rank
        (LLAMA8, 16, 1, 16_384),  # 8 heads over 16 ranks: each rank keeps one (replicated)
        (LLAMA8, 1, 2, 65_536),  # 16 layers per stage
        (
            "deepseek-v3",
            8,
            1,
            70_272,
        ),  # MLA: (512 latent + 64 rope) × 61 layers × 2 B, whole per rank
    ],
)
def test_kv_bytes_per_token_per_rank(model: str, tp: int, pp: int, expected: int) -> None:
    assert kv_bytes_per_token_per_rank(get_model(model), tp, pp, 2.0) == expected


def test_vllm_v0_budget_by_hand() -> None:
    """Meta-Llama-3-8B shapes on an H100 as vLLM logs it (79.22 GiB, PR #10511), V0, 8192 tokens:
    budget = int(79.22 GiB × 0.9) = 76,555,644,567 B; weights 16,060,522,496; non-torch
    int(0.35 GiB) = 375,809,638; sampler 256 rows × 128,256 × 40 B = 1,313,341,440 (> forward
    8192 × (32,768 + 86,016) = 973,078,528); left 58,805,970,993 B // (16 × 131,072) = 28,040
    blocks = 448,640 tokens; 448,640 / 8192 = 54.77 requests."""
    est = estimate_serving(
        LLAMA8, "vllm", options=VllmOptions(version="v0", max_model_len=8192), gpu_mem_gib=79.22
    )
    s = est.serving
    assert s is not None
    assert s.budget_bytes == 76_555_644_567
    assert est.component("weights") == WEIGHTS_BF16
    assert est.component("non_torch_memory") == 375_809_638
    assert est.component("activations") == 1_313_341_440
    assert (s.num_blocks, s.kv_pool_tokens) == (28_040, 448_640)
    assert s.kv_pool_bytes == 28_040 * 16 * 131_072 == est.component("kv_cache")
    assert s.max_concurrency == 54.77 and s.max_num_batched_tokens == 8192 and s.refused is None


def test_vllm_defaults_by_version_and_gpu() -> None:
    # V1 table (arg_utils.py): >= 70 GiB and not an A100 → 8192 / 1024, else 2048 / 256
    assert v1_batch_defaults("NVIDIA H100 SXM 80GB", 80 * GIB) == (8192, 1024)
    assert v1_batch_defaults("NVIDIA A100 80GB", 80 * GIB) == (2048, 256)
    assert v1_batch_defaults("NVIDIA GeForce RTX 4090", 24 * GIB) == (2048, 256)
    # V0: max(max_model_len, 2048) up to 32K; above, chunked prefill with 512 tokens
    assert v0_batched_tokens(1000) == (2048, False)
    assert v0_batched_tokens(20_000) == (20_000, False)
    assert v0_batched_tokens(40_960) == (512, True)


def test_vllm_refusals_in_the_engines_words() -> None:
    v0 = estimate_serving(LLAMA8, "vllm", options=VllmOptions(version="v0", max_model_len=29_000),
                          gpu_mem_gib=23.58)  # fmt: skip
    assert v0.serving is not None and v0.serving.refused is not None
    assert (
        "larger than the maximum number of tokens that can be stored in KV cache"
        in v0.serving.refused
    )
    assert v0.gpu is not None and not v0.gpu.fits
    assert any("refuses to start" in w for w in v0.warnings)
    v1 = estimate_serving(
        LLAMA8, "vllm", options=VllmOptions(max_model_len=131_072), gpu="rtx-4090"
    )
    assert v1.serving is not None and v1.serving.refused is not None
    assert f"estimated maximum model length is {v1.serving.kv_pool_tokens}" in v1.serving.refused


def test_vllm_v0_longer_context_can_leave_more_kv() -> None:
    """V0 profiles max_model_len tokens up to 32K and 512 above (validation: 20k and 35k start on
    an RTX 3090, 29k does not, issue #10517)."""

    def tokens(n: int) -> int:
        est = estimate_serving(LLAMA8, "vllm", options=VllmOptions(version="v0", max_model_len=n),
                               gpu_mem_gib=23.58)  # fmt: skip
        assert est.serving is not None
        return est.serving.kv_pool_tokens

    assert tokens(20_000) > 20_000 and tokens(29_000) < 29_000 and tokens(35_000) > 35_000


def test_vllm_tp_splits_weights_and_adds_comm_buffers() -> None:
    one = estimate_serving(LLAMA8, "vllm", gpu="h100-80gb")
    two = estimate_serving(LLAMA8, "vllm", gpu="h100-80gb", tp=2)
    assert two.component("weights") == WEIGHTS_BF16 // 2
    assert two.component("non_torch_memory") - one.component("non_torch_memory") == int(1.79 * GIB)
    assert two.num_gpus == 2 and two.cluster_total_bytes == 2 * two.total_bytes
    assert two.serving is not None and two.serving.kv_bytes_per_token == 65_536


def test_sglang_fraction_and_pool_by_hand() -> None:
    # server_args.py: an H100 (81,559 MiB), chunk 8192, graphs to 512, TP1: reserved =
    # 512 + 8192 × 1.5 + 512 × 2 + 1/8 × 1024 = 13,952 MiB → (81,559 − 13,952) / 81,559 = 0.829
    assert mem_fraction_default(81_559 * MIB, 8192, 512, 1, 1) == 0.829
    assert [chunked_prefill_default(g * GIB) for g in (24, 40, 80, 192)] == [
        2048,
        4096,
        8192,
        16384,
    ]
    # 80 GiB, fraction 0.9: free before the weights = 80 GiB − 500 MiB CUDA context (calibration)
    # = 85,375,057,920 B, SGLang's "total"; after 16,060,522,496 B of weights 69,314,535,424 B;
    # less int(0.1 × 85,375,057,920) = 8,537,505,792 → // 131,072 B = 463,691 tokens
    est = estimate_serving(LLAMA8, "sglang", options=SglangOptions(mem_fraction_static=0.9,
                           context_length=8192), gpu_mem_gib=80)  # fmt: skip
    assert est.serving is not None and est.serving.kv_pool_tokens == 463_691
    assert est.serving.max_concurrency == round(463_691 / 8192, 2)
    capped = estimate_serving(LLAMA8, "sglang", options=SglangOptions(mem_fraction_static=0.9,
                              context_length=8192, max_running_requests=10), gpu_mem_gib=80)  # fmt: skip
    assert capped.serving is not None and capped.serving.max_concurrency == 10


def test_sglang_refuses_when_weights_leave_nothing() -> None:
    est = estimate_serving("llama-3.1-70b", "sglang", gpu="h100-80gb")  # 141 GB of bf16 on 80
    assert est.serving is not None and est.serving.refused is not None
    assert "leave no GPU memory for the KV cache" in est.serving.refused


def test_llamacpp_buffers_by_hand() -> None:
    # KV f16: 8192 cells × 131,072 B = 1 GiB. Compute, no flash attention: 512 × 4 B ×
    # ((32 + 1) × 8192 + 4 × 4096) = 587,202,560 B; with it: 512 × 4 × (8192 + 4 × 4096)
    spec = get_model(LLAMA8)
    assert compute_buffer_bytes(spec, 8192, 512, False) == 587_202_560
    assert compute_buffer_bytes(spec, 8192, 512, True) == 50_331_648
    est = estimate_serving(LLAMA8, "llama.cpp", options=LlamaCppOptions(ctx_size=8192))
    assert est.component("kv_cache") == GIB
    assert est.component("activations") == 587_202_560
    half = estimate_serving(LLAMA8, "llama.cpp",
                            options=LlamaCppOptions(ctx_size=8192, gpu_layers=16))  # fmt: skip
    assert half.component("kv_cache") == GIB // 2
    # q8_0 K and V: 34 B per 32 values → 1 GiB × 34 / 64
    q8 = estimate_serving(LLAMA8, "llama.cpp", options=LlamaCppOptions(
        ctx_size=8192, cache_type_k="q8_0", cache_type_v="q8_0", flash_attn=True))  # fmt: skip
    assert q8.component("kv_cache") == GIB * 34 // 64


def test_llamacpp_row_and_layer_split() -> None:
    """-sm row (--tp 2): each GPU half of every matrix, the KV cache (1 GiB at 8192 cells) and
    the compute buffer on the main GPU; -sm layer (--pp 2): half the layers and their KV each,
    a compute buffer and a CUDA context on every GPU."""
    one = estimate_serving(LLAMA8, "llama.cpp", options=LlamaCppOptions(ctx_size=8192))
    w, kv, act, ctx = (
        one.component(n) for n in ("weights", "kv_cache", "activations", "cuda_context")
    )
    row = estimate_serving(LLAMA8, "llama.cpp", tp=2, options=LlamaCppOptions(ctx_size=8192))
    assert row.component("weights") == -(-w // 2) and row.component("kv_cache") == kv == GIB
    assert row.cluster_total_bytes == w + kv + act + 2 * ctx
    layer = estimate_serving(LLAMA8, "llama.cpp", pp=2, options=LlamaCppOptions(ctx_size=8192))
    assert layer.component("kv_cache") == GIB // 2 and layer.component("activations") == act
    assert layer.cluster_total_bytes == w + kv + 2 * (act + ctx)
    assert row.num_gpus == layer.num_gpus == 2


def test_llamacpp_quantized_v_needs_flash_attention() -> None:
    with pytest.raises(VramcalcError, match="--flash-attn"):
        estimate_serving(LLAMA8, "llama.cpp", options=LlamaCppOptions(cache_type_v="q4_0"))


def test_llamacpp_weights_per_layer_from_a_gguf_header(tmp_path: Path) -> None:
    """The tiny F16 Llama of tests/hostile_files.py, 2 layers: per layer q 64×64 + k, v 64×32 +
    o 64×64 + gate, up, down 64×128 = 36,864 values × 2 B + 2 norms × 64 × 4 B = 74,240 B;
    token_embd 64 × 256 × 2 = 32,768 B (host); output 32,768 + 256 (norm) = 33,024 B."""
    path = tmp_path / "tiny.gguf"
    path.write_bytes(gguf_bytes())
    one = estimate_serving(
        str(path), "llama.cpp", options=LlamaCppOptions(gpu_layers=1, ctx_size=64)
    )
    assert one.component("weights") == 74_240
    every = estimate_serving(str(path), "llama.cpp", options=LlamaCppOptions(ctx_size=64))
    assert every.component("weights") == 2 * 74_240 + 33_024
    with pytest.raises(VramcalcError, match="--gguf-type"):
        estimate_serving(str(path), "llama.cpp", gguf_type="Q4_K_M")
    # tied (no output.weight): llama.cpp loads token_embd again as the output matrix on the GPU
    tied = tmp_path / "tied.gguf"
    tied.write_bytes(gguf_bytes(tensors=[t for t in LLAMA_TENSORS if t[0] != "output.weight"]))
    est = estimate_serving(str(tied), "llama.cpp", options=LlamaCppOptions(ctx_size=64))
    assert est.component("weights") == 2 * 74_240 + 32_768 + 256


def test_gguf_file_type_rules() -> None:
    # use_more_bits for 32 layers: i < 4, i >= 28, and (i − 4) % 3 == 2 → 6, 9, ..., 27: 16 layers
    assert sum(use_more_bits(i, 32) for i in range(32)) == 16
    assert tensor_bytes("Q8_0", 4096, 4096) == 4096 * 4096 // 32 * 34
    assert tensor_bytes("Q4_K", 4096, 4096) == 4096 * 4096 // 256 * 144
    # 96 is no multiple of 256: llama.cpp falls back from Q4_K to Q5_0 (22 B per 32)
    assert tensor_bytes("Q4_K", 10, 96) == 10 * 96 // 32 * 22
    spec = get_model(LLAMA8)
    m = from_file_type(spec, "Q4_K_M")
    s = from_file_type(spec, "Q4_K_S")
    # layer 0: Q4_K_M gives attn_v (1024×4096) and ffn_down (4096×14336) Q6_K (use_more_bits),
    # Q4_K_S gives them Q5_K (i < 4, i < n/8); layer 4: both keep Q4_K
    bumped = (1024 * 4096 + 4096 * 14_336) // 256 * (210 - 176)
    assert m.layers[0] - s.layers[0] == bumped and m.layers[4] == s.layers[4]
    assert m.output == s.output == 128_256 * 4096 // 256 * 210 + 4096 * 4  # Q6_K + F32 norm


def test_hf_keeps_its_numbers_and_gains_tp_and_chunks() -> None:
    base = estimate_inference(LLAMA8, seq_len=8192, batch_size=4)
    assert estimate_inference(LLAMA8, seq_len=8192, batch_size=4, tp=1) == base
    tp2 = estimate_inference(LLAMA8, seq_len=8192, batch_size=4, tp=2)
    assert tp2.component("weights") == WEIGHTS_BF16 // 2
    assert tp2.component("kv_cache") == base.component("kv_cache") // 2
    assert tp2.component("cuda_context") == base.component("cuda_context")
    assert tp2.num_gpus == 2 and tp2.cluster_total_bytes == 2 * tp2.total_bytes
    chunked = estimate_inference(LLAMA8, seq_len=131_072, prefill_chunk=2048)
    spec = get_model(LLAMA8)
    assert chunked.component("activations") == inference_activation_terms(
        spec, 1, 2048, 2, "last", "flash")[0]  # fmt: skip
    with pytest.raises(VramcalcError, match="--prefill-chunk"):
        estimate_inference(LLAMA8, prefill_chunk=512, attention="eager")


@pytest.mark.parametrize(
    ("engine", "kwargs", "needle"),
    [
        ("vllm", {}, "--gpu"),  # no GPU: no budget
        ("vllm", {"gpu": "h100-80gb", "tp": 3}, "--tp 3"),
        ("llama.cpp", {"tp": 2, "pp": 2}, "not both"),
        ("tgi", {"gpu": "h100-80gb"}, "tgi"),
    ],
)
def test_bad_engine_input_is_one_error(engine: str, kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(VramcalcError, match=needle):
        estimate_serving(LLAMA8, engine, **kwargs)  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None)
@given(
    util=st.floats(0.5, 0.95),
    block=st.sampled_from([8, 16, 32]),
    seqs=st.integers(1, 1024),
)
def test_vllm_pool_is_whole_blocks_within_budget(util: float, block: int, seqs: int) -> None:
    est = estimate_serving(LLAMA8, "vllm", options=VllmOptions(
        gpu_memory_utilization=util, block_size=block, max_num_seqs=seqs, max_model_len=4096),
        gpu="h100-80gb")  # fmt: skip
    s = est.serving
    assert s is not None
    assert s.kv_pool_tokens == s.num_blocks * block and s.kv_pool_tokens % block == 0
    assert est.total_bytes <= s.budget_bytes
    assert s.budget_bytes - est.total_bytes < block * s.kv_bytes_per_token  # one block of slack
    more = estimate_serving(LLAMA8, "vllm", options=VllmOptions(
        gpu_memory_utilization=min(util + 0.03, 1.0), block_size=block, max_num_seqs=seqs,
        max_model_len=4096), gpu="h100-80gb")  # fmt: skip
    assert more.serving is not None and more.serving.kv_pool_tokens >= s.kv_pool_tokens


def _placed(ngl: int) -> tuple[int, int, int]:
    """(GPU weights, GPU KV, GPU weights + GPU KV + host bytes) of llama-3.1-8b at 4096 cells."""
    est = estimate_serving(
        LLAMA8, "llama.cpp", options=LlamaCppOptions(ctx_size=4096, gpu_layers=ngl)
    )
    assert est.serving is not None
    w, kv = est.component("weights"), est.component("kv_cache")
    return w, kv, w + kv + est.serving.host_bytes


@settings(max_examples=20, deadline=None)
@given(ngl=st.integers(0, 32))
def test_llamacpp_offload_moves_memory_not_creates_it(ngl: int) -> None:
    """Weights and KV move between GPU and host with -ngl; their sum does not change. The host
    also holds the CPU backend's compute buffer while a layer is left there (taken as the GPU's:
    512 × 4 × (33 × 4096 + 4 × 4096) B)."""
    w, kv, placed = _placed(ngl)
    w_more, kv_more, placed_all = _placed(ngl + 1)
    assert w_more > w and kv_more >= kv
    cpu_compute = compute_buffer_bytes(get_model(LLAMA8), 4096, 512, False)
    assert placed - _placed(33)[2] == (cpu_compute if ngl < 32 else 0)


def test_sglang_04_fraction_by_tp_and_window_notes() -> None:
    from vramcalc.core.serving.sglang import mem_fraction_v04

    # server_args.py before PR #10975: 0.88 at TP1, 0.87 at 2, 0.85 at 4, 0.81 at 8, 0.79 at 16
    assert [mem_fraction_v04(tp) for tp in (1, 2, 4, 8, 16)] == [0.88, 0.87, 0.85, 0.81, 0.79]
    est = estimate_serving(LLAMA8, "sglang", options=SglangOptions(version="0.4"), gpu="h100-80gb")
    assert est.serving is not None and est.serving.engine_version == "0.4"
    assert "0.88" in " ".join(est.assumptions)
    gemma = estimate_serving(
        "gemma-3-12b", "vllm", gpu="h100-80gb", options=VllmOptions(max_model_len=8192)
    )
    assert gemma.serving is not None
    assert any("sliding-window layers" in n for n in gemma.serving.not_sized)
    assert not any("sliding-window" in n for n in est.serving.not_sized)


def test_engine_fit_and_plan_agree_with_the_estimate() -> None:
    from vramcalc.core.serving.planning import engine_fit, engine_plan

    fit = engine_fit(LLAMA8, "sglang", "rtx-4090", options=SglangOptions(context_length=8192))
    one = estimate_serving(
        LLAMA8, "sglang", gpu="rtx-4090", options=SglangOptions(context_length=8192)
    )
    assert one.serving is not None
    # SGLang's pool does not depend on the context: the longest request is the pool itself
    assert fit.max_model_len == min(one.serving.kv_pool_tokens, 131_072)
    assert fit.max_concurrency == one.serving.max_concurrency
    plan = engine_plan(
        "llama-3.1-70b", "sglang", ["h100-80gb"], 4, options=SglangOptions(context_length=32768)
    )
    row = plan.rows[0]
    assert row.num_gpus is not None
    smaller = [tp for tp in (1, 2, 4, 8) if tp < row.num_gpus]
    for tp in smaller:  # the fewest: every smaller degree falls short
        e = estimate_serving("llama-3.1-70b", "sglang", gpu="h100-80gb", tp=tp,
                             options=SglangOptions(context_length=32768))  # fmt: skip
        assert e.serving is not None and (e.serving.refused or e.serving.max_concurrency < 4)


@pytest.mark.torch  # an unmapped config asks transformers (the exact route) before --assume-llama
def test_assumed_architecture_never_fits_under_an_engine(tmp_path: Path) -> None:
    """--assume-llama: the engine estimate keeps the ×2 band and says at best 'may fit'."""
    import json

    from tests.test_assume_llama import UNMAPPED

    (tmp_path / "config.json").write_text(json.dumps(UNMAPPED))
    est = estimate_serving(str(tmp_path / "config.json"), "vllm", gpu="h100-80gb",
                           assume_llama=True, options=VllmOptions(max_model_len=4096))  # fmt: skip
    assert est.gpu is not None and est.gpu.verdict == "may fit"
    assert est.low_bytes < est.total_bytes < est.high_bytes


def test_llamacpp_plan_splits_layers_until_each_gpu_holds_its_share() -> None:
    """4 slots of 8192 tokens of llama-3.1-70b (Q4_K_M) on 24 GiB cards: the fewest layer-split
    GPUs whose most loaded one fits; one fewer does not."""
    from vramcalc.core.serving.planning import engine_plan

    plan = engine_plan("llama-3.1-70b", "llama.cpp", ["rtx-4090"], 4,
                       options=LlamaCppOptions(ctx_size=8192))  # fmt: skip
    row = plan.rows[0]
    assert row.num_gpus is not None and row.split == "pp" and row.max_concurrency == 4
    opts = LlamaCppOptions(ctx_size=4 * 8192, parallel=4)
    fits = estimate_serving(
        "llama-3.1-70b", "llama.cpp", options=opts, gpu="rtx-4090", pp=row.num_gpus
    )
    assert fits.gpu is not None and fits.gpu.fits
    fewer = max(n for n in (1, 2, 4, 8) if n < row.num_gpus)
    short = estimate_serving("llama-3.1-70b", "llama.cpp", options=opts, gpu="rtx-4090", pp=fewer)
    assert short.gpu is not None and not short.gpu.fits


@pytest.mark.parametrize(("parallel", "mib"), [(1, 992), (2, 1312)])
def test_llamacpp_sliding_window_cache(parallel: int, mib: int) -> None:
    """Gemma-3-12B at n_ctx 8192: 8 global layers × 8192 cells + 40 sliding-window layers ×
    pad(1024 × slots + 512 ubatch, 256) cells, 8 KV heads × 256 × 2 (K,V) × 2 B = 8 KiB per cell:
    (65,536 + 61,440) × 8 KiB = 992 MiB at one slot, (65,536 + 102,400) × 8 KiB = 1312 MiB at two
    (src/llama-kv-cache-iswa.cpp; Ollama's estimate prints the same, validation/serving/ollama.toml)."""
    opts = LlamaCppOptions(ctx_size=8192, parallel=parallel)
    est = estimate_serving("gemma-3-12b", "llama.cpp", options=opts)
    assert est.component("kv_cache") == mib * MIB


@pytest.mark.parametrize(
    ("engine", "gpu"), [("vllm", "rtx-4090"), ("sglang", "l4"), ("llama.cpp", "rtx-3060-12gb")]
)
def test_engine_fit_is_the_longest_context_that_starts(engine: str, gpu: str) -> None:
    """At the context fit returns the engine starts and holds one request; one token more it does
    not (each model's maximum is 131,072, above what these GPUs hold)."""
    from vramcalc.core.serving.planning import _starts, _with_len, engine_fit

    r = engine_fit(LLAMA8, engine, gpu)
    assert 0 < r.max_model_len < 131_072

    def holds(n: int) -> bool:
        est = estimate_serving(LLAMA8, engine, options=_with_len(engine, None, n), gpu=gpu)
        return _starts(est) and est.serving is not None and est.serving.kv_pool_tokens >= n

    assert holds(r.max_model_len) and not holds(r.max_model_len + 1)


@settings(max_examples=20, deadline=None)
@given(frac=st.floats(0.6, 0.9))
def test_sglang_pool_grows_with_the_static_fraction(frac: float) -> None:
    def tokens(f: float) -> int:
        est = estimate_serving(LLAMA8, "sglang", gpu="h100-80gb",
                               options=SglangOptions(mem_fraction_static=f))  # fmt: skip
        assert est.serving is not None
        return est.serving.kv_pool_tokens

    assert tokens(frac + 0.05) > tokens(frac)
