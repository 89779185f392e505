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
    "estimate_inference": "inference",
    "estimate_training": "training",
    "estimate_rlhf": "rlhf",
    "estimate_training_cost": "cost",
    "estimate_inference_cost": "cost",
    "fit": "fitting",
    "plan": "fitting",
    "resolve_model_source": "sources",
    "Estimate": "results",
    "Component": "results",
    "GPUFit": "results",
    "ModelSpec": "specs",
    "GPUSpec": "specs",
    "get_model": "presets",
    "list_models": "presets",
    "get_gpu": "presets",
    "list_gpus": "presets",
    "param_count": "params",
    "VramcalcError": "errors",
    "Saving": "results",
    "TrainingCost": "cost",
    "InferenceCost": "cost",
    "FitResult": "fitting",
    "Plan": "fitting",
    "PlanRow": "fitting",
    "RlhfEstimate": "rlhf",
    "sweep": "sweeps",
    "compare": "sweeps",
    "SweepResult": "sweeps",
    "SweepRow": "sweeps",
    "Comparison": "sweeps",
}

__all__ = [
    "Comparison",
    "Component",
    "Estimate",
    "GPUFit",
    "FitResult",
    "GPUSpec",
    "InferenceCost",
    "ModelSpec",
    "Plan",
    "PlanRow",
    "RlhfEstimate",
    "Saving",
    "SweepResult",
    "SweepRow",
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
    "plan",
    "resolve_model_source",
    "sweep",
]

if TYPE_CHECKING:  # pragma: no cover
    from .cost import (
        InferenceCost,
        TrainingCost,
        estimate_inference_cost,
        estimate_training_cost,
    )
    from .errors import VramcalcError
    from .fitting import FitResult, Plan, PlanRow, fit, plan
    from .inference import estimate_inference
    from .params import param_count
    from .presets import get_gpu, get_model, list_gpus, list_models
    from .results import Component, Estimate, GPUFit, Saving
    from .rlhf import RlhfEstimate, estimate_rlhf
    from .sources import resolve_model_source
    from .specs import GPUSpec, ModelSpec
    from .sweeps import Comparison, SweepResult, SweepRow, compare, sweep
    from .training import estimate_training


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vramcalc' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
