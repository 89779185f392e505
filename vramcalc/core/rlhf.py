"""RLHF memory and compute: InstructGPT's three stages (SFT, reward model, PPO), DPO and GRPO.

InstructGPT (Ouyang et al. 2022, arXiv 2203.02155, §3.5) trains in three stages: supervised
fine-tuning (SFT) on demonstrations; a reward model (RM): the SFT model with its unembedding replaced
by a scalar head, trained on K = 4..9 ranked responses per prompt, all C(K,2) comparisons of a prompt
in one batch element; then PPO against the RM with a per-token KL penalty to the frozen SFT model,
the value function initialised from the RM. PPO holds four models: actor and critic (trained),
reference and reward (frozen). DPO (Rafailov et al. 2023, arXiv 2305.18290) trains the policy on
chosen/rejected pairs against a frozen reference (or its precomputed log-probs); GRPO (Shao et al.
2024, DeepSeekMath, arXiv 2402.03300, §4.1) samples G responses per prompt and uses the group's
mean reward as the baseline: no critic.

Nothing here re-derives a memory formula: each trainable model's per-GPU training state and peak
come from :func:`vramcalc.core.training.estimate_training` (options such as LoRA or ZeRO are forwarded
to it untouched), frozen weights from :func:`vramcalc.spec.quant.weight_bytes`, forward (no-grad)
activations from :func:`vramcalc.core.inference.inference_activation_bytes` and the rollout KV cache from
:func:`vramcalc.core.inference.kv_cache_bytes`. This module only says which of those terms are alive in
which phase of an iteration, and on which GPUs.

Phases of one PPO iteration (the order of DeepSpeed-Chat's ``step3_rlhf_finetuning`` and OpenRLHF's
PPO trainer: make experience, then train actor, then critic):

1. ``rollout``: the actor generates responses for ``rollout_batch`` prompts (KV cache for prompt +
   response tokens of each, prefill workspace).
2. ``score actor`` / ``score ref`` / ``score critic`` / ``score reward``: one no-grad forward each
   over the generated sequences (actor and reference log-probs need logits of every position; the
   critic and the RM output a scalar per position).
3. ``train actor`` / ``train critic``: forward + backward + optimizer step on ``batch_size``
   sequences of the experience; the reference log-probs were stored in the experience buffer.

Between phases a trainable model keeps its resident state (weights, optimizer state; gradients are
freed by ``zero_grad(set_to_none=True)``), frozen models keep their weights unless offloaded, and
activations of a phase are gone by the next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vramcalc.core.cost import DEFAULT_MFU, compute_peak, compute_seconds, default_mfu
from vramcalc.core.inference import inference_activation_bytes, runtime_overhead_components
from vramcalc.core.kv_cache import kv_cache_bytes
from vramcalc.core.optimizers import Optimizer
from vramcalc.core.parallel import DS_PREFETCH_BUCKET_ELEMENTS, ParallelPlan, make_plan, unit_numel
from vramcalc.core.results import SCHEMA_VERSION, Component, Estimate, GPUFit, error_band, gpu_fit
from vramcalc.core.training import Precision, estimate_training
from vramcalc.core.workloads import (
    MAX_TOKENS,
    resolve_gpu,
    resolve_model,
    resolve_seq_len,
    resolve_source,
    validate,
)
from vramcalc.errors import VramcalcError, checked_keywords
from vramcalc.sources.presets import get_gpu
from vramcalc.spec.model import ModelSpec
from vramcalc.spec.params import active_param_count, param_count, tensor_groups
from vramcalc.spec.quant import (
    DEFAULT_FORMAT,
    FORMATS,
    WeightFormat,
    kv_bytes_per_element,
    resolve_format,
    weight_bytes,
)

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

# Components of a training estimate that live only while that model trains (activations, logits,
# gradients, autocast copies, optimizer temporaries, sharding buffers) and the runtime terms, which
# are counted once per GPU per phase here. Everything else (weights, optimizer state, adapters,
# master weights) stays resident between phases.
TRANSIENT = frozenset(
    {
        "activations",
        "logits_buffer",
        "gradients",
        "autocast_weight_copies",
        "optimizer_temporaries",
        "gathered_parameters",
        "communication_buffers",
        "dequant_buffer",
    }
)
RUNTIME = frozenset({"cuda_context", "allocator_slack"})

# Per-sequence experience kept between the scoring and training phases, fp32 per response token:
# PPO: old actor log-probs, reference log-probs, values, rewards, advantages, returns (6);
# GRPO: old log-probs, reference log-probs, advantages (3). Token ids are int64 (8 B) per token.
EXPERIENCE_FLOATS = {"ppo": 6, "grpo": 3}


# ---- reward model --------------------------------------------------------------------------------


def reward_model_spec(spec: ModelSpec) -> ModelSpec:
    """`spec` with its vocabulary head replaced by a scalar head (h×1 weight, no bias).

    transformers builds reward and value models as ``*ForSequenceClassification`` with
    ``num_labels=1``: ``score = nn.Linear(hidden, num_labels, bias=False)`` (GPT2ForSequenceClassification
    in modeling_gpt2.py; GenericForSequenceClassification in modeling_layers.py for Llama and its
    kin). The input embedding stays; nothing is tied to the scalar head. Parameters:
    ``param_count(spec) − (V·h unless tied) + h``.
    """
    if spec.output_head == "scalar":
        return spec
    return spec.model_copy(
        update={
            "name": f"{spec.name}-rm",
            "display_name": f"{spec.title} (scalar head)",
            "aliases": (),
            "output_head": "scalar",
            "tie_word_embeddings": False,
        }
    )


# ---- request and result models --------------------------------------------------------------------


class RlhfRequest(BaseModel):
    """Validated inputs of :func:`estimate_rlhf` (sizes are per data-parallel rank)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: Stage
    placement: Placement = "colocated"
    precision: Precision = "bf16-mixed"
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
    peak_tflops: float | None = Field(None, gt=0, le=1e6, description="dense 16-bit peak per GPU")
    mfu: float | None = Field(
        None, gt=0, le=1, description="model FLOPs utilisation (default: the GPU generation's)"
    )
    usd_per_gpu_hour: float | None = Field(None, ge=0, le=1e5)


