"""Result models: one typed breakdown whose components add up to its total.

The JSON schema (``--json``) is this model's ``model_dump``; it is documented in the README and kept
stable: ``params``, ``total_bytes`` and ``components`` (list of ``{name, bytes, note}``) are always there.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 2  # 2: every --json output an object with schema_version and kind


class Lifetime(StrEnum):
    """How long a component's bytes live, which decides how phases of a multi-model job combine."""

    resident = "resident"  # for the whole job: weights, optimizer state, master weights, KV pools
    transient = "transient"  # only while its model runs a step: activations, gradients, buffers
    runtime = "runtime"  # once per GPU and process: CUDA context, allocator slack


class ComponentName(StrEnum):
    """The component names estimates produce (a str, so JSON and comparisons are unchanged)."""

    weights = "weights"
    adapter_weights = "adapter_weights"
    master_weights = "master_weights"
    optimizer_state = "optimizer_state"
    kv_cache = "kv_cache"
    rollout_weights = "rollout_weights"
    reference_logps = "reference_logps"
    experience_buffer = "experience_buffer"
    activations = "activations"
    logits_buffer = "logits_buffer"
    gradients = "gradients"
    autocast_weight_copies = "autocast_weight_copies"
    optimizer_temporaries = "optimizer_temporaries"
    gathered_parameters = "gathered_parameters"
    communication_buffers = "communication_buffers"
    dequant_buffer = "dequant_buffer"
    temporaries = "temporaries"
    cuda_context = "cuda_context"
    allocator_slack = "allocator_slack"
    load_buffer = "load_buffer"  # the base while loading/quantizing, with the tensor in conversion


_TRANSIENT = frozenset(
    {
        ComponentName.activations,
        ComponentName.logits_buffer,
        ComponentName.gradients,
        ComponentName.autocast_weight_copies,
        ComponentName.optimizer_temporaries,
        ComponentName.gathered_parameters,
        ComponentName.communication_buffers,
        ComponentName.dequant_buffer,
        ComponentName.temporaries,
        ComponentName.load_buffer,
    }
)
_RUNTIME = frozenset({ComponentName.cuda_context, ComponentName.allocator_slack})


def lifetime_of(name: str) -> Lifetime:
    """The lifetime of a component name; names outside ComponentName are resident."""
    if name in _RUNTIME:
        return Lifetime.runtime
    return Lifetime.transient if name in _TRANSIENT else Lifetime.resident


