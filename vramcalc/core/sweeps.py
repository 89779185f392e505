"""Capacity planning: one estimate per combination of models and option values, and side-by-side
comparisons of a few configurations.

Every row is an ordinary ``estimate_inference`` / ``estimate_training`` call (the model is resolved
once per sweep), so a row says exactly what the single command says. A combination the library
refuses (a context past a model's learned positions, a parallel degree that does not divide the
heads) becomes a row with its error message instead of stopping the sweep.

This module is named ``sweeps`` so that ``vramcalc.sweep`` stays the function (a submodule of the
same name would replace the package attribute once imported).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vramcalc.core.cost import (
    InferenceCost,
    TrainingCost,
    estimate_inference_cost,
    estimate_training_cost,
)
from vramcalc.core.inference import estimate_inference
from vramcalc.core.results import Estimate, gpu_fit
from vramcalc.core.sweep_options import OPTIONS, TASKS, Task, option_for, parse_values
from vramcalc.core.training import estimate_training
from vramcalc.errors import VramcalcError, checked_keywords
from vramcalc.spec.precision import precision
from vramcalc.units import GIB

MAX_POINTS = 1_000_000  # combinations of one sweep: ~1 minute at the library's speed
RUNTIME = ("cuda_context", "allocator_slack")

Value = str | int | float | bool
Values = Value | Sequence[Value]


class CostQuestion(BaseModel):
    """What a sweep's cost columns answer: training on `tokens` tokens, or serving requests that
    generate `output_tokens` (the rest of each row's context is the prompt)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tokens: int | None = Field(None, gt=0, description="training tokens (train)")
    output_tokens: int | None = Field(None, gt=0, description="generated tokens (infer)")
    usd_per_gpu_hour: float | None = Field(None, ge=0, description="overrides the catalog")


class SweepRow(BaseModel):
    """One combination: the options it used and its estimate, or the error that refused it."""

    model_config = ConfigDict(frozen=True)

    model: str = Field(description="the model as given")
    task: Task
    values: dict[str, Any] = Field(description="option keyword -> value of this combination")
    estimate: Estimate | None = None
    cost: TrainingCost | InferenceCost | None = None
    error: str | None = Field(None, description="why the library refused this combination")
    cost_error: str | None = Field(None, description="why the cost columns are empty")

    @property
    def total_bytes(self) -> int | None:
        return None if self.estimate is None else self.estimate.total_bytes

    @property
    def verdict(self) -> str | None:
        if self.estimate is None or self.estimate.gpu is None:
            return None
        return self.estimate.gpu.verdict

    def to_dict(self, components: Sequence[str] = ()) -> dict[str, Any]:
        """A flat row: options, then bytes per component (`components` fixes the column set)."""
        row: dict[str, Any] = {"model": self.model, **self.values}
        est = self.estimate
        row.setdefault("seq_len", None if est is None else est.inputs.get("seq_len"))
        if est is None:
            row |= {f"{name}_bytes": None for name in components}
            row |= dict.fromkeys(_FIGURES)
        else:
            names = components or [c.name for c in est.components]
            row |= {f"{name}_bytes": est.component(name) for name in names}
            fit = est.gpu
            row |= {
                "total_bytes": est.total_bytes,
                "total_gib": round(est.total_bytes / GIB, 3),
                "low_bytes": est.low_bytes,
                "high_bytes": est.high_bytes,
                "gpu_name": None if fit is None else fit.gpu,
                "gpu_memory_bytes": None if fit is None else fit.memory_bytes,
                "headroom_bytes": None if fit is None else fit.headroom_bytes,
                "fits": None if fit is None else fit.fits,
                "verdict": None if fit is None else fit.verdict,
            }
        row |= _cost_columns(self.task, self.cost)
        row["error"] = self.error
        row["cost_error"] = self.cost_error
        return row


_FIGURES = (
    "total_bytes",
    "total_gib",
    "low_bytes",
    "high_bytes",
    "gpu_name",
    "gpu_memory_bytes",
    "headroom_bytes",
    "fits",
    "verdict",
)
TRAIN_COST_COLUMNS = ("gpu_hours", "wall_days", "price_usd")
INFER_COST_COLUMNS = (
    "latency_seconds",
    "output_tokens_per_second",
    "usd_per_million_output_tokens",
)


def _cost_columns(task: Task, cost: TrainingCost | InferenceCost | None) -> dict[str, Any]:
    names = TRAIN_COST_COLUMNS if task == "train" else INFER_COST_COLUMNS
    return {name: None if cost is None else getattr(cost, name) for name in names}


class SweepResult(BaseModel):
    """Every row of a sweep, in the order of the product (models outermost, then options as given)."""

    model_config = ConfigDict(frozen=True)

    task: Task
    models: list[str]
    axes: dict[str, list[Any]] = Field(description="option keyword -> values, in sweep order")
    cost: CostQuestion | None = None
    rows: list[SweepRow]

    @property
    def swept(self) -> list[str]:
        """The axes with more than one value (``model`` first when several models are swept)."""
        names = ["model"] if len(self.models) > 1 else []
        return names + [k for k, v in self.axes.items() if len(v) > 1]

    def component_names(self) -> list[str]:
        """Every component any row has, in order of first appearance."""
        return component_names(self.rows)

    def to_dicts(self) -> list[dict[str, Any]]:
        """One flat dict per row with the same keys (``pandas.DataFrame(result.to_dicts())``)."""
        names = self.component_names()
        return [row.to_dict(names) for row in self.rows]

    @property
    def errors(self) -> int:
        return sum(1 for r in self.rows if r.error)


def component_names(rows: Sequence[SweepRow]) -> list[str]:
    """Every component any of `rows` has, in order of first appearance."""
    seen: dict[str, None] = {}
    for row in rows:
        if row.estimate is not None:
            seen |= dict.fromkeys(c.name for c in row.estimate.components)
    return list(seen)


def _axes(
    task: Task, options: Mapping[str, Values], keywords: tuple[str, ...] = ()
) -> dict[str, list[Any]]:
    axes: dict[str, list[Any]] = {}
    for name, raw in options.items():
        option = option_for(name, task, keywords)
        items = raw if isinstance(raw, list | tuple) else [raw]
        values: list[Any] = []
        for item in items:
            values.extend(parse_values(option, item) if isinstance(item, str) else [item])
        if not values:
            raise VramcalcError(f"--{option.flag}: no values")
        axes[option.keyword] = list(dict.fromkeys(values))
    return axes


def _estimate(task: Task, source: Any, values: Mapping[str, Any]) -> Estimate:
    if task == "infer":
        return estimate_inference(source, **values)
    return estimate_training(source, **values)


def _cost(
    task: Task, spec: Any, values: Mapping[str, Any], est: Estimate, question: CostQuestion
) -> TrainingCost | InferenceCost:
    """The cost of one row through vramcalc.core.cost, with the row's GPU, GPUs and context."""
    gpu = values.get("gpu")
    if gpu is None:
        raise VramcalcError("cost needs a catalog GPU (--gpu)")
    price = question.usd_per_gpu_hour
    seq = int(est.inputs["seq_len"])
    if task == "train":
        if values.get("method", "full") != "full":
            # cost.training_flops counts 6·N per token (weight gradients of every parameter);
            # LoRA skips the frozen weights' gradients, which that formula does not model
            raise VramcalcError("training cost covers full fine-tuning only (not LoRA/QLoRA)")
        dtype = precision(values.get("precision", "bf16-mixed")).compute_dtype
        assert question.tokens is not None
        return estimate_training_cost(
            spec,
            tokens=question.tokens,
            gpu=gpu,
            num_gpus=values.get("num_gpus") or 1,
            seq_len=seq,
            grad_checkpointing=values.get("grad_checkpointing", "none"),
            dtype=dtype,
            usd_per_gpu_hour=price,
        )
    assert question.output_tokens is not None
    prompt = seq - question.output_tokens
    if prompt < 1:
        raise VramcalcError(
            f"--output-tokens {question.output_tokens} leaves no prompt in a {seq}-token context"
        )
    return estimate_inference_cost(
        spec,
        gpu=gpu,
        dtype=values.get("dtype", "bf16"),
        quant=values.get("quant"),
        kv_dtype=values.get("kv_dtype"),
        batch_size=values.get("batch_size", 1),
        prompt_tokens=prompt,
        output_tokens=question.output_tokens,
        usd_per_gpu_hour=price,
        memory=False,  # the row's estimate holds it
    )


def evaluate(
    task: Task,
    model: str,
    source: Any,
    values: dict[str, Any],
    question: CostQuestion | None,
    estimate: Estimate | str | None = None,
) -> SweepRow:
    """One row: the estimate (or the library's refusal) and, if asked, its cost. `estimate` is
    the row's estimate (or refusal) when the caller already has it."""
    if estimate is None:
        try:
            estimate = _estimate(task, source, values)
        except VramcalcError as exc:
            estimate = str(exc)
    if isinstance(estimate, str):
        return SweepRow(model=model, task=task, values=values, error=estimate)
    est = estimate
    cost = cost_error = None
    if question is not None and est.gpu is not None and est.gpu.verdict == "does not fit":
        cost_error = f"cost: not priced, does not fit on {est.gpu.gpu}"
    elif question is not None:
        try:
            cost = _cost(task, source.spec, values, est, question)
        except VramcalcError as exc:
            cost_error = f"cost: {exc}"
    return SweepRow(
        model=model, task=task, values=values, estimate=est, cost=cost, cost_error=cost_error
    )


FIT_KEYWORDS = ("gpu", "gpu_mem_gib")


class _Estimates:
    """Estimates of one sweep, each computed once per model and non-GPU options: the GPU only
    decides the fit (make_estimate's ``gpu_fit`` of the total and its band), so sweeping five GPUs
    costs one estimate per point, not five. Each GPU value is validated once, as the library does."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.memo: dict[tuple[int, tuple[tuple[str, Any], ...]], Estimate | str] = {}
        self.fits: dict[tuple[Any, Any], tuple[str, int] | None] = {}

    def gpu(self, values: Mapping[str, Any]) -> tuple[str, int] | None:
        key = (values.get("gpu"), values.get("gpu_mem_gib"))
        if key not in self.fits:
            from vramcalc.core.workloads import Common, resolve_gpu, validate

            req = validate(Common, gpu=key[0], gpu_mem_gib=key[1])
            assert isinstance(req, Common)
            self.fits[key] = resolve_gpu(req.gpu, req.gpu_mem_gib)
        return self.fits[key]

    def get(self, source: Any, values: Mapping[str, Any]) -> Estimate | str:
        """The estimate of `values` (or the library's refusal as a message)."""
        fit = self.gpu(values)  # a bad GPU is the user's typo: raised, not a row
        base = {k: v for k, v in values.items() if k not in FIT_KEYWORDS}
        key = (id(source), tuple(base.items()))
        found = self.memo.get(key)
        if found is None:
            try:
                found = _estimate(self.task, source, base)
            except VramcalcError as exc:
                found = str(exc)
            self.memo[key] = found
        if isinstance(found, str) or fit is None:
            return found
        return found.model_copy(
            update={"gpu": gpu_fit(fit, found.total_bytes, found.low_bytes, found.high_bytes)}
        )


def _question(
    task: Task, tokens: str | int | None, output_tokens: str | int | None, price: float | None
) -> CostQuestion | None:
    from vramcalc.core.workloads import validate
    from vramcalc.units import parse_count

    if tokens is not None and task != "train":
        raise VramcalcError("--tokens (training tokens) asks the training cost: use --task train")
    if output_tokens is not None and task != "infer":
        raise VramcalcError("--output-tokens asks the serving cost: use --task infer")
    if tokens is None and output_tokens is None:
        if price is not None:
            raise VramcalcError(
                "--price prices a cost question: add --tokens (train) or --output-tokens (infer)"
            )
        return None
    question = validate(
        CostQuestion,
        tokens=None if tokens is None else parse_count(tokens),
        output_tokens=None if output_tokens is None else parse_count(output_tokens),
        usd_per_gpu_hour=price,
    )
    assert isinstance(question, CostQuestion)
    return question


def resolve_models(
    models: str | Sequence[Any], revision: str | None = None, offline: bool = False
) -> list[tuple[str, Any]]:
    """(name as given, resolved ModelSource) for each model; a comma string is a list."""
    from vramcalc.core.workloads import resolve_source
    from vramcalc.sources import resolve_model_source

    if isinstance(models, str):
        items: list[Any] = [m.strip() for m in models.split(",")]
    else:
        items = list(models) if isinstance(models, list | tuple) else [models]
    if not items or any(m == "" for m in items):
        raise VramcalcError(f"give one or more models, comma separated (got {models!r})")
    out = []
    for item in items:
        if isinstance(item, str):
            source = resolve_model_source(item, revision=revision, offline=offline)
        else:
            source = resolve_source(item, revision)
        out.append((item if isinstance(item, str) else source.spec.name, source))
    return out


@checked_keywords
def sweep(
    models: str | Sequence[Any],
    task: Task = "infer",
    *,
    tokens: str | int | None = None,
    output_tokens: str | int | None = None,
    usd_per_gpu_hour: float | None = None,
    revision: str | None = None,
    offline: bool = False,
    **options: Values,
) -> SweepResult:
    """Estimate every combination of `models` (names, ModelSpecs or a comma string) and option
    values. Options are the keywords of estimate_inference / estimate_training that
    :data:`vramcalc.core.sweep_options.OPTIONS` lists; each takes a value, a list, or a string in the
    CLI grammar (``"2k,8k"``, ``"1..64"`` doubling, ``"1..8:1"`` linear). A misspelt option raises
    VramcalcError with the close matches. `tokens` (train) or `output_tokens` (infer) add cost
    columns for each row's GPU.

    >>> result = sweep("llama-2-7b", seq_len="1k..4k", gpu="rtx-4090")
    >>> [(r.values["seq_len"], r.verdict) for r in result.rows]
    [(1024, 'fits'), (2048, 'fits'), (4096, 'fits')]
    """
    if task not in TASKS:
        raise VramcalcError(f"task must be infer or train (got {task!r})")
    question = _question(task, tokens, output_tokens, usd_per_gpu_hour)
    axes = _axes(task, options, _SWEEP_KEYWORDS)
    resolved = resolve_models(models, revision, offline)
    points = len(resolved)
    for axis in axes.values():
        points *= len(axis)
    if points > MAX_POINTS:
        raise VramcalcError(f"{points:,} combinations: at most {MAX_POINTS:,} per sweep")
    keys = list(axes)
    estimates = _Estimates(task)
    rows = []
    for name, source in resolved:
        for combo in itertools.product(*axes.values()):
            values = dict(zip(keys, combo, strict=True))
            est = estimates.get(source, values)
            rows.append(evaluate(task, name, source, values, question, est))
    return SweepResult(
        task=task,
        models=[name for name, _ in resolved],
        axes=axes,
        cost=question,
        rows=rows,
    )


class Comparison(BaseModel):
    """2-6 configurations side by side; differences are against the first."""

    model_config = ConfigDict(frozen=True)

    task: Task
    labels: list[str]
    rows: list[SweepRow]

    def component_names(self) -> list[str]:
        return component_names(self.rows)

    def differences(self) -> dict[str, list[int | None]]:
        """component (and ``total``) -> bytes of each configuration minus the first's."""

        def of(row: SweepRow, name: str) -> int | None:
            est = row.estimate
            if est is None:
                return None
            return est.total_bytes if name == "total" else est.component(name)

        out: dict[str, list[int | None]] = {}
        base = self.rows[0]
        for name in [*self.component_names(), "total"]:
            b = of(base, name)
            out[name] = [
                None if (v := of(r, name)) is None or b is None else v - b for r in self.rows
            ]
        return out


@checked_keywords
def compare(
    configs: Sequence[Mapping[str, Value]],
    task: Task = "infer",
    *,
    model: str | Any | None = None,
    labels: Sequence[str] | None = None,
    revision: str | None = None,
    offline: bool = False,
    **common: Value,
) -> Comparison:
    """Estimate 2-6 configurations (each a mapping of option -> one value, optionally with its own
    ``model``) over `common` options, for side-by-side reading."""
    if not 2 <= len(configs) <= 6:
        raise VramcalcError(f"compare takes 2 to 6 configurations (got {len(configs)})")
    rows = []
    for config in configs:
        chosen = dict(config)
        name = chosen.pop("model", model)
        if name is None:
            raise VramcalcError("give a MODEL, or a model in every configuration")
        axes = _axes(task, {**common, **chosen}, _COMPARE_KEYWORDS)
        many = [k for k, v in axes.items() if len(v) > 1]
        if many:
            raise VramcalcError(f"compare takes one value per option (several for {many[0]})")
        if isinstance(name, str) and "," in name:
            raise VramcalcError(f"compare takes one model per configuration (got {name!r})")
        ((given, source),) = resolve_models([name], revision, offline)
        values = {k: v[0] for k, v in axes.items()}
        rows.append(evaluate(task, given, source, values, None))
    names = list(labels) if labels else [chr(ord("A") + i) for i in range(len(rows))]
    return Comparison(task=task, labels=names, rows=rows)


_SWEEP_KEYWORDS = (
    "tokens", "output_tokens", "usd_per_gpu_hour", "revision", "offline", "task", "models"
)  # fmt: skip
_COMPARE_KEYWORDS = ("configs", "task", "model", "labels", "revision", "offline")

__all__ = ["OPTIONS", "Comparison", "SweepResult", "SweepRow", "compare", "sweep"]
