"""vramcalc: how much GPU memory (and money) serving or training a large language model takes.

The public API is re-exported here and loaded on first use, so ``import vramcalc`` stays cheap::

    import vramcalc
    est = vramcalc.estimate_inference("llama-2-7b", dtype="int8", batch_size=4, seq_len=4096)
    est.total_bytes, [(c.name, c.bytes) for c in est.components]
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public names come from vramcalc.api, imported on first use (it imports the whole library)
__all__ = [
    "Comparison",
    "Component",
    "Estimate",
    "FitResult",
    "GPUFit",
    "GPUSpec",
    "InferenceCost",
    "LlamaCppOptions",
    "ModelSpec",
    "Plan",
    "PlanRow",
    "RlhfEstimate",
    "Saving",
    "ServingSummary",
    "SglangOptions",
    "SweepResult",
    "SweepRow",
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
    "plan",
    "resolve_model_source",
    "sweep",
]

if TYPE_CHECKING:  # pragma: no cover
    from vramcalc.api import (
        Comparison,
        Component,
        Estimate,
        FitResult,
        GPUFit,
        GPUSpec,
        InferenceCost,
        LlamaCppOptions,
        ModelSpec,
        Plan,
        PlanRow,
        RlhfEstimate,
        Saving,
        ServingSummary,
        SglangOptions,
        SweepResult,
        SweepRow,
        TrainingCost,
        VllmOptions,
        VramcalcError,
        compare,
        engine_fit,
        engine_plan,
        estimate_inference,
        estimate_inference_cost,
        estimate_rlhf,
        estimate_serving,
        estimate_training,
        estimate_training_cost,
        fit,
        get_gpu,
        get_model,
        list_gpus,
        list_models,
        param_count,
        plan,
        resolve_model_source,
        sweep,
    )


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'vramcalc' has no attribute {name!r}")
    value = getattr(importlib.import_module("vramcalc.api"), name)
    globals()[name] = value
    return value
