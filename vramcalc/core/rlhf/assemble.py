"""From a stage's phases to the estimate: runtime terms per phase and GPU group, each group's peak
and fit, and the FLOPs turned into hours and dollars."""

from __future__ import annotations

from dataclasses import dataclass

from vramcalc.core.gpu_rates import DEFAULT_MFU, compute_peak, compute_seconds, default_mfu
from vramcalc.core.inference import runtime_overhead_components
from vramcalc.core.results import Component, Lifetime, error_band, gpu_fit
from vramcalc.core.rlhf.models import (
    EXPERIENCE_FLOATS,
    GPUGroup,
    Phase,
    RlhfEstimate,
    RlhfRequest,
    RoleComponent,
)
from vramcalc.core.rlhf.roles import Job
from vramcalc.sources.presets import get_gpu
from vramcalc.spec.precision import precision

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
    training precision's math dtype, the GPU generation's default MFU and its price per GPU-hour,
    as `vramcalc cost train` uses them: vramcalc.core.cost), else none (FLOPs only)."""
    gpu = get_gpu(req.gpu) if req.gpu is not None else None
    if gpu is None:
        mfu = req.mfu or DEFAULT_MFU_NO_GPU
        how = "" if req.mfu else " (assumed)"
        note = f"{mfu:.0%} MFU{how} of {req.peak_tflops or 0:g} TFLOP/s per GPU"
        return ComputeRate(req.peak_tflops, mfu, req.usd_per_gpu_hour, note)
    peak, peak_src = req.peak_tflops, "given"
    if peak is None:
        # pure fp16 runs its matmuls in fp16, fp16-mixed too: the fp16 peak (Precision.compute_dtype)
        peak, dtype = compute_peak(gpu, precision(req.precision).compute_dtype)
        peak_src = f"{gpu.title} dense {dtype}"
    mfu, mfu_src = (req.mfu, "given") if req.mfu else default_mfu(gpu)
    price, price_src = req.usd_per_gpu_hour, "given"
    if price is None and gpu.usd_per_gpu_hour is not None:
        price = gpu.usd_per_gpu_hour
        price_src = (
            f"catalog {gpu.price_market or 'list'} price read {gpu.price_date or '(undated)'}"
        )
    note = f"{mfu:.0%} MFU ({mfu_src}) of {peak:g} TFLOP/s per GPU ({peak_src})"
    if price is not None:
        note += f", ${price:g} per GPU-hour ({price_src})"
    return ComputeRate(peak, mfu, price, note)


def with_runtime(job: Job, groups: list[str]) -> list[Phase]:
    """Each phase with the CUDA context and allocator slack of every GPU group. A training
    estimate brings its own slack (role 'runtime') for its transient bytes, the only transient
    bytes of a training phase; elsewhere the slack is the usual fraction of the transient bytes
    (forward activations, gathered units, the rollout's KV cache)."""
    phases: list[Phase] = []
    for name, description, parts in job.phases:
        trained = {c.group: c for c in parts if c.role == "runtime"}
        comps = [c for c in parts if c.role != "runtime"]
        for g in groups:
            transient = [
                c.bytes for c in parts if c.group == g and c.lifetime == Lifetime.transient
            ]
            dynamic = 0 if g in trained else sum(transient)
            for rc in runtime_overhead_components(dynamic):
                extra = trained[g].bytes if rc.name == "allocator_slack" and g in trained else 0
                note = trained[g].note if extra else rc.note
                runtime = RoleComponent(
                    role="runtime",
                    group=g,
                    name=rc.name,
                    bytes=rc.bytes + extra,
                    note=note,
                    lifetime=Lifetime.runtime,
                )
                comps.append(runtime)
        phases.append(
            Phase(
                name=name,
                description=description,
                components=comps,
                total_bytes=sum(c.bytes for c in comps),
            )
        )
    return phases


def gpu_groups(
    job: Job, phases: list[Phase], names: list[str], fit: tuple[str, int] | None
) -> list[GPUGroup]:
    """Each group's peak phase, its likely range and whether it fits the GPU."""
    groups = []
    rough = job.policy.assumed_architecture is not None  # --assume-llama: widened, no "fits"
    keeps_experience = job.req.stage in EXPERIENCE_FLOATS
    for g in names:
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
        roles = [i.role for i in job.infos if i.group == g]
        if g == job.group_of("experience") and keeps_experience:
            roles.append("experience")
        groups.append(
            GPUGroup(
                name=g,
                roles=roles,
                num_gpus=job.group_gpus(g),
                phase_bytes=per_phase,
                peak_phase=peak_name,
                peak_bytes=peak,
                low_bytes=low,
                high_bytes=high,
                gpu=gpu_fit(fit, peak, low, high, rough=rough),
            )
        )
    return groups


def assumptions(job: Job, rate: ComputeRate) -> list[str]:
    out = [
        "sizes are per data-parallel rank; phases run one after another and free their activations",
        "gradients freed between phases (zero_grad(set_to_none=True)); optimizer state stays on the GPU",
        *job.assumptions,
        "FLOPs (PaLM Appendix B, as `cost train`): 2·N + 4·L·H·Q·T per token forward (generation: "
        "prompt + response tokens), 6·N + 12·L·H·Q·T training (4·N with LoRA, a recomputed "
        "forward more with full checkpointing); N = matmul parameters",
    ]
    if job.policy.assumed_architecture is not None:
        out.append(
            f"ROUGH ESTIMATE: architecture {job.policy.assumed_architecture!r} is not mapped, "
            "read as Llama (--assume-llama); range widened to ×2, never 'fits'"
        )
    if job.req.offload_frozen:
        out.append("frozen models offloaded: on the GPU only during their own forward")
    if rate.peak_tflops is not None:
        out.append(
            f"time at {rate.note} for every term; "
            "generation is memory-bandwidth bound, so its real time is longer"
        )
    return out


def finish(job: Job, fit: tuple[str, int] | None) -> RlhfEstimate:
    """The estimate of a job whose stage function has run."""
    req = job.req
    names = list(dict.fromkeys(i.group for i in job.infos))
    if any(c.role == "experience" for _, _, parts in job.phases for c in parts):
        names = list(dict.fromkeys([*names, job.group_of("experience")]))
    phases = with_runtime(job, names)
    groups = gpu_groups(job, phases, names, fit)
    worst = max(groups, key=lambda x: x.peak_bytes)
    n = req.iterations
    flops = [
        f.model_copy(
            update={
                "flops": f.flops * n,
                "formula": f.formula + (f" × {n:,} iterations" if n > 1 else ""),
            }
        )
        for f in job.flops
    ]
    total_gpus = sum(g.num_gpus for g in groups)
    time_s = cost = None
    rate = compute_rate(req)
    if rate.peak_tflops is not None:
        peak_tflops = rate.peak_tflops
        time_s = sum(
            compute_seconds(
                f.flops * n, job.group_gpus(job.group_of(f.role)), peak_tflops, rate.mfu
            )
            for f in job.flops
        )
        if rate.usd_per_gpu_hour is not None:
            cost = time_s / 3600 * total_gpus * rate.usd_per_gpu_hour
    inputs = req.model_dump(mode="json", exclude_none=True) | {
        "model": job.policy.name,
        "training_options": job.options.model_dump(mode="json", exclude_none=True),
        "role_gpus": job.role_gpus,
        "peak_tflops_used": rate.peak_tflops,
        "mfu_used": rate.mfu,
        "usd_per_gpu_hour_used": rate.usd_per_gpu_hour,
    }
    return RlhfEstimate(
        stage=req.stage,
        placement=req.placement,
        model=job.policy.name,
        roles=job.infos,
        phases=phases,
        groups=groups,
        peak_phase=worst.peak_phase,
        total_bytes=worst.peak_bytes,
        low_bytes=worst.low_bytes,
        high_bytes=worst.high_bytes,
        gpu=worst.gpu,
        num_gpus=total_gpus,
        cpu_bytes_per_node=job.cpu_bytes_per_node,
        flops=flops,
        total_flops=sum(f.flops for f in job.flops) * n,
        time_s=time_s,
        cost_usd=cost,
        inputs=inputs,
        assumptions=assumptions(job, rate),
    )
