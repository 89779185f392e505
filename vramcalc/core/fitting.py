"""Planners: the largest batch and the longest context that fit a GPU, and which GPUs (how many,
how long, at what price) a job needs.

Every search calls the memory estimates (``estimate_inference`` / ``estimate_training``, tens of
microseconds each), so a planner call costs a few milliseconds and a sweep of thousands of
configurations takes seconds.

Multi-GPU memory goes through one pluggable function, :data:`MemoryFn`
``(spec, task, workload, num_gpus) -> Placement``. The default, :func:`simple_placement`, assumes
tensor parallelism for inference and PyTorch FSDP full sharding (vramcalc.core.distributed) for training;
a richer model of parallelism can replace it with ``plan(..., memory_fn=...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vramcalc.core.cost import check_context, estimate_inference_cost, estimate_training_cost
from vramcalc.core.fit_advice import Suggestion, shown_workload, suggest
from vramcalc.core.placement import (
    MemoryFn,
    Placement,
    Task,
    simple_placement,
)
from vramcalc.core.workloads import MAX_TOKENS, resolve_model
from vramcalc.errors import VramcalcError, checked_keywords
from vramcalc.spec.model import GPUSpec, ModelSpec
from vramcalc.spec.precision import precision

MAX_BATCH = 1_000_000


# ---- fit: largest batch, longest context ----------------------------------------------------------
def _largest(lo: int, hi: int, fits: Callable[[int], bool]) -> int:
    """Largest x in [lo, hi] with fits(x), assuming fits is monotone (True then False); lo - 1
    when even lo does not fit. Exponential probe then bisection: O(log hi) calls."""
    if not fits(lo):
        return lo - 1
    good, step = lo, 1
    while good + step <= hi and fits(good + step):
        good += step
        step *= 2
    bad = min(good + step, hi + 1)
    while bad - good > 1:
        mid = (good + bad) // 2
        if fits(mid):
            good = mid
        else:
            bad = mid
    return good


class FitResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str
    gpu: str
    task: Task
    num_gpus: int
    memory_bytes: int = Field(description="one GPU")
    seq_len: int = Field(description="context used for the batch search")
    max_batch_size: int = Field(description="0: not even one sequence fits")
    batch_size: int = Field(description="batch used for the context search")
    max_seq_len: int = Field(description="0: not even one token fits")
    seq_len_cap: int = Field(description="the search stops here (model maximum or 16M)")
    parallelism: str
    workload: dict[str, Any] = Field(
        default_factory=dict, description="the options the search held fixed (dtype, precision…)"
    )
    assumed_architecture: str | None = Field(
        None, description="--assume-llama: searched at the ×2 high end of a rough estimate"
    )
    fits: bool = Field(True, description="the described job (batch_size at seq_len) fits")
    per_gpu_bytes: int = Field(0, description="peak of the described job, one GPU")
    suggestions: list[Suggestion] = Field(
        default_factory=list, description="train, when the job does not fit: changes that would"
    )


def _rough_factor(spec: ModelSpec) -> float:
    """An assumed architecture (--assume-llama) must fit at the ×2 high end of its band
    (results.ROUGH_BAND_FACTOR): a rough estimate never answers "fits" on its central value."""
    from vramcalc.core.results import ROUGH_BAND_FACTOR

    return ROUGH_BAND_FACTOR if spec.assumed_architecture is not None else 1.0


def _fits_fn(
    spec: ModelSpec,
    task: Task,
    workload: Mapping[str, Any],
    memory: int,
    num_gpus: int,
    memory_fn: MemoryFn,
) -> Callable[[dict[str, int]], bool]:
    factor = _rough_factor(spec)

    def fits(change: dict[str, int]) -> bool:
        per_gpu = memory_fn(spec, task, {**workload, **change}, num_gpus).per_gpu_bytes
        return per_gpu * factor <= memory

    return fits


@checked_keywords
def fit(
    model: str | ModelSpec,
    gpu: str | GPUSpec,
    *,
    task: Task = "infer",
    num_gpus: int = 1,
    memory_fn: MemoryFn = simple_placement,
    **workload: Any,
) -> FitResult:
    """The largest batch size (at the workload's seq_len) and the longest context (at its
    batch_size, default 1) that fit `gpu`; `workload` takes estimate_inference/estimate_training
    options. The context search stops at the model's max_position_embeddings."""
    from vramcalc.sources.presets import get_gpu

    spec = resolve_model(model)
    g = gpu if isinstance(gpu, GPUSpec) else get_gpu(gpu)
    if num_gpus < 1:
        raise VramcalcError(f"num_gpus must be at least 1 (got {num_gpus})")
    fits = _fits_fn(spec, task, workload, g.memory_bytes, num_gpus, memory_fn)
    seq = workload.get("seq_len") or min(4096, spec.max_position_embeddings)
    batch = workload.get("batch_size") or 1
    cap = min(spec.max_position_embeddings, MAX_TOKENS)
    max_batch = _largest(1, MAX_BATCH, lambda b: fits({"batch_size": b, "seq_len": seq}))
    max_seq = _largest(1, cap, lambda s: fits({"batch_size": batch, "seq_len": s}))
    described = {**workload, "batch_size": batch, "seq_len": seq}
    peak = memory_fn(spec, task, described, num_gpus).per_gpu_bytes
    job_fits = peak * _rough_factor(spec) <= g.memory_bytes
    suggestions: list[Suggestion] = []
    if task == "train" and not job_fits:
        suggestions = suggest(
            described,
            num_gpus,
            g.memory_bytes,
            lambda w, n: memory_fn(spec, task, w, n).per_gpu_bytes,
            _rough_factor(spec),
        )
    return FitResult(
        model=spec.name,
        gpu=g.name,
        task=task,
        num_gpus=num_gpus,
        memory_bytes=g.memory_bytes,
        seq_len=seq,
        max_batch_size=max_batch,
        batch_size=batch,
        max_seq_len=max_seq,
        seq_len_cap=cap,
        parallelism=memory_fn(
            spec, task, {**workload, "batch_size": 1, "seq_len": 1}, num_gpus
        ).parallelism,
        workload=shown_workload(
            {k: v for k, v in workload.items() if k not in ("batch_size", "seq_len")}
        ),
        assumed_architecture=spec.assumed_architecture,
        fits=job_fits,
        per_gpu_bytes=peak,
        suggestions=suggestions,
    )


