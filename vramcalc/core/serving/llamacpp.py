"""llama.cpp (and Ollama, which runs it): weights and KV split by layer between GPU and host, and
the compute buffer reserved for the worst-case graph.

* weights: per layer (:mod:`vramcalc.core.serving.gguf_weights`); ``-ngl N`` puts the last N
  repeating layers on the GPU, and the output layer too when N > n_layer; the token embedding
  stays in host memory (get_rows runs on the CPU; src/llama-model.cpp ``load_tensors``);
* KV: one K and V tensor per layer on that layer's device (src/llama-kv-cache.cpp), ``n_ctx`` cells
  in all, shared by the ``--parallel`` slots (each slot n_ctx / parallel tokens), element width of
  ``-ctk`` / ``-ctv`` (f16 2 B, q8_0 34 B / 32, q4_0 18 B / 32);
* compute buffer: ggml-alloc reserves the peak of a graph of ``n_ubatch`` tokens against the full
  context (src/llama-context.cpp graph reserve). Without flash attention it holds the f32 scores
  n_head × n_ubatch × n_ctx; beside them the KQ mask (n_ubatch × n_ctx, f32) and four f32
  hidden-size rows per ubatch token (n_ubatch × 4·n_embd). These terms reproduce the readings of
  Mistral-7B at n_ctx 2048, 32000 and 32768 (164, 2094, 2144 MiB) and Llama-2-7B at 2048 (164 MiB)
  exactly, and Llama-3-70B at 8192 within 0.4 % (validation/serving/llamacpp.toml). With flash
  attention no reading of a CUDA build is on record: the score term is dropped and the output
  says the figure is not validated;
* host buffers: the ubatch's f32 input embeddings and the KQ mask (CUDA_Host compute buffer), and
  the logits output buffer n_vocab × n_seq × 4 B (llama_context::output_reserve).
"""

from __future__ import annotations

from dataclasses import dataclass

from vramcalc.core.kv_cache import kv_cache_bytes
from vramcalc.core.results import Component, ServingSummary
from vramcalc.core.serving.gguf_weights import LayerWeights
from vramcalc.core.serving.vllm import EngineMemory
from vramcalc.errors import VramcalcError
from vramcalc.sources.calibration import runtime
from vramcalc.spec.model import ModelSpec

# bytes per cache element of -ctk/-ctv types (ggml block sizes: q8_0 34 B / 32, q4_0 18 B / 32)
CACHE_TYPES = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q5_0": 22 / 32,
    "q4_0": 18 / 32,
}


@dataclass(frozen=True, slots=True)
class LlamaCppOptions:
    gpu_layers: int | None = None  # None: all (-ngl 999)
    ctx_size: int | None = None
    parallel: int = 1
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    flash_attn: bool = False
    ubatch_size: int = 512


SWA_PAD = 256  # llama_kv_cache_iswa pads the sliding-window cache (GGML_PAD(..., n_pad))


