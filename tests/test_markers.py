"""The fast lane's markers are read from the source (tests/conftest.py): check the reader."""

from __future__ import annotations

from pathlib import Path

from conftest import _SLOW_IN_BODY, _TORCH_IN_BODY, _module_imports_torch, _uses

HERE = Path(__file__).resolve().parent


def test_module_level_torch_imports_mark_the_module() -> None:
    assert _module_imports_torch(HERE / "test_trace.py")  # torch = pytest.importorskip("torch")
    assert _module_imports_torch(HERE / "test_suite.py")  # from vramcalc.measure import ...
    assert not _module_imports_torch(HERE / "test_layers.py")


def test_a_helper_that_builds_a_transformers_model_marks_its_callers() -> None:
    # the test calls build(cfg), a helper of its module that imports transformers
    dense = HERE / "test_hf_config_dense.py"
    assert _uses(_TORCH_IN_BODY, dense, "test_params_and_cache_match_transformers")


def test_subprocess_tests_are_slow_and_plain_ones_are_not() -> None:
    api = HERE / "test_api.py"
    assert _uses(_SLOW_IN_BODY, api, "test_import_vramcalc_loads_nothing_heavy")
    assert not _uses(_SLOW_IN_BODY, api, "test_api_estimate_by_hand")
    assert not _uses(_TORCH_IN_BODY, api, "test_api_estimate_by_hand")
