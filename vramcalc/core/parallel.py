"""Parallel layouts: how many ranks share each tensor, and what one GPU holds.

Degrees: ``num_gpus = dp × tp × pp × cp``; expert parallelism ``ep`` divides the dp·cp ranks that
hold the same dense weights (Megatron-Core's expert-data-parallel group, dp·cp/ep).

* Tensor parallel (Shoeybi et al. 2019, Megatron-LM): q/k/v and gate/up/fc_in are split by output
  columns, o/down/fc_out by input rows, the embedding and lm_head by vocabulary rows; norms and
  routers are replicated. Heads and KV groups must divide by tp (Megatron asserts both).
* Pipeline parallel: layers/pp decoder layers per stage; the embedding on the first stage, the final
  norm and lm_head on the last (a tied embedding is kept on both, as Megatron does).
* Expert parallel: routed experts split over ep ranks (experts/ep each), then by tp.
* Sharding of model states over the data-parallel ranks (dp·cp for dense tensors): ZeRO stage 1
  partitions optimizer state (and fp32 masters), stage 2 also gradients, stage 3 also parameters
  (Rajbhandari et al. 2019, arXiv 1910.02054, §5); FSDP FULL_SHARD ≈ stage 3, SHARD_GRAD_OP ≈ 2,
  NO_SHARD ≈ DDP, HYBRID_SHARD = FULL_SHARD within a node and replicas across nodes.

Activations (Korthikanti et al. 2022, arXiv 2205.05198, Table 2): tensor parallelism splits what
lies between the column- and row-parallel linears (per layer 24/t of the paper's 34) and leaves the
layer-boundary tensors (norm inputs, the inputs of QKV and of the MLP, dropout masks: the paper's
10) replicated; sequence parallelism splits those too, so everything divides by t. Context
parallelism gives each rank seq/cp tokens. With the 1F1B pipeline schedule the first stage holds the
activations of min(pp, micro-batches) micro-batches (Narayanan et al. 2021, §2.2; Korthikanti §4.2.3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from vramcalc.core import activations as act
from vramcalc.errors import VramcalcError
from vramcalc.spec.model import ModelSpec
from vramcalc.spec.params import (
    BIAS,
    EMBEDDING,
    LINEAR,
    LM_HEAD,
    POSITION,
    TensorGroup,
    tensor_groups,
)

ZERO_STAGES = (0, 1, 2, 3)
FSDP_STRATEGIES = ("full", "grad-op", "no-shard", "hybrid")
OFFLOAD_TARGETS = ("none", "optimizer", "params")

# DeepSpeed ZeRO defaults (deepspeed/runtime/zero/config.py, DeepSpeed config docs "ZeRO optimizations"):
# reduce_bucket_size and allgather_bucket_size 5e8 elements; stage3_prefetch_bucket_size 5e7.
DS_REDUCE_BUCKET_ELEMENTS = 500_000_000
DS_PREFETCH_BUCKET_ELEMENTS = 50_000_000


@dataclass(frozen=True, slots=True)
class ParallelPlan:
    """Degrees of parallelism and the sharding scheme of one training job."""

    num_gpus: int = 1
    nodes: int = 1
    gpus_per_node: int = 1
    tp: int = 1
    pp: int = 1
    cp: int = 1
    ep: int = 1
    sp: bool = False
    zero: int | None = None  # DeepSpeed ZeRO stage; None: not DeepSpeed
    fsdp: str | None = None  # PyTorch FSDP sharding strategy; None: not FSDP
    offload: str = "none"
    engine: str = "torch"  # whose memory layout applies (see engine_of); kept by savings variants
    megatron_layers: bool = False  # activations of Megatron-Core layers instead of transformers'

    @property
    def dp(self) -> int:
        return self.num_gpus // (self.tp * self.pp * self.cp)

    @property
    def framework(self) -> str:
        return self.engine

    @property
    def shard_degree(self) -> int:
        """Ranks a dense model state is partitioned over (1: replicated)."""
        if self.fsdp == "no-shard" or (self.zero in (None, 0) and self.fsdp is None):
            return 1
        if self.fsdp == "hybrid":
            return max(1, min(self.dp * self.cp, self.gpus_per_node // (self.tp * self.pp)))
        return self.dp * self.cp

    def shards(self, state: str) -> bool:
        """Whether `state` (optimizer, gradients, params) is partitioned over shard_degree ranks."""
        level = {"optimizer": 1, "gradients": 2, "params": 3}[state]
        if self.zero is not None:
            return self.zero >= level
        if self.fsdp is not None:
            if self.fsdp == "no-shard":
                return False
            return True  # grad-op shards the fp32 params at rest too; it keeps 16-bit copies
        return False

    def describe(self) -> str:
        parts = [f"{self.num_gpus} GPU" + ("s" if self.num_gpus > 1 else "")]
        if self.nodes > 1:
            parts.append(f"{self.nodes} nodes × {self.gpus_per_node}")
        for name in ("dp", "tp", "pp", "cp", "ep"):
            value = getattr(self, name)
            if value > 1:
                parts.append(f"{name}={value}")
        if self.sp:
            parts.append("sequence-parallel")
        if self.zero is not None:
            parts.append(f"ZeRO-{self.zero}")
        if self.fsdp is not None:
            parts.append(f"FSDP {self.fsdp}")
        if self.offload != "none":
            parts.append(f"offload {self.offload}")
        return ", ".join(parts)


def _gpus(
    num_gpus: int | None, nodes: int | None, gpus_per_node: int | None
) -> tuple[int, int, int]:
    if nodes is not None and gpus_per_node is not None:
        total = nodes * gpus_per_node
        if num_gpus is not None and num_gpus != total:
            raise VramcalcError(
                f"--num-gpus {num_gpus} ≠ --nodes {nodes} × --gpus-per-node {gpus_per_node} = {total}"
            )
        return total, nodes, gpus_per_node
    if nodes is not None:
        n = num_gpus if num_gpus is not None else nodes
        if n % nodes:
            raise VramcalcError(f"--num-gpus {n} does not divide over --nodes {nodes}")
        return n, nodes, n // nodes
    if gpus_per_node is not None:
        n = num_gpus if num_gpus is not None else gpus_per_node
        if n % gpus_per_node:
            raise VramcalcError(
                f"--num-gpus {n} is not a multiple of --gpus-per-node {gpus_per_node}"
            )
        return n, n // gpus_per_node, gpus_per_node
    n = num_gpus or 1
    return n, 1, n


def make_plan(
    spec: ModelSpec,
    seq_len: int,
    *,
    num_gpus: int | None = None,
    nodes: int | None = None,
    gpus_per_node: int | None = None,
    tp: int = 1,
    pp: int = 1,
    cp: int = 1,
    ep: int = 1,
    sp: bool = False,
    zero: int | None = None,
    fsdp: str | None = None,
    offload: str | None = None,
) -> ParallelPlan:
    """Validate the degrees against the model and each other; bad ones raise VramcalcError."""
    for name, value in (("tp", tp), ("pp", pp), ("cp", cp), ("ep", ep)):
        if not isinstance(value, int) or value < 1:
            raise VramcalcError(f"--{name} must be a positive integer (got {value!r})")
    for label, count in (
        ("num-gpus", num_gpus),
        ("nodes", nodes),
        ("gpus-per-node", gpus_per_node),
    ):
        if count is not None and count < 1:
            raise VramcalcError(f"--{label} must be a positive integer (got {count!r})")
    n, n_nodes, per_node = _gpus(num_gpus, nodes, gpus_per_node)
    model_par = tp * pp * cp
    if n % model_par:
        raise VramcalcError(
            f"--tp {tp} × --pp {pp} × --cp {cp} = {model_par} does not divide {n} GPUs"
        )
    if spec.num_attention_heads % tp or spec.kv_heads % tp:
        raise VramcalcError(
            f"--tp {tp} must divide {spec.name}'s {spec.num_attention_heads} attention heads "
            f"and {spec.kv_heads} KV heads"
        )
    if spec.num_layers % pp:
        raise VramcalcError(f"--pp {pp} does not divide {spec.name}'s {spec.num_layers} layers")
    if seq_len % cp:
        raise VramcalcError(f"--cp {cp} does not divide the sequence length {seq_len}")
    if sp and tp == 1:
        raise VramcalcError("--sequence-parallel needs --tp greater than 1")
    dp = n // model_par
    if ep > 1:
        if not spec.is_moe:
            raise VramcalcError(f"--ep {ep} needs a mixture-of-experts model; {spec.name} is dense")
        if spec.num_experts % ep:
            raise VramcalcError(
                f"--ep {ep} does not divide {spec.name}'s {spec.num_experts} experts"
            )
        if (dp * cp) % ep:
            raise VramcalcError(
                f"--ep {ep} must divide the {dp * cp} data/context-parallel ranks (GPUs / (tp × pp))"
            )
    if zero is not None and zero not in ZERO_STAGES:
        raise VramcalcError(f"--zero {zero} is not a ZeRO stage; valid: 0, 1, 2, 3")
    if fsdp is not None and fsdp not in FSDP_STRATEGIES:
        raise VramcalcError(f"--fsdp {fsdp!r}; valid: {', '.join(FSDP_STRATEGIES)}")
    if zero is not None and fsdp is not None:
        raise VramcalcError("give --zero (DeepSpeed) or --fsdp (PyTorch FSDP), not both")
    if zero in (2, 3) and pp > 1:
        raise VramcalcError(
            f"--zero {zero} with --pp {pp}: DeepSpeed pipeline parallelism supports ZeRO stage 0 or 1"
        )
    if fsdp == "hybrid" and n_nodes == 1:
        raise VramcalcError(
            "--fsdp hybrid shards within a node and replicates across nodes: give --nodes > 1"
        )
    off = (offload or "none").lower()
    if off not in OFFLOAD_TARGETS:
        raise VramcalcError(f"--offload {offload!r}; valid: optimizer, params")
    if off == "optimizer":
        if fsdp is not None:
            raise VramcalcError(
                "FSDP offloads parameters, gradients and optimizer state together: use --offload params"
            )
        if not zero:
            raise VramcalcError("--offload optimizer needs --zero 1, 2 or 3 (ZeRO-Offload)")
    if off == "params" and not (zero == 3 or fsdp in ("full", "hybrid", "grad-op")):
        raise VramcalcError("--offload params needs --zero 3 or --fsdp full/hybrid/grad-op")
    engine = engine_of(zero, fsdp, tp, pp, cp, ep)
    megatron = engine == "megatron" or tp > 1 or cp > 1 or ep > 1
    return ParallelPlan(n, n_nodes, per_node, tp, pp, cp, ep, sp, zero, fsdp, off, engine, megatron)


def engine_of(zero: int | None, fsdp: str | None, tp: int, pp: int, cp: int, ep: int) -> str:
    """deepspeed (--zero), fsdp (--fsdp), megatron (tp/pp/cp/ep, alone or with --zero 0/1: Megatron-LM
    with or without --use-distributed-optimizer, which its docs equate with ZeRO-1) or torch (one
    GPU and DistributedDataParallel). --zero 2/3 with model parallelism is Megatron-DeepSpeed. Tensor, context and expert parallelism need Megatron-style layers,
    so their activations follow Megatron-Core whatever shards the states."""
    model_parallel = max(tp, pp, cp, ep) > 1
    if zero in (0, 1) and model_parallel:
        return "megatron"  # --zero 1 = Megatron's distributed optimizer (shards ZeRO-1's states)
    if zero is not None:
        return "deepspeed"
    if fsdp is not None:
        return "fsdp"
    return "megatron" if model_parallel else "torch"


# ---- parameters per GPU ----------------------------------------------------------------------


def _tp_split(g: TensorGroup, tp: int) -> TensorGroup:
    """Megatron splits linear weights, their biases, the embedding and lm_head by tp; norms,
    position embeddings and routers stay whole."""
    if tp == 1 or g.kind not in (LINEAR, BIAS, EMBEDDING, LM_HEAD):
        return g
    if g.rows >= g.cols:
        return replace(g, rows=math.ceil(g.rows / tp))
    return replace(g, cols=math.ceil(g.cols / tp))


def stage_groups(
    groups: tuple[TensorGroup, ...], spec: ModelSpec, plan: ParallelPlan, stage: int
) -> tuple[TensorGroup, ...]:
    """The tensors (or tensor shards) one GPU of pipeline `stage` holds before data-parallel
    sharding: its layers/pp decoder layers, split by tp (and routed experts by ep)."""
    first, last = stage == 0, stage == plan.pp - 1
    out: list[TensorGroup] = []
    for g in groups:
        if g.name.startswith("layers."):
            g = replace(g, count=math.ceil(g.count / plan.pp))
            if g.expert and plan.ep > 1:
                g = replace(g, count=math.ceil(g.count / plan.ep))
        elif g.kind in (EMBEDDING, POSITION):
            tied_output = g.kind == EMBEDDING and spec.tie_word_embeddings and last
            if not (first or tied_output):
                continue
        elif not last:  # final norm, lm_head
            continue
        out.append(_tp_split(g, plan.tp))
    return tuple(out)


def numel(groups: tuple[TensorGroup, ...], expert: bool | None = None) -> int:
    return sum(g.numel for g in groups if expert is None or g.expert == expert)


def unit_numel(spec: ModelSpec, plan: ParallelPlan) -> int:
    """Parameters of the largest FSDP unit / ZeRO-3 gathered module on one GPU: one decoder layer
    (transformer auto-wrap policy), or the embedding / lm_head when larger (DeepSpeed's estimator
    sizes its buffers by the largest layer too)."""
    layer = 0.0
    outer = 0
    for g in tensor_groups(spec):
        g = _tp_split(g, plan.tp)
        if g.name.startswith("layers."):
            per_layer = g.numel / spec.num_layers
            if g.expert and plan.ep > 1:
                per_layer /= plan.ep
            layer += per_layer
        elif g.kind in (EMBEDDING, LM_HEAD):
            outer = max(outer, g.numel)
    return max(math.ceil(layer), outer)


# ---- activations -----------------------------------------------------------------------------


def layer_replicated_bytes_per_token(spec: ModelSpec, precision: str) -> int:
    """Bytes per token of one layer that tensor parallelism leaves whole (Korthikanti's 10·sbh):
    the norms' saved tensors, the inputs of QKV and of the MLP, and dropout masks."""
    w = act.widths(precision)
    arch = spec.architecture
    norms = spec.norms_per_layer * act.norm_saved_bytes(spec, w)
    inputs = act.projection_inputs_saved(3, arch in act.FUSED_QKV, spec, w)
    gated = spec.mlp_kind == "gated"
    inputs += act.projection_inputs_saved(
        2 if gated else 1, arch in act.FUSED_GATE_UP or not gated, spec, w
    )
    dropout = 2 * spec.hidden_size if arch in act.DROPOUT_ARCHS else 0
    return norms + inputs + dropout


def activation_divisor(plan: ParallelPlan) -> tuple[float, float]:
    """(divisor of the replicated part, divisor of the split part) of a layer's activations."""
    return (plan.tp if plan.sp else 1.0, float(plan.tp))


def in_flight_micro_batches(plan: ParallelPlan, stage: int, micro_batches: int) -> int:
    """1F1B: stage i starts its first backward after pp − i forwards (Narayanan et al. 2021)."""
    return max(1, min(plan.pp - stage, micro_batches))


def megatron_layer_parts(
    spec: ModelSpec, seq_len: int, attention: str, moe: bool
) -> tuple[int, int]:
    """(replicated, split) bytes per token one Megatron-Core layer saves in 16-bit, generalising
    Korthikanti et al. 2022 §4.1 to GQA, gated MLPs and RMSNorm:

    replicated: each norm's input 2h, the QKV input 2h, the MLP input 2h, dropout masks h each
    (GPT-style models train with dropout 0.1) — the paper's 10h for GPT;
    split: Q, K, V 2(q + 2kv) (the paper's 4h + 2h), the attention output 2q, the MLP's fc1 output
    2I (gated: 2·2I) and activation output 2I (the paper's 8h + 8h) — 24h for GPT; eager attention
    adds the softmax output 2as, its dropout mask as and output 2as (the paper's 5as; 2as without
    dropout). An MoE layer's routed part is sized as activations.moe_mlp_saved_per_token (16-bit).
    """
    h, q, kv = spec.hidden_size, spec.q_dim, spec.kv_dim
    dropout = spec.architecture in act.DROPOUT_ARCHS
    rep = spec.norms_per_layer * 2 * h + 2 * h + 2 * h + (2 * h if dropout else 0)
    split = 2 * (q + 2 * kv) + 2 * q
    if attention == "eager":
        split += (5 if dropout else 2) * spec.num_attention_heads * seq_len
    if moe:
        rep -= 2 * h  # the routed block's input is counted with it
        split += act.moe_mlp_saved_per_token(spec, "bf16")
    else:
        split += 2 * spec.intermediate_size * (3 if spec.mlp_kind == "gated" else 2)
    return rep, split