def cache_bytes(spec: ModelSpec, n_ctx: int, n_seq: int, n_ubatch: int, width: float) -> int:
    """K and V of the whole context: n_ctx cells shared by the slots on every full-attention
    layer; on sliding-window layers min(n_ctx, pad(window × n_seq + n_ubatch)) cells
    (src/llama-kv-cache-iswa.cpp); a recurrent state per slot. Through the one KV function
    (core.kv_cache), with the window set to llama.cpp's cell count."""
    cells = spec
    if spec.windowed_layers and spec.sliding_window:
        swa = -(-(spec.sliding_window * n_seq + n_ubatch) // SWA_PAD) * SWA_PAD
        cells = spec.model_copy(update={"sliding_window": min(n_ctx, swa)})
    state = (n_seq - 1) * spec.state_elements * width  # kv_cache_bytes counts one sequence's
    return kv_cache_bytes(cells, 1, n_ctx, width) + int(state)


def compute_buffer_bytes(spec: ModelSpec, n_ctx: int, n_ubatch: int, flash_attn: bool) -> int:
    """GPU compute buffer: n_ubatch × 4 B × ((n_head·[no FA] + 1) × n_ctx + 4·n_embd) (module
    docstring); with flash attention the score term drops."""
    heads = 0 if flash_attn else spec.num_attention_heads
    return n_ubatch * 4 * ((heads + 1) * n_ctx + 4 * spec.hidden_size)


def host_compute_bytes(spec: ModelSpec, n_ctx: int, n_ubatch: int) -> int:
    """CUDA_Host compute buffer: the ubatch's f32 input embeddings and KQ mask."""
    return n_ubatch * 4 * (spec.hidden_size + n_ctx)


def estimate_llamacpp(
    spec: ModelSpec, weights: LayerWeights, gpu: tuple[str, int] | None, opts: LlamaCppOptions
) -> EngineMemory:
    """GPU and host memory of a llama.cpp context (module docstring)."""
    for name, t in (("--cache-type-k", opts.cache_type_k), ("--cache-type-v", opts.cache_type_v)):
        if t not in CACHE_TYPES:
            raise VramcalcError(f"{name} {t!r}; valid: {', '.join(CACHE_TYPES)}")
    if opts.cache_type_v not in ("f32", "f16", "bf16") and not opts.flash_attn:
        raise VramcalcError(
            f"--cache-type-v {opts.cache_type_v}: a quantized V cache needs --flash-attn"
        )
    n = spec.num_layers
    ngl = n + 1 if opts.gpu_layers is None else min(opts.gpu_layers, n + 1)
    if ngl < 0:
        raise VramcalcError(f"--gpu-layers {opts.gpu_layers}: give 0 or more")
    n_ctx = opts.ctx_size or spec.max_position_embeddings
    if opts.parallel < 1 or n_ctx < opts.parallel:
        raise VramcalcError(f"--parallel {opts.parallel}: give 1 to --ctx-size ({n_ctx})")
    on_gpu = min(ngl, n)
    first_gpu = n - on_gpu
    gpu_weights = sum(weights.layers[first_gpu:]) + (weights.output if ngl > n else 0)
    host_weights = weights.embedding + sum(weights.layers[:first_gpu])
    host_weights += weights.output if ngl <= n else 0
    per_seq = -(-n_ctx // opts.parallel)
    width = (CACHE_TYPES[opts.cache_type_k] + CACHE_TYPES[opts.cache_type_v]) / 2
    kv_all = cache_bytes(spec, n_ctx, opts.parallel, opts.ubatch_size, width)
    kv_gpu = kv_all * on_gpu // n
    kv_host = kv_all - kv_gpu
    compute = compute_buffer_bytes(spec, n_ctx, opts.ubatch_size, opts.flash_attn)
    host_compute = host_compute_bytes(spec, n_ctx, opts.ubatch_size)
    output_buf = spec.output_width * opts.parallel * 4
    rt = runtime()
    context = rt.cuda_context_bytes if on_gpu else 0
    components = [
        Component(name="weights", bytes=gpu_weights, note=f"{on_gpu}/{n} layers on the GPU"
                  + (" + output layer" if ngl > n else "") + f"; {weights.how}"),
        Component(name="kv_cache", bytes=kv_gpu, note=f"{n_ctx} cells × {on_gpu}/{n} layers, "
                  f"K {opts.cache_type_k} / V {opts.cache_type_v}",
                  formula=f"{kv_all:,} × {on_gpu} / {n}"),
        Component(name="activations", bytes=compute if on_gpu else 0,
                  note=f"compute buffer: {opts.ubatch_size}-token ubatch against {n_ctx} cells, "
                  f"flash attention {'on' if opts.flash_attn else 'off'}",
                  formula=f"{opts.ubatch_size} × 4 × (({0 if opts.flash_attn else spec.num_attention_heads} + 1) × {n_ctx} + 4 × {spec.hidden_size})"),
        Component(name="cuda_context", bytes=context,
                  note=f"CUDA context {rt.cuda_context_mib} MiB ({rt.cuda_context_source})"),
    ]  # fmt: skip
    host = host_weights + kv_host + host_compute + output_buf + (compute if on_gpu < n else 0)
    tokens = n_ctx
    summary = ServingSummary(
        engine="llama.cpp",
        engine_version="2024-2025 builds",
        kv_pool_bytes=kv_gpu,
        kv_pool_tokens=tokens,
        kv_bytes_per_token=kv_all // max(1, opts.parallel * per_seq),
        block_size=1,
        num_blocks=tokens,
        max_model_len=per_seq,
        max_concurrency=float(opts.parallel),
        max_num_seqs=opts.parallel,
        max_num_batched_tokens=opts.ubatch_size,
        host_bytes=host,
        not_sized=(["compute buffer with flash attention: only the mask and hidden-state terms are "
                    "counted (not validated: the one reading with flash attention, a Vulkan build, "
                    "is 4.8× larger)"] if opts.flash_attn else [])
        + (["the CPU backend's compute buffer for the layers left on the host is taken as the GPU's"]
           if 0 < on_gpu < n else [])
        + (["mixture of experts: the compute buffer's expert-routing tensors are not counted "
            "(the formula was read off dense models)"] if spec.is_moe else []),
    )  # fmt: skip
    assumptions = [
        f"host memory {host:,} B: token embedding and {first_gpu} layers' weights, their KV, the "
        "host compute buffer (inputs, KQ mask) and the logits buffer",
        f"{opts.parallel} slot(s) of {per_seq} tokens share the {n_ctx}-cell cache",
    ]
    if gpu is None and on_gpu:
        assumptions.append("no --gpu given: the GPU figures are what the offloaded layers need")
    return EngineMemory(components=components, summary=summary, assumptions=assumptions)
