"""A training job over its parallel plan (1..N GPUs; one GPU is the default plan): every pipeline
stage's per-GPU estimate (vramcalc.core.train.stage), the most loaded GPU as the answer, cluster
sums, host memory for offloaded state, what each non-default choice saves, and the load-time peak.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Any

from vramcalc.core import lora
from vramcalc.core import parallel as par
from vramcalc.core.activations import approximation_notes
from vramcalc.core.results import Component, Estimate, Saving, make_estimate
from vramcalc.core.train import conventions as cv
from vramcalc.core.train.layouts import FRAMEWORKS
from vramcalc.core.train.load import load_peak
from vramcalc.core.train.stage import StageJob, StageResult, Static, stage_estimate
from vramcalc.core.train.terms import Finetune
from vramcalc.core.workloads import context_warnings
from vramcalc.errors import VramcalcError
from vramcalc.spec.quant import FORMATS

DEFAULT_PLAN = par.ParallelPlan()  # one plain GPU


def is_default_plan(plan: par.ParallelPlan) -> bool:
    return plan is DEFAULT_PLAN or plan == DEFAULT_PLAN


def _inputs(job: StageJob, default_plan: bool) -> dict[str, Any]:
    ft, spec = job.ft, job.spec
    inputs: dict[str, Any] = {"model": spec.name}
    if not ft.full or not default_plan:
        inputs["method"] = ft.method
    inputs |= {
        "precision": job.precision.name,
        "optimizer": job.optimizer,
        "batch_size": job.batch_size,
        "grad_accum": job.grad_accum,
        "seq_len": job.seq_len,
        "grad_checkpointing": "full" if job.checkpointing else "none",
        "attention": job.attention,
    }
    if not ft.full:
        inputs |= {
            "lora_rank": ft.rank,
            "lora_alpha": ft.alpha,
            "lora_targets": ",".join(t for t in lora.TARGETS if t in ft.targets),
            "lora_dropout": ft.dropout,
            "trainable_params": lora.adapter_param_count(
                spec, ft.targets, ft.rank, job.conv.fused_qkv_adapter
            ),
        }
        if ft.base_format is not None:
            inputs["base_format"] = ft.base_format.name
    if job.conv is not cv.DEFAULT_CONVENTIONS and job.conv != cv.DEFAULT_CONVENTIONS:
        inputs["conventions"] = job.conv.model_dump(exclude_defaults=True)
    return inputs


def _parallel(plan: par.ParallelPlan, worst: int) -> dict[str, Any]:
    return {
        "framework": plan.framework,
        "num_gpus": plan.num_gpus,
        "nodes": plan.nodes,
        "gpus_per_node": plan.gpus_per_node,
        "dp": plan.dp,
        "tp": plan.tp,
        "pp": plan.pp,
        "cp": plan.cp,
        "ep": plan.ep,
        "sequence_parallel": plan.sp,
        "zero": plan.zero,
        "fsdp": plan.fsdp,
        "offload": plan.offload,
        "shard_degree": plan.shard_degree,
        "most_loaded_stage": worst,
    }


def _assumptions(static: Static, grad_accum: int, shown: bool) -> tuple[str, ...]:
    """What the estimate assumes (cached per job shape: `static` is unique per shape)."""
    return _assumption_lines(static, grad_accum if static.job_key[1].pp > 1 else 1, shown)


@lru_cache(maxsize=256)
def _assumption_lines(static: Static, grad_accum: int, shown: bool) -> tuple[str, ...]:
    spec, plan, ft, p, conv = static.job_key
    approx = approximation_notes(spec)
    out = ["steady-state step (optimizer state exists); gradients set to None between steps"]
    if not shown:
        out.append("peak = larger of the backward pass and optimizer.step()")
        return (*out, *approx, *cv.notes(conv, ft.method))
    out += [
        "peak = larger of the backward pass and optimizer.step(), on the most loaded GPU",
        f"parallel layout: {plan.describe()} ({plan.framework} memory layout)",
        *approx,
    ]
    if not ft.full:
        lay = FRAMEWORKS[plan.framework].layout(p, ft.full, conv)
        why = "PEFT autocast_adapter_dtype" if conv.adapter_dtype == "fp32" else "adapter dtype"
        if lay.master:
            why = "DeepSpeed casts the module, adapters included; fp32 master in the optimizer"
        out.append(f"adapters {lay.dtype} ({why}); frozen base has no gradients or optimizer state")
    if ft.method == "qlora" and not conv.paged_optimizer:
        out.append(
            "paged optimizers (bitsandbytes paged_adamw, QLoRA §3) hold the same state but can "
            "spill it to CPU under memory spikes; counted here as resident on the GPU"
        )
    if plan.pp > 1:
        out.append(
            f"1F1B schedule: stage 0 holds min(pp, micro-batches) = "
            f"{par.in_flight_micro_batches(plan, 0, grad_accum)} micro-batches of activations"
        )
    return (*out, *cv.notes(conv, ft.method))


def estimate_job(job: StageJob, fit: tuple[str, int] | None, savings: bool = True) -> Estimate:
    """Per-GPU peak of the most loaded GPU, with cluster sums, CPU offload and savings."""
    plan = job.plan
    stages = [stage_estimate(job, s) for s in range(plan.pp)]
    worst = max(stages, key=lambda s: s.total)
    default_plan = is_default_plan(plan)
    shown = not (job.ft.full and default_plan)  # the layout is reported beyond one plain GPU
    components = worst.components
    if shown:
        components = _with_cluster_bytes(stages, worst, plan.num_gpus // plan.pp)
    fields: dict[str, Any] = {}
    if shown:
        per_stage_gpus = plan.num_gpus // plan.pp
        fields |= {
            "num_gpus": plan.num_gpus,
            "cluster_total_bytes": sum(s.total for s in stages) * per_stage_gpus,
            "cpu_bytes_per_node": max(s.cpu_bytes for s in stages) * plan.gpus_per_node,
            "stage_totals_bytes": [s.total for s in stages],
            "parallel": _parallel(plan, worst.stage),
        }
    if worst.host_activation_bytes:
        fields["host_activation_bytes"] = worst.host_activation_bytes * (
            plan.gpus_per_node if shown else 1
        )
    if job.conv.paged_optimizer:
        fields["spillable_bytes"] = sum(
            c.bytes for c in worst.components if c.name == "optimizer_state"
        )
    load = load_peak(job)
    if load is not None:
        fields |= {"load_peak_bytes": load.total, "load_components": load.components}
    spec = job.spec
    est = make_estimate(
        components,
        fit,
        kind="training",
        model=spec.name,
        assumed_architecture=spec.assumed_architecture,
        params=worst.static.params,
        active_params=worst.static.active_params,
        phase=worst.phase,
        inputs=_inputs(job, default_plan),
        assumptions=list(_assumptions(worst.static, job.grad_accum, shown)),
        warnings=context_warnings(spec, job.seq_len),
        **fields,
    )
    if savings and shown:
        est = est.model_copy(update={"savings": _savings(job, est)})
    return est


def _with_cluster_bytes(
    stages: list[StageResult], worst: StageResult, per_stage_gpus: int
) -> list[Component]:
    """The worst stage's components with each summed over every GPU of the job."""
    sums: dict[str, int] = {}
    for s in stages:
        for c in s.components:
            sums[c.name] = sums.get(c.name, 0) + c.bytes
    out = [
        c.model_copy(update={"cluster_bytes": sums[c.name] * per_stage_gpus})
        for c in worst.components
    ]
    present = {c.name for c in worst.components}
    for name in sorted(set(sums) - present):  # on another stage only: keep the cluster sum whole
        out.append(Component(name=name, bytes=0, cluster_bytes=sums[name] * per_stage_gpus))
    return out


