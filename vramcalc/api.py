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

from vramcalc.core.cost import (
    InferenceCost,
    TrainingCost,
    estimate_inference_cost,
    estimate_training_cost,
)
from vramcalc.core.fitting import FitResult, Plan, PlanRow, fit, plan
from vramcalc.core.inference import estimate_inference
from vramcalc.core.results import Component, Estimate, GPUFit, Saving
from vramcalc.core.rlhf import RlhfEstimate, estimate_rlhf
from vramcalc.core.sweeps import Comparison, SweepResult, SweepRow, compare, sweep
from vramcalc.core.training import estimate_training
from vramcalc.errors import VramcalcError
from vramcalc.sources import ModelSource, resolve_model_source
from vramcalc.sources.presets import get_gpu, get_model, list_gpus, list_models
from vramcalc.spec.model import GPUSpec, ModelSpec
from vramcalc.spec.params import param_count
from vramcalc.spec.task import TASKS, Task, parse_task

__all__ = [
    "TASKS",
    "Comparison",
    "Component",
    "Estimate",
    "FitResult",
    "GPUFit",
    "GPUSpec",
    "InferenceCost",
    "ModelSource",
    "ModelSpec",
    "Plan",
    "PlanRow",
    "RlhfEstimate",
    "Saving",
    "SweepResult",
    "SweepRow",
    "Task",
    "TrainingCost",
    "VramcalcError",
    "compare",
    "estimate_inference",
    "estimate_inference_cost",
    "estimate_rlhf",
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
