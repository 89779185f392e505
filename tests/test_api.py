"""vramcalc.api is the public library in one module; ``import vramcalc`` loads it on first use."""

from __future__ import annotations

import subprocess
import sys

import pytest

import vramcalc
import vramcalc.api as api


def test_package_exports_are_the_api_objects() -> None:
    assert set(vramcalc.__all__) <= set(api.__all__)
    for name in vramcalc.__all__:
        assert getattr(vramcalc, name) is getattr(api, name), name


def test_api_all_names_exist() -> None:
    missing = [name for name in api.__all__ if not hasattr(api, name)]
    assert missing == []


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'estimate_everything'"):
        vramcalc.estimate_everything  # noqa: B018


def test_api_estimate_by_hand() -> None:
    # weights only: 7,000,000,000 params × 2 B (bf16) = 14,000,000,000 B
    est = api.estimate_inference(params="7B")
    assert est.total_bytes == 14_000_000_000 and est.weights_only
    assert api.parse_task("infer") == "inference"


def test_import_vramcalc_loads_nothing_heavy() -> None:
    """``import vramcalc`` stays cheap: not even the api (pydantic models) until a name is used."""
    code = (
        "import sys, vramcalc\n"
        "print(sorted(m for m in ('vramcalc.api', 'pydantic', 'rich', 'typer', 'torch') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
