"""Inputs and results of an RLHF estimate: typed options in, phases and GPU groups out."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vramcalc.core.optimizers import Optimizer
from vramcalc.core.results import SCHEMA_VERSION, GPUFit, Lifetime
from vramcalc.core.workloads import MAX_TOKENS, validate
from vramcalc.errors import VramcalcError
from vramcalc.spec.conventions import Conventions
from vramcalc.spec.precision import PrecisionName

Stage = Literal["sft", "rm", "ppo", "dpo", "grpo"]
STAGES: tuple[str, ...] = ("sft", "rm", "ppo", "dpo", "grpo")
Placement = Literal["colocated", "separate"]
STAGE_ROLES = {
    "sft": ("policy",),
    "rm": ("reward",),
    "ppo": ("actor", "critic", "reference", "reward"),
    "dpo": ("policy", "reference"),
    "grpo": ("policy", "reference", "reward"),
}
# the model whose parallel plan sets the data-parallel ranks (and the batch) of the job
LEAD_ROLE = {"sft": "policy", "rm": "reward", "ppo": "actor", "dpo": "policy", "grpo": "policy"}

# Per-sequence experience kept between the scoring and training phases, fp32 per response token:
# PPO: old actor log-probs, reference log-probs, values, rewards, advantages, returns (6);
# GRPO: old log-probs, reference log-probs, advantages (3). Token ids are int64 (8 B) per token.
EXPERIENCE_FLOATS = {"ppo": 6, "grpo": 3}

# what vramcalc.core.parallel.make_plan reads of the training options
PLAN_KEYS: tuple[str, ...] = (
    *("num_gpus", "nodes", "gpus_per_node", "tp", "pp", "cp", "ep", "sp"),
    *("zero", "fsdp", "offload"),
)


class TrainingOptions(BaseModel):
    """Options every trainable model (actor, critic, policy, RM) is trained with, forwarded to
    :func:`vramcalc.core.training.estimate_training` as its keywords of the same names (which
    validates values against each other: degrees against the model, ZeRO against FSDP, ...).
    Unset (None) options keep that function's defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["full", "lora", "qlora"] | None = None
    lora_rank: int | None = None
    lora_alpha: float | None = None
    lora_targets: str | tuple[str, ...] | None = None
    lora_dropout: float | None = None
    quant: str | None = Field(None, description="frozen base format of method qlora")
    num_gpus: int | None = None
    nodes: int | None = None
    gpus_per_node: int | None = None
    zero: int | None = None
    fsdp: str | None = None
    offload: str | None = None
    tp: int | None = None
    pp: int | None = None
    cp: int | None = None
    ep: int | None = None
    sp: bool | None = None
    conventions: Conventions | None = Field(
        None, description="the training stack's memory conventions (None: transformers + PEFT)"
    )

    @classmethod
    def from_keywords(cls, options: dict[str, Any]) -> TrainingOptions:
        """Validate `options`; a name estimate_rlhf does not forward is a VramcalcError."""
        unknown = sorted(set(options) - set(cls.model_fields))
        if unknown:
            raise VramcalcError(
                f"training option not supported by rlhf: {', '.join(unknown)}; "
                f"valid: {', '.join(cls.model_fields)}"
            )
        found = validate(cls, **options)
        assert isinstance(found, TrainingOptions)
        return found

    @property
    def lora(self) -> bool:
        """Adapters on a frozen base (LoRA or QLoRA)."""
        return self.method in ("lora", "qlora")

    def keywords(self) -> dict[str, Any]:
        """The options that were set, as estimate_training keywords."""
        return {k: v for k, v in self if v is not None}

    def plan_keywords(self) -> dict[str, Any]:
        """The options make_plan reads."""
        return {k: v for k, v in self.keywords().items() if k in PLAN_KEYS}

    def on_gpus(self, num_gpus: int) -> TrainingOptions:
        """The same options on a group of `num_gpus` GPUs (a separate role's own count)."""
        return self.model_copy(update={"num_gpus": num_gpus, "nodes": None, "gpus_per_node": None})


