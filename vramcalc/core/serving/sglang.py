"""SGLang's KV pool: a static fraction of GPU memory for weights and pool together, no profile run.

python/sglang/srt/model_executor/model_runner.py ``profile_max_num_token``: after the weights load,

    rest = available − total × (1 − mem_fraction_static)
    max_total_num_tokens = floor(rest / cell_size)

with ``available`` the free memory after the weights (the least over TP ranks), ``total`` the free
memory measured before the weights, after the CUDA context and the NCCL groups exist (not the
device size: four logs, presets/engines/sglang.toml), and ``cell_size`` the KV bytes of one token
over all layers on one rank. Activations, CUDA graphs and the sampler must fit in the
(1 − mem_fraction_static) share, which SGLang does not measure; a request longer than the pool is
refused at admission, not at start-up (presets/engines/sglang.toml).
"""

from __future__ import annotations

from dataclasses import dataclass

from vramcalc.core.results import Component, ServingSummary
from vramcalc.core.serving.common import (
    comm_buffers_bytes,
    kv_bytes_per_token_per_rank,
    window_note,
)
from vramcalc.core.serving.vllm import EngineMemory
from vramcalc.errors import VramcalcError
from vramcalc.sources.calibration import runtime
from vramcalc.spec.model import ModelSpec
from vramcalc.units import MIB

VERSIONS = ("0.4", "0.5")


@dataclass(frozen=True, slots=True)
class SglangOptions:
    version: str = "0.5"
    mem_fraction_static: float | None = None
    context_length: int | None = None
    chunked_prefill_size: int | None = None
    max_running_requests: int | None = None
    cuda_graph_max_bs: int | None = None
    kv_bytes: float = 2.0


def chunked_prefill_default(memory_bytes: int, version: str = "0.5") -> int:
    """chunked_prefill_size by GPU memory: 0.5 (after PR #10975): < 35 GiB 2048, < 60 GiB 4096,
    < 160 GiB 8192, else 16384 (python/sglang/srt/server_args.py, _handle_gpu_memory_settings);
    0.4: 2048 below 25,000 MB, else 8192 (PR #2044)."""
    if version == "0.4":
        return 2048 if memory_bytes < 25_000 * 10**6 else 8192
    gib = memory_bytes / 1024**3
    return 2048 if gib < 35 else 4096 if gib < 60 else 8192 if gib < 160 else 16384


def cuda_graph_bs_default(memory_bytes: int) -> int:
    """cuda_graph_max_bs: 8 below 25,000 MB (server_args.py), 160 up to 60 GiB, 512 on larger
    GPUs (the capture lists printed by recent releases go up to 512)."""
    if memory_bytes < 25_000 * 10**6:
        return 8
    return 160 if memory_bytes < 60 * 1024**3 else 512


def mem_fraction_v04(tp: int) -> float:
    """0.4 releases (server_args.py __post_init__, until PR #10975): by TP size, 0.79 at 16 and
    more, 0.81 at 8, 0.85 at 4, 0.87 at 2, else 0.88."""
    for least, frac in ((16, 0.79), (8, 0.81), (4, 0.85), (2, 0.87)):
        if tp >= least:
            return frac
    return 0.88


def mem_fraction_default(memory_bytes: int, chunk: int, graph_bs: int, tp: int, pp: int) -> float:
    """mem_fraction_static = round((gpu_mem − reserved) / gpu_mem, 3), MiB, with reserved = 512 +
    max(chunk, 2048) × 1.5 + graph_bs × 2 + tp·pp/8 × 1024, at least 10 GiB on GPUs over 60 GiB
    (server_args.py after PR #10975; an H100 at TP1 gives 0.829, logged 0.828 in issue #29092)."""
    gpu_mib = memory_bytes / MIB
    reserved = 512 + max(chunk, 2048) * 1.5 + graph_bs * 2 + tp * pp / 8 * 1024
    if gpu_mib > 60 * 1024:
        reserved = max(reserved, 10 * 1024)
    return round((gpu_mib - reserved) / gpu_mib, 3)


