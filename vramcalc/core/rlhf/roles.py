"""What each model (role) of an RLHF stage holds: its plan, training state, frozen weights,
forward passes, rollout and experience; and the FLOP terms of its work.

Nothing here re-derives a memory formula: a trainable model's per-GPU state and peak come from
:func:`vramcalc.core.training.estimate_training`, frozen weights from
:func:`vramcalc.spec.quant.weight_bytes`, no-grad activations from
:func:`vramcalc.core.inference.inference_activation_bytes`, the rollout KV cache from
:func:`vramcalc.core.kv_cache.kv_cache_bytes` and FLOPs from :mod:`vramcalc.core.flops`. Which of a
training estimate's components stay between phases is read from ``Component.lifetime``.
"""

from __future__ import annotations

from vramcalc.core.flops import forward_flops_per_token, training_flops_per_token
from vramcalc.core.inference import inference_activation_bytes
from vramcalc.core.kv_cache import kv_cache_bytes
from vramcalc.core.parallel import DS_PREFETCH_BUCKET_ELEMENTS, ParallelPlan, make_plan, unit_numel
from vramcalc.core.results import Component, Estimate, Lifetime
from vramcalc.core.rlhf.models import (
    EXPERIENCE_FLOATS,
    LEAD_ROLE,
    FlopTerm,
    RlhfRequest,
    RoleComponent,
    RoleInfo,
    TrainingOptions,
)
from vramcalc.core.training import estimate_training
from vramcalc.core.workloads import resolve_seq_len
from vramcalc.errors import VramcalcError
from vramcalc.spec.model import ModelSpec
from vramcalc.spec.params import param_count, tensor_groups
from vramcalc.spec.precision import Precision, precision
from vramcalc.spec.quant import (
    DEFAULT_FORMAT,
    FORMATS,
    WeightFormat,
    kv_bytes_per_element,
    resolve_format,
    weight_bytes,
)


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


def frozen_divisor(plan: ParallelPlan) -> int:
    """Over how many GPUs a frozen model's weights are split: tensor × pipeline parallel degree,
    times the sharding degree when parameters are sharded (ZeRO-3, FSDP full/hybrid: DeepSpeed-Chat
    wraps the reference and reward models in ZeRO-3 when the actor uses it)."""
    return plan.tp * plan.pp * (plan.shard_degree if plan.shards("params") else 1)


def with_part(part: RoleComponent, held: list[RoleComponent]) -> list[RoleComponent]:
    """`held` plus `part` (an offloaded frozen model comes back to the GPU for its forward)."""
    return held if part in held else [*held, part]


