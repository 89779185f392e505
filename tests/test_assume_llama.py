"""An unmapped architecture is refused; --assume-llama reads it as Llama, labelled rough."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vramcalc.core.fitting import fit
from vramcalc.core.inference import estimate_inference
from vramcalc.core.results import ROUGH_BAND_FACTOR, gpu_fit
from vramcalc.core.training import estimate_training
from vramcalc.errors import VramcalcError
from vramcalc.sources import resolve_model_source
from vramcalc.sources.hf_config import spec_from_config

# an unmapped config asks transformers about its model_type first (the exact route)
pytestmark = pytest.mark.torch

# A 7B-shaped config under a model_type vramcalc does not map.
UNMAPPED: dict[str, Any] = {
    "model_type": "brand_new_lm",
    "vocab_size": 32000,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "max_position_embeddings": 4096,
}


def test_unmapped_architecture_is_refused_with_both_ways_out() -> None:
    with pytest.raises(VramcalcError) as err:
        spec_from_config(UNMAPPED, "x")
    message = str(err.value)
    assert "'brand_new_lm' is not mapped" in message
    assert 'pip install "vramcalc[torch]"' in message and "--assume-llama" in message
    assert "\n" not in message


def test_assume_llama_labels_the_spec() -> None:
    spec, notes = spec_from_config(UNMAPPED, "x", assume_llama=True)
    assert spec.assumed_architecture == "brand_new_lm"
    assert any(n.startswith("ROUGH ESTIMATE") for n in notes)
    # Llama-2-7B layout: 6,738,415,616 parameters (the llama-2-7b preset's count)
    from vramcalc.spec.params import param_count

    assert param_count(spec) == 6_738_415_616


@pytest.mark.parametrize(
    "extra",
    [
        {"num_local_experts": 8},
        {"n_routed_experts": 64},
        {"multi_query": True},
        {"state_size": 16},
    ],
)
def test_assume_llama_refuses_what_llama_cannot_read(extra: dict[str, Any]) -> None:
    with pytest.raises(VramcalcError, match="cannot honour"):
        spec_from_config(UNMAPPED | extra, "x", assume_llama=True)


def test_mapped_architecture_is_not_labelled() -> None:
    spec, _ = spec_from_config(UNMAPPED | {"model_type": "llama"}, "x", assume_llama=True)
    assert spec.assumed_architecture is None


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "config.json").write_text(json.dumps(UNMAPPED))
    return tmp_path


def test_rough_estimate_band_and_verdict(folder: Path) -> None:
    source = resolve_model_source(str(folder), assume_llama=True)
    est = estimate_inference(source, gpu="h100")
    assert est.assumed_architecture == "brand_new_lm" and not est.exact_architecture
    # the band is at least a factor of two either way
    assert est.low_bytes <= est.total_bytes / ROUGH_BAND_FACTOR
    assert est.high_bytes >= est.total_bytes * ROUGH_BAND_FACTOR
    # ~15.5 GiB on an 80 GB H100: exact would say "fits"; rough says "may fit"
    assert est.gpu is not None and est.gpu.verdict == "may fit"
    exact = estimate_inference("llama-2-7b", gpu="h100", seq_len=4096)
    assert exact.gpu is not None and exact.gpu.verdict == "fits"
    assert exact.total_bytes == est.total_bytes  # same arithmetic, only the label differs
    train = estimate_training(str(folder), assume_llama=True, gpu="h100")
    assert train.assumed_architecture == "brand_new_lm" and train.gpu is not None
    assert train.gpu.verdict in ("may fit", "does not fit")


def test_library_keyword_on_estimates(folder: Path) -> None:
    # refused (by hf_config, or by the exact route when torch is installed: transformers has no
    # such model_type); both name --assume-llama
    with pytest.raises(VramcalcError, match="--assume-llama"):
        estimate_inference(str(folder))
    assert estimate_inference(str(folder), assume_llama=True).assumed_architecture


def test_gpu_fit_never_fits_when_rough() -> None:
    gib = 1 << 30
    assert gpu_fit(("g", 80 * gib), gib, gib, gib).verdict == "fits"  # type: ignore[union-attr]
    rough = gpu_fit(("g", 80 * gib), gib, gib, gib, rough=True)
    assert rough is not None and rough.verdict == "may fit"
    short = gpu_fit(("g", 80 * gib), 90 * gib, 85 * gib, 180 * gib, rough=True)
    assert short is not None and short.verdict == "does not fit"


def test_fit_searches_at_twice_the_estimate(folder: Path) -> None:
    source = resolve_model_source(str(folder), assume_llama=True)
    rough = fit(source.spec, "h100", seq_len=4096)
    exact = fit("llama-2-7b", "h100", seq_len=4096)
    assert rough.assumed_architecture == "brand_new_lm"
    assert 0 < rough.max_batch_size < exact.max_batch_size


def test_cli_refuses_then_labels(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vramcalc.cli.app import main

    with pytest.raises(SystemExit) as exc:
        main(["infer", str(folder)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--assume-llama" in err
    for args in (
        ["infer", str(folder), "--gpu", "h100"],
        ["train", str(folder)],
        ["fit", str(folder), "--gpu", "h100"],
        ["plan", str(folder)],
        ["cost", "infer", str(folder), "--gpu", "h100"],
        ["rlhf", str(folder), "--stage", "sft"],
        ["inspect", str(folder)],
    ):
        with pytest.raises(SystemExit) as exc:
            main([*args, "--assume-llama", "--json"])
        assert exc.value.code in (0, None), args
        out = capsys.readouterr().out
        assert "brand_new_lm" in out, args