# ---- plan: which GPUs, how many, how long, how much --------------------------------------------------
class PlanRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    gpu: str
    display_name: str
    fits: bool
    num_gpus: int | None = Field(description="fewest GPUs that fit (None: none up to the limit)")
    parallelism: str = ""
    per_gpu_bytes: int | None = None
    memory_bytes: int
    usd_per_gpu_hour: float | None = Field(description="price of one GPU for one hour")
    # training
    wall_hours: float | None = None
    gpu_hours: float | None = None
    price_usd: float | None = Field(None, description="train: whole run")
    # inference
    usd_per_hour: float | None = Field(None, description="infer: all GPUs")
    output_tokens_per_second: float | None = None
    latency_seconds: float | None = None
    usd_per_million_output_tokens: float | None = None
    within_budget: bool | None = None
    note: str = ""


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["plan"] = "plan"
    model: str
    task: Task
    workload: dict[str, Any]
    budget_usd: float | None
    budget_meaning: str
    rows: list[PlanRow] = Field(description="ranked: fitting and priced first, cheapest first")
    price_set: str = Field("", description="the price set the catalog's prices came from")
    assumed_architecture: str | None = Field(
        None, description="--assume-llama: GPUs chosen at the ×2 high end of a rough estimate"
    )


INFER_GPU_COUNTS = (1, 2, 4, 8)  # tensor parallel inside one 8-GPU node
TRAIN_GPU_COUNTS = tuple(2**i for i in range(15))  # 1 … 16384


def _counts(task: Task, spec: ModelSpec, max_gpus: int) -> list[int]:
    if task == "infer":
        # tensor parallel needs the attention heads to split evenly over the TP ranks
        out = [n for n in INFER_GPU_COUNTS if spec.num_attention_heads % n == 0]
    else:
        out = list(TRAIN_GPU_COUNTS)
    return [n for n in out if n <= max_gpus]