class RoleComponent(BaseModel):
    """Bytes per GPU that one model (role) holds in one phase, on the GPU group it lives on."""

    model_config = ConfigDict(frozen=True)

    role: str = Field(description="actor, critic, reference, reward, policy, experience, runtime")
    group: str = Field(description="GPU group: 'all' when colocated, else the role's own group")
    name: str
    bytes: int = Field(ge=0)
    note: str = ""


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
    cost_usd: float | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    assumptions: list[str] = Field(default_factory=list)

    def phase(self, name: str) -> Phase:
        for p in self.phases:
            if p.name == name:
                return p
        raise KeyError(name)


# ---- helpers -------------------------------------------------------------------------------------


def frozen_format(dtype: str) -> WeightFormat:
    """A --frozen-dtype: a dtype (bf16, fp8, int8, int4 → its default format) or a format name."""
    key = dtype.lower()
    if key in DEFAULT_FORMAT:
        return resolve_format(key, None)
    if key in FORMATS:
        return FORMATS[key]
    raise VramcalcError(
        f"unknown frozen dtype {dtype!r}; valid: {', '.join(sorted(set(DEFAULT_FORMAT) | set(FORMATS)))}"
    )


PLAN_KEYS = (
    "num_gpus",
    "nodes",
    "gpus_per_node",
    "tp",
    "pp",
    "cp",
    "ep",
    "sp",
    "zero",
    "fsdp",
    "offload",
)


def plan_for(spec: ModelSpec, seq: int, options: dict[str, Any]) -> ParallelPlan:
    """The parallel plan the training options describe (vramcalc.core.parallel.make_plan validates it);
    one plain GPU without options."""
    return make_plan(spec, seq, **{k: v for k, v in options.items() if k in PLAN_KEYS})


def frozen_divisor(plan: ParallelPlan) -> int:
    """Over how many GPUs a frozen model's weights are split: tensor × pipeline parallel degree,
    times the sharding degree when parameters are sharded (ZeRO-3, FSDP full/hybrid: DeepSpeed-Chat
    wraps the reference and reward models in ZeRO-3 when the actor uses it)."""
    return plan.tp * plan.pp * (plan.shard_degree if plan.shards("params") else 1)


def _split(
    est: Estimate, role: str, group: str, transient: bool
) -> list[RoleComponent]:  # resident or transient parts of a training estimate
    keep = []
    for c in est.components:
        if c.name in RUNTIME or (c.name in TRANSIENT) != transient:
            continue
        keep.append(RoleComponent(role=role, group=group, name=c.name, bytes=c.bytes, note=c.note))
    return keep


def train_flops_per_token(n_params: int, options: dict[str, Any], checkpointing: str) -> int:
    """6·N per token (forward 2·N, backward 4·N: Kaplan et al. 2020; REFERENCES "Compute"); LoRA
    skips the frozen weights' gradients: 4·N (forward + input gradients); full recomputation adds a
    forward (+2·N). Adapter FLOPs and attention's 12·L·h·s are left out."""
    per = 4 if options.get("method") in ("lora", "qlora") else 6
    return (per + (2 if checkpointing == "full" else 0)) * n_params


# Without a catalog GPU: the MFU vramcalc.core.cost assumes for Ampere training runs.
DEFAULT_MFU_NO_GPU = DEFAULT_MFU["ampere"][0]


@dataclass(frozen=True, slots=True)
class ComputeRate:
    """What turns FLOPs into hours and dollars, and where each figure comes from."""

    peak_tflops: float | None
    mfu: float
    usd_per_gpu_hour: float | None
    note: str


