"""Model states of one GPU of one pipeline stage: weights, gradients, master weights, optimizer
state and its step temporaries, sharded as the plan says and offloaded where it says.

These depend on the model, the plan and the layout only (not on the batch), so they are computed
once per combination and cached: sweeps and the savings re-ask them for every point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from vramcalc.core import lora
from vramcalc.core import parallel as par
from vramcalc.core.optimizers import Optimizer, state_bytes, step_temporary_bytes
from vramcalc.core.train.layouts import Framework, Layout
from vramcalc.core.train.terms import ZERO, Finetune, Term, ceil_div, n
from vramcalc.spec.conventions import Conventions
from vramcalc.spec.model import ModelSpec
from vramcalc.spec.params import LINEAR, LM_HEAD, TensorGroup, tensor_groups

_OFFLOADED = "0 [offloaded to CPU]"


@dataclass(frozen=True, slots=True)
class States:
    numel: int  # trainable parameters on this GPU before sharding
    stage_numel: int  # every parameter of the stage (frozen ones included)
    frozen_bytes: int  # a LoRA base's storage on this stage (0 for a full fine-tune)
    weights: Term
    adapter: Term
    grads_all: Term
    master: Term
    optimizer: Term
    temp: Term  # optimizer.step()'s transient buffer
    cpu_bytes: int  # offloaded to host memory
    largest_trainable: int = 0  # elements of the largest trainable tensor


@lru_cache(maxsize=256)
def stage_groups(spec: ModelSpec, plan: par.ParallelPlan, stage: int) -> tuple[TensorGroup, ...]:
    return par.stage_groups(tensor_groups(spec), spec, plan, stage)


@lru_cache(maxsize=256)
def trainable_groups(
    spec: ModelSpec, plan: par.ParallelPlan, stage: int, ft: Finetune, fused_qkv: bool
) -> tuple[TensorGroup, ...]:
    if ft.full:
        return stage_groups(spec, plan, stage)
    adapters = lora.adapter_groups(spec, ft.targets, ft.rank, fused_qkv)
    return par.stage_groups(adapters, spec, plan, stage)


def _sharded(
    plan: par.ParallelPlan, state: str, groups: tuple[TensorGroup, ...], width: float, what: str
) -> Term:
    """`width` bytes per element of `groups`, partitioned over the shard degree when the plan
    shards `state` (routed experts over shard_degree / ep ranks)."""
    dense = sum(g.numel for g in groups if not g.expert)
    expert = sum(g.numel for g in groups if g.expert)
    N = plan.shard_degree
    if not (plan.shards(state) and N > 1):
        return Term(
            math.ceil((dense + expert) * width), f"{n(dense + expert)} {what} × {width:g} B"
        )
    Ne = max(1, N // plan.ep)
    if expert and Ne != N:
        return Term(
            ceil_div(dense * width, N) + ceil_div(expert * width, Ne),
            f"{n(dense)} dense {what} × {width:g} B ÷ {N} + {n(expert)} expert {what} × {width:g} B ÷ {Ne}",
        )
    return Term(
        ceil_div((dense + expert) * width, N), f"{n(dense + expert)} {what} × {width:g} B ÷ {N}"
    )


def _optimizer_term(
    plan: par.ParallelPlan, groups: tuple[TensorGroup, ...], opt: str, width: int
) -> Term:
    dense = tuple(g for g in groups if not g.expert)
    expert = tuple(g for g in groups if g.expert)
    d_bytes, e_bytes = state_bytes(dense, opt, width), state_bytes(expert, opt, width)
    numel = sum(g.numel for g in groups)
    o = Optimizer(opt)
    if o in (Optimizer.adamw, Optimizer.adam):
        text = f"2 states × {width} B × {n(numel)} params"
    elif o is Optimizer.adamw_fused:
        tensors = sum(g.count for g in groups)
        text = f"2 states × {width} B × {n(numel)} params + 4 B × {n(tensors)} step tensors"
    elif o in (Optimizer.sgd_momentum, Optimizer.lion):
        text = f"{width} B × {n(numel)} params"
    elif o is Optimizer.sgd:
        text = "0"
    else:
        text = f"{n(d_bytes + e_bytes)} [{opt} state of {numel:,} params at {width} B]"
    N = plan.shard_degree
    if not (plan.shards("optimizer") and N > 1):
        return Term(d_bytes + e_bytes, text)
    Ne = max(1, N // plan.ep)
    if e_bytes and Ne != N:
        return Term(
            ceil_div(d_bytes, N) + ceil_div(e_bytes, Ne),
            f"{n(d_bytes)} dense ÷ {N} + {n(e_bytes)} expert ÷ {Ne} [{text}]",
        )
    return Term(ceil_div(d_bytes + e_bytes, N), f"({text}) ÷ {N}")


def _temporaries(
    plan: par.ParallelPlan, fw: Framework, groups: tuple[TensorGroup, ...], lay: Layout, opt: str
) -> Term:
    if fw.step_temporaries == "foreach":
        if step_temporary_bytes(groups, opt, lay.state) == 0:
            return ZERO.noted("fused and per-tensor optimizers allocate nothing that size")
        t = _sharded(plan, "optimizer", groups, lay.state, "params")
        return t.noted("foreach AdamW's sqrt(exp_avg_sq) buffer during step()")
    if fw.step_temporaries == "fp32-grads" and lay.master:
        # ZeRO step() flattens this rank's 16-bit gradient partition into a fp32 copy for the
        # optimizer (stage_1_and_2.py / stage3.py: single_grad_partition .to(fp32)), freed after it
        t = _sharded(plan, "optimizer", groups, 4, "params")
        return t.noted(
            "fp32 copy of the gradient partition that DeepSpeed's step() hands the optimizer"
        )
    return ZERO


def _frozen_base(
    spec: ModelSpec, plan: par.ParallelPlan, stage: int, ft: Finetune, conv: Conventions
) -> tuple[int, Term]:
    """A LoRA base's bytes on this stage, and its per-GPU term (sharded under ZeRO-3 / FSDP)."""
    assert ft.base_format is not None
    fmt = ft.base_format
    groups = stage_groups(spec, plan, stage)
    quant_head = conv.quantized_lm_head and ft.method == "qlora"
    linear = sum(fmt.group_bytes(g) for g in groups if g.kind == LINEAR)
    head = sum(
        fmt.quantized_tensor_bytes(g.rows, g.cols) * g.count
        for g in groups
        if g.kind == LM_HEAD and quant_head
    )
    total = lora.base_weight_bytes(
        groups, ft.method, fmt, quantize_head=quant_head, upcast_rest=conv.kbit_prep_upcasts_to_fp32
    )
    rest = total - linear - head
    numel = sum(g.numel for g in groups)
    text = f"{n(linear)} linear weights [{fmt.name}] + {n(rest)} other tensors"
    if total == numel * fmt.compute_bytes and not head:  # one width throughout (a 16-bit base)
        text = f"{n(numel)} params × {fmt.compute_bytes} B [{fmt.name}]"
    if head:
        text += f" + {n(head)} lm_head [{fmt.name}, quantized_lm_head]"
    if plan.shards("params") and plan.shard_degree > 1:
        return total, Term(ceil_div(total, plan.shard_degree), f"({text}) ÷ {plan.shard_degree}")
    return total, Term(total, text)


