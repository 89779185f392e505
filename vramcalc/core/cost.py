"""Compute, time, energy and price: training runs and inference serving on catalog GPUs.

Memory says whether a job fits; this module says how long it takes and what it costs, from the
GPU catalog's dense peaks, memory bandwidth, interconnect, board power and hourly price.

Conventions (each function's docstring gives its source):

* **Model FLOPs** count the matrix multiplications a token needs, as PaLM's MFU does (Chowdhery et
  al. 2022, Appendix B): ``6·N`` per trained token (forward 2N, backward 4N) plus ``12·L·H·Q·T``
  for the attention score and value products, with ``N`` the parameters a token multiplies (every
  weight except the input token/position embedding lookups; the output head counts, tied or not;
  for mixture-of-experts models only the active experts).
* **Hardware FLOPs** add what recomputation re-executes: full activation checkpointing runs the
  forward twice, 8·N instead of 6·N (×4/3).
* **MFU** (model FLOPs utilisation) = model FLOPs / (time × GPUs × dense peak). Its defaults per
  GPU generation are in :data:`DEFAULT_MFU`, with where each comes from.
* Inference is a roofline per phase: prefill is compute-bound, each decode step is bound by
  reading the weights and the KV cache from memory (or by compute at large batch), whichever is
  slower; tensor parallelism splits both over the GPUs and adds two all-reduces per layer.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vramcalc.core.kv_cache import kv_cache_bytes
from vramcalc.core.results import ServingSummary
from vramcalc.core.workloads import resolve_model, resolve_seq_len
from vramcalc.errors import VramcalcError, checked_keywords
from vramcalc.spec.model import GPUSpec, ModelSpec
from vramcalc.spec.params import EMBEDDING, POSITION, active_param_count, param_count, tensor_groups
from vramcalc.spec.quant import kv_bytes_per_element, resolve_format, weight_bytes
from vramcalc.units import parse_count

SECONDS_PER_HOUR = 3600
PFLOP_S_DAY = 1e15 * 86400  # one petaflop/s-day, the unit of Brown et al. 2020, Table D.1

# Default MFU per GPU generation: the fraction of the dense BF16/FP16 peak that large, well-tuned
# training runs reach. Published figures (not fitted to the tests):
#   volta  0.21  GPT-3 175B on V100: 21.3 % MFU (PaLM, Chowdhery et al. 2022, Table 3)
#   ampere 0.40  Megatron-Turing NLG 530B on A100: 30.2 %, Gopher 32.5 % (TPU), PaLM 46.2 % (TPU)
#                (PaLM Table 3); Megatron-LM 2021 reports 44-52 % of peak on A100 (Narayanan et
#                al., Table 1, hardware FLOPs with recomputation). 0.40 is the middle of that range.
#   hopper 0.40  Llama 3 405B on H100: 38-43 % BF16 MFU (Llama 3 paper, Dubey et al. 2024, Table 4)
#   turing / ada / blackwell / cdna2 / cdna3: no published large-scale run; assumed (say so in reports).
DEFAULT_MFU: dict[str, tuple[float, str]] = {
    "volta": (0.21, "GPT-3 175B on V100, 21.3 % (PaLM paper, Table 3)"),
    "turing": (0.30, "assumed: no published large-scale training run"),
    "ampere": (0.40, "A100 runs 30-52 % (PaLM Table 3; Megatron-LM 2021, Table 1)"),
    "ada": (0.30, "assumed: no published large-scale training run"),
    "hopper": (0.40, "Llama 3 405B on H100, 38-43 % (Llama 3 paper, Table 4)"),
    "blackwell": (0.35, "assumed: no published large-scale run yet; below Hopper's 0.40"),
    "cdna2": (0.30, "assumed: no published large-scale training run"),
    "cdna3": (0.30, "assumed: no published large-scale training run"),
}
FALLBACK_MFU = (0.30, "assumed: GPU generation unknown")

# Inference defaults. MBU (memory bandwidth utilisation) is the decode counterpart of MFU
# (Databricks, "LLM Inference Performance Engineering: Best Practices", 2023, defines it and
# measures 55-60 % on A100/H100 at batch 1 for a 7B model); optimised kernels reach more.
DEFAULT_INFER_MFU = 0.5  # assumed: fraction of the dense peak prefill GEMMs sustain
DEFAULT_MBU = 0.6  # Databricks 2023 (above): ~60 % of peak HBM bandwidth in decode

TrainDtype = Literal["fp32", "tf32", "bf16", "fp16", "fp8"]


# ---- FLOPs --------------------------------------------------------------------------------------
def matmul_params(spec: ModelSpec) -> int:
    """Parameters a token multiplies: active parameters minus the input embedding lookups (token
    embeddings when untied, learned positions). The tied output head still counts."""
    lookups = 0
    for g in tensor_groups(spec):
        if g.kind == POSITION or (g.kind == EMBEDDING and not spec.tie_word_embeddings):
            lookups += g.numel
    return active_param_count(spec) - lookups


def attention_context_sum(spec: ModelSpec, seq_len: int) -> int:
    """Σ over layers of the context each token attends to (T, or the sliding window)."""
    windowed = min(spec.windowed_layers, spec.kv_layers)  # a hybrid's state layers attend to none
    window = min(seq_len, spec.sliding_window or seq_len)
    return (spec.kv_layers - windowed) * seq_len + windowed * window


def training_flops_per_token(spec: ModelSpec, seq_len: int) -> tuple[float, float]:
    """(dense, attention) model FLOPs per trained token: 6·N and 12·L·H·Q·T (PaLM, Appendix B;
    H·Q = heads × head_dim; T capped at the window for sliding-window layers)."""
    dense = 6.0 * matmul_params(spec)
    attention = 12.0 * spec.q_dim * attention_context_sum(spec, seq_len)
    return dense, attention


class TrainingFlops(BaseModel):
    model_config = ConfigDict(frozen=True)

    tokens: int
    seq_len: int
    matmul_params: int
    dense_flops: float = Field(description="6·N·D")
    attention_flops: float = Field(description="12·L·H·Q·T·D")
    model_flops: float = Field(description="dense + attention: what MFU counts")
    hardware_flops: float = Field(description="model FLOPs × 4/3 with full recomputation")

    @property
    def petaflop_s_days(self) -> float:
        return self.model_flops / PFLOP_S_DAY


def training_flops(
    spec: ModelSpec, tokens: int, seq_len: int, grad_checkpointing: str = "none"
) -> TrainingFlops:
    """FLOPs of training on `tokens` tokens of `seq_len`-token sequences (PaLM Appendix B);
    full recomputation re-runs the forward pass: 8·N instead of 6·N, i.e. ×4/3."""
    dense_pt, attn_pt = training_flops_per_token(spec, seq_len)
    model = (dense_pt + attn_pt) * tokens
    factor = 4.0 / 3.0 if grad_checkpointing == "full" else 1.0
    return TrainingFlops(
        tokens=tokens,
        seq_len=seq_len,
        matmul_params=matmul_params(spec),
        dense_flops=dense_pt * tokens,
        attention_flops=attn_pt * tokens,
        model_flops=model,
        hardware_flops=model * factor,
    )


# ---- GPU figures --------------------------------------------------------------------------------
def default_mfu(gpu: GPUSpec) -> tuple[float, str]:
    """The documented default MFU of the GPU's generation and where it comes from."""
    return DEFAULT_MFU.get(gpu.generation or "", FALLBACK_MFU)


