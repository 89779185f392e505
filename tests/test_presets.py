from __future__ import annotations

from pathlib import Path

import pytest

import vramcalc
from vramcalc.errors import PresetError, UnknownNameError
from vramcalc.sources.presets import load_toml, presets_dir
from vramcalc.spec.model import ModelSpec

REQUIRED = [
    "gpt2",
    "gpt2-medium",
    "gpt2-large",
    "gpt2-xl",
    "gpt3-175b",
    "instructgpt-1.3b",
    "instructgpt-6b",
    "llama-2-7b",
    "llama-2-13b",
    "llama-2-70b",
    "llama-3.1-8b",
    "llama-3.1-70b",
    "llama-3.1-405b",
    "mistral-7b",
    "mixtral-8x7b",
    "qwen2.5-0.5b",
    "qwen2.5-7b",
    "qwen2.5-72b",
    "gemma-2-9b",
    "gemma-2-27b",
    "phi-3-mini",
    "tinyllama-1.1b",
]


@pytest.mark.parametrize("name", REQUIRED)
def test_required_presets_exist_with_source(name: str) -> None:
    spec = vramcalc.get_model(name)
    assert spec.source


@pytest.mark.parametrize(
    "alias", ["llama-2-7b", "llama2-7b", "LLAMA-2-7B", "meta-llama/Llama-2-7b-hf", "Llama-2-7b-hf"]
)
def test_aliases_resolve(alias: str) -> None:
    assert vramcalc.get_model(alias).name == "llama-2-7b"


def test_unknown_model_suggests() -> None:
    with pytest.raises(UnknownNameError) as err:
        vramcalc.get_model("llama-2-7x")
    assert "llama-2-7b" in err.value.suggestions


def test_broken_preset_names_file_and_field(tmp_path: Path) -> None:
    good = (presets_dir() / "models" / "llama-2-7b.toml").read_text()
    bad = tmp_path / "broken.toml"
    bad.write_text(good.replace("hidden_size = 4096\n", ""))
    with pytest.raises(PresetError, match=r"broken\.toml.*hidden_size"):
        load_toml(bad, ModelSpec)
    bad.write_text(good.replace("num_layers = 32", "num_layers = -1"))
    with pytest.raises(PresetError, match="num_layers"):
        load_toml(bad, ModelSpec)
    bad.write_text(good + "\nhiden_size = 3\n")  # typo: unknown keys are rejected
    with pytest.raises(PresetError, match="hiden_size"):
        load_toml(bad, ModelSpec)


def test_gpu_presets() -> None:
    assert vramcalc.get_gpu("h100").memory_bytes == 81559 * 2**20
    assert vramcalc.get_gpu("A100-80GB").memory_bytes == 80 * 2**30
