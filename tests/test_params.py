"""Exact parameter counts: by hand, and against transformers built on the meta device."""

from __future__ import annotations

import pytest

import vramcalc
from vramcalc.spec.hfconfig import hf_config_dict
from vramcalc.spec.model import ModelSpec
from vramcalc.spec.params import active_param_count, param_count, tensor_groups


def test_tiny_llama_by_hand(tiny_llama: ModelSpec) -> None:
    # embed 100×16 = 1600; per layer: q 16×16=256, k,v 8×16=128 each, o 256 -> 768;
    # MLP 3×16×32 = 1536; 2 RMSNorms 32 -> 2336 per layer ×2 = 4672; final norm 16; lm_head 1600
    assert param_count(tiny_llama) == 1600 + 4672 + 16 + 1600 == 7888


def test_published_counts() -> None:
    # Llama-2-7B: 6,738,415,616 (the count transformers reports); GPT-2: 124,439,808 (nanoGPT)
    assert param_count(vramcalc.get_model("llama-2-7b")) == 6_738_415_616
    assert param_count(vramcalc.get_model("gpt2")) == 124_439_808
    # GPT-3 family (REFERENCES.md: built as GPT-2-style models)
    assert param_count(vramcalc.get_model("gpt3-175b")) == 174_604_259_328
    assert param_count(vramcalc.get_model("instructgpt-1.3b")) == 1_315_723_264
    assert param_count(vramcalc.get_model("instructgpt-6b")) == 6_658_404_352


def test_mixtral_active_params() -> None:
    spec = vramcalc.get_model("mixtral-8x7b")
    # per layer experts: 8 × 3 × 4096 × 14336; active: 2 of 8
    expert = 3 * 4096 * 14336 * 32
    assert param_count(spec) - active_param_count(spec) == expert * 8 - expert * 2
    assert round(active_param_count(spec) / 1e9, 1) == 12.9  # "12.9B active" (Mistral AI)


def test_tied_embeddings_counted_once() -> None:
    spec = vramcalc.get_model("qwen2.5-0.5b")
    assert spec.tie_word_embeddings
    assert not any(g.kind == "lm_head" for g in tensor_groups(spec))


@pytest.mark.parametrize("name", [m.name for m in vramcalc.list_models()])
def test_count_matches_transformers(name: str) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    spec = vramcalc.get_model(name)
    cfg = hf_config_dict(spec)
    config = transformers.AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    assert param_count(spec) == sum(p.numel() for p in model.parameters())
