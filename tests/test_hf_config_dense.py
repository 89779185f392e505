"""Dense families of hf_config/dense.py against transformers on the meta device: parameters to the
element, and the KV cache the model really holds per token (a meta-device forward)."""

from __future__ import annotations

from typing import Any

import pytest

from vramcalc.errors import VramcalcError
from vramcalc.sources.hf_config import spec_from_config
from vramcalc.sources.hf_config.dense import BUILDERS
from vramcalc.sources.hf_config.llama_layout import BUILDERS as LLAMA_LAYOUT
from vramcalc.spec.params import param_count

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
    # llama_layout.py (no head_dim given: the family's default head_dim is exercised)
    "helium": _L | {"model_type": "helium", "attention_bias": True, "head_dim": 16},
    "seed_oss": _L | {"model_type": "seed_oss", "attention_out_bias": True},
    "ministral3": _L | {"model_type": "ministral3", "sliding_window": 32},
    "internlm3": _L | {"model_type": "internlm3", "qkv_bias": True, "bias": True},
    "exaone": {k: v for k, v in _L.items() if k != "num_hidden_layers"}
    | {"model_type": "exaone", "num_layers": 2, "activation_function": "silu"},
    "iquestcoder": _L | {"model_type": "iquestcoder"},
    "cwm": _L | {"model_type": "cwm", "num_hidden_layers": 6, "sliding_window": 16},
    "arcee": _L | {"model_type": "arcee", "attention_bias": True, "mlp_bias": True},
    "jais2": _L | {"model_type": "jais2"},
    "nanochat": _L | {"model_type": "nanochat", "attention_bias": True},
    "vaultgemma": _L | {"model_type": "vaultgemma", "num_hidden_layers": 5, "sliding_window": 16},
    "olmo3": _L | {"model_type": "olmo3", "num_hidden_layers": 6, "sliding_window": 16},
    "hyperclovax": _L | {"model_type": "hyperclovax", "attention_bias": True, "mlp_bias": True},
    "hyperclovax-no-post": _L | {"model_type": "hyperclovax", "use_post_norm": False},
    "apertus": _L | {"model_type": "apertus", "attention_bias": True},
    "apertus-relu2": _L | {"model_type": "apertus", "hidden_act": "relu2"},
}


def test_every_dense_family_is_tested() -> None:
    assert set(BUILDERS) | set(LLAMA_LAYOUT) <= {cfg["model_type"] for cfg in CONFIGS.values()}


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


def test_helium_needs_heads_times_head_dim_equal_to_hidden() -> None:
    # the default head_dim 128 × 4 heads ≠ 64: transformers would build a model that cannot run
    with pytest.raises(VramcalcError, match="helium needs"):
        spec_from_config({k: v for k, v in CONFIGS["helium"].items() if k != "head_dim"}, "h")


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


# The config.json fields that matter, as published on the Hub.
REAL: dict[str, dict[str, Any]] = {
    # https://huggingface.co/allenai/OLMo-2-1124-7B/blob/main/config.json
    "olmo-2-7b": {
        "model_type": "olmo2",
        "vocab_size": 100352,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "max_position_embeddings": 4096,
        "attention_bias": False,
        "tie_word_embeddings": False,
    },
    # https://huggingface.co/HuggingFaceTB/SmolLM3-3B/blob/main/config.json
    "smollm3-3b": {
        "model_type": "smollm3",
        "vocab_size": 128256,
        "hidden_size": 2048,
        "intermediate_size": 11008,
        "num_hidden_layers": 36,
        "num_attention_heads": 16,
        "num_key_value_heads": 4,
        "max_position_embeddings": 65536,
        "no_rope_layer_interval": 4,
        "use_sliding_window": False,
        "sliding_window": None,
        "tie_word_embeddings": True,
    },
}


def test_olmo2_and_smollm3_presets_by_hand() -> None:
    import vramcalc

    olmo = vramcalc.get_model("olmo-2-7b")
    # embed + lm_head 2 × 100352 × 4096 = 822,083,584; per layer: q/k/v/o 4 × 4096² =
    # 67,108,864, MLP 3 × 4096 × 11008 = 135,266,304, 2 norms + q/k norms 4 × 4096 = 16,384
    # -> 202,391,552 × 32 = 6,476,529,664; final norm 4096: 7,298,617,344 ("7.3B")
    assert param_count(olmo) == 822_083_584 + 32 * 202_391_552 + 4096 == 7_298_617_344
    smol = vramcalc.get_model("smollm3-3b")
    # tied embed 128256 × 2048 = 262,668,288; per layer: q, o 2 × 2048² + k, v 2 × 512 × 2048 =
    # 10,485,760, MLP 3 × 2048 × 11008 = 67,633,152, 2 norms 4096 -> 78,123,008 × 36
    assert param_count(smol) == 262_668_288 + 36 * 78_123_008 + 2048 == 3_075_098_624
    # KV per token: 2 × 36 layers × 4 kv heads × 128 = 36,864 elements (73,728 bytes in bf16)
    assert smol.num_layers * smol.kv_cache_width == 36_864


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_configs_give_the_presets(name: str) -> None:
    import vramcalc

    spec, _ = spec_from_config(REAL[name], name)
    preset = vramcalc.get_model(name)
    assert param_count(spec) == param_count(preset)
    assert spec.kv_cache_width == preset.kv_cache_width and spec.windowed_layers == 0


