"""Compute, time, energy and price: training runs and inference serving on catalog GPUs.

Memory says whether a job fits; this module says how long it takes and what it costs, from the
GPU catalog's dense peaks, memory bandwidth, interconnect, board power and hourly price.

Conventions (each function's docstring gives its source):

* **FLOPs** come from :mod:`vramcalc.core.flops` (PaLM Appendix B model FLOPs, ``6·N + 12·L·H·Q·T``
  per trained token; hardware FLOPs with recomputation; causal prefill and decode steps), the
  module `rlhf` reads too, so both price a token alike.
* **MFU** (model FLOPs utilisation) = model FLOPs / (time × GPUs × dense peak). Its defaults per
  GPU generation are in :data:`DEFAULT_MFU`, with where each comes from.
* Inference is a roofline per phase: prefill is compute-bound, each decode step is bound by
  reading the weights and the KV cache from memory (or by compute at large batch), whichever is
  slower; tensor parallelism splits both over the GPUs and adds two all-reduces per layer.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vramcalc.core.flops import (
    TrainingFlops,
    decode_step_flops,
    prefill_flops,
    training_flops,
)
from vramcalc.core.gpu_rates import (
    allreduce_seconds,
    compute_peak,
    compute_seconds,
    default_mfu,
    need_figure,
)
from vramcalc.core.inference import estimate_inference
from vramcalc.core.kv_cache import kv_cache_bytes
from vramcalc.core.results import Component, ServingSummary
from vramcalc.core.workloads import resolve_model, resolve_seq_len
from vramcalc.errors import VramcalcError, checked_keywords
from vramcalc.spec.model import GPUSpec, ModelSpec
from vramcalc.spec.params import param_count, tensor_groups
from vramcalc.spec.quant import kv_bytes_per_element, resolve_format, weight_bytes
from vramcalc.units import parse_count

SECONDS_PER_HOUR = 3600

# Inference defaults. MBU (memory bandwidth utilisation) is the decode counterpart of MFU
# (Databricks, "LLM Inference Performance Engineering: Best Practices", 2023, defines it and
# measures 55-60 % on A100/H100 at batch 1 for a 7B model); optimised kernels reach more.
DEFAULT_INFER_MFU = 0.5  # assumed: fraction of the dense peak prefill GEMMs sustain
DEFAULT_MBU = 0.6  # Databricks 2023 (above): ~60 % of peak HBM bandwidth in decode

TrainDtype = Literal["fp32", "tf32", "bf16", "fp16", "fp8"]


# ---- GPU figures --------------------------------------------------------------------------------
def inference_compute_dtype(dtype: str, quant: str | None, gpu: GPUSpec) -> str:
    """Math dtype of serving: FP8 weights run FP8 GEMMs where the GPU has FP8 tensor cores (W8A8,
    as vLLM does on Hopper/Ada), else 16-bit; int8/int4 formats (LLM.int8, NF4, GPTQ, AWQ) are
    weight-only and compute in 16-bit; fp32 uses the FP32 peak."""
    fmt = resolve_format(dtype, quant)
    if fmt.dtype == "fp8" and gpu.peak_fp8_tflops:
        return "fp8"
    if fmt.dtype in ("fp32",):
        return "fp32"
    return "fp16" if fmt.dtype == "fp16" else "bf16"


# ---- training cost ------------------------------------------------------------------------------
class TrainingCost(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["training_cost"] = "training_cost"
    model: str
    gpu: str
    num_gpus: int
    dtype: str
    peak_tflops_per_gpu: float
    mfu: float
    mfu_source: str
    hfu: float = Field(description="hardware FLOPs utilisation: MFU × hardware/model FLOPs")
    flops: TrainingFlops
    petaflop_s_days: float
    gpu_hours: float
    wall_hours: float
    wall_days: float
    usd_per_gpu_hour: float | None = Field(description="price of one GPU for one hour")
    price_usd: float | None = Field(description="the whole run: GPU-hours × usd_per_gpu_hour")
    energy_kwh: float | None = Field(description="GPUs at TDP × wall time (no host, network, PUE)")
    assumptions: list[str] = Field(default_factory=list)


@checked_keywords
def estimate_training_cost(
    model: str | ModelSpec,
    *,
    tokens: str | int,
    gpu: str | GPUSpec,
    num_gpus: int = 1,
    mfu: float | None = None,
    seq_len: int | None = None,
    grad_checkpointing: str = "none",
    dtype: str = "bf16",
    usd_per_gpu_hour: float | None = None,
    method: str = "full",
) -> TrainingCost:
    """Time, GPU-hours, price and energy of training `model` on `tokens` tokens.

    `method` lora or qlora: the base weights are frozen, so no weight gradients are computed:
    4·N per token instead of 6·N (vramcalc.core.flops.training_flops_per_token).

    time = model FLOPs / (num_gpus × dense peak × MFU); with full recomputation the default MFU is
    the generation's default × 3/4 (the GPU works as hard, a quarter of its work is re-done), while
    an explicit `mfu` is taken as the model FLOPs utilisation it names. `usd_per_gpu_hour` (one
    GPU for one hour) overrides the catalog's price.
    """
    from vramcalc.sources.presets import get_gpu

    spec = resolve_model(model)
    g = gpu if isinstance(gpu, GPUSpec) else get_gpu(gpu)
    n_tokens = parse_count(tokens)
    if not 1 <= num_gpus <= 1_000_000:
        raise VramcalcError(f"--num-gpus must be between 1 and 1000000 (got {num_gpus})")
    if grad_checkpointing not in ("none", "full"):
        raise VramcalcError(f"grad_checkpointing must be none or full (got {grad_checkpointing!r})")
    if method not in ("full", "lora", "qlora"):
        raise VramcalcError(f"method must be full, lora or qlora (got {method!r})")
    frozen = method != "full"
    seq = resolve_seq_len(spec, seq_len)
    flops = training_flops(spec, n_tokens, seq, grad_checkpointing, frozen_weights=frozen)
    recompute = flops.hardware_flops / flops.model_flops
    if mfu is None:
        base, source = default_mfu(g)
        mfu_value = base / recompute
        if recompute != 1.0:  # 3/4 exactly for a full fine-tune (8·N + 16·… over 6·N + 12·…)
            source += f"; × {f'{1 / recompute:.3f}' if frozen else '3/4'} for full recomputation"
    else:
        if not 0 < mfu <= 1:
            raise VramcalcError(f"--mfu must be in (0, 1] (got {mfu})")
        mfu_value, source = mfu, "given"
    peak, peak_dtype = compute_peak(g, dtype)
    gpu_seconds = compute_seconds(flops.model_flops, 1, peak, mfu_value)
    gpu_hours = gpu_seconds / SECONDS_PER_HOUR
    wall_hours = gpu_hours / num_gpus
    price = usd_per_gpu_hour if usd_per_gpu_hour is not None else g.usd_per_gpu_hour
    return TrainingCost(
        model=spec.name,
        gpu=g.name,
        num_gpus=num_gpus,
        dtype=peak_dtype,
        peak_tflops_per_gpu=peak,
        mfu=mfu_value,
        mfu_source=source,
        hfu=mfu_value * recompute,
        flops=flops,
        petaflop_s_days=flops.petaflop_s_days,
        gpu_hours=gpu_hours,
        wall_hours=wall_hours,
        wall_days=wall_hours / 24,
        usd_per_gpu_hour=price,
        price_usd=None if price is None else gpu_hours * price,
        energy_kwh=None if g.tdp_watts is None else gpu_hours * g.tdp_watts / 1000,
        assumptions=[
            f"model FLOPs = ({4 if frozen else 6}·N + 12·L·H·Q·T) per token, "
            f"N = {flops.matmul_params:,} matmul parameters, T = {seq} (PaLM Appendix B"
            + ("; frozen base, no weight gradients)" if frozen else ")"),
            f"dense {peak_dtype} peak {peak:g} TFLOP/s per GPU at MFU {mfu_value:.3f}: {source}",
            "perfect scaling over GPUs: communication is inside the MFU",
            "energy: GPUs at TDP for the whole run; no CPUs, network, cooling (PUE)",
        ],
    )


def implied_mfu(
    model: str | ModelSpec,
    *,
    tokens: str | int,
    gpu_hours: float,
    gpu: str | GPUSpec,
    seq_len: int | None = None,
    dtype: str = "bf16",
) -> float:
    """The MFU a published run implies: model FLOPs / (GPU-hours × 3600 × dense peak)."""
    from vramcalc.sources.presets import get_gpu

    spec = resolve_model(model)
    g = gpu if isinstance(gpu, GPUSpec) else get_gpu(gpu)
    seq = resolve_seq_len(spec, seq_len)
    flops = training_flops(spec, parse_count(tokens), seq)
    peak, _ = compute_peak(g, dtype)
    return flops.model_flops / (gpu_hours * SECONDS_PER_HOUR * peak * 1e12)


# ---- inference cost -----------------------------------------------------------------------------
def moe_weight_fraction_read(spec: ModelSpec, tokens: int) -> float:
    """Expected fraction of expert weights one decode step reads when `tokens` tokens each route to
    k of E experts uniformly: 1 − (1 − k/E)^tokens (balanced routing assumed)."""
    if not spec.is_moe:
        return 1.0
    k, e = spec.experts_per_token, spec.num_experts
    return 1.0 - (1.0 - k / e) ** tokens


def _read_weight_bytes(spec: ModelSpec, fmt_weights: int, tokens: int) -> float:
    """Weight bytes one forward step reads: all dense weights, the touched share of experts."""
    if not spec.is_moe:
        return float(fmt_weights)
    groups = tensor_groups(spec)
    expert = sum(g.numel for g in groups if g.expert)
    total = param_count(spec)
    expert_share = expert / total  # bytes scale with numel up to format metadata
    frac = moe_weight_fraction_read(spec, tokens)
    return fmt_weights * ((1 - expert_share) + expert_share * frac)


def check_context(spec: ModelSpec, prompt_tokens: int, output_tokens: int) -> None:
    """Learned position embeddings cap prompt + output at the model's maximum."""
    total = prompt_tokens + output_tokens
    if spec.position_embedding == "learned" and total > spec.max_position_embeddings:
        raise VramcalcError(
            f"--prompt + --output = {total} tokens exceeds {spec.name}'s "
            f"{spec.max_position_embeddings} learned positions"
        )