def estimate_sglang(
    spec: ModelSpec,
    weights_bytes: int,
    gpu: tuple[str, int],
    tp: int,
    pp: int,
    opts: SglangOptions,
    interconnect: str | None = None,
) -> EngineMemory:
    """Memory of one GPU of an SGLang server and its KV pool (see the module docstring)."""
    if opts.version not in VERSIONS:
        raise VramcalcError(
            f"--engine-version {opts.version!r}: SGLang takes {', '.join(VERSIONS)}"
        )
    _, total = gpu
    chunk = opts.chunked_prefill_size or chunked_prefill_default(total, opts.version)
    graph_bs = opts.cuda_graph_max_bs or cuda_graph_bs_default(total)
    frac = opts.mem_fraction_static or (
        mem_fraction_v04(tp * pp)
        if opts.version == "0.4"
        else mem_fraction_default(total, chunk, graph_bs, tp, pp)
    )
    if not 0 < frac < 1:
        raise VramcalcError(f"--mem-fraction-static {frac}: give a fraction between 0 and 1")
    context = opts.context_length or spec.max_position_embeddings
    rt = runtime()
    comm, comm_said = comm_buffers_bytes(tp, interconnect)
    non_torch = rt.cuda_context_bytes + comm
    free_before = total - non_torch  # what SGLang calls total_gpu_memory
    available = free_before - weights_bytes
    reserve = int(free_before * (1 - frac))
    rest = available - reserve
    per_token = kv_bytes_per_token_per_rank(spec, tp, pp, opts.kv_bytes)
    tokens = max(0, rest // per_token)
    pool = tokens * per_token
    refused = (
        None
        if tokens > 0
        else f"Loaded weights leave no GPU memory for the KV cache under --mem-fraction-static={frac:g}."
    )
    running = opts.max_running_requests
    concurrency = tokens / context
    if running is not None:
        concurrency = min(concurrency, running)
    components = [
        Component(
            name="weights", bytes=weights_bytes, note=f"per rank: 1/{tp * pp} of the weights"
        ),
        Component(
            name="non_torch_memory",
            bytes=non_torch,
            note=f"CUDA context {rt.cuda_context_mib} MiB (calibration)"
            + (f" + {comm_said}" if comm_said else ""),
        ),
        Component(
            name="kv_cache",
            bytes=pool,
            note=f"KV pool: {tokens:,} tokens × {per_token:,} B (cell size)",
            formula=f"floor(({available:,} − {1 - frac:.3f} × {free_before:,}) / {per_token:,}) × "
            f"{per_token:,}",
        ),
        Component(
            name="activations",
            bytes=reserve,
            note=f"(1 − mem_fraction_static {frac:g}) share left for activations, CUDA graphs and "
            "the sampler: reserved, not profiled",
        ),
    ]
    summary = ServingSummary(
        engine="sglang",
        engine_version=opts.version,
        tp=tp,
        pp=pp,
        budget_bytes=int(free_before * frac),
        kv_pool_bytes=pool,
        kv_pool_tokens=tokens,
        kv_bytes_per_token=per_token,
        block_size=1,
        num_blocks=tokens,
        max_model_len=context,
        max_concurrency=round(concurrency, 2),
        max_num_seqs=running,
        max_num_batched_tokens=chunk,
        refused=refused,
        not_sized=[
            "activations, CUDA graphs (up to batch "
            f"{graph_bs}) and the sampler: SGLang does not profile them; they must fit in the "
            f"{1 - frac:.3f} × total it leaves free, or the server fails later with out-of-memory",
            *window_note(spec, "SGLang"),
        ],
    )
    assumptions = [
        f"SGLang pool: free memory after weights − (1 − {frac:g}) × free memory before them, in tokens of "
        f"{per_token:,} B; chunked_prefill_size {chunk}, cuda_graph_max_bs {graph_bs}",
        "a request longer than the pool is refused at admission, not at start-up",
    ]
    return EngineMemory(components=components, summary=summary, assumptions=assumptions)