def _savings(job: StageJob, est: Estimate) -> list[Saving]:
    """Per-GPU bytes each non-default choice saves: the same job without it, minus this one."""
    ft, plan = job.ft, job.plan
    alternatives: list[tuple[str, str, Finetune, par.ParallelPlan]] = []
    if ft.method == "qlora":
        base = FORMATS["fp32" if job.precision.name == "fp32" else "bf16"]
        alternatives.append(
            ("qlora", "lora (16-bit base)", replace(ft, method="lora", base_format=base), plan)
        )
    if not ft.full:
        alternatives.append((ft.method, "full fine-tune", Finetune(), plan))
    if plan.zero:
        zero0 = replace(plan, zero=0, offload="none")
        alternatives.append((f"ZeRO-{plan.zero}", "ZeRO-0 (replicated states)", ft, zero0))
    if plan.fsdp not in (None, "no-shard"):
        no_shard = replace(plan, fsdp="no-shard", offload="none")
        alternatives.append((f"FSDP {plan.fsdp}", "FSDP no-shard", ft, no_shard))
    if plan.offload != "none":
        alternatives.append(
            (f"offload {plan.offload}", "no offload", ft, replace(plan, offload="none"))
        )
    if plan.tp > 1:
        alternatives.append((f"tp={plan.tp}", "tp=1", ft, replace(plan, tp=1, sp=False)))
    if plan.sp:
        alternatives.append(("sequence parallel", "tp without it", ft, replace(plan, sp=False)))
    if plan.pp > 1:
        alternatives.append((f"pp={plan.pp}", "pp=1", ft, replace(plan, pp=1)))
    if plan.cp > 1:
        alternatives.append((f"cp={plan.cp}", "cp=1", ft, replace(plan, cp=1)))
    if plan.ep > 1:
        alternatives.append((f"ep={plan.ep}", "ep=1", ft, replace(plan, ep=1)))
    out = []
    for choice, compared, alt_ft, alt_plan in alternatives:
        alt = replace(job, ft=alt_ft, plan=alt_plan)
        try:
            other = max(stage_estimate(alt, s).total for s in range(alt_plan.pp))
        except (VramcalcError, ZeroDivisionError):
            continue
        out.append(Saving(choice=choice, saved_bytes=other - est.total_bytes, compared_to=compared))
    return out