# ---- inference memory ---------------------------------------------------------------------------
# Components tensor parallelism divides over GPUs in inference; the rest (the CUDA context) stay
# whole on every GPU.
TP_SPLIT = frozenset({"weights", "kv_cache", "activations", "allocator_slack"})


def split_over_tp(components: list[Component], num_gpus: int) -> list[Component]:
    """Per-GPU components under tensor parallelism over `num_gpus` GPUs (even split, rounded up)."""
    return [
        Component(name=c.name, bytes=-(-c.bytes // num_gpus), note=c.note)
        if c.name in TP_SPLIT
        else c
        for c in components
    ]


class InferenceMemory(BaseModel):
    """Whether a served batch fits its GPUs: the memory estimate split over tensor parallelism."""

    model_config = ConfigDict(frozen=True)

    parallelism: str = Field(description="TP=n: tensor parallel over n GPUs")
    per_gpu_bytes: int
    memory_bytes: int = Field(description="memory of one GPU")
    fits: bool = Field(description="per_gpu_bytes <= memory_bytes")
    verdict: Literal["fits", "may fit", "does not fit"] = Field(
        description="'may fit' instead of 'fits' when the architecture was only assumed"
    )

    @classmethod
    def of(
        cls, per_gpu_bytes: int, memory_bytes: int, parallelism: str, *, rough: bool = False
    ) -> InferenceMemory:
        """The fit of `per_gpu_bytes` on a GPU of `memory_bytes` (any layout: TP, an engine's);
        a rough estimate (assumed architecture) never says "fits"."""
        fits = per_gpu_bytes <= memory_bytes
        return cls(
            parallelism=parallelism,
            per_gpu_bytes=per_gpu_bytes,
            memory_bytes=memory_bytes,
            fits=fits,
            verdict=("may fit" if rough else "fits") if fits else "does not fit",
        )


def inference_memory(
    spec: ModelSpec,
    gpu: GPUSpec,
    *,
    dtype: str = "bf16",
    quant: str | None = None,
    kv_dtype: str | None = None,
    batch_size: int = 1,
    seq_len: int,
    num_gpus: int = 1,
) -> InferenceMemory:
    """Per-GPU memory of serving `batch_size` sequences of `seq_len` tokens (prompt + output) with
    vramcalc.core.inference, split over `num_gpus` tensor-parallel GPUs, against `gpu`'s memory."""
    est = estimate_inference(
        spec, dtype=dtype, quant=quant, kv_dtype=kv_dtype, batch_size=batch_size, seq_len=seq_len
    )
    per_gpu = sum(c.bytes for c in split_over_tp(est.components, num_gpus))
    rough = spec.assumed_architecture is not None
    return InferenceMemory.of(per_gpu, gpu.memory_bytes, f"TP={num_gpus}", rough=rough)


class InferenceCost(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["inference_cost"] = "inference_cost"
    model: str
    gpu: str
    num_gpus: int
    dtype: str
    compute_dtype: str
    batch_size: int
    prompt_tokens: int
    output_tokens: int
    peak_tflops_per_gpu: float
    memory_bandwidth_gbps: float
    mfu: float = Field(description="fraction of the dense peak prefill and compute-bound steps get")
    mbu: float = Field(description="fraction of peak memory bandwidth decode reads get")
    prefill_flops: float
    prefill_seconds: float
    decode_flops_per_step: float
    decode_bytes_per_step: float = Field(description="weights + KV cache read per step, all GPUs")
    decode_step_seconds: float = Field(description="mean over the output tokens")
    decode_bound: Literal["memory", "compute"]
    communication_seconds: float = Field(description="tensor-parallel all-reduces, whole request")
    time_to_first_token_seconds: float
    latency_seconds: float = Field(description="prefill + all decode steps of one batch")
    decode_tokens_per_second_per_sequence: float
    output_tokens_per_second: float = Field(description="whole batch, all GPUs")
    total_tokens_per_second: float = Field(description="(prompt + output) tokens per second")
    usd_per_gpu_hour: float | None = Field(description="price of one GPU for one hour")
    usd_per_hour: float | None = Field(description="price of all num_gpus GPUs for one hour")
    usd_per_million_output_tokens: float | None
    usd_per_million_tokens: float | None = Field(description="per million prompt + output tokens")
    memory: InferenceMemory | None = Field(
        None, description="memory per GPU of the batch at its full context (inference_memory)"
    )
    assumptions: list[str] = Field(default_factory=list)


def _check_serving(
    spec: ModelSpec,
    batch_size: int,
    prompt_tokens: int,
    output_tokens: int,
    num_gpus: int,
    mfu: float | None,
    mbu: float | None,
) -> None:
    """The inputs of estimate_inference_cost: counts of at least 1, utilisations in (0, 1], the
    context within learned positions, attention heads divisible by the tensor-parallel GPUs."""
    for name, value in (
        ("batch_size", batch_size),
        ("prompt_tokens", prompt_tokens),
        ("output_tokens", output_tokens),
        ("num_gpus", num_gpus),
    ):
        if value < 1:
            raise VramcalcError(f"{name} must be at least 1 (got {value})")
    for name, frac in (("--mfu", mfu), ("--mbu", mbu)):
        if frac is not None and not 0 < frac <= 1:
            raise VramcalcError(f"{name} must be in (0, 1] (got {frac})")
    check_context(spec, prompt_tokens, output_tokens)
    if spec.num_attention_heads % num_gpus:
        raise VramcalcError(
            f"tensor parallel over {num_gpus} GPUs needs the {spec.num_attention_heads} attention "
            f"heads of {spec.name} to divide evenly; use a divisor of {spec.num_attention_heads}"
        )


@checked_keywords
def estimate_inference_cost(
    model: str | ModelSpec,
    *,
    gpu: str | GPUSpec,
    dtype: str = "bf16",
    quant: str | None = None,
    kv_dtype: str | None = None,
    batch_size: int = 1,
    prompt_tokens: int = 1000,
    output_tokens: int = 200,
    num_gpus: int = 1,
    mfu: float | None = None,
    mbu: float | None = None,
    usd_per_gpu_hour: float | None = None,
    memory: bool = True,
) -> InferenceCost:
    """Latency, throughput and price of serving `batch_size` requests of `prompt_tokens` +
    `output_tokens` together (static batching), tensor parallel over `num_gpus`.

    prefill: max(FLOPs / (n·peak·MFU), weight bytes / (n·bandwidth·MBU)) with FLOPs =
      B·(2·N·P + 2·L·H·Q·P²) (causal attention: QKᵀ and AV over half the P×P square);
    decode step at context c: max(bytes / (n·bandwidth·MBU), FLOPs / (n·peak·MFU)) with
      bytes = weights (touched experts for MoE) + B·c·KV bytes per token,
      FLOPs = B·(2·N + 4·L·H·Q·c); c averaged over the output (prompt + output/2);
    tensor parallel: + 2 ring all-reduces of B·tokens·hidden activations per layer;
    price: `usd_per_gpu_hour` (one GPU, one hour; default the catalog's) × num_gpus = usd_per_hour.
    The result's ``memory`` says whether the batch fits the GPUs (:func:`inference_memory`; left
    out with ``memory=False`` by callers that hold their own memory estimate).
    """
    from vramcalc.sources.presets import get_gpu

    spec = resolve_model(model)
    g = gpu if isinstance(gpu, GPUSpec) else get_gpu(gpu)
    _check_serving(spec, batch_size, prompt_tokens, output_tokens, num_gpus, mfu, mbu)
    fmt = resolve_format(dtype, quant)
    compute_dtype = inference_compute_dtype(dtype, quant, g)
    peak, compute_dtype = compute_peak(g, compute_dtype)
    bandwidth = need_figure(g.memory_bandwidth_gbps, g, "memory_bandwidth_gbps")
    u_compute = mfu or DEFAULT_INFER_MFU
    u_memory = mbu or DEFAULT_MBU
    flops_rate = num_gpus * peak * 1e12 * u_compute
    bytes_rate = num_gpus * bandwidth * 1e9 * u_memory

    B, P, O = batch_size, prompt_tokens, output_tokens  # noqa: E741 (the paper letters)
    weights = weight_bytes(tensor_groups(spec), fmt)
    kv_name = kv_dtype or ("fp32" if fmt.compute_bytes == 4 else "bf16")
    kv_bytes = kv_bytes_per_element(kv_name)
    act_bytes = fmt.compute_bytes

    prefill = prefill_flops(spec, B, P)
    prefill_bytes = _read_weight_bytes(spec, weights, B * P) + kv_cache_bytes(spec, B, P, kv_bytes)
    prefill_s = max(prefill / flops_rate, prefill_bytes / bytes_rate)

    mean_ctx = P + O / 2
    # each step reads the whole cache at the mean context (kv_cache: MLA latent, windows, state)
    step_bytes = _read_weight_bytes(spec, weights, B) + kv_cache_bytes(
        spec, B, int(mean_ctx), kv_bytes
    )
    step_flops = decode_step_flops(spec, B, int(mean_ctx))
    memory_s, compute_s = step_bytes / bytes_rate, step_flops / flops_rate
    bound: Literal["memory", "compute"] = "memory" if memory_s >= compute_s else "compute"

    layer_msg = 2 * spec.num_layers  # all-reduces per forward (after attention and after MLP)
    comm_prefill = layer_msg * allreduce_seconds(B * P * spec.hidden_size * act_bytes, num_gpus, g)
    comm_step = layer_msg * allreduce_seconds(B * spec.hidden_size * act_bytes, num_gpus, g)
    step_s = max(memory_s, compute_s) + comm_step
    prefill_total = prefill_s + comm_prefill
    latency = prefill_total + O * step_s
    out_tps = B * O / latency
    price = usd_per_gpu_hour if usd_per_gpu_hour is not None else g.usd_per_gpu_hour
    hourly = None if price is None else price * num_gpus
    per_m_out = None if hourly is None else hourly / SECONDS_PER_HOUR / out_tps * 1e6
    total_tps = B * (P + O) / latency
    per_m_all = None if hourly is None else hourly / SECONDS_PER_HOUR / total_tps * 1e6
    return InferenceCost(
        model=spec.name,
        gpu=g.name,
        num_gpus=num_gpus,
        dtype=fmt.name,
        compute_dtype=compute_dtype,
        batch_size=B,
        prompt_tokens=P,
        output_tokens=O,
        peak_tflops_per_gpu=peak,
        memory_bandwidth_gbps=bandwidth,
        mfu=u_compute,
        mbu=u_memory,
        prefill_flops=prefill,
        prefill_seconds=prefill_total,
        decode_flops_per_step=step_flops,
        decode_bytes_per_step=step_bytes,
        decode_step_seconds=step_s,
        decode_bound=bound,
        communication_seconds=comm_prefill + O * comm_step,
        time_to_first_token_seconds=prefill_total + step_s,
        latency_seconds=latency,
        decode_tokens_per_second_per_sequence=1.0 / step_s,
        output_tokens_per_second=out_tps,
        total_tokens_per_second=total_tps,
        usd_per_gpu_hour=price,
        usd_per_hour=hourly,
        usd_per_million_output_tokens=per_m_out,
        usd_per_million_tokens=per_m_all,
        memory=None
        if not memory
        else inference_memory(
            spec,
            g,
            dtype=dtype,
            quant=quant,
            kv_dtype=kv_dtype,
            batch_size=B,
            seq_len=P + O,
            num_gpus=num_gpus,
        ),
        assumptions=[
            f"static batch of {B}: prefilled together, then {O} decode steps in lockstep",
            f"dense {compute_dtype} peak {peak:g} TFLOP/s at MFU {u_compute:g}; "
            f"{bandwidth:g} GB/s at MBU {u_memory:g}"
            + ("" if mfu and mbu else " (defaults: see docs/cost.md)"),
            f"weights {fmt.name}, KV cache {kv_name}; tensor parallel over {num_gpus} GPU(s)",
            "no scheduler, sampling or network overhead; latency terms of collectives ignored",
        ],
    )


def engine_batch_size(serving: ServingSummary) -> tuple[int, str]:
    """Requests of max_model_len tokens a serving engine decodes at once: the whole requests its
    KV pool holds (llama.cpp: its --parallel slots), capped by max_num_seqs; and why."""
    whole = serving.kv_pool_tokens // max(1, serving.max_model_len)
    whole = int(serving.max_concurrency) if serving.engine == "llama.cpp" else whole
    cap = serving.max_num_seqs
    batch = min(whole, cap) if cap else whole
    capped = f", capped by max_num_seqs {cap}" if cap and cap < whole else ""
    return batch, (
        f"{serving.engine}: {serving.kv_pool_tokens:,} KV tokens / {serving.max_model_len:,} per "
        f"request = {whole} requests{capped}"
    )