class Component(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = Field(description="what the bytes hold: weights, kv_cache, activations, ...")
    bytes: int = Field(ge=0)
    note: str = Field("", description="the formula or assumption behind the figure")
    formula: str = Field("", description="the arithmetic with numbers substituted (--explain)")
    cluster_bytes: int | None = Field(
        None, description="this component summed over every GPU of a multi-GPU job"
    )

    @property
    def lifetime(self) -> Lifetime:
        return lifetime_of(self.name)


class GPUFit(BaseModel):
    """Whether the estimate fits one GPU of `memory_bytes`, and the headroom left (negative: short)."""

    model_config = ConfigDict(frozen=True)

    gpu: str
    memory_bytes: int
    fits: bool
    headroom_bytes: int
    verdict: Literal["fits", "tight", "may fit", "does not fit"] = Field(
        "fits",
        description="fits: even the band's high end fits; does not fit: even its low end does not; "
        "tight: the memory lies inside the band; may fit: the architecture was only assumed "
        "(--assume-llama), so even a total far below the memory is not a 'fits'",
    )
    weights_only: bool = Field(
        False, description="the verdict counts the weights alone (model given only by size)"
    )


class Saving(BaseModel):
    """What one choice (LoRA, ZeRO stage, offload, a parallel degree) saves per GPU."""

    model_config = ConfigDict(frozen=True)

    choice: str
    saved_bytes: int = Field(description="per-GPU total without the choice minus with it")
    compared_to: str = Field("", description="the configuration it is compared with")


class ServingSummary(BaseModel):
    """What a serving engine's start-up log reports (vramcalc.core.serving): the KV pool left after
    its own memory profile, in bytes and tokens, and how many requests of `max_model_len` it holds."""

    model_config = ConfigDict(frozen=True)

    engine: str = Field(description="vllm, sglang or llama.cpp")
    engine_version: str = Field("", description="the release line whose conventions were used")
    tp: int = 1
    pp: int = 1
    budget_bytes: int = Field(0, description="per GPU: memory the engine allows itself")
    kv_pool_bytes: int = Field(description="per GPU: KV cache pool, whole blocks")
    kv_pool_tokens: int = Field(description="tokens the pool holds (each GPU holds its shard)")
    kv_bytes_per_token: int = Field(description="per GPU: cache bytes of one token")
    block_size: int = 1
    num_blocks: int = 0
    max_model_len: int = Field(description="tokens of one request (context length)")
    max_concurrency: float = Field(description="kv_pool_tokens / max_model_len, as the engine logs")
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    refused: str | None = Field(None, description="the engine's start-up refusal, if it refuses")
    host_bytes: int = Field(0, description="host memory (llama.cpp: weights and KV left on CPU)")
    not_sized: list[str] = Field(
        default_factory=list, description="what the engine does that is not sized"
    )


class Estimate(BaseModel):
    """A memory estimate at the peak of the workload."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    kind: Literal["inference", "training"]
    model: str
    params: int = Field(description="total parameters (all experts of an MoE model)")
    active_params: int = Field(description="parameters one token passes through")
    weights_only: bool = Field(False, description="True when the model was given only by size")
    phase: str = Field("", description="the moment of the peak the components describe")
    components: list[Component]
    total_bytes: int
    low_bytes: int = Field(0, description="low end of the likely range (see docs/validation.md)")
    high_bytes: int = Field(0, description="high end of the likely range")
    gpu: GPUFit | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    assumptions: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(
        default_factory=list, description="inputs used as given that may not be what was meant"
    )
    # Multi-GPU jobs (training with sharding or parallelism); defaults describe one GPU.
    num_gpus: int = Field(1, description="GPUs of the job; components and total are per GPU")
    cluster_total_bytes: int | None = Field(None, description="GPU memory summed over all GPUs")
    cpu_bytes_per_node: int = Field(0, description="host memory per node for offloaded state")
    stage_totals_bytes: list[int] = Field(
        default_factory=list, description="per-GPU total of each pipeline stage (the max is total)"
    )
    parallel: dict[str, Any] = Field(default_factory=dict, description="degrees and sharding")
    savings: list[Saving] = Field(default_factory=list)
    # Training stacks (issue 14): phases and places besides the steady step on the GPU.
    load_peak_bytes: int = Field(
        0, description="peak while loading/quantizing the model (0: not modelled for this job)"
    )
    load_components: list[Component] = Field(
        default_factory=list, description="what the load peak holds (sums to load_peak_bytes)"
    )
    host_activation_bytes: int = Field(
        0, description="activations offloaded to host memory (activation offload), per node"
    )
    spillable_bytes: int = Field(
        0,
        description="part of the total that can page to the host under pressure (paged optimizer "
        "state); the GPU floor is total_bytes − spillable_bytes",
    )
    # --assume-llama: an unmapped architecture read as Llama; the figures are rough.
    assumed_architecture: str | None = Field(
        None, description="unmapped model_type read as a Llama-style decoder (--assume-llama)"
    )
    exact_architecture: bool = Field(
        True, description="False when the architecture was assumed: a rough estimate"
    )
    serving: ServingSummary | None = Field(
        None, description="serving engine (--engine): KV pool, tokens and max concurrency"
    )

    @model_validator(mode="after")
    def _total_is_sum(self) -> Estimate:
        """A breakdown adds up to its total (and the load phase to its own)."""
        if self.total_bytes != sum([c.bytes for c in self.components]):
            raise ValueError(f"total_bytes {self.total_bytes} ≠ Σ components")
        if self.load_components and self.load_peak_bytes != sum(
            c.bytes for c in self.load_components
        ):
            raise ValueError(f"load_peak_bytes {self.load_peak_bytes} ≠ Σ load_components")
        return self

    def component(self, name: str) -> int:
        """Bytes of one component (0 when absent)."""
        return sum(c.bytes for c in self.components if c.name == name)

    @property
    def total_gib(self) -> float:
        """The total in GiB (2^30 bytes)."""
        return self.total_bytes / 1024**3

    def to_row(self) -> dict[str, Any]:
        """One flat dict (inputs, then ``<component>_bytes``, totals and the fit) for a DataFrame."""
        fit = self.gpu
        row: dict[str, Any] = {"model": self.model, "kind": self.kind, **self.inputs}
        row["params"] = self.params
        row |= {f"{c.name}_bytes": self.component(c.name) for c in self.components}
        row |= {
            "total_bytes": self.total_bytes,
            "total_gib": self.total_gib,
            "low_bytes": self.low_bytes,
            "high_bytes": self.high_bytes,
            "num_gpus": self.num_gpus,
            "gpu_name": None if fit is None else fit.gpu,
            "gpu_memory_bytes": None if fit is None else fit.memory_bytes,
            "headroom_bytes": None if fit is None else fit.headroom_bytes,
            "verdict": None if fit is None else fit.verdict,
        }
        return row


RUNTIME = (ComponentName.cuda_context, ComponentName.allocator_slack)

# --assume-llama widens the band to [total / 2, total × 2]. Why a factor of two: the dense
# architectures issue 13 measured through the Llama reading came out +30 % (Phi-2), +38 %
# (StarCoder2-7B) and +60 % (StarCoder-15B, gpt_bigcode) in parameters, all inside ×2; the readings
# far outside it (gpt-oss −89 %, every mixture of experts; a 48× KV cache for multi-query
# attention) are the configs hf_config refuses even with --assume-llama.
ROUGH_BAND_FACTOR = 2.0


def error_band(
    components: list[Component], kind: str, weights_only: bool, rough: bool = False
) -> tuple[int, int]:
    """Likely range of the total: the tensor bytes widened by their residual against the trace
    (calibration.toml [trace_residuals]) plus the runtime terms at their low and high calibration
    values ([runtime]). Weights-only estimates are exact arithmetic: no band.

    One rule for every training estimate: LoRA, QLoRA and multi-GPU layouts are built from the
    same terms as full single-GPU training (weights, gradients, optimizer state, activations),
    restricted to the adapters or divided over ranks, so the training residual is applied to
    their tensor bytes too; the traced grid holds full single-GPU training only, and
    `band_note` says so on those estimates."""
    return _total_and_band(components, kind, weights_only, rough)[1:]


def _total_and_band(
    components: list[Component], kind: str, weights_only: bool, rough: bool
) -> tuple[int, int, int]:
    """The total and error_band's (low, high), in one pass over the components."""
    total = context = context_bytes = slack = 0
    for c in components:
        n = c.bytes
        total += n
        name = c.name
        if name == "cuda_context":
            context += 1
            context_bytes += n
        elif name == "allocator_slack":
            slack += n
    if weights_only and not rough:
        return total, total, total
    tensor = total - context_bytes - slack
    b = _band_constants(kind)
    low = tensor * b.tensor_low + context * b.context_low_bytes + slack * b.slack_low
    high = tensor * b.tensor_high + context * b.context_high_bytes + slack * b.slack_high
    if rough:  # assumed architecture: at least a factor of two either way (ROUGH_BAND_FACTOR)
        low = min(low, total / ROUGH_BAND_FACTOR)
        high = max(high, total * ROUGH_BAND_FACTOR)
    return total, int(min(low, total)), int(max(high, total))


def band_note(kind: str, inputs: dict[str, Any], num_gpus: int) -> str | None:
    """The assumption behind the band of an estimate outside the traced grid (see error_band)."""
    method = inputs.get("method", "full")
    if kind != "training" or (method == "full" and num_gpus == 1):
        return None
    what = " and ".join(
        x
        for x in (method if method != "full" else "", f"{num_gpus} GPUs" if num_gpus > 1 else "")
        if x
    )
    return (
        f"likely range ({what}): the full-training trace residual applied to these tensor bytes "
        "(same terms, restricted or sharded; not traced separately)"
    )


@dataclass(frozen=True, slots=True)
class _Band:
    tensor_low: float  # multipliers of the tensor bytes
    tensor_high: float
    context_low_bytes: int  # CUDA context at its low / high calibration value
    context_high_bytes: int
    slack_low: float  # multipliers of the allocator slack
    slack_high: float


@cache
def _band_constants(kind: str) -> _Band:
    from vramcalc.sources.calibration import runtime, trace_residuals

    err_low, err_high = trace_residuals().range(kind)
    rt = runtime()
    nominal = rt.allocator_slack_fraction
    return _Band(
        tensor_low=1 / (1 + err_high),
        tensor_high=1 / (1 + err_low),
        context_low_bytes=rt.cuda_context_low_mib * 1024**2,
        context_high_bytes=rt.cuda_context_high_mib * 1024**2,
        slack_low=rt.allocator_slack_low_fraction / nominal if nominal else 0.0,
        slack_high=rt.allocator_slack_high_fraction / nominal if nominal else 0.0,
    )


def make_estimate(
    components: list[Component], gpu_memory: tuple[str, int] | None, **fields: Any
) -> Estimate:
    """Build an Estimate whose total is the sum of its components, with its band and the GPU fit."""
    rough = fields.get("assumed_architecture") is not None
    total, low, high = _total_and_band(
        components, fields.get("kind", "inference"), fields.get("weights_only", False), rough
    )
    # the verdict considers the load phase too where it needs more (issue 14: OOM while loading)
    load = fields.get("load_peak_bytes", 0)
    fit = (
        None
        if gpu_memory is None
        else gpu_fit(
            gpu_memory,
            max(total, load),
            max(low, load),
            max(high, load),
            rough=rough,
            weights_only=fields.get("weights_only", False),
        )
    )
    if rough:
        fields["exact_architecture"] = False
    kind = fields.get("kind", "")
    # band_note speaks of training estimates only
    note = (
        band_note(kind, fields.get("inputs", {}), fields.get("num_gpus", 1))
        if kind == "training"
        else None
    )
    if note:
        fields["assumptions"] = [*fields.get("assumptions", []), note]
    return Estimate(
        components=components, total_bytes=total, low_bytes=low, high_bytes=high, gpu=fit, **fields
    )


def gpu_fit(
    gpu_memory: tuple[str, int] | None,
    total: int,
    low: int,
    high: int,
    *,
    rough: bool = False,
    weights_only: bool = False,
) -> GPUFit | None:
    """Fit of a total with its likely range on one GPU of (name, memory_bytes). A rough estimate
    (assumed architecture) is never "fits": at best "may fit"."""
    if gpu_memory is None:
        return None
    name, memory = gpu_memory
    verdict = "fits" if high <= memory else "does not fit" if low > memory else "tight"
    if rough and verdict in ("fits", "tight"):
        verdict = "may fit"
    return GPUFit(
        gpu=name,
        memory_bytes=memory,
        fits=total <= memory,
        headroom_bytes=memory - total,
        verdict=verdict,
        weights_only=weights_only,
    )
