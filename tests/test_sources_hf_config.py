"""config.json → ModelSpec for every mapped architecture: exact counts against transformers."""

from __future__ import annotations

from typing import Any

import pytest

from vramcalc.errors import VramcalcError
from vramcalc.sources.hf_config import SUPPORTED_MODEL_TYPES, spec_from_config
from vramcalc.spec.params import active_param_count, param_count

# Small configs in each architecture's own field names (as their config.json files write them).
_LLAMA = {
    "vocab_size": 128,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
}
CONFIGS: dict[str, dict[str, Any]] = {
    "llama": _LLAMA | {"model_type": "llama", "attention_bias": True, "mlp_bias": True},
    "mistral": _LLAMA | {"model_type": "mistral", "sliding_window": 32, "head_dim": 32},
    "mixtral": _LLAMA | {"model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 2},
    "qwen2": _LLAMA | {"model_type": "qwen2", "tie_word_embeddings": True},
    "qwen2_moe": _LLAMA
    | {
        "model_type": "qwen2_moe",
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 24,
        "shared_expert_intermediate_size": 48,
        "decoder_sparse_step": 1,
        "mlp_only_layers": [0],
    },
    "qwen3": _LLAMA | {"model_type": "qwen3", "head_dim": 24},
    "qwen3_moe": _LLAMA
    | {
        "model_type": "qwen3_moe",
        "head_dim": 16,
        "num_experts": 8,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 24,
        "decoder_sparse_step": 2,
    },
    "gemma": _LLAMA | {"model_type": "gemma", "head_dim": 32, "num_key_value_heads": 1},
    "gemma2": _LLAMA | {"model_type": "gemma2", "head_dim": 32, "sliding_window": 16},
    "gemma3_text": _LLAMA | {"model_type": "gemma3_text", "head_dim": 32, "sliding_window": 16},
    "phi3": _LLAMA | {"model_type": "phi3", "num_key_value_heads": 4, "pad_token_id": 0},
    "gpt2": {
        "model_type": "gpt2",
        "vocab_size": 128,
        "n_embd": 64,
        "n_layer": 2,
        "n_head": 4,
        "n_positions": 96,
    },
    "gpt_neox": {
        "model_type": "gpt_neox",
        "vocab_size": 128,
        "hidden_size": 64,
        "intermediate_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 128,
        "rotary_pct": 0.25,
    },
    "falcon": {
        "model_type": "falcon",
        "vocab_size": 128,
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "multi_query": True,
        "parallel_attn": True,
        "bias": False,
    },
    "falcon-40b-style": {
        "model_type": "falcon",
        "vocab_size": 128,
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 8,
        "num_kv_heads": 2,
        "new_decoder_architecture": True,
        "bias": True,
    },
    "opt": {
        "model_type": "opt",
        "vocab_size": 128,
        "hidden_size": 64,
        "ffn_dim": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 100,
        "word_embed_proj_dim": 32,
        "do_layer_norm_before": False,
    },
    "deepseek_v2": _LLAMA
    | {
        "model_type": "deepseek_v2",
        "num_key_value_heads": 4,
        "q_lora_rank": None,
        "kv_lora_rank": 16,
        "qk_rope_head_dim": 8,
        "qk_nope_head_dim": 16,
        "v_head_dim": 12,
        "n_routed_experts": 4,
        "num_experts_per_tok": 2,
        "n_shared_experts": 2,
        "moe_intermediate_size": 24,
        "first_k_dense_replace": 1,
        "n_group": 1,
        "topk_group": 1,
    },
    "deepseek_v3": _LLAMA
    | {
        "model_type": "deepseek_v3",
        "num_key_value_heads": 4,
        "q_lora_rank": 24,
        "kv_lora_rank": 16,
        "qk_rope_head_dim": 8,
        "qk_nope_head_dim": 16,
        "v_head_dim": 12,
        "n_routed_experts": 8,
        "num_experts_per_tok": 2,
        "n_shared_experts": 1,
        "moe_intermediate_size": 24,
        "first_k_dense_replace": 1,
        "n_group": 2,
        "topk_group": 1,
    },
}


def test_every_supported_type_is_tested() -> None:
    # the families of dense.py and llama_layout.py are tested in tests/test_hf_config_dense.py
    from test_hf_config_hybrid import HYBRID_CONFIGS  # state-space and hybrid families
    from test_hf_config_moe import MOE_CONFIGS  # the mixture-of-experts families' own file

    from vramcalc.sources.hf_config.dense import BUILDERS as DENSE
    from vramcalc.sources.hf_config.llama_layout import BUILDERS as LLAMA_LAYOUT

    tested = {cfg["model_type"] for cfg in (CONFIGS | MOE_CONFIGS | HYBRID_CONFIGS).values()}
    assert set(SUPPORTED_MODEL_TYPES) - set(DENSE) - set(LLAMA_LAYOUT) <= tested


def test_tiny_llama_by_hand() -> None:
    spec, notes = spec_from_config(CONFIGS["llama"], "tiny")
    # embed 128×64 = 8192; per layer: q 64×64 + k,v 32×64 each + o 64×64 = 12288, + biases
    # q 64 + k,v 32 each + o 64 = 192; MLP 3×64×96 = 18432 + biases 96+96+64 = 256;
    # 2 norms 128 -> 31296 per layer × 3 = 93888; final norm 64; lm_head 8192
    assert param_count(spec) == 8192 + 3 * (12288 + 192 + 18432 + 256 + 128) + 64 + 8192
    assert notes == []


def test_mla_kv_cache_width() -> None:
    spec, _ = spec_from_config(CONFIGS["deepseek_v3"], "tiny-v3")
    # MLA caches the latent (kv_lora_rank 16) and the shared rotary key (8) per token per layer
    assert spec.is_mla and spec.kv_cache_width == 16 + 8
    assert spec.head_dim == 16 + 8  # q/k head: nope + rope


def test_sliding_window_defaults() -> None:
    g2, _ = spec_from_config(CONFIGS["gemma2"], "g2")
    assert (g2.sliding_window, g2.windowed_layers) == (16, 2)  # layers 0 and 2 of 3
    g3, _ = spec_from_config(CONFIGS["gemma3_text"] | {"num_hidden_layers": 12}, "g3")
    assert g3.windowed_layers == 10  # 5 of every 6
    mistral, _ = spec_from_config(CONFIGS["mistral"], "m")
    assert mistral.windowed_layers == 3
    qwen, _ = spec_from_config(CONFIGS["qwen2"] | {"sliding_window": 8}, "q")
    assert qwen.sliding_window is None  # use_sliding_window defaults to false
    typed, _ = spec_from_config(
        CONFIGS["qwen2"]
        | {"sliding_window": 8, "layer_types": ["sliding_attention", "full_attention"] * 1},
        "q",
    )
    assert typed.windowed_layers == 1


def test_unknown_architecture_is_refused() -> None:
    with pytest.raises(VramcalcError) as err:
        spec_from_config({"model_type": "brand_new", "vocab_size": 10, "d_model": 8}, "m")
    assert "'brand_new' is not mapped" in str(err.value)


def test_assume_llama_names_unmapped_fields() -> None:
    with pytest.raises(VramcalcError) as err:
        spec_from_config(
            {"model_type": "brand_new", "vocab_size": 10, "d_model": 8}, "m", assume_llama=True
        )
    message = str(err.value)
    assert "num_layers (tried num_hidden_layers" in message
    assert "num_attention_heads" in message and "vocab_size" not in message.split("lacks")[1]


def test_unknown_architecture_with_generic_fields_under_assume_llama() -> None:
    spec, notes = spec_from_config(_LLAMA | {"model_type": "olmo-like"}, "o", assume_llama=True)
    assert param_count(spec) > 0 and spec.assumed_architecture == "olmo-like"
    assert "'olmo-like' is not mapped" in notes[0]


def test_gemma3_multimodal_reads_text_config() -> None:
    cfg = {"model_type": "gemma3", "text_config": CONFIGS["gemma3_text"], "vision_config": {}}
    spec, notes = spec_from_config(cfg, "g3")
    assert spec.architecture == "gemma3_text" and "vision tower" in notes[0]


def transformers_count(cfg: dict[str, Any]) -> int:
    """Parameters of the transformers model built from `cfg` on the meta device."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    cfg = dict(cfg)
    config = transformers.AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("key", sorted(CONFIGS))
def test_count_matches_transformers(key: str) -> None:
    spec, _ = spec_from_config(CONFIGS[key], key)
    assert param_count(spec) == transformers_count(CONFIGS[key])
    if spec.is_moe:
        assert active_param_count(spec) < param_count(spec)


# Real config.json values (the fields that matter), from the files on the Hugging Face Hub.
REAL: dict[str, dict[str, Any]] = {
    # https://huggingface.co/deepseek-ai/DeepSeek-V3/blob/main/config.json
    "deepseek-v3": {
        "model_type": "deepseek_v3",
        "vocab_size": 129280,
        "hidden_size": 7168,
        "intermediate_size": 18432,
        "moe_intermediate_size": 2048,
        "num_hidden_layers": 61,
        "num_attention_heads": 128,
        "num_key_value_heads": 128,
        "n_shared_experts": 1,
        "n_routed_experts": 256,
        "num_experts_per_tok": 8,
        "first_k_dense_replace": 3,
        "q_lora_rank": 1536,
        "kv_lora_rank": 512,
        "qk_rope_head_dim": 64,
        "qk_nope_head_dim": 128,
        "v_head_dim": 128,
        "max_position_embeddings": 163840,
        "n_group": 8,
        "topk_group": 4,
        "tie_word_embeddings": False,
    },
    # https://huggingface.co/Qwen/Qwen3-30B-A3B/blob/main/config.json
    "qwen3-30b-a3b": {
        "model_type": "qwen3_moe",
        "vocab_size": 151936,
        "hidden_size": 2048,
        "intermediate_size": 6144,
        "moe_intermediate_size": 768,
        "num_hidden_layers": 48,
        "num_attention_heads": 32,
        "num_key_value_heads": 4,
        "head_dim": 128,
        "num_experts": 128,
        "num_experts_per_tok": 8,
        "decoder_sparse_step": 1,
        "mlp_only_layers": [],
        "max_position_embeddings": 40960,
        "tie_word_embeddings": False,
    },
    # https://huggingface.co/tiiuae/falcon-7b/blob/main/config.json
    "falcon-7b": {
        "model_type": "falcon",
        "vocab_size": 65024,
        "hidden_size": 4544,
        "num_hidden_layers": 32,
        "num_attention_heads": 71,
        "multi_query": True,
        "parallel_attn": True,
        "new_decoder_architecture": False,
        "bias": False,
    },
    # https://huggingface.co/facebook/opt-350m/blob/main/config.json
    "opt-350m": {
        "model_type": "opt",
        "vocab_size": 50272,
        "hidden_size": 1024,
        "ffn_dim": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "max_position_embeddings": 2048,
        "word_embed_proj_dim": 512,
        "do_layer_norm_before": False,
    },
}


def test_published_sizes() -> None:
    v3, _ = spec_from_config(REAL["deepseek-v3"], "v3")
    # DeepSeek-V3 report (arXiv 2412.19437): 671B total, 37B activated per token (MTP module apart)
    assert round(param_count(v3) / 1e9) == 671
    assert 37e9 < active_param_count(v3) < 38e9
    # MLA cache: 512 + 64 = 576 values per token per layer instead of 2 × 128 heads × 128 = 32768
    assert v3.kv_cache_width == 576
    qwen, _ = spec_from_config(REAL["qwen3-30b-a3b"], "q")
    # Qwen3 model card: 30.5B total, 3.3B activated
    assert round(param_count(qwen) / 1e9, 1) == 30.5
    assert 3.3e9 < active_param_count(qwen) < 3.4e9


@pytest.mark.parametrize("key", sorted(REAL))
def test_real_configs_match_transformers(key: str) -> None:
    spec, _ = spec_from_config(REAL[key], key)
    assert param_count(spec) == transformers_count(REAL[key])


def test_sparse_configs_take_transformers_defaults() -> None:
    # Gemma-3-4B's config.json lists only what differs from Gemma3TextConfig in its text_config
    cfg = {
        "model_type": "gemma3",
        "text_config": {
            "model_type": "gemma3_text",
            "hidden_size": 2560,
            "intermediate_size": 10240,
            "num_hidden_layers": 34,
            "sliding_window": 1024,
        },
    }
    spec, notes = spec_from_config(cfg, "gemma-3-4b")
    assert (spec.vocab_size, spec.num_attention_heads, spec.kv_heads, spec.head_dim) == (
        262208,
        8,
        4,
        256,
    )
    assert any("defaults used: vocab_size=262208" in n for n in notes)
    assert param_count(spec) == transformers_count(
        {"model_type": "gemma3_text"} | cfg["text_config"]
    )
    # an explicit null is kept (Mistral v0.3 turns the window off)
    mistral, _ = spec_from_config(CONFIGS["mistral"] | {"sliding_window": None}, "m")
    assert mistral.sliding_window is None
    bare, notes = spec_from_config({"model_type": "llama"}, "bare")
    assert param_count(bare) == transformers_count({"model_type": "llama"}) and notes