_FALLBACKS = {"bf16": ("bf16", "fp16"), "fp16": ("fp16", "bf16"), "fp8": ("fp8",)}


def compute_peak(gpu: GPUSpec, dtype: str) -> tuple[float, str]:
    """Dense peak TFLOP/s for math in `dtype`, and the dtype whose peak it is.

    bf16 falls back to fp16 (V100, T4 have no BF16 tensor cores and train in fp16); fp32 uses the
    non-tensor FP32 peak (PyTorch leaves TF32 matmuls off by default)."""
    for candidate in _FALLBACKS.get(dtype, (dtype,)):
        peak = gpu.peak_tflops(candidate)
        if peak:
            return peak, candidate
    listed = [d for d in ("fp32", "tf32", "bf16", "fp16", "fp8", "int8") if gpu.peak_tflops(d)]
    raise VramcalcError(
        f"{gpu.name} has no {dtype} peak in the catalog; it lists {', '.join(listed) or 'none'} "
        "(add one with a GPU file, see docs/cost.md)"
    )


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


def compute_seconds(flops: float, gpus: int, peak_tflops: float, mfu: float) -> float:
    """Wall time of `flops` on `gpus` GPUs running at `mfu` of `peak_tflops` each."""
    return flops / (gpus * peak_tflops * 1e12 * mfu)