def compute_rate(req: RlhfRequest) -> ComputeRate:
    """Peak, MFU and price: the user's values first, then the GPU catalog's (the dense peak of the
    training precision's math, the GPU generation's default MFU and its on-demand price, as
    `vramcalc cost train` uses them: vramcalc.core.cost), else none (FLOPs only)."""
    math = {"fp32": "fp32", "fp16-mixed": "fp16"}.get(req.precision, "bf16")
    gpu = get_gpu(req.gpu) if req.gpu is not None else None
    if gpu is None:
        mfu = req.mfu or DEFAULT_MFU_NO_GPU
        how = "" if req.mfu else " (assumed)"
        note = f"{mfu:.0%} MFU{how} of {req.peak_tflops or 0:g} TFLOP/s per GPU"
        return ComputeRate(req.peak_tflops, mfu, req.usd_per_gpu_hour, note)
    peak, peak_src = req.peak_tflops, "given"
    if peak is None:
        peak, dtype = compute_peak(gpu, math)
        peak_src = f"{gpu.title} dense {dtype}"
    mfu, mfu_src = (req.mfu, "given") if req.mfu else default_mfu(gpu)
    price = req.usd_per_gpu_hour
    price_src = "given"
    if price is None and gpu.price_usd_per_hour is not None:
        price = gpu.price_usd_per_hour
        price_src = (
            f"catalog {gpu.price_market or 'list'} price read {gpu.price_date or '(undated)'}"
        )
    note = f"{mfu:.0%} MFU ({mfu_src}) of {peak:g} TFLOP/s per GPU ({peak_src})"
    if price is not None:
        note += f", ${price:g} per GPU-hour ({price_src})"
    return ComputeRate(peak, mfu, price, note)


# ---- the estimate --------------------------------------------------------------------------------


class _Builder:
    """Collects the components of each phase and the FLOP terms."""

    def __init__(self, placement: str) -> None:
        self.placement = placement
        self.phases: list[tuple[str, str, list[RoleComponent]]] = []
        self.flops: list[FlopTerm] = []
        self.experience_group = "actor"  # the generating model's group keeps the experience

    def group_of(self, role: str) -> str:
        if self.placement == "colocated":
            return "all"
        return self.experience_group if role == "experience" else role

    def add_phase(self, name: str, description: str, parts: list[RoleComponent]) -> None:
        self.phases.append(
            (name, description, [p for p in parts if p.bytes or p.name == "weights"])
        )


@checked_keywords
def estimate_rlhf(
    model: str | ModelSpec,
    *,
    stage: str,
    reward_model: str | ModelSpec | None = None,
    critic_model: str | ModelSpec | None = None,
    placement: str = "colocated",
    precision: str = "bf16-mixed",
    optimizer: str = "adamw",
    grad_checkpointing: str = "none",
    attention: str = "flash",
    batch_size: int = 1,
    seq_len: int | None = None,
    prompt_len: int = 256,
    response_len: int = 256,
    rollout_batch: int = 8,
    comparisons: int = 4,
    group_size: int = 8,
    frozen_dtype: str = "bf16",
    kv_dtype: str | None = None,
    offload_frozen: bool = False,
    reference: str = "model",
    reference_shares_base: bool | None = None,
    rollout_weights: str = "shared",
    rollout_tp: int = 1,
    ppo_epochs: int = 1,
    score_batch: int | None = None,
    iterations: int = 1,
    gpu: str | None = None,
    gpu_mem_gib: float | None = None,
    peak_tflops: float | None = None,
    mfu: float | None = None,
    usd_per_gpu_hour: float | None = None,
    role_gpus: dict[str, int] | None = None,
    **training_options: Any,
) -> RlhfEstimate:
    """Per-GPU peak memory (and FLOPs) of one RLHF stage of `model` (the policy / SFT model).

    ``training_options`` are forwarded to :func:`vramcalc.core.training.estimate_training` for every
    trainable model (actor, critic, policy, RM): LoRA, ZeRO/FSDP sharding, GPU counts and parallel
    degrees, as far as that function supports them. With ``placement="separate"`` each model gets
    its own group of that many GPUs, or of ``role_gpus[role]`` (e.g. ``{"critic": 8}``; the global
    batch stays that of the lead model's ranks); ``"colocated"`` puts all of them on one group.
    """
    req = validate(
        RlhfRequest,
        stage=stage,
        placement=placement,
        precision=precision,
        optimizer=optimizer,
        grad_checkpointing=grad_checkpointing,
        attention=attention,
        batch_size=batch_size,
        seq_len=seq_len,
        prompt_len=prompt_len,
        response_len=response_len,
        rollout_batch=rollout_batch,
        comparisons=comparisons,
        group_size=group_size,
        frozen_dtype=frozen_dtype,
        kv_dtype=kv_dtype,
        offload_frozen=offload_frozen,
        reference=reference,
        reference_shares_base=reference_shares_base,
        rollout_weights=rollout_weights,
        rollout_tp=rollout_tp,
        ppo_epochs=ppo_epochs,
        score_batch=score_batch,
        iterations=iterations,
        gpu=gpu,
        gpu_mem_gib=gpu_mem_gib,
        peak_tflops=peak_tflops,
        mfu=mfu,
        usd_per_gpu_hour=usd_per_gpu_hour,
    )
    assert isinstance(req, RlhfRequest)
    opts = {k: v for k, v in training_options.items() if v is not None}
    source = resolve_source(model)
    policy = source.spec
    fit = resolve_gpu(req.gpu, req.gpu_mem_gib)
    fmt = frozen_format(req.frozen_dtype)
    if req.stage in ("ppo", "grpo"):
        resolve_seq_len(policy, req.prompt_len + req.response_len)  # learned positions cap it
    b = _Builder(req.placement)
    gpus = dict(role_gpus or {})
    if gpus:
        valid = STAGE_ROLES[req.stage]
        if req.placement != "separate":
            raise VramcalcError(
                "GPUs per model need --placement separate (colocated models share GPUs)"
            )
        for role, n in gpus.items():
            if role not in valid:
                raise VramcalcError(
                    f"no model {role!r} in the {req.stage} stage; give GPUs for: {', '.join(valid)}"
                )
            if not isinstance(n, int) or n < 1:
                raise VramcalcError(f"GPUs for {role} must be a positive integer (got {n!r})")
    ctx = _Context(req, opts, policy, fmt, b, gpus)
    if source.kind not in ("preset", "spec"):  # a file or Hub id: how its weights were counted
        ctx.assumptions += [f"policy {policy.name}: {note}" for note in source.notes]

    if req.stage == "sft":
        ctx.sft()
    elif req.stage == "rm":
        ctx.rm(reward_model_spec(resolve_model(reward_model or policy)))
    elif req.stage == "dpo":
        ctx.dpo()
    elif req.stage == "grpo":
        ctx.grpo(reward_model_spec(resolve_model(reward_model)) if reward_model else None)
    else:
        rm = reward_model_spec(resolve_model(reward_model or policy))
        critic = reward_model_spec(resolve_model(critic_model)) if critic_model else rm
        ctx.ppo(rm, critic)
    return ctx.finish(fit)


