"""vramcalc: how much GPU memory (and money) serving or training a large language model takes."""

from .presets import get_gpu, get_model, list_gpus, list_models
from .specs import GPUSpec, ModelSpec

__all__ = ["GPUSpec", "ModelSpec", "get_gpu", "get_model", "list_gpus", "list_models"]
__version__ = "0.1.0"