def _need(value: float | None, gpu: GPUSpec, what: str) -> float:
    if not value:
        raise VramcalcError(f"{gpu.name} has no {what} in the catalog (add it with a GPU file)")
    return value


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
    price_usd_per_gpu_hour: float | None
    price_usd: float | None
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
    price_usd_per_hour: float | None = None,
) -> TrainingCost:
    """Time, GPU-hours, price and energy of training `model` on `tokens` tokens.

    time = model FLOPs / (num_gpus × dense peak × MFU); with full recomputation the default MFU is
    the generation's default × 3/4 (the GPU works as hard, a quarter of its work is re-done), while
    an explicit `mfu` is taken as the model FLOPs utilisation it names.
    """
    from vramcalc.sources.presets import get_gpu

    spec = resolve_model(model)
    g = gpu if isinstance(gpu, GPUSpec) else get_gpu(gpu)
    n_tokens = parse_count(tokens)
    if not 1 <= num_gpus <= 1_000_000:
        raise VramcalcError(f"--num-gpus must be between 1 and 1000000 (got {num_gpus})")
    if grad_checkpointing not in ("none", "full"):
        raise VramcalcError(f"grad_checkpointing must be none or full (got {grad_checkpointing!r})")
    seq = resolve_seq_len(spec, seq_len)
    flops = training_flops(spec, n_tokens, seq, grad_checkpointing)
    recompute = flops.hardware_flops / flops.model_flops
    if mfu is None:
        base, source = default_mfu(g)
        mfu_value = base / recompute
        if recompute != 1.0:
            source += "; × 3/4 for full recomputation"
    else:
        if not 0 < mfu <= 1:
            raise VramcalcError(f"--mfu must be in (0, 1] (got {mfu})")
        mfu_value, source = mfu, "given"
    peak, peak_dtype = compute_peak(g, dtype)
    gpu_seconds = compute_seconds(flops.model_flops, 1, peak, mfu_value)
    gpu_hours = gpu_seconds / SECONDS_PER_HOUR
    wall_hours = gpu_hours / num_gpus
    price = price_usd_per_hour if price_usd_per_hour is not None else g.price_usd_per_hour
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
        price_usd_per_gpu_hour=price,
        price_usd=None if price is None else gpu_hours * price,
        energy_kwh=None if g.tdp_watts is None else gpu_hours * g.tdp_watts / 1000,
        assumptions=[
            f"model FLOPs = (6·N + 12·L·H·Q·T) per token, N = {flops.matmul_params:,} "
            "matmul parameters, T = {seq} (PaLM Appendix B)".replace("{seq}", str(seq)),
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


def allreduce_seconds(num_bytes: float, num_gpus: int, gpu: GPUSpec) -> float:
    """Ring all-reduce: 2·(n−1)/n × bytes over one direction of the link (half the vendor's
    bidirectional figure); latency terms ignored."""
    if num_gpus == 1:
        return 0.0
    link = _need(gpu.interconnect_gbps, gpu, "interconnect_gbps") / 2 * 1e9
    return 2 * (num_gpus - 1) / num_gpus * num_bytes / link


def check_context(spec: ModelSpec, prompt_tokens: int, output_tokens: int) -> None:
    """Learned position embeddings cap prompt + output at the model's maximum."""
    total = prompt_tokens + output_tokens
    if spec.position_embedding == "learned" and total > spec.max_position_embeddings:
        raise VramcalcError(
            f"--prompt + --output = {total} tokens exceeds {spec.name}'s "
            f"{spec.max_position_embeddings} learned positions"
        )


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
    price_usd_per_hour: float | None = Field(description="all GPUs")
    usd_per_million_output_tokens: float | None
    usd_per_million_tokens: float | None = Field(description="per million prompt + output tokens")
    assumptions: list[str] = Field(default_factory=list)


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
    price_usd_per_hour: float | None = None,
) -> InferenceCost:
    """Latency, throughput and price of serving `batch_size` requests of `prompt_tokens` +
    `output_tokens` together (static batching), tensor parallel over `num_gpus`.

    prefill: max(FLOPs / (n·peak·MFU), weight bytes / (n·bandwidth·MBU)) with FLOPs =
      B·(2·N·P + 2·L·H·Q·P²) (causal attention: QKᵀ and AV over half the P×P square);
    decode step at context c: max(bytes / (n·bandwidth·MBU), FLOPs / (n·peak·MFU)) with
      bytes = weights (touched experts for MoE) + B·c·KV bytes per token,
      FLOPs = B·(2·N + 4·L·H·Q·c); c averaged over the output (prompt + output/2);
    tensor parallel: + 2 ring all-reduces of B·tokens·hidden activations per layer.
    """
    from vramcalc.sources.presets import get_gpu

    spec = resolve_model(model)
    g = gpu if isinstance(gpu, GPUSpec) else get_gpu(gpu)
    for name, value, low in (
        ("batch_size", batch_size, 1),
        ("prompt_tokens", prompt_tokens, 1),
        ("output_tokens", output_tokens, 1),
        ("num_gpus", num_gpus, 1),
    ):
        if value < low:
            raise VramcalcError(f"{name} must be at least {low} (got {value})")
    for name, frac in (("--mfu", mfu), ("--mbu", mbu)):
        if frac is not None and not 0 < frac <= 1:
            raise VramcalcError(f"{name} must be in (0, 1] (got {frac})")
    check_context(spec, prompt_tokens, output_tokens)
    if spec.num_attention_heads % num_gpus:
        raise VramcalcError(
            f"tensor parallel over {num_gpus} GPUs needs the {spec.num_attention_heads} attention "
            f"heads of {spec.name} to divide evenly; use a divisor of {spec.num_attention_heads}"
        )
    fmt = resolve_format(dtype, quant)
    compute_dtype = inference_compute_dtype(dtype, quant, g)
    peak, compute_dtype = compute_peak(g, compute_dtype)
    bandwidth = _need(g.memory_bandwidth_gbps, g, "memory_bandwidth_gbps")
    u_compute = mfu or DEFAULT_INFER_MFU
    u_memory = mbu or DEFAULT_MBU
    flops_rate = num_gpus * peak * 1e12 * u_compute
    bytes_rate = num_gpus * bandwidth * 1e9 * u_memory

    n = matmul_params(spec)
    B, P, O = batch_size, prompt_tokens, output_tokens  # noqa: E741 (the paper letters)
    weights = weight_bytes(tensor_groups(spec), fmt)
    kv_name = kv_dtype or ("fp32" if fmt.compute_bytes == 4 else "bf16")
    kv_bytes = kv_bytes_per_element(kv_name)
    act_bytes = fmt.compute_bytes

    attn_ctx = attention_context_sum(spec, P)  # Σ_layers min(P, window)
    prefill_flops = B * (2.0 * n * P + 2.0 * spec.q_dim * attn_ctx * P)
    prefill_bytes = _read_weight_bytes(spec, weights, B * P) + kv_cache_bytes(spec, B, P, kv_bytes)
    prefill_s = max(prefill_flops / flops_rate, prefill_bytes / bytes_rate)

    mean_ctx = P + O / 2
    # each step reads the whole cache at the mean context (kv_cache: MLA latent, windows, state)
    step_bytes = _read_weight_bytes(spec, weights, B) + kv_cache_bytes(
        spec, B, int(mean_ctx), kv_bytes
    )
    step_flops = B * (2.0 * n + 4.0 * spec.q_dim * attention_context_sum(spec, int(mean_ctx)))
    memory_s, compute_s = step_bytes / bytes_rate, step_flops / flops_rate
    bound: Literal["memory", "compute"] = "memory" if memory_s >= compute_s else "compute"

    layer_msg = 2 * spec.num_layers  # all-reduces per forward (after attention and after MLP)
    comm_prefill = layer_msg * allreduce_seconds(B * P * spec.hidden_size * act_bytes, num_gpus, g)
    comm_step = layer_msg * allreduce_seconds(B * spec.hidden_size * act_bytes, num_gpus, g)
    step_s = max(memory_s, compute_s) + comm_step
    prefill_total = prefill_s + comm_prefill
    latency = prefill_total + O * step_s
    out_tps = B * O / latency
    price = price_usd_per_hour if price_usd_per_hour is not None else g.price_usd_per_hour
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
        prefill_flops=prefill_flops,
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
        price_usd_per_hour=hourly,
        usd_per_million_output_tokens=per_m_out,
        usd_per_million_tokens=per_m_all,
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