class _Context:
    def __init__(
        self,
        req: RlhfRequest,
        opts: dict[str, Any],
        policy: ModelSpec,
        fmt: WeightFormat,
        b: _Builder,
        role_gpus: dict[str, int],
    ) -> None:
        self.req, self.opts, self.policy, self.fmt, self.b = req, opts, policy, fmt, b
        self.infos: list[RoleInfo] = []
        self.assumptions: list[str] = []
        self.cpu_bytes_per_node = 0
        self.role_gpus = role_gpus
        self.plans: dict[str, ParallelPlan] = {}
        self.lead = "actor" if req.stage == "ppo" else ("reward" if req.stage == "rm" else "policy")
        self.plan = plan_for(policy, self.seq_for_plan(), self.opts_for(self.lead))
        self.act_bytes = 4 if req.precision == "fp32" else 2
        self.dp_ranks = self.plan.dp

    def opts_for(self, role: str) -> dict[str, Any]:
        """Training options of a role: its own GPU count when role_gpus gives one."""
        if role not in self.role_gpus:
            return self.opts
        rest = {k: v for k, v in self.opts.items() if k not in ("nodes", "gpus_per_node")}
        return rest | {"num_gpus": self.role_gpus[role]}

    def plan_of(self, role: str, spec: ModelSpec) -> ParallelPlan:
        if role not in self.plans:
            self.plans[role] = plan_for(spec, self.seq_for_plan(), self.opts_for(role))
        return self.plans[role]

    def per_rank(self, role: str, spec: ModelSpec, sequences: int) -> int:
        """Sequences one rank of `role` handles when the lead model's ranks hold `sequences` each:
        the same global batch spread over the role's own data-parallel ranks."""
        dp = self.plan_of(role, spec).dp
        return max(1, -(-sequences * self.dp_ranks // dp))

    def seq_for_plan(self) -> int:
        req = self.req
        if req.stage in ("ppo", "grpo"):
            return req.prompt_len + req.response_len
        return resolve_seq_len(self.policy, req.seq_len)

    def gathered(self, role: str, spec: ModelSpec, bytes_per_param: float) -> list[RoleComponent]:
        """A forward over parameters sharded by ZeRO-3 / FSDP gathers one unit (a decoder layer,
        or the embedding when larger) at a time, plus the prefetched next one
        (vramcalc.core.parallel.unit_numel, as the training estimate counts it)."""
        plan = self.plan_of(role, spec)
        if not (plan.shards("params") and plan.shard_degree > 1):
            return []
        unit = unit_numel(spec, plan)
        # ZeRO-3 prefetches up to stage3_prefetch_bucket_size elements; FSDP the next whole unit
        ahead = min(DS_PREFETCH_BUCKET_ELEMENTS, unit) if plan.zero == 3 else unit
        return [
            RoleComponent(
                role=role,
                group=self.b.group_of(role),
                name="gathered_parameters",
                bytes=int((unit + ahead) * bytes_per_param),
                note=f"unit of {unit:,} params + {ahead:,} prefetched, gathered for the forward",
            )
        ]

    # ---- building blocks ------------------------------------------------------------------------
    def train(self, role: str, spec: ModelSpec, sequences: int, seq: int) -> Estimate:
        """The role's training estimate on `sequences` × `seq` tokens (per-GPU, with options)."""
        try:
            est = estimate_training(
                spec,
                precision=self.req.precision,
                optimizer=self.req.optimizer.value,
                batch_size=self.per_rank(role, spec, sequences),
                seq_len=seq,
                grad_checkpointing=self.req.grad_checkpointing,
                attention=self.req.attention,
                **self.opts_for(role),
            )
        except TypeError as exc:  # an option estimate_training does not know
            raise VramcalcError(f"training option not supported: {exc}") from None
        method = self.opts.get("method", "full")
        how = self.req.precision + ("" if method == "full" else f", {method}")
        self.infos.append(
            RoleInfo(
                role=role,
                model=spec.name,
                params=param_count(spec),
                trainable=True,
                weights=how,
                group=self.b.group_of(role),
            )
        )
        self.cpu_bytes_per_node += getattr(est, "cpu_bytes_per_node", 0)
        return est

    def frozen(self, role: str, spec: ModelSpec, shares_base: bool = False) -> RoleComponent:
        g = self.b.group_of(role)
        self.infos.append(
            RoleInfo(
                role=role,
                model=spec.name,
                params=param_count(spec),
                trainable=False,
                weights="actor's base" if shares_base else self.fmt.name,
                group=g,
            )
        )
        if shares_base:
            return RoleComponent(
                role=role,
                group=g,
                name="weights",
                bytes=0,
                note="the actor's frozen base with adapters disabled (no copy)",
            )
        shards = frozen_divisor(self.plan_of(role, spec))
        w = weight_bytes(tensor_groups(spec), self.fmt) // shards
        shard = f", split over {shards} GPUs" if shards > 1 else ""
        if self.req.offload_frozen:  # each GPU's shard waits in host memory
            self.cpu_bytes_per_node += w * self.plan_of(role, spec).gpus_per_node
        return RoleComponent(
            role=role, group=g, name="weights", bytes=w, note=f"{self.fmt.name}{shard} (frozen)"
        )

    def forward(
        self, role: str, spec: ModelSpec, sequences: int, seq: int, what: str, bpp: float = 2.0
    ) -> list[RoleComponent]:
        """No-grad forward over `sequences` × `seq` tokens keeping logits of every position (plus
        the gathered units of sharded parameters, `bpp` bytes per parameter)."""
        sequences = self.per_rank(role, spec, sequences)
        acts, part = inference_activation_bytes(
            spec, sequences, seq, self.act_bytes, "all", self.req.attention
        )
        fwd = RoleComponent(
            role=role,
            group=self.b.group_of(role),
            name="activations",
            bytes=acts,
            note=f"no-grad forward, {sequences}×{seq} tokens, {what}; peak set by {part}",
        )
        return [fwd, *self.gathered(role, spec, bpp)]

    def frozen_bpp(self, spec: ModelSpec) -> float:
        return weight_bytes(tensor_groups(spec), self.fmt) / param_count(spec)

    def resident(self, role: str, est: Estimate) -> list[RoleComponent]:
        return _split(est, role, self.b.group_of(role), transient=False)

    def training(self, role: str, est: Estimate) -> list[RoleComponent]:
        """The role's training peak, component by component, with the allocator slack that
        estimate_training found for it (role 'runtime'; finish() adds the other models' slack)."""
        g = self.b.group_of(role)
        parts = [
            RoleComponent(role=role, group=g, name=c.name, bytes=c.bytes, note=c.note)
            for c in est.components
            if c.name not in RUNTIME
        ]
        slack = est.component("allocator_slack")
        parts.append(
            RoleComponent(
                role="runtime",
                group=g,
                name="allocator_slack",
                bytes=slack,
                note=f"{role} training's slack (estimate_training) + the same fraction of the other models' transient bytes",
            )
        )
        return parts

    def flop(self, name: str, role: str, flops: float, formula: str) -> None:
        """A FLOP term for the whole job: one rank's tokens × the data-parallel ranks."""
        dp = self.dp_ranks
        if dp > 1:
            flops, formula = flops * dp, f"{formula} × {dp} data-parallel ranks"
        self.b.flops.append(FlopTerm(name=name, role=role, flops=flops, formula=formula))

    def fwd_flops(self, name: str, role: str, spec: ModelSpec, tokens: int) -> None:
        n = active_param_count(spec)
        self.flop(name, role, 2 * n * tokens, f"2 × {n:,} params × {tokens:,} tokens")

    def train_flops(self, name: str, role: str, spec: ModelSpec, tokens: int, epochs: int) -> None:
        n = active_param_count(spec)
        per = train_flops_per_token(n, self.opts, self.req.grad_checkpointing)
        self.flop(
            name,
            role,
            per * tokens * epochs,
            f"{per // n} × {n:,} params × {tokens:,} tokens"
            + (f" × {epochs} epochs" if epochs > 1 else ""),
        )

    def experience(self, sequences: int) -> RoleComponent:
        r, seq = self.req.response_len, self.req.prompt_len + self.req.response_len
        floats = EXPERIENCE_FLOATS[self.req.stage]
        return RoleComponent(
            role="experience",
            group=self.b.group_of("experience"),
            name="experience_buffer",
            bytes=sequences * (8 * seq + 4 * floats * r),
            note=f"{sequences} sequences: int64 token ids × {seq} + {floats} fp32 values × {r} response tokens",
        )

    def rollout(
        self, role: str, actor_resident: list[RoleComponent], sequences: int
    ) -> list[RoleComponent]:
        """Generation: KV cache for prompt + response of every sequence, the prefill workspace
        (logits of the last position only), and an inference copy of the weights if asked."""
        req, spec = self.req, self.policy
        seq = req.prompt_len + req.response_len
        kv_name = req.kv_dtype or {"fp32": "fp32", "fp16-mixed": "fp16", "fp16": "fp16"}.get(
            req.precision, "bf16"
        )
        # A data-parallel rank spans plan.tp GPUs, which share its sequences' KV heads. A rollout
        # copy over rollout_tp GPUs generates for the prompts of rollout_tp ranks at once, so its
        # KV cache per GPU is one rank's (DeepSpeed-Chat hybrid engine, inference_tp_size).
        kv = kv_cache_bytes(spec, sequences, seq, kv_bytes_per_element(kv_name)) // self.plan.tp
        tp = req.rollout_tp
        acts, part = inference_activation_bytes(
            spec, sequences, req.prompt_len, self.act_bytes, "last", req.attention
        )
        g = self.b.group_of(role)
        parts = list(actor_resident)
        if req.rollout_weights == "copy":
            copy = weight_bytes(tensor_groups(spec), FORMATS["bf16"]) // tp
            parts.append(
                RoleComponent(
                    role=role,
                    group=g,
                    name="rollout_weights",
                    bytes=copy,
                    note=f"bf16 inference copy for generation, split over {tp} GPUs (hybrid engine / vLLM)",
                )
            )
        parts += [
            RoleComponent(
                role=role,
                group=g,
                name="kv_cache",
                bytes=kv,
                note=f"{sequences} sequences × {seq} tokens, {kv_name}"
                + (f", heads split over tp={self.plan.tp}" if self.plan.tp > 1 else ""),
            ),
            RoleComponent(
                role=role,
                group=g,
                name="activations",
                bytes=acts,
                note=f"prefill of {sequences}×{req.prompt_len} prompt tokens; peak set by {part}",
            ),
        ]
        if req.rollout_weights == "shared":
            parts += self.gathered(role, spec, 2.0)
        return parts

    # ---- stages ---------------------------------------------------------------------------------
    def sft(self) -> None:
        seq = resolve_seq_len(self.policy, self.req.seq_len)
        est = self.train("policy", self.policy, self.req.batch_size, seq)
        self.b.add_phase("train", "SFT: forward + backward + step", self.training("policy", est))
        self.train_flops("train policy", "policy", self.policy, self.req.batch_size * seq, 1)

    def rm(self, rm: ModelSpec) -> None:
        req = self.req
        seq = resolve_seq_len(rm, req.seq_len)
        k = req.comparisons
        sequences = req.batch_size * k
        est = self.train("reward", rm, sequences, seq)
        self.b.add_phase(
            "train",
            f"RM: {req.batch_size} prompts × K={k} responses, all {k * (k - 1) // 2} pairs per prompt",
            self.training("reward", est),
        )
        self.train_flops("train reward", "reward", rm, sequences * seq, 1)
        self.assumptions.append(
            f"each of the K={k} responses is scored once; the C(K,2)={k * (k - 1) // 2} pairwise losses "
            "reuse the K scalar rewards (InstructGPT §3.5), so activations scale with K, not C(K,2)"
        )

    def dpo(self) -> None:
        req = self.req
        seq = resolve_seq_len(self.policy, req.seq_len)
        sequences = 2 * req.batch_size  # chosen + rejected
        est = self.train("policy", self.policy, sequences, seq)
        resident = self.resident("policy", est)
        stored = RoleComponent(
            role="reference",
            group=self.b.group_of("reference"),
            name="reference_logps",
            bytes=sequences * 4,
            note="fp32 summed log-prob of each chosen and rejected sequence",
        )
        if req.reference == "precomputed":
            self.assumptions.append("reference log-probs precomputed offline: no reference model")
            self.b.add_phase(
                "train policy",
                "policy forward + backward on chosen and rejected",
                [*self.training("policy", est), stored],
            )
        else:
            ref = self.frozen("reference", self.policy, self._shares_base())
            fwd = self.forward(
                "reference",
                self.policy,
                sequences,
                seq,
                "log-probs of chosen and rejected",
                self.frozen_bpp(self.policy),
            )
            held = [] if req.offload_frozen else [ref]
            self.b.add_phase(
                "score ref", "reference forward on chosen and rejected", [*resident, ref, *fwd]
            )
            self.b.add_phase(
                "train policy",
                "policy forward + backward on chosen and rejected",
                [*self.training("policy", est), *held, stored],
            )
            self.fwd_flops("score ref", "reference", self.policy, sequences * seq)
        self.train_flops("train policy", "policy", self.policy, sequences * seq, 1)

    def _shares_base(self) -> bool:
        share = self.req.reference_shares_base
        lora = self.opts.get("method") in ("lora", "qlora")
        if share is None:
            share = lora and self.req.placement == "colocated"
        if share and not lora:
            raise VramcalcError(
                "reference_shares_base needs a LoRA actor (method lora or qlora): a full fine-tune "
                "changes the base weights"
            )
        if share:
            self.assumptions.append(
                "reference = the actor's frozen base with adapters disabled (TRL/OpenRLHF with PEFT)"
            )
        return bool(share)

    def grpo(self, rm: ModelSpec | None) -> None:
        req, spec = self.req, self.policy
        seq = req.prompt_len + req.response_len
        sequences = req.rollout_batch * req.group_size
        self.b.experience_group = "policy"
        # TRL's GRPOTrainer computes old and reference log-probs in chunks of the training batch
        chunk = min(req.score_batch or req.batch_size, sequences)
        est = self.train("policy", spec, req.batch_size, seq)
        resident = self.resident("policy", est)
        ref = self.frozen("reference", spec, self._shares_base())
        frozen = [ref]
        reward = None
        if rm is not None:
            reward = self.frozen("reward", rm)
            frozen.append(reward)
        held = [] if req.offload_frozen else frozen
        buf = self.experience(sequences)
        g_tokens = sequences * seq

        self.b.add_phase(
            "rollout",
            f"policy generates G={req.group_size} responses for {req.rollout_batch} prompts",
            [*self.rollout("policy", resident, sequences), *held, buf],
        )
        self.fwd_flops("generate", "policy", spec, g_tokens)
        if req.ppo_epochs > 1:  # old log-probs differ from the current ones only after an update
            self.b.add_phase(
                "score policy",
                "old log-probs",
                [
                    *resident,
                    *self.forward("policy", spec, chunk, seq, "old log-probs"),
                    *held,
                    buf,
                ],
            )
            self.fwd_flops("score policy", "policy", spec, g_tokens)
        self.b.add_phase(
            "score ref",
            "reference log-probs for the KL term",
            [
                *resident,
                *self.forward(
                    "reference", spec, chunk, seq, "reference log-probs", self.frozen_bpp(spec)
                ),
                *self._with(ref, held),
                buf,
            ],
        )
        self.fwd_flops("score ref", "reference", spec, g_tokens)
        if rm is not None and reward is not None:
            self.b.add_phase(
                "score reward",
                "reward model scores each response",
                [
                    *resident,
                    *self.forward("reward", rm, chunk, seq, "scalar reward", self.frozen_bpp(rm)),
                    *self._with(reward, held),
                    buf,
                ],
            )
            self.fwd_flops("score reward", "reward", rm, g_tokens)
        else:
            self.assumptions.append("rewards from rule-based functions (no reward model)")
        self.b.add_phase(
            "train policy",
            f"policy forward + backward on {req.batch_size} sequences, group-normalised advantages",
            [*self.training("policy", est), *held, buf],
        )
        self.train_flops("train policy", "policy", spec, g_tokens, req.ppo_epochs)

    @staticmethod
    def _with(part: RoleComponent, held: list[RoleComponent]) -> list[RoleComponent]:
        """`held` plus `part` (an offloaded frozen model comes back to the GPU for its forward)."""
        return held if part in held else [*held, part]

    def ppo(self, rm: ModelSpec, critic: ModelSpec) -> None:
        req, spec = self.req, self.policy
        seq = req.prompt_len + req.response_len
        sequences = req.rollout_batch
        # DeepSpeed-Chat's generate_experience scores the whole generation batch at once
        chunk = min(req.score_batch or sequences, sequences)
        actor_est = self.train("actor", spec, req.batch_size, seq)
        critic_est = self.train("critic", critic, req.batch_size, seq)
        actor, crit = self.resident("actor", actor_est), self.resident("critic", critic_est)
        ref = self.frozen("reference", spec, self._shares_base())
        reward = self.frozen("reward", rm)
        held = [] if req.offload_frozen else [ref, reward]
        buf = self.experience(sequences)
        tokens = sequences * seq

        def score(name: str, role: str, model: ModelSpec, what: str, extra: list[RoleComponent]):
            bpp = self.frozen_bpp(model) if role in ("reference", "reward") else 2.0
            fwd = self.forward(role, model, chunk, seq, what, bpp)
            self.b.add_phase(name, what, [*actor, *crit, *fwd, *extra, buf])
            self.fwd_flops(name, role, model, tokens)

        self.b.add_phase(
            "rollout",
            f"actor generates {req.response_len} tokens for {sequences} prompts of {req.prompt_len}",
            [*self.rollout("actor", actor, sequences), *crit, *held, buf],
        )
        self.fwd_flops("generate", "actor", spec, tokens)
        score("score actor", "actor", spec, "old actor log-probs", held)
        score(
            "score ref",
            "reference",
            spec,
            "reference log-probs (KL penalty)",
            self._with(ref, held),
        )
        score("score critic", "critic", critic, "values", held)
        score("score reward", "reward", rm, "reward of each response", self._with(reward, held))
        self.b.add_phase(
            "train actor",
            f"actor forward + backward on {req.batch_size} sequences (clipped PPO loss)",
            [*self.training("actor", actor_est), *crit, *held, buf],
        )
        self.b.add_phase(
            "train critic",
            f"critic forward + backward on {req.batch_size} sequences (value loss)",
            [*actor, *self.training("critic", critic_est), *held, buf],
        )
        self.train_flops("train actor", "actor", spec, tokens, req.ppo_epochs)
        self.train_flops("train critic", "critic", critic, tokens, req.ppo_epochs)
        self.assumptions.append(
            "experience made once per iteration (rollout_batch prompts), then trained in "
            "micro-batches of batch_size sequences"
        )

    # ---- result ---------------------------------------------------------------------------------
    def group_gpus(self, group: str) -> int:
        """GPUs of a group: those of the plan of (the first of) its roles."""
        if group == "all":
            return self.plan.num_gpus
        return self.plans[group].num_gpus if group in self.plans else self.plan.num_gpus

    def finish(self, fit: tuple[str, int] | None) -> RlhfEstimate:
        req, b = self.req, self.b
        group_names = list(dict.fromkeys(i.group for i in self.infos))
        if "experience" in {c.role for _, _, parts in b.phases for c in parts}:
            group_names = list(dict.fromkeys([*group_names, b.group_of("experience")]))
        phases: list[Phase] = []
        for name, description, parts in b.phases:
            # a training estimate brings its own slack (role 'runtime'); its transient bytes are
            # not counted again, the other models' transient bytes add the usual fraction
            trained = {c.group: c for c in parts if c.role == "runtime"}
            comps = [c for c in parts if c.role != "runtime"]
            for g in group_names:
                dynamic = sum(
                    c.bytes
                    for c in parts
                    if c.group == g
                    and c.name in TRANSIENT | {"kv_cache"}
                    and not (g in trained and c.name in TRANSIENT)  # only training's are there
                )
                for rc in runtime_overhead_components(dynamic):
                    extra = trained[g].bytes if rc.name == "allocator_slack" and g in trained else 0
                    note = trained[g].note if extra else rc.note
                    comps.append(
                        RoleComponent(
                            role="runtime", group=g, name=rc.name, bytes=rc.bytes + extra, note=note
                        )
                    )
            phases.append(
                Phase(
                    name=name,
                    description=description,
                    components=comps,
                    total_bytes=sum(c.bytes for c in comps),
                )
            )
        groups = []
        rough = self.policy.assumed_architecture is not None  # --assume-llama: widened, no "fits"
        for g in group_names:
            per_phase = {p.name: p.group_bytes(g) for p in phases}
            peak_name = max(per_phase, key=lambda k: per_phase[k])
            peak = per_phase[peak_name]
            at_peak = next(p for p in phases if p.name == peak_name)
            low, high = error_band(
                [Component(name=c.name, bytes=c.bytes) for c in at_peak.components if c.group == g],
                "training" if peak_name.startswith("train") else "inference",
                weights_only=False,
                rough=rough,
            )
            groups.append(
                GPUGroup(
                    name=g,
                    roles=[i.role for i in self.infos if i.group == g]
                    + (
                        ["experience"]
                        if g == b.group_of("experience") and req.stage in EXPERIENCE_FLOATS
                        else []
                    ),
                    num_gpus=self.group_gpus(g),
                    phase_bytes=per_phase,
                    peak_phase=peak_name,
                    peak_bytes=peak,
                    low_bytes=low,
                    high_bytes=high,
                    gpu=gpu_fit(fit, peak, low, high, rough=rough),
                )
            )
        worst = max(groups, key=lambda x: x.peak_bytes)
        total_flops = sum(f.flops for f in b.flops) * req.iterations
        total_gpus = sum(g.num_gpus for g in groups)
        time_s = cost = None
        rate = compute_rate(req)
        if rate.peak_tflops is not None:
            peak_tflops = rate.peak_tflops
            time_s = sum(
                compute_seconds(
                    f.flops * req.iterations,
                    self.group_gpus(b.group_of(f.role)),
                    peak_tflops,
                    rate.mfu,
                )
                for f in b.flops
            )
            if rate.usd_per_gpu_hour is not None:
                cost = time_s / 3600 * total_gpus * rate.usd_per_gpu_hour
        assumptions = [
            "sizes are per data-parallel rank; phases run one after another and free their activations",
            "gradients freed between phases (zero_grad(set_to_none=True)); optimizer state stays on the GPU",
            *self.assumptions,
            "FLOPs: 2·N per token forward (generation: prompt + response tokens), 6·N training "
            "(4·N with LoRA, +2·N with full recomputation); attention FLOPs left out",
        ]
        if self.policy.assumed_architecture is not None:
            assumptions.append(
                f"ROUGH ESTIMATE: architecture {self.policy.assumed_architecture!r} is not mapped, "
                "read as Llama (--assume-llama); range widened to ×2, never 'fits'"
            )
        if req.offload_frozen:
            assumptions.append("frozen models offloaded: on the GPU only during their own forward")
        if rate.peak_tflops is not None:
            assumptions.append(
                f"time at {rate.note} for every term; "
                "generation is memory-bandwidth bound, so its real time is longer"
            )
        inputs = req.model_dump(mode="json", exclude_none=True) | {
            "model": self.policy.name,
            "training_options": self.opts,
            "role_gpus": self.role_gpus,
            "peak_tflops_used": rate.peak_tflops,
            "mfu_used": rate.mfu,
            "usd_per_gpu_hour_used": rate.usd_per_gpu_hour,
        }
        return RlhfEstimate(
            stage=req.stage,
            placement=req.placement,
            model=self.policy.name,
            roles=self.infos,
            phases=phases,
            groups=groups,
            peak_phase=worst.peak_phase,
            total_bytes=worst.peak_bytes,
            low_bytes=worst.low_bytes,
            high_bytes=worst.high_bytes,
            gpu=worst.gpu,
            num_gpus=total_gpus,
            cpu_bytes_per_node=self.cpu_bytes_per_node,
            flops=[
                f.model_copy(
                    update={
                        "flops": f.flops * req.iterations,
                        "formula": f.formula
                        + (f" × {req.iterations:,} iterations" if req.iterations > 1 else ""),
                    }
                )
                for f in b.flops
            ],
            total_flops=total_flops,
            time_s=time_s,
            cost_usd=cost,
            inputs=inputs,
            assumptions=assumptions,
        )


__all__ = [
    "STAGES",
    "RlhfEstimate",
    "estimate_rlhf",
    "reward_model_spec",
]
