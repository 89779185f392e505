"""The public library in one module: what ``import vramcalc`` offers (loaded on first use).

Every function takes plain values or the spec models and returns typed results whose parts add up
to their totals; bad input raises :class:`VramcalcError` (one line saying what is valid)::

    from vramcalc import api
    est = api.estimate_inference("llama-2-7b", dtype="int8", batch_size=4, seq_len=4096)
    est.total_bytes, [(c.name, c.bytes) for c in est.components]

Layers (tests/test_layers.py): api sits above spec/, sources/ and core/ and below report/ and
cli/; it renders nothing and imports neither rich, typer nor torch.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from vramcalc.core import fitting, sweeps
from vramcalc.core.cost import (
    InferenceCost,
    TrainingCost,
    estimate_inference_cost,
    estimate_training_cost,
)
from vramcalc.core.fitting import FitResult, Plan, PlanRow
from vramcalc.core.inference import estimate_inference
from vramcalc.core.results import Component, Estimate, GPUFit, Saving, ServingSummary
from vramcalc.core.rlhf import RlhfEstimate, estimate_rlhf
from vramcalc.core.serving import LlamaCppOptions, SglangOptions, VllmOptions, estimate_serving
from vramcalc.core.serving.planning import engine_fit, engine_plan
from vramcalc.core.sweeps import Comparison, SweepResult, SweepRow
from vramcalc.core.training import estimate_training
from vramcalc.errors import VramcalcError
from vramcalc.sources import ModelSource, resolve_model_source
from vramcalc.sources.presets import get_gpu, get_model, list_gpus, list_models
from vramcalc.spec.model import GPUSpec, ModelSpec
from vramcalc.spec.params import param_count
from vramcalc.spec.task import TASK_VERBS, TASKS, Task, parse_task

F = TypeVar("F", bound=Callable[..., Any])


def _either_task_spelling(fn: F) -> F:
    """`fn` (whose `task` is spelt infer | train, as the commands are named) reading the task
    vocabulary too: task="inference" and task="training" mean the same jobs (spec/task.py)."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return fn(*args, **kwargs)  # fn's own error (checked_keywords names close matches)
        task = bound.arguments.get("task")
        if isinstance(task, str):
            bound.arguments["task"] = TASK_VERBS[parse_task(task)]
        return fn(*bound.args, **bound.kwargs)

    return wrapper  # type: ignore[return-value]


fit = _either_task_spelling(fitting.fit)
plan = _either_task_spelling(fitting.plan)
sweep = _either_task_spelling(sweeps.sweep)
compare = _either_task_spelling(sweeps.compare)

__all__ = [
    "TASKS",
    "Comparison",
    "Component",
    "Estimate",
    "FitResult",
    "GPUFit",
    "GPUSpec",
    "InferenceCost",
    "LlamaCppOptions",
    "ModelSource",
    "ModelSpec",
    "Plan",
    "PlanRow",
    "RlhfEstimate",
    "Saving",
    "ServingSummary",
    "SglangOptions",
    "SweepResult",
    "SweepRow",
    "Task",
    "TrainingCost",
    "VllmOptions",
    "VramcalcError",
    "compare",
    "engine_fit",
    "engine_plan",
    "estimate_inference",
    "estimate_inference_cost",
    "estimate_rlhf",
    "estimate_serving",
    "estimate_training",
    "estimate_training_cost",
    "fit",
    "get_gpu",
    "get_model",
    "list_gpus",
    "list_models",
    "param_count",
    "parse_task",
    "plan",
    "resolve_model_source",
    "sweep",
]
