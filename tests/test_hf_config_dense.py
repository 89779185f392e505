"""Dense families of hf_config/dense.py against transformers on the meta device: parameters to the
element, and the KV cache the model really holds per token (a meta-device forward)."""

from __future__ import annotations

from typing import Any

import pytest

from vramcalc.errors import VramcalcError
from vramcalc.params import param_count
from vramcalc.sources.hf_config import spec_from_config
from vramcalc.sources.hf_config.dense import BUILDERS

# Small configs in each family's own field names; pad_token_id 0 where the default exceeds vocab.
_L = {
    "vocab_size": 128,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
    "pad_token_id": 0,
}
_GPT = {"vocab_size": 128, "n_embd": 64, "n_layer": 3, "n_head": 4, "n_positions": 96}
CONFIGS: dict[str, dict[str, Any]] = {
    "phi": _L | {"model_type": "phi"},
    "phi-qk-layernorm": _L
    | {"model_type": "phi", "qk_layernorm": True, "partial_rotary_factor": 0.5},
    "gpt_bigcode": _GPT | {"model_type": "gpt_bigcode"},
    "gpt_bigcode-mha": _GPT | {"model_type": "gpt_bigcode", "multi_query": False, "n_inner": 80},
    "starcoder2": _L | {"model_type": "starcoder2", "sliding_window": 32},
    "starcoder2-nobias": _L | {"model_type": "starcoder2", "use_bias": False},
    "gpt_neo": {
        "model_type": "gpt_neo",
        "vocab_size": 128,
        "hidden_size": 64,
        "num_layers": 2,
        "num_heads": 4,
        "max_position_embeddings": 96,
        "attention_types": [[["global", "local"], 1]],
        "window_size": 8,
    },
    "gptj": _GPT | {"model_type": "gptj", "rotary_dim": 8},
    "codegen": _GPT | {"model_type": "codegen", "rotary_dim": 8, "n_inner": 80},
    "bloom": {
        "model_type": "bloom",
        "vocab_size": 128,
        "hidden_size": 64,
        "n_layer": 3,
        "n_head": 4,
    },
    "mpt": {"model_type": "mpt", "vocab_size": 128, "d_model": 64, "n_layers": 3, "n_heads": 4},
    "stablelm": _L | {"model_type": "stablelm", "use_qkv_bias": True, "qk_layernorm": True},
    "stablelm-parallel": _L | {"model_type": "stablelm", "use_parallel_residual": True},
    "olmo": _L | {"model_type": "olmo", "attention_bias": True},
    "olmo2": _L | {"model_type": "olmo2"},
    "cohere": _L | {"model_type": "cohere", "use_qk_norm": True},
    "cohere-bias": _L
    | {"model_type": "cohere", "attention_bias": True, "tie_word_embeddings": False},
    "cohere2": _L | {"model_type": "cohere2", "sliding_window": 16, "num_hidden_layers": 8},
    "granite": _L | {"model_type": "granite", "attention_bias": True, "mlp_bias": True},
    "glm": _L | {"model_type": "glm", "head_dim": 16},
    "glm-nobias": _L | {"model_type": "glm", "head_dim": 24, "attention_bias": False},
    "glm4": _L | {"model_type": "glm4", "head_dim": 16},
    "nemotron": _L | {"model_type": "nemotron", "head_dim": 24, "mlp_bias": True},
    "persimmon": _L | {"model_type": "persimmon"},
    "persimmon-no-qk": _L | {"model_type": "persimmon", "qk_layernorm": False},
    "exaone4": _L | {"model_type": "exaone4", "head_dim": 16, "sliding_window": 16},
    "exaone4-types": _L
    | {
        "model_type": "exaone4",
        "sliding_window": 16,
        "layer_types": ["sliding_attention", "full_attention", "full_attention"],
    },
    "ernie4_5": _L | {"model_type": "ernie4_5", "head_dim": 16, "use_bias": True},
    "minicpm3": _L
    | {
        "model_type": "minicpm3",
        "num_key_value_heads": 4,
        "q_lora_rank": 24,
        "kv_lora_rank": 16,
        "qk_nope_head_dim": 16,
        "qk_rope_head_dim": 8,
        "v_head_dim": 12,
    },
    "minicpm3-no-q-lora": _L
    | {
        "model_type": "minicpm3",
        "num_key_value_heads": 4,
        "q_lora_rank": None,
        "kv_lora_rank": 16,
        "qk_nope_head_dim": 16,
        "qk_rope_head_dim": 8,
        "attention_bias": True,
    },
    "smollm3": _L | {"model_type": "smollm3"},
    "smollm3-window": _L
    | {
        "model_type": "smollm3",
        "use_sliding_window": True,
        "sliding_window": 16,
        "num_hidden_layers": 8,
    },
}