class Job:
    """The models of one stage and the GPUs they live on; collects phases, roles and FLOP terms."""

    def __init__(
        self,
        req: RlhfRequest,
        options: TrainingOptions,
        policy: ModelSpec,
        role_gpus: dict[str, int],
    ) -> None:
        self.req, self.options, self.policy, self.role_gpus = req, options, policy, role_gpus
        self.precision: Precision = precision(req.precision)
        self.fmt = frozen_format(req.frozen_dtype)
        self.phases: list[tuple[str, str, list[RoleComponent]]] = []
        self.flops: list[FlopTerm] = []
        self.infos: list[RoleInfo] = []
        self.assumptions: list[str] = []
        self.cpu_bytes_per_node = 0
        self.experience_group = "actor"  # the generating model's group keeps the experience
        self.plans: dict[str, ParallelPlan] = {}
        self.plan = make_plan(
            policy, self.plan_seq(), **self.options_of(LEAD_ROLE[req.stage]).plan_keywords()
        )
        self.dp_ranks = self.plan.dp

    # ---- where things live ----------------------------------------------------------------------
    def group_of(self, role: str) -> str:
        if self.req.placement == "colocated":
            return "all"
        return self.experience_group if role == "experience" else role

    def options_of(self, role: str) -> TrainingOptions:
        """Training options of a role: its own GPU count when role_gpus gives one."""
        n = self.role_gpus.get(role)
        return self.options if n is None else self.options.on_gpus(n)

    def plan_seq(self) -> int:
        if self.req.stage in ("ppo", "grpo"):
            return self.req.sequence_tokens
        return resolve_seq_len(self.policy, self.req.seq_len)

    def plan_of(self, role: str, spec: ModelSpec) -> ParallelPlan:
        if role not in self.plans:
            keywords = self.options_of(role).plan_keywords()
            self.plans[role] = make_plan(spec, self.plan_seq(), **keywords)
        return self.plans[role]

    def per_rank(self, role: str, spec: ModelSpec, sequences: int) -> int:
        """Sequences one rank of `role` handles when the lead model's ranks hold `sequences` each:
        the same global batch spread over the role's own data-parallel ranks."""
        dp = self.plan_of(role, spec).dp
        return max(1, -(-sequences * self.dp_ranks // dp))

    def group_gpus(self, group: str) -> int:
        """GPUs of a group: those of the plan of (the first of) its roles."""
        if group == "all":
            return self.plan.num_gpus
        return self.plans[group].num_gpus if group in self.plans else self.plan.num_gpus

    def part(
        self, role: str, name: str, nbytes: int, note: str, lifetime: Lifetime = Lifetime.resident
    ) -> RoleComponent:
        return RoleComponent(
            role=role,
            group=self.group_of(role),
            name=name,
            bytes=nbytes,
            note=note,
            lifetime=lifetime,
        )

    def add_phase(self, name: str, description: str, parts: list[RoleComponent]) -> None:
        self.phases.append(
            (name, description, [p for p in parts if p.bytes or p.name == "weights"])
        )

    # ---- trainable models -----------------------------------------------------------------------
    def train(self, role: str, spec: ModelSpec, sequences: int, seq: int) -> Estimate:
        """The role's training estimate on `sequences` × `seq` tokens (per-GPU, with options)."""
        est = estimate_training(
            spec,
            precision=self.req.precision,
            optimizer=self.req.optimizer.value,
            batch_size=self.per_rank(role, spec, sequences),
            seq_len=seq,
            grad_checkpointing=self.req.grad_checkpointing,
            attention=self.req.attention,
            **self.options_of(role).keywords(),
        )
        method = self.options.method or "full"
        how = self.req.precision + ("" if method == "full" else f", {method}")
        self.infos.append(
            RoleInfo(
                role=role,
                model=spec.name,
                params=param_count(spec),
                trainable=True,
                weights=how,
                group=self.group_of(role),
            )
        )
        self.cpu_bytes_per_node += est.cpu_bytes_per_node
        return est

    def _from(self, role: str, c: Component) -> RoleComponent:
        return self.part(role, c.name, c.bytes, c.note, c.lifetime)

    def resident(self, role: str, est: Estimate) -> list[RoleComponent]:
        """What a trained model keeps between phases (weights, optimizer state, adapters, masters)."""
        return [self._from(role, c) for c in est.components if c.lifetime == Lifetime.resident]

    def training(self, role: str, est: Estimate) -> list[RoleComponent]:
        """The role's training peak, component by component, with the allocator slack that
        estimate_training found for it (role 'runtime'; the assembly adds the other models' slack)."""
        parts = [self._from(role, c) for c in est.components if c.lifetime != Lifetime.runtime]
        slack = est.component("allocator_slack")
        note = f"{role} training's slack (estimate_training) + the same fraction of the other models' transient bytes"
        return [
            *parts,
            RoleComponent(
                role="runtime",
                group=self.group_of(role),
                name="allocator_slack",
                bytes=slack,
                note=note,
                lifetime=Lifetime.runtime,
            ),
        ]

    # ---- frozen models and forward passes -------------------------------------------------------
    def frozen(self, role: str, spec: ModelSpec, shares_base: bool = False) -> RoleComponent:
        weights = "actor's base" if shares_base else self.fmt.name
        self.infos.append(
            RoleInfo(
                role=role,
                model=spec.name,
                params=param_count(spec),
                trainable=False,
                weights=weights,
                group=self.group_of(role),
            )
        )
        if shares_base:
            return self.part(
                role, "weights", 0, "the actor's frozen base with adapters disabled (no copy)"
            )
        plan = self.plan_of(role, spec)
        shards = frozen_divisor(plan)
        w = weight_bytes(tensor_groups(spec), self.fmt) // shards
        shard = f", split over {shards} GPUs" if shards > 1 else ""
        if self.req.offload_frozen:  # each GPU's shard waits in host memory
            self.cpu_bytes_per_node += w * plan.gpus_per_node
        return self.part(role, "weights", w, f"{self.fmt.name}{shard} (frozen)")

    def frozen_bpp(self, spec: ModelSpec) -> float:
        """Bytes per parameter of a frozen model's weights."""
        return weight_bytes(tensor_groups(spec), self.fmt) / param_count(spec)

    def shares_base(self) -> bool:
        """Whether the reference is the LoRA actor's base with adapters disabled (no copy)."""
        share = self.req.reference_shares_base
        lora = self.options.lora
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
        note = f"unit of {unit:,} params + {ahead:,} prefetched, gathered for the forward"
        return [
            self.part(
                role,
                "gathered_parameters",
                int((unit + ahead) * bytes_per_param),
                note,
                Lifetime.transient,
            )
        ]

    def forward(
        self, role: str, spec: ModelSpec, sequences: int, seq: int, what: str, bpp: float = 2.0
    ) -> list[RoleComponent]:
        """No-grad forward over `sequences` × `seq` tokens keeping logits of every position (plus
        the gathered units of sharded parameters, `bpp` bytes per parameter)."""
        sequences = self.per_rank(role, spec, sequences)
        acts, peak_part = inference_activation_bytes(
            spec, sequences, seq, self.precision.compute_bytes, "all", self.req.attention
        )
        note = f"no-grad forward, {sequences}×{seq} tokens, {what}; peak set by {peak_part}"
        return [
            self.part(role, "activations", acts, note, Lifetime.transient),
            *self.gathered(role, spec, bpp),
        ]

    # ---- generation and experience --------------------------------------------------------------
    def experience(self, sequences: int) -> RoleComponent:
        r, seq = self.req.response_len, self.req.sequence_tokens
        floats = EXPERIENCE_FLOATS[self.req.stage]
        note = f"{sequences} sequences: int64 token ids × {seq} + {floats} fp32 values × {r} response tokens"
        return self.part(
            "experience", "experience_buffer", sequences * (8 * seq + 4 * floats * r), note
        )

    def rollout(
        self, role: str, resident: list[RoleComponent], sequences: int
    ) -> list[RoleComponent]:
        """Generation: KV cache for prompt + response of every sequence, the prefill workspace
        (logits of the last position only), and an inference copy of the weights if asked."""
        req, spec = self.req, self.policy
        seq = req.sequence_tokens
        kv_name = req.kv_dtype or self.precision.compute_dtype
        # A data-parallel rank spans plan.tp GPUs, which share its sequences' KV heads. A rollout
        # copy over rollout_tp GPUs generates for the prompts of rollout_tp ranks at once, so its
        # KV cache per GPU is one rank's (DeepSpeed-Chat hybrid engine, inference_tp_size).
        kv = kv_cache_bytes(spec, sequences, seq, kv_bytes_per_element(kv_name)) // self.plan.tp
        acts, peak_part = inference_activation_bytes(
            spec, sequences, req.prompt_len, self.precision.compute_bytes, "last", req.attention
        )
        parts = list(resident)
        if req.rollout_weights == "copy":
            tp = req.rollout_tp
            copy = weight_bytes(tensor_groups(spec), FORMATS["bf16"]) // tp
            note = (
                f"bf16 inference copy for generation, split over {tp} GPUs (hybrid engine / vLLM)"
            )
            parts.append(self.part(role, "rollout_weights", copy, note))
        heads = f", heads split over tp={self.plan.tp}" if self.plan.tp > 1 else ""
        # the rollout's cache is allocated for generation and freed after it: transient here
        parts.append(
            self.part(
                role,
                "kv_cache",
                kv,
                f"{sequences} sequences × {seq} tokens, {kv_name}{heads}",
                Lifetime.transient,
            )
        )
        note = f"prefill of {sequences}×{req.prompt_len} prompt tokens; peak set by {peak_part}"
        parts.append(self.part(role, "activations", acts, note, Lifetime.transient))
        if req.rollout_weights == "shared":
            parts += self.gathered(role, spec, 2.0)
        return parts

    # ---- FLOPs (vramcalc.core.flops) ------------------------------------------------------------
    def flop(self, name: str, role: str, flops: float, formula: str) -> None:
        """A FLOP term for the whole job: one rank's tokens × the data-parallel ranks."""
        dp = self.dp_ranks
        if dp > 1:
            flops, formula = flops * dp, f"{formula} × {dp} data-parallel ranks"
        self.flops.append(FlopTerm(name=name, role=role, flops=flops, formula=formula))

    def fwd_flops(self, name: str, role: str, spec: ModelSpec, sequences: int, seq: int) -> None:
        """A no-grad forward (generation or scoring) over `sequences` × `seq` tokens."""
        per = forward_flops_per_token(spec, seq)
        tokens = sequences * seq
        self.flop(name, role, per.total * tokens, f"{per.formula} × {tokens:,} tokens")

    def train_flops(
        self, name: str, role: str, spec: ModelSpec, sequences: int, seq: int, epochs: int = 1
    ) -> None:
        """Training over `sequences` × `seq` tokens, `epochs` times (hardware FLOPs: with the
        recomputed forward under full checkpointing)."""
        per = training_flops_per_token(
            spec,
            seq,
            frozen_weights=self.options.lora,
            recompute=self.req.grad_checkpointing == "full",
        )
        tokens = sequences * seq
        more = f" × {epochs} epochs" if epochs > 1 else ""
        self.flop(
            name, role, per.total * tokens * epochs, f"{per.formula} × {tokens:,} tokens{more}"
        )
