"""vLLM's start-up memory profile, term by term, and the KV pool it leaves.

vLLM sizes its KV cache once, at start-up (vllm/worker/worker.py ``determine_num_available_blocks``
in V0 >= 0.6.5, PR #10511; vllm/v1/worker/gpu_worker.py ``determine_available_memory`` in V1):

    available_kv = total × gpu_memory_utilization − weights − non_torch − peak_activation

where ``peak_activation`` is the torch peak of one profile run: a dummy forward of
``max_num_batched_tokens`` tokens and the sampler over ``max_num_seqs`` rows. The pool is whole
blocks of ``block_size`` tokens (vllm/v1/core/kv_cache_utils.py); each rank sizes its own and the
engine takes the minimum. CUDA graphs are captured after the pool is allocated (V0, and V1 before
v0.21), so they live in the (1 − utilization) headroom and are not in this budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vramcalc.core import activations as act
from vramcalc.core.results import Component, ServingSummary
from vramcalc.core.serving.common import (
    NON_TORCH_TP1_BYTES,
    comm_buffers_bytes,
    engine_defaults,
    kv_bytes_per_token_per_rank,
    window_note,
)
from vramcalc.errors import VramcalcError
from vramcalc.spec.model import ModelSpec
from vramcalc.units import GIB

VERSIONS = ("v0", "v1")
# Above this max_model_len V0 turned chunked prefill on by itself (EngineArgs.create_engine_config,
# "Chunked prefill is enabled by default for models with max_model_len > 32K").
V0_AUTO_CHUNK_ABOVE = 32 * 1024
# The V0 profile run samples with top_k = vocab − 1 and top_p = 0.99, which takes the sorting path
# of Sampler._apply_top_k_top_p (vllm/model_executor/layers/sampler.py): per logit the model-dtype
# logits (2 B), the fp32 copy (4), sorted values (4) and int64 indices (8), the sort's temporary
# copies (12), softmax and cumsum of the sorted values (4 + 4), two boolean masks (2), and the fp32
# logits scattered back (4): 44 B; the mask and the first fp32 copy are freed before the scatter
# (−4). V1's dummy sampler run skips top-k, top-p and logprobs (vllm/v1/worker/gpu_model_runner.py
# `_dummy_sampler_run`, "the sampler may skip top_k, top_p, and logprobs"): model-dtype logits,
# fp32 logits and probabilities (2 + 4 + 4).
SAMPLER_BYTES_PER_LOGIT = {"v0": 40, "v1": 10}


@dataclass(frozen=True, slots=True)
class VllmOptions:
    version: str = "v1"
    gpu_memory_utilization: float | None = None
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    kv_bytes: float = 2.0
    block_size: int | None = None
    enforce_eager: bool = False


@dataclass(frozen=True, slots=True)
class EngineMemory:
    """One GPU's memory as an engine lays it out, and what its start-up log would say."""

    components: list[Component]
    summary: ServingSummary
    assumptions: list[str]
    cluster_bytes: int | None = None  # all GPUs, when they are not loaded alike (llama.cpp splits)


def v1_batch_defaults(gpu_name: str, memory_bytes: int) -> tuple[int, int]:
    """V1 (max_num_batched_tokens, max_num_seqs) of ``vllm serve``: 8192 / 1024 on a GPU of at least
    70 GiB whose name does not contain 'a100', else 2048 / 256 (vllm/engine/arg_utils.py default
    batch table, PR #17885; presets/engines/vllm.toml)."""
    if memory_bytes >= 70 * GIB and "a100" not in gpu_name.lower():
        return 8192, 1024
    return 2048, 256


def v0_batched_tokens(max_model_len: int) -> tuple[int, bool]:
    """V0 max_num_batched_tokens and whether chunked prefill is on: max(max_model_len, 2048) up to
    32K (vllm/config.py SchedulerConfig), the chunked budget above (presets/engines/vllm.toml)."""
    if max_model_len > V0_AUTO_CHUNK_ABOVE:
        chunk = int(engine_defaults("vllm").get("max_num_batched_tokens (V0, chunked prefill on)"))
        return chunk, True
    return max(max_model_len, 2048), False