@lru_cache(maxsize=512)
def model_states(
    spec: ModelSpec,
    plan: par.ParallelPlan,
    stage: int,
    ft: Finetune,
    lay: Layout,
    fw: Framework,
    optimizer: str,
    conv: Conventions,
) -> States:
    """The model states of one GPU of `stage`, as bytes with their formulas."""
    trainable = trainable_groups(spec, plan, stage, ft, conv.fused_qkv_adapter)
    numel = sum(g.numel for g in trainable)
    stage_numel = sum(g.numel for g in stage_groups(spec, plan, stage))
    what = "params" if ft.full else "adapter params"
    weights = _sharded(plan, "params", trainable, lay.weights, what)
    adapter, frozen = ZERO, 0
    if not ft.full:
        adapter, (frozen, weights) = weights, _frozen_base(spec, plan, stage, ft, conv)
    grads = _sharded(plan, "gradients", trainable, lay.grads, what)
    master = _sharded(plan, "optimizer", trainable, lay.master, what) if lay.master else ZERO
    opt = _optimizer_term(plan, trainable, optimizer, lay.state)
    temp = _temporaries(plan, fw, trainable, lay, optimizer)
    cpu = 0
    if plan.offload == "params":
        cpu += weights.bytes + adapter.bytes
        weights, adapter = Term(0, _OFFLOADED), (Term(0, _OFFLOADED) if adapter.bytes else ZERO)
    if plan.offload in ("optimizer", "params"):
        # ZeRO-Offload keeps fp32 gradient partitions, masters and state on the CPU (DeepSpeed's
        # estimator: 16 B/param on CPU with optimizer offload, 18 with parameter offload)
        cpu += master.bytes + opt.bytes
        if fw.name == "deepspeed":
            # fp32 gradient partition on the CPU; from stage 2 on the GPU keeps no gradient
            # partition (ZeRO-1 still all-reduces full 16-bit gradients on the GPU)
            cpu += ceil_div(numel * 4, plan.shard_degree)
            if plan.zero and plan.zero >= 2:
                grads = Term(0, _OFFLOADED)
        elif fw.name == "fsdp":
            cpu += grads.bytes
            grads = Term(0, _OFFLOADED)
        master, opt, temp = ZERO, Term(0, _OFFLOADED), ZERO
    largest = max((g.per_tensor_numel for g in trainable), default=0)
    return States(
        numel, stage_numel, frozen, weights, adapter, grads, master, opt, temp, cpu, largest
    )
