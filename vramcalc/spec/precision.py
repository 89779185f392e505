"""Training precision as one value: which dtype each kind of tensor is kept in.

Every module that needs "how wide is a parameter / gradient / optimizer state / saved activation
under --precision X" or "which peak TFLOP/s applies" reads it from :func:`precision`, instead of
mapping the name by hand (the hand mappings had drifted: pure fp16 was priced at the bf16 peak in
rlhf and at fp16 in fit).

Names follow PyTorch Lightning's ``precision=`` strings, as users write them:

* ``fp32``: everything fp32.
* ``bf16-mixed`` / ``fp16-mixed``: ``torch.autocast``. Parameters stay fp32 (they are the master
  weights), gradients and optimizer state are fp32, matmuls run in 16-bit on weight copies that
  autocast caches, and the residual stream stays fp32 while matmul outputs are 16-bit
  (torch.amp docs, "Autocast Op Reference"). Engines that keep 16-bit parameters beside fp32
  masters (DeepSpeed, FSDP ``MixedPrecision``, Megatron) are a layout of the framework, not of the
  precision: see the training layouts.
* ``bf16`` / ``fp16``: parameters, gradients and optimizer state all 16-bit (torch keeps optimizer
  state in the parameter's dtype), no autocast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vramcalc.errors import VramcalcError

PrecisionName = Literal["fp32", "bf16-mixed", "fp16-mixed", "bf16", "fp16"]
PRECISION_NAMES: tuple[PrecisionName, ...] = ("fp32", "bf16-mixed", "fp16-mixed", "bf16", "fp16")

# bytes per element of the dtypes a precision names
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


@dataclass(frozen=True, slots=True)
class Precision:
    """The dtypes of one training precision (names as in DTYPE_BYTES)."""

    name: PrecisionName
    param_dtype: str  # the trainable parameters as stored (the master copy under autocast)
    grad_dtype: str
    optimizer_state_dtype: str
    compute_dtype: str  # matmul inputs and outputs: saved activations, the peak TFLOP/s row
    residual_dtype: str  # the residual stream between layers (fp32 under autocast)
    autocast: bool  # torch.autocast caches 16-bit copies of the matmul weights

    @property
    def mixed(self) -> bool:
        return self.autocast

    @property
    def param_bytes(self) -> int:
        return DTYPE_BYTES[self.param_dtype]

    @property
    def grad_bytes(self) -> int:
        return DTYPE_BYTES[self.grad_dtype]

    @property
    def optimizer_state_bytes(self) -> int:
        """Width of one optimizer state element (AdamW keeps two per parameter)."""
        return DTYPE_BYTES[self.optimizer_state_dtype]

    @property
    def compute_bytes(self) -> int:
        return DTYPE_BYTES[self.compute_dtype]

    @property
    def residual_bytes(self) -> int:
        return DTYPE_BYTES[self.residual_dtype]

    @property
    def half_dtype(self) -> str:
        """The 16-bit dtype a frozen or sharded-engine copy of the weights takes (fp32 stays fp32)."""
        return self.compute_dtype


_PRECISIONS = {
    "fp32": Precision("fp32", "fp32", "fp32", "fp32", "fp32", "fp32", False),
    "bf16-mixed": Precision("bf16-mixed", "fp32", "fp32", "fp32", "bf16", "fp32", True),
    "fp16-mixed": Precision("fp16-mixed", "fp32", "fp32", "fp32", "fp16", "fp32", True),
    "bf16": Precision("bf16", "bf16", "bf16", "bf16", "bf16", "bf16", False),
    "fp16": Precision("fp16", "fp16", "fp16", "fp16", "fp16", "fp16", False),
}


def precision(name: str | Precision) -> Precision:
    """The Precision of a --precision name (a Precision is returned as is)."""
    if isinstance(name, Precision):
        return name
    found = _PRECISIONS.get(name)
    if found is None:
        raise VramcalcError(
            f"precision {name!r} is not known: use one of {', '.join(PRECISION_NAMES)}"
        )
    return found