def test_every_dense_family_is_tested() -> None:
    assert set(BUILDERS) <= {cfg["model_type"] for cfg in CONFIGS.values()}


def build(cfg: dict[str, Any]) -> Any:
    """The transformers model of `cfg`, on the meta device."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    cfg = dict(cfg)
    config = transformers.AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    with torch.device("meta"):
        return transformers.AutoModelForCausalLM.from_config(config)


def cache_per_token(model: Any, tokens: int = 5) -> tuple[float, int]:
    """Cache elements per token the model holds after a meta-device forward of `tokens` tokens
    (fewer than any window here), and how many of its cache layers are sliding-window layers."""
    import torch

    ids = torch.zeros((1, tokens), dtype=torch.long, device="meta")
    out = model(input_ids=ids, use_cache=True)
    cache = getattr(out, "cache", None) or out.past_key_values
    total = sliding = 0
    for layer in cache.layers:
        total += layer.keys.numel() + layer.values.numel()
        sliding += "Sliding" in type(layer).__name__
    return total / tokens, sliding


@pytest.mark.parametrize("key", sorted(CONFIGS))
def test_params_and_cache_match_transformers(key: str) -> None:
    cfg = CONFIGS[key]
    spec, _ = spec_from_config(cfg, key)
    model = build(cfg)
    assert param_count(spec) == sum(p.numel() for p in model.parameters())
    if spec.is_mla:
        # transformers' eager MiniCPM3 caches expanded keys and values; vramcalc counts the
        # latent kv_lora_rank + rotary key per layer, as vLLM stores MLA (see ModelSpec)
        assert spec.kv_cache_width == 16 + 8
        return
    per_token, sliding = cache_per_token(model)
    assert spec.num_layers * spec.kv_cache_width == per_token
    if sliding:  # the layers transformers gives a sliding-window cache are the ones vramcalc caps
        assert spec.windowed_layers == sliding


def test_phi2_by_hand() -> None:
    spec, _ = spec_from_config(CONFIGS["phi"], "phi")
    # embed 128×64; per layer: q 64×64 + k, v 32×64 + dense 64×64 = 12288, biases 64+32+32+64;
    # fc1/fc2 2×96×64 = 12288, biases 96+64; one LayerNorm 2×64
    # -> 12288 + 192 + 12288 + 160 + 128 = 25056 per layer, × 3;
    # final LayerNorm 128; lm_head 128×64 + bias 128
    assert param_count(spec) == 8192 + 3 * 25056 + 128 + 8192 + 128
    assert spec.parallel_block and spec.lm_head_bias


def test_gpt_bigcode_multi_query_caches_one_head() -> None:
    spec, _ = spec_from_config(CONFIGS["gpt_bigcode"], "sc")
    # multi_query: 1 KV head of 64 / 4 = 16: K and V, 2 × 16 = 32 per token per layer
    assert spec.kv_heads == 1 and spec.kv_cache_width == 32
    mha, _ = spec_from_config(CONFIGS["gpt_bigcode-mha"], "sc")
    assert mha.kv_cache_width == 2 * 64


def test_window_layers() -> None:
    cohere2, _ = spec_from_config(CONFIGS["cohere2"], "c2")
    assert cohere2.windowed_layers == 6  # 8 layers, every 4th global
    smol, _ = spec_from_config(CONFIGS["smollm3-window"], "s")
    assert smol.windowed_layers == 2  # the no-RoPE layers 3 and 7
    exa, _ = spec_from_config(CONFIGS["exaone4-types"], "e")
    assert exa.windowed_layers == 1
    exa_str, _ = spec_from_config(
        CONFIGS["exaone4"] | {"sliding_window_pattern": "LLG", "num_hidden_layers": 6}, "e"
    )
    assert exa_str.windowed_layers == 4


@pytest.mark.parametrize(
    "change",
    [
        {"expansion_ratio": 8},
        {"no_bias": False},
        {"attn_config": {"attn_type": "grouped_query_attention"}},
        {"attn_config": {"alibi": False}},
        {"attn_config": {"qk_ln": True}},
        {"attn_config": "x"},
    ],
)
def test_mpt_transformers_cannot_build_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(VramcalcError, match="MPT|attn_config"):
        spec_from_config(CONFIGS["mpt"] | change, "mpt")


def test_bloom_has_no_position_parameters() -> None:
    spec, _ = spec_from_config(CONFIGS["bloom"], "b")
    assert spec.position_embedding == "alibi" and spec.embedding_norm
    assert spec.max_position_embeddings == 2048  # BLOOM's training context (no config field)