class RlhfRequest(BaseModel):
    """Validated inputs of :func:`estimate_rlhf` (sizes are per data-parallel rank)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: Stage
    placement: Placement = "colocated"
    precision: PrecisionName = "bf16-mixed"
    optimizer: Optimizer = Optimizer.adamw
    grad_checkpointing: Literal["none", "full"] = "none"
    attention: Literal["flash", "eager"] = "flash"
    batch_size: int = Field(
        1,
        gt=0,
        le=1_000_000,
        description="training micro-batch: sequences (sft, ppo, grpo), prompts (rm), pairs (dpo)",
    )
    seq_len: int | None = Field(None, gt=0, le=MAX_TOKENS, description="sft/rm/dpo sequence")
    prompt_len: int = Field(256, gt=0, le=MAX_TOKENS, description="ppo/grpo prompt tokens")
    response_len: int = Field(256, gt=0, le=MAX_TOKENS, description="ppo/grpo generated tokens")
    rollout_batch: int = Field(8, gt=0, le=1_000_000, description="prompts generated at once")
    comparisons: int = Field(4, ge=2, le=64, description="rm: K responses ranked per prompt")
    group_size: int = Field(8, ge=2, le=1024, description="grpo: G responses sampled per prompt")
    frozen_dtype: str = Field("bf16", description="dtype or weight format of frozen models")
    kv_dtype: str | None = None
    offload_frozen: bool = Field(False, description="frozen models on CPU outside their forward")
    reference: Literal["model", "precomputed"] = "model"
    reference_shares_base: bool | None = None
    rollout_weights: Literal["shared", "copy"] = "shared"
    rollout_tp: int = Field(1, gt=0, le=1024, description="GPUs a rollout weight copy spans")
    ppo_epochs: int = Field(1, gt=0, le=1000, description="passes over each experience batch")
    score_batch: int | None = Field(
        None, gt=0, le=1_000_000, description="sequences per scoring forward (ppo/grpo)"
    )
    iterations: int = Field(1, gt=0, le=10**9, description="iterations (steps) costed")
    gpu: str | None = None
    gpu_mem_gib: float | None = Field(None, gt=0, le=1 << 20)
    peak_tflops: float | None = Field(None, gt=0, le=1e6, description="dense peak per GPU")
    mfu: float | None = Field(
        None, gt=0, le=1, description="model FLOPs utilisation (default: the GPU generation's)"
    )
    usd_per_gpu_hour: float | None = Field(None, ge=0, le=1e5, description="one GPU, one hour")

    @property
    def sequence_tokens(self) -> int:
        """ppo/grpo: prompt + response tokens of one generated sequence."""
        return self.prompt_len + self.response_len


class RoleComponent(BaseModel):
    """Bytes per GPU that one model (role) holds in one phase, on the GPU group it lives on."""

    model_config = ConfigDict(frozen=True)

    role: str = Field(description="actor, critic, reference, reward, policy, experience, runtime")
    group: str = Field(description="GPU group: 'all' when colocated, else the role's own group")
    name: str
    bytes: int = Field(ge=0)
    note: str = ""
    # how long the bytes live (not in the JSON): transient bytes are allocated and freed within
    # the phase, so the allocator slack of the phase is a fraction of them
    lifetime: Lifetime = Field(Lifetime.resident, exclude=True)


class Phase(BaseModel):
    """One phase of an iteration; its components add up to `total_bytes` (per GPU when colocated;
    summed over the groups' GPUs of one rank each when placement is separate)."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    components: list[RoleComponent]
    total_bytes: int

    def role_bytes(self, role: str) -> int:
        return sum(c.bytes for c in self.components if c.role == role)

    def group_bytes(self, group: str) -> int:
        return sum(c.bytes for c in self.components if c.group == group)


class RoleInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: str
    model: str
    params: int
    trainable: bool
    weights: str = Field(description="how the weights are kept: training precision or format")
    group: str


class GPUGroup(BaseModel):
    """GPUs that hold a set of roles; its peak is the largest phase total on one of its GPUs."""

    model_config = ConfigDict(frozen=True)

    name: str
    roles: list[str]
    num_gpus: int
    phase_bytes: dict[str, int]
    peak_phase: str
    peak_bytes: int
    low_bytes: int = Field(0, description="low end of the likely range of peak_bytes")
    high_bytes: int = Field(0, description="high end of the likely range of peak_bytes")
    gpu: GPUFit | None = None


class FlopTerm(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    role: str
    flops: float
    formula: str


class RlhfEstimate(BaseModel):
    """Peak memory per GPU of an RLHF stage, phase by phase, with its FLOPs, time and price."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    kind: Literal["rlhf"] = "rlhf"
    stage: str
    placement: str
    model: str
    roles: list[RoleInfo]
    phases: list[Phase]
    groups: list[GPUGroup]
    peak_phase: str
    total_bytes: int = Field(description="per-GPU peak of the most loaded GPU group")
    low_bytes: int = Field(0, description="low end of the likely range (docs/validation.md)")
    high_bytes: int = Field(0, description="high end of the likely range")
    gpu: GPUFit | None = None
    num_gpus: int = Field(description="GPUs of all groups together")
    cpu_bytes_per_node: int = Field(
        0, description="host memory per node: offloaded optimizer state/params and frozen models"
    )
    flops: list[FlopTerm]
    total_flops: float
    time_s: float | None = None
    cost_usd: float | None = Field(None, description="the whole run: every GPU of every group")
    inputs: dict[str, Any] = Field(default_factory=dict)
    assumptions: list[str] = Field(default_factory=list)

    def phase(self, name: str) -> Phase:
        for p in self.phases:
            if p.name == name:
                return p
        raise KeyError(name)
