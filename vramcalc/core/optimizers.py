"""Optimizer state per parameter tensor, in the precision each implementation keeps it.

PyTorch optimizers keep their state in the parameter's dtype (fp32 master weights under autocast,
bf16 for a pure-bf16 model). Sources: torch.optim (AdamW: exp_avg, exp_avg_sq; SGD: momentum_buffer),
lion-pytorch (exp_avg), transformers.Adafactor (factored second moment: rows + cols per matrix, no
first moment by default; Shazeer & Stern 2018), bitsandbytes AdamW8bit (two uint8 states + one fp32
absmax per 256-element block; tensors under 4,096 elements stay 32-bit: ``min_8bit_size``).
"""

from __future__ import annotations

from enum import Enum
from functools import lru_cache

from vramcalc.spec.params import TensorGroup


class Optimizer(str, Enum):
    adamw = "adamw"
    adamw_fused = "adamw-fused"
    adam = "adam"
    adamw_8bit = "adamw-8bit"
    sgd = "sgd"
    sgd_momentum = "sgd-momentum"
    adafactor = "adafactor"
    lion = "lion"


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@lru_cache(maxsize=1024)
def state_bytes(groups: tuple[TensorGroup, ...], optimizer: str, state_width: int) -> int:
    """Bytes of optimizer state for the given trainable tensors (cached: sweeps repeat them)."""
    opt = Optimizer(optimizer)
    total = 0
    for g in groups:
        n = g.per_tensor_numel
        if opt in (Optimizer.adamw, Optimizer.adam, Optimizer.adamw_fused):
            per = 2 * n * state_width + (
                4 if opt is Optimizer.adamw_fused else 0
            )  # fused: step on GPU
        elif opt in (Optimizer.sgd_momentum, Optimizer.lion):
            per = n * state_width
        elif opt is Optimizer.sgd:
            per = 0
        elif opt is Optimizer.adafactor:
            per = (g.rows + g.cols if g.cols > 1 else n) * state_width
        else:  # adamw-8bit
            per = 2 * (n + 4 * _ceil_div(n, 256)) if n >= 4096 else 2 * n * 4
        total += per * g.count
    return total


@lru_cache(maxsize=1024)
def step_temporary_bytes(groups: tuple[TensorGroup, ...], optimizer: str, state_width: int) -> int:
    """Transient memory of optimizer.step(): the foreach (multi-tensor) Adam/AdamW computes
    sqrt(exp_avg_sq) for the whole parameter group at once (torch.optim.adamw._multi_tensor_adamw),
    one state-sized buffer; fused and per-tensor implementations allocate nothing that size."""
    if Optimizer(optimizer) in (Optimizer.adamw, Optimizer.adam):
        return sum(g.numel for g in groups) * state_width
    return 0
