"""A training job over its parallel plan (1..N GPUs; one GPU is the default plan): every pipeline
stage's per-GPU estimate (vramcalc.core.train.stage), the most loaded GPU as the answer, cluster
sums, host memory for offloaded state, what each non-default choice saves, and the load-time peak.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from vramcalc.core import lora
from vramcalc.core import parallel as par
from vramcalc.core.activations import approximation_notes
from vramcalc.core.results import Component, Estimate, Saving, make_estimate
from vramcalc.core.train import conventions as cv
from vramcalc.core.train.load import load_peak
from vramcalc.core.train.stage import StageJob, StageResult, layout_of, stage_estimate
from vramcalc.core.train.terms import Finetune
from vramcalc.core.workloads import context_warnings
from vramcalc.errors import VramcalcError
from vramcalc.spec.params import active_param_count, param_count
from vramcalc.spec.quant import FORMATS


def is_default_plan(plan: par.ParallelPlan) -> bool:
    return plan == par.ParallelPlan()


def _inputs(job: StageJob) -> dict[str, Any]:
    ft, spec = job.ft, job.spec
    inputs: dict[str, Any] = {"model": spec.name}
    if not ft.full or not is_default_plan(job.plan):
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
    if job.conv != cv.DEFAULT_CONVENTIONS:
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


def _assumptions(job: StageJob, shown: bool) -> list[str]:
    plan, ft = job.plan, job.ft
    out = ["steady-state step (optimizer state exists); gradients set to None between steps"]
    if not shown:
        return [*out, "peak = larger of the backward pass and optimizer.step()"]
    out += [
        "peak = larger of the backward pass and optimizer.step(), on the most loaded GPU",
        f"parallel layout: {plan.describe()} ({plan.framework} memory layout)",
    ]
    if not ft.full:
        lay = layout_of(job)
        why = (
            "the engine's 16-bit copy, fp32 master"
            if lay.master
            else f"adapter dtype {job.conv.adapter_dtype}"
        )
        out.append(f"adapters {lay.dtype} ({why}); frozen base has no gradients or optimizer state")
    if ft.method == "qlora" and not job.conv.paged_optimizer:
        out.append(
            "paged optimizers (bitsandbytes paged_adamw, QLoRA §3) hold the same state but can "
            "spill it to CPU under memory spikes; counted here as resident on the GPU"
        )
    if plan.pp > 1:
        out.append(
            f"1F1B schedule: stage 0 holds min(pp, micro-batches) = "
            f"{par.in_flight_micro_batches(plan, 0, job.grad_accum)} micro-batches of activations"
        )
    return out


def estimate_job(job: StageJob, fit: tuple[str, int] | None, savings: bool = True) -> Estimate:
    """Per-GPU peak of the most loaded GPU, with cluster sums, CPU offload and savings."""
    plan = job.plan
    stages = [stage_estimate(job, s) for s in range(plan.pp)]
    worst = max(stages, key=lambda s: s.total)
    shown = not (
        job.ft.full and is_default_plan(plan)
    )  # the layout is reported beyond one plain GPU
    components = worst.components
    if shown:
        components = _with_cluster_bytes(stages, worst, plan.num_gpus // plan.pp)
    load = load_peak(job)
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
    spec = job.spec
    paged = worst.components and job.conv.paged_optimizer
    est = make_estimate(
        components,
        fit,
        kind="training",
        model=spec.name,
        assumed_architecture=spec.assumed_architecture,
        params=param_count(spec),
        active_params=active_param_count(spec),
        phase=worst.phase,
        inputs=_inputs(job),
        assumptions=[
            *_assumptions(job, shown),
            *approximation_notes(spec),
            *cv.notes(job.conv, job.ft.method),
        ],
        warnings=context_warnings(spec, job.seq_len),
        host_activation_bytes=worst.host_activation_bytes * (plan.gpus_per_node if shown else 1),
        spillable_bytes=sum(c.bytes for c in worst.components if c.name == "optimizer_state")
        if paged
        else 0,
        load_peak_bytes=load.total if load else 0,
        load_components=load.components if load else [],
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
    for name in ("pp", "cp", "ep"):
        degree = getattr(plan, name)
        if degree > 1:
            alternatives.append((f"{name}={degree}", f"{name}=1", ft, replace(plan, **{name: 1})))
    out = []
    for choice, compared, alt_ft, alt_plan in alternatives:
        alt = replace(job, ft=alt_ft, plan=alt_plan)
        try:
            other = max(stage_estimate(alt, s).total for s in range(alt_plan.pp))
        except (VramcalcError, ZeroDivisionError):
            continue
        out.append(Saving(choice=choice, saved_bytes=other - est.total_bytes, compared_to=compared))
    return out
