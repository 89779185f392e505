"""The Precision value object: widths per tensor kind, by hand from the torch.amp rules."""

import pytest

from vramcalc.errors import VramcalcError
from vramcalc.spec.precision import PRECISION_NAMES, precision


@pytest.mark.parametrize(
    ("name", "param", "grad", "state", "compute", "residual", "autocast"),
    [
        # autocast: fp32 masters/grads/state, 16-bit matmuls, fp32 residual stream
        ("bf16-mixed", 4, 4, 4, 2, 4, True),
        ("fp16-mixed", 4, 4, 4, 2, 4, True),
        ("fp32", 4, 4, 4, 4, 4, False),
        # pure 16-bit: torch keeps the optimizer state in the parameter's dtype
        ("bf16", 2, 2, 2, 2, 2, False),
        ("fp16", 2, 2, 2, 2, 2, False),
    ],
)
def test_widths(name, param, grad, state, compute, residual, autocast) -> None:
    p = precision(name)
    assert (p.param_bytes, p.grad_bytes, p.optimizer_state_bytes) == (param, grad, state)
    assert (p.compute_bytes, p.residual_bytes, p.autocast) == (compute, residual, autocast)


def test_pure_fp16_math_is_fp16_not_bf16() -> None:
    """The bug the hand mappings had: pure fp16 priced at the bf16 peak."""
    assert precision("fp16").compute_dtype == "fp16"
    assert precision("fp16-mixed").compute_dtype == "fp16"
    assert precision("bf16").compute_dtype == "bf16"


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(VramcalcError, match="fp8"):
        precision("fp8")
    with pytest.raises(VramcalcError) as exc:
        precision("fp8")
    assert all(n in str(exc.value) for n in PRECISION_NAMES)


def test_value_passes_through() -> None:
    p = precision("bf16-mixed")
    assert precision(p) is p