@checked_keywords
def plan(
    model: str | ModelSpec,
    *,
    task: Task = "infer",
    gpus: list[GPUSpec] | None = None,
    budget_usd: float | None = None,
    max_gpus: int = 16384,
    tokens: str | int | None = None,
    max_hours: float | None = None,
    prompt_tokens: int = 1000,
    output_tokens: int = 200,
    mfu: float | None = None,
    memory_fn: MemoryFn = simple_placement,
    **workload: Any,
) -> Plan:
    """For each GPU: the fewest GPUs that fit the workload (per `memory_fn`), then time and price,
    ranked cheapest first.

    * infer: the workload is a batch of `batch_size` requests of `prompt_tokens` + `output_tokens`
      (seq_len is set to their sum); ranked by USD per million output tokens; `budget_usd` is a
      ceiling on USD per hour of the serving GPUs.
    * train: `tokens` to train on; ranked by the price of the whole run; `budget_usd` is the
      ceiling on that price. With `max_hours`, the GPU count grows (powers of two) until the run
      finishes in time.
    """
    from vramcalc.sources.presets import list_gpus, price_set

    spec = resolve_model(model)
    if task not in ("infer", "train"):
        raise VramcalcError(f"task must be infer or train (got {task!r})")
    if task == "train" and tokens is None:
        raise VramcalcError("plan --task train needs --tokens (e.g. --tokens 2T)")
    if budget_usd is not None and budget_usd < 0:
        raise VramcalcError(f"--budget must be positive (got {budget_usd})")
    if task == "infer":
        check_context(spec, prompt_tokens, output_tokens)
        workload = {**workload, "seq_len": prompt_tokens + output_tokens}
    counts = _counts(task, spec, max_gpus)
    placements: dict[int, Placement] = {}  # the default placement is GPU-independent: reuse it

    def placement(n: int) -> Placement:
        if n not in placements:
            placements[n] = memory_fn(spec, task, workload, n)
        return placements[n]

    rows = []
    factor = _rough_factor(spec)
    for g in gpus if gpus is not None else list_gpus():
        chosen = next(
            (n for n in counts if placement(n).per_gpu_bytes * factor <= g.memory_bytes), None
        )
        base = dict(
            gpu=g.name,
            display_name=g.title,
            memory_bytes=g.memory_bytes,
            usd_per_gpu_hour=g.usd_per_gpu_hour,
        )
        if chosen is None:
            rows.append(
                PlanRow(**base, fits=False, num_gpus=None, note=f"does not fit on {counts[-1]}")
            )
            continue
        try:
            row = _cost_row(
                spec, g, task, chosen, counts, placement, workload, tokens, max_hours, mfu,
                prompt_tokens, output_tokens, base,
            )  # fmt: skip
        except VramcalcError as exc:  # a GPU without peak/bandwidth figures: listed, not priced
            p = placement(chosen)
            row = PlanRow(
                **base,
                fits=True,
                num_gpus=chosen,
                parallelism=p.parallelism,
                per_gpu_bytes=p.per_gpu_bytes,
                note=str(exc),
            )
        if budget_usd is not None:
            spent = row.price_usd if task == "train" else row.usd_per_hour
            row = row.model_copy(
                update={"within_budget": None if spent is None else spent <= budget_usd}
            )
        rows.append(row)

    def rank(r: PlanRow) -> tuple[int, float]:
        """Fitting and priced within budget, then over budget, then unpriced, then not fitting;
        cheapest first inside each group."""
        key = r.price_usd if task == "train" else r.usd_per_million_output_tokens
        if not r.fits:
            return 3, 0.0
        if key is None:
            return 2, 0.0
        return (1 if r.within_budget is False else 0), key

    rows.sort(key=rank)
    return Plan(
        model=spec.name,
        task=task,
        workload=shown_workload(workload)
        | ({"tokens": str(tokens)} if tokens is not None else {})
        | (
            {"prompt_tokens": prompt_tokens, "output_tokens": output_tokens}
            if task == "infer"
            else {}
        ),
        budget_usd=budget_usd,
        price_set=price_set().name if gpus is None else "",
        budget_meaning="USD for the whole run" if task == "train" else "USD per hour of all GPUs",
        rows=rows,
        assumed_architecture=spec.assumed_architecture,
    )


def _cost_row(
    spec: ModelSpec,
    g: GPUSpec,
    task: Task,
    chosen: int,
    counts: list[int],
    placement: Callable[[int], Placement],
    workload: Mapping[str, Any],
    tokens: str | int | None,
    max_hours: float | None,
    mfu: float | None,
    prompt_tokens: int,
    output_tokens: int,
    base: dict[str, Any],
) -> PlanRow:
    if task == "train":
        assert tokens is not None
        # the precision's math dtype: whose dense peak the run gets
        dtype = precision(str(workload.get("precision", "bf16-mixed"))).compute_dtype
        kwargs = dict(
            tokens=tokens,
            gpu=g,
            mfu=mfu,
            seq_len=workload.get("seq_len"),
            grad_checkpointing=str(workload.get("grad_checkpointing", "none")),
            dtype=dtype,
            method=str(workload.get("method", "full")),
        )
        n = chosen
        cost = estimate_training_cost(spec, num_gpus=n, **kwargs)  # type: ignore[arg-type]
        note = ""
        if max_hours is not None:
            for bigger in (c for c in counts if c > n):
                if cost.wall_hours <= max_hours:
                    break
                n = bigger
                cost = estimate_training_cost(spec, num_gpus=n, **kwargs)  # type: ignore[arg-type]
            if cost.wall_hours > max_hours:
                note = f"needs more than {counts[-1]} GPUs to finish in {max_hours:g} h"
        p = placement(n)
        return PlanRow(
            **base,
            fits=True,
            num_gpus=n,
            parallelism=p.parallelism,
            per_gpu_bytes=p.per_gpu_bytes,
            wall_hours=cost.wall_hours,
            gpu_hours=cost.gpu_hours,
            price_usd=cost.price_usd,
            note=note,
        )
    infer = estimate_inference_cost(
        spec,
        gpu=g,
        dtype=str(workload.get("dtype", "bf16")),
        quant=workload.get("quant"),
        kv_dtype=workload.get("kv_dtype"),
        batch_size=int(workload.get("batch_size", 1)),
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        num_gpus=chosen,
        mfu=mfu,
        memory=False,  # the placement above holds it (memory_fn)
    )
    p = placement(chosen)
    return PlanRow(
        **base,
        fits=True,
        num_gpus=chosen,
        parallelism=p.parallelism,
        per_gpu_bytes=p.per_gpu_bytes,
        usd_per_hour=infer.usd_per_hour,
        output_tokens_per_second=infer.output_tokens_per_second,
        latency_seconds=infer.latency_seconds,
        usd_per_million_output_tokens=infer.usd_per_million_output_tokens,
    )
