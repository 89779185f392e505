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

# public name -> submodule that defines it (no public name is also a submodule's name: importing
# that submodule would bind the module over the function, e.g. `vramcalc.fit` before the rename
# of fit.py to fitting.py)
_EXPORTS = {
    "estimate_inference": "core.inference",
    "estimate_training": "core.training",
    "estimate_rlhf": "core.rlhf",
    "estimate_training_cost": "core.cost",
    "estimate_inference_cost": "core.cost",
    "fit": "core.fitting",
    "plan": "core.fitting",
    "resolve_model_source": "sources",
    "Estimate": "core.results",
    "Component": "core.results",
    "GPUFit": "core.results",
    "ModelSpec": "spec.model",
    "GPUSpec": "spec.model",
    "get_model": "sources.presets",
    "list_models": "sources.presets",
    "get_gpu": "sources.presets",
    "list_gpus": "sources.presets",
    "param_count": "spec.params",
    "VramcalcError": "errors",
    "Saving": "core.results",
    "TrainingCost": "core.cost",
    "InferenceCost": "core.cost",
    "FitResult": "core.fitting",
    "Plan": "core.fitting",
    "PlanRow": "core.fitting",
    "RlhfEstimate": "core.rlhf",
    "sweep": "core.sweeps",
    "compare": "core.sweeps",
    "SweepResult": "core.sweeps",
    "SweepRow": "core.sweeps",
    "Comparison": "core.sweeps",
    "estimate_serving": "core.serving",
    "VllmOptions": "core.serving",
    "SglangOptions": "core.serving",
    "LlamaCppOptions": "core.serving",
    "ServingSummary": "core.results",
    "engine_fit": "core.serving.planning",
    "engine_plan": "core.serving.planning",
}

__all__ = [
    "Comparison",
    "Component",
    "Estimate",
    "GPUFit",
    "FitResult",
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
    from vramcalc.core.cost import (
        InferenceCost,
        TrainingCost,
        estimate_inference_cost,
        estimate_training_cost,
    )
    from vramcalc.core.fitting import FitResult, Plan, PlanRow, fit, plan
    from vramcalc.core.inference import estimate_inference
    from vramcalc.core.results import Component, Estimate, GPUFit, Saving, ServingSummary
    from vramcalc.core.rlhf import RlhfEstimate, estimate_rlhf
    from vramcalc.core.serving import (
        LlamaCppOptions,
        SglangOptions,
        VllmOptions,
        estimate_serving,
    )
    from vramcalc.core.serving.planning import engine_fit, engine_plan
    from vramcalc.core.sweeps import Comparison, SweepResult, SweepRow, compare, sweep
    from vramcalc.core.training import estimate_training
    from vramcalc.errors import VramcalcError
    from vramcalc.sources import resolve_model_source
    from vramcalc.sources.presets import get_gpu, get_model, list_gpus, list_models
    from vramcalc.spec.model import GPUSpec, ModelSpec
    from vramcalc.spec.params import param_count


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vramcalc' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