def profile_forward_bytes(spec: ModelSpec, tokens: int, tp: int, act_bytes: int) -> int:
    """Torch peak of the dummy forward on one rank: the residual stream of every token (hidden
    states are whole on every rank) beside the largest per-layer workspace, which TP shards
    (column-parallel q/k/v and MLP projections) — the prefill model of core.activations with flash
    attention (vLLM's backends never hold the score matrix)."""
    residual = act.inference_residual_per_token(spec, act_bytes)
    workspace = max(act.inference_layer_workspace_per_token(spec, act_bytes).values())
    return int(tokens * (residual + workspace / tp))


def sampler_bytes(spec: ModelSpec, rows: int, version: str) -> int:
    """The sampler's peak in the profile run: `rows` × vocabulary × bytes per logit (the vocabulary
    is gathered whole on every rank before sampling)."""
    return rows * spec.output_width * SAMPLER_BYTES_PER_LOGIT[version]


def estimate_vllm(
    spec: ModelSpec,
    weights_bytes: int,
    gpu: tuple[str, int],
    tp: int,
    pp: int,
    opts: VllmOptions,
    act_bytes: int,
    interconnect: str | None = None,
) -> EngineMemory:
    """Memory of one GPU of a vLLM instance and its KV pool (see the module docstring)."""
    if opts.version not in VERSIONS:
        raise VramcalcError(f"--engine-version {opts.version!r}: vLLM takes {', '.join(VERSIONS)}")
    defaults = engine_defaults("vllm")
    gpu_name, total = gpu
    util = opts.gpu_memory_utilization or defaults.get("gpu_memory_utilization")
    block = opts.block_size or int(defaults.get("block_size"))
    max_len = opts.max_model_len or spec.max_position_embeddings
    if opts.version == "v0":
        tokens, chunked = v0_batched_tokens(max_len)
        seqs = int(defaults.get("max_num_seqs"))
    else:
        tokens, seqs = v1_batch_defaults(gpu_name, total)
        chunked = True
    tokens = opts.max_num_batched_tokens or tokens
    seqs = opts.max_num_seqs or seqs
    if not chunked and tokens < max_len:
        raise VramcalcError(
            f"--max-num-batched-tokens {tokens} is below --max-model-len {max_len}: vLLM V0 "
            "without chunked prefill needs max_num_batched_tokens >= max_model_len"
        )
    budget = int(total * util)
    weights = weights_bytes
    comm, comm_said = comm_buffers_bytes(tp, interconnect)
    non_torch = NON_TORCH_TP1_BYTES + comm
    forward = profile_forward_bytes(spec, tokens, tp, act_bytes)
    sampler = sampler_bytes(spec, min(seqs, tokens), opts.version)
    activation = max(forward, sampler)
    per_token = kv_bytes_per_token_per_rank(spec, tp, pp, opts.kv_bytes)
    block_bytes = block * per_token
    available = budget - weights - non_torch - activation
    blocks = max(0, available // block_bytes)
    pool = blocks * block_bytes
    pool_tokens = blocks * block
    refused = _refusal(opts.version, available, pool_tokens, max_len, per_token, block, util)
    peak_part = "sampler" if sampler >= forward else "forward"
    components = [
        Component(name="weights", bytes=weights, note=f"per rank: 1/{tp * pp} of the weights"),
        Component(
            name="non_torch_memory",
            bytes=non_torch,
            note="CUDA context growth and cuBLAS workspaces (median of the TP=1 logs)"
            + (f" + {comm_said}" if comm_said else ""),
            formula=f"{NON_TORCH_TP1_BYTES:,}" + (f" + {comm:,}" if comm else ""),
        ),
        Component(
            name="activations",
            bytes=activation,
            note=f"profile-run peak ({peak_part}): dummy forward of {tokens} tokens, "
            f"sampler over {min(seqs, tokens)} rows",
            formula=f"max({forward:,} forward, {sampler:,} sampler)",
        ),
        Component(
            name="kv_cache",
            bytes=pool,
            note=f"KV pool: {blocks:,} blocks × {block} tokens × {per_token:,} B per token",
            formula=f"floor(({budget:,} − {weights:,} − {non_torch:,} − {activation:,}) / "
            f"{block_bytes:,}) × {block_bytes:,}",
        ),
    ]
    graphs = (
        "CUDA graphs: off (--enforce-eager)"
        if opts.enforce_eager
        else "CUDA graphs: captured after the KV pool, in the (1 − gpu_memory_utilization) "
        "headroom; not sized (vLLM V0 warns they 'can take additional 1~3 GiB memory per GPU')"
    )
    summary = ServingSummary(
        engine="vllm",
        engine_version=opts.version,
        tp=tp,
        pp=pp,
        budget_bytes=budget,
        kv_pool_bytes=pool,
        kv_pool_tokens=pool_tokens,
        kv_bytes_per_token=per_token,
        block_size=block,
        num_blocks=blocks,
        max_model_len=max_len,
        max_concurrency=round(pool_tokens / max_len, 2),
        max_num_seqs=seqs,
        max_num_batched_tokens=tokens,
        refused=refused,
        not_sized=[graphs, *window_note(spec, "vLLM")]
        + (
            ["V1: two of the V1 readings (Llama-3.1-8B on an L40S, v0.8.5; Qwen3-235B MoE on "
             "4×H100, v0.9) hold 22–38 % fewer KV tokens than this model (4–5 GiB per GPU not "
             "explained), two others agree within 1 %: read the V1 pool as an upper bound "
             "(docs/serving.md)"]
            if opts.version == "v1"
            else []
        ),
    )  # fmt: skip
    assumptions = [
        f"vLLM {opts.version} start-up profile: KV = {util:g} × total − weights − non-torch − "
        "profile peak, in whole blocks; every rank sizes its own pool and the engine takes the least",
        f"max_num_batched_tokens {tokens} ({'chunked prefill' if chunked else 'no chunked prefill: = max_model_len'}), "
        f"max_num_seqs {seqs}",
        f"sampler: {SAMPLER_BYTES_PER_LOGIT[opts.version]} B per logit ("
        + ("sorting top-k/top-p path of the V0 profile run" if opts.version == "v0" else
           "V1's dummy sampler skips top-k/top-p: logits, fp32 copy, probabilities")
        + ")",
    ]  # fmt: skip
    return EngineMemory(components=components, summary=summary, assumptions=assumptions)


def _refusal(
    version: str,
    available: int,
    pool_tokens: int,
    max_len: int,
    per_token: int,
    block: int,
    util: float,
) -> str | None:
    """The engine's start-up refusal (V0 worker.raise_if_cache_size_invalid; V1
    kv_cache_utils.check_enough_kv_cache_memory), or None when one request of max_model_len fits."""
    if available <= 0 or pool_tokens == 0:
        return (
            "No available memory for the cache blocks. Try increasing `gpu_memory_utilization` "
            f"(now {util:g}) when initializing the engine."
        )
    if pool_tokens >= max_len:
        return None
    if version == "v0":
        return (
            f"The model's max seq len ({max_len}) is larger than the maximum number of tokens that "
            f"can be stored in KV cache ({pool_tokens}). Try increasing `gpu_memory_utilization` "
            "or decreasing `max_model_len` when initializing the engine."
        )
    needed = math.ceil(max_len / block) * block * per_token
    return (
        f"To serve at least one request with the model's max seq len ({max_len}), "
        f"{needed / GIB:.2f} GiB KV cache is needed, which is larger than the available KV cache "
        f"memory ({available / GIB:.2f} GiB). Based on the available memory, the estimated "
        f"maximum model length is {pool_tokens}."
    )