@pytest.mark.parametrize("name", sorted(REAL))
def test_preset_cache_matches_transformers(name: str) -> None:
    import vramcalc
    from vramcalc.spec.hfconfig import hf_config_dict

    preset = vramcalc.get_model(name)
    per_token, _ = cache_per_token(build(hf_config_dict(preset)))
    assert preset.num_layers * preset.kv_cache_width == per_token


# The configs issue 13 found misread as Llama (fields from each model's config.json on the Hub).
ISSUE_13: dict[str, tuple[dict[str, Any], int]] = {
    # https://huggingface.co/microsoft/phi-2/blob/main/config.json: 2.78B (read as Llama: 3.62B)
    "phi-2": (
        {
            "model_type": "phi",
            "vocab_size": 51200,
            "hidden_size": 2560,
            "intermediate_size": 10240,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "max_position_embeddings": 2048,
            "partial_rotary_factor": 0.4,
            "qk_layernorm": False,
            "tie_word_embeddings": False,
        },
        2_779_683_840,
    ),
    # https://huggingface.co/bigcode/starcoder/blob/main/config.json: 15.5B (read as Llama: 24.8B)
    "starcoder": (
        {
            "model_type": "gpt_bigcode",
            "vocab_size": 49152,
            "n_embd": 6144,
            "n_inner": 24576,
            "n_layer": 40,
            "n_head": 48,
            "n_positions": 8192,
            "multi_query": True,
        },
        15_517_456_384,
    ),
    # https://huggingface.co/bigcode/starcoder2-7b/blob/main/config.json: 7.17B (as Llama: 10.1B)
    "starcoder2-7b": (
        {
            "model_type": "starcoder2",
            "vocab_size": 49152,
            "hidden_size": 4608,
            "intermediate_size": 18432,
            "num_hidden_layers": 32,
            "num_attention_heads": 36,
            "num_key_value_heads": 4,
            "max_position_embeddings": 16384,
            "sliding_window": 4096,
            "use_bias": True,
        },
        7_173_923_840,
    ),
}


@pytest.mark.parametrize("name", sorted(ISSUE_13))
def test_issue_13_configs_are_exact(name: str) -> None:
    cfg, expected = ISSUE_13[name]
    spec, _ = spec_from_config(cfg, name)
    assert param_count(spec) == expected
    assert param_count(spec) == sum(p.numel() for p in build(cfg).parameters())


def test_starcoder_kv_cache_is_one_head() -> None:
    spec, _ = spec_from_config(ISSUE_13["starcoder"][0], "starcoder")
    # multi-query: 2 × 40 layers × 1 head × 128 = 10,240 elements per token; the Llama reading
    # cached 48 heads: 491,520, the 48× the issue measured
    assert spec.num_layers * spec.kv_cache_width == 10_240
    assert 2 * 40 * 48 * 128 == 48 * 10_240


@pytest.mark.parametrize("key", sorted(CONFIGS))
def test_mapped_agrees_with_the_exact_route(key: str) -> None:
    """The mapping and the exact meta-device route (vramcalc.measure.meta, which reads the cache
    from prefills of 4, 8 and 12 tokens) give the same parameters and cache per token."""
    pytest.importorskip("torch")
    from vramcalc.measure.meta import inspect_config

    spec, _ = spec_from_config(CONFIGS[key], key)
    inv = inspect_config(dict(CONFIGS[key]))
    assert param_count(spec) == inv.param_count
    if spec.is_mla or inv.cache is None:  # MLA: the latent vs the expanded cache (see above)
        return
    assert spec.num_layers * spec.kv_cache_width == inv.cache.kv_elements_per_token
    assert inv.cache.state_elements_per_sequence == 0
    windowed = sum(1 for _, window in inv.cache.per_layer if window is not None)
    if windowed:
        assert spec.windowed_layers == windowed
