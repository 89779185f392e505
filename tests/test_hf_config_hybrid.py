"""State-space and hybrid families (issue 13, part C): exact parameters against transformers on
the meta device, and the cache of a real forward: keys and values per token in the attention
layers only, plus the fixed conv + SSM state of the Mamba layers."""

from __future__ import annotations

from typing import Any

import pytest
from hf_reference import cache_elements, meta_param_count

from vramcalc.core.cost import estimate_inference_cost
from vramcalc.core.inference import estimate_inference
from vramcalc.core.kv_cache import kv_cache_bytes, kv_elements_per_token
from vramcalc.core.training import estimate_training
from vramcalc.errors import VramcalcError
from vramcalc.sources.hf_config import spec_from_config
from vramcalc.spec.params import param_count

_ATTN: dict[str, Any] = {
    "vocab_size": 128,
    "hidden_size": 64,
    "intermediate_size": 48,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
}
HYBRID_CONFIGS: dict[str, dict[str, Any]] = {
    "mamba": {
        "model_type": "mamba",
        "vocab_size": 128,
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "state_size": 8,
        "conv_kernel": 4,
        "use_bias": True,
    },
    "mamba2": {
        "model_type": "mamba2",
        "vocab_size": 128,
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_heads": 8,
        "head_dim": 16,
        "state_size": 8,
        "n_groups": 2,
        "conv_kernel": 4,
    },
    "jamba": _ATTN
    | {
        "model_type": "jamba",
        "num_hidden_layers": 4,
        "attn_layer_period": 2,
        "attn_layer_offset": 1,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "expert_layer_period": 2,
        "expert_layer_offset": 0,
        "mamba_d_state": 8,
    },
    "bamba": _ATTN
    | {
        "model_type": "bamba",
        "num_hidden_layers": 4,
        "attn_layer_indices": [1, 3],
        "mamba_n_heads": 8,
        "mamba_d_head": 16,
        "mamba_n_groups": 2,
        "mamba_d_state": 8,
        "attention_bias": True,
    },
    "granitemoehybrid": _ATTN
    | {
        "model_type": "granitemoehybrid",
        "num_hidden_layers": 4,
        "layer_types": ["mamba", "attention", "mamba", "mamba"],
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
        "shared_intermediate_size": 40,
        "mamba_n_heads": 8,
        "mamba_n_groups": 2,
        "mamba_d_state": 8,
        "attention_bias": True,
    },
    "granitemoehybrid-dense": _ATTN
    | {
        "model_type": "granitemoehybrid",
        "num_hidden_layers": 3,
        "layer_types": ["mamba", "mamba", "attention"],
        "num_local_experts": 0,
        "shared_intermediate_size": 40,
        "mamba_n_heads": 8,
        "mamba_d_state": 8,
    },
    "falcon_h1": _ATTN
    | {
        "model_type": "falcon_h1",
        "num_hidden_layers": 3,
        "mamba_d_ssm": 96,
        "mamba_n_heads": 6,
        "mamba_n_groups": 2,
        "mamba_d_state": 8,
        "projectors_bias": True,
        "mamba_rms_norm": True,
    },
    "falcon_h1-defaults": _ATTN
    | {
        "model_type": "falcon_h1",
        "num_hidden_layers": 2,
        "mamba_d_ssm": None,
        "mamba_n_heads": 8,
        "mamba_d_state": 8,
        "mamba_proj_bias": True,
    },
    "qwen3_next": _ATTN
    | {
        "model_type": "qwen3_next",
        "num_hidden_layers": 4,
        "head_dim": 16,
        "linear_num_key_heads": 2,
        "linear_num_value_heads": 4,
        "linear_key_head_dim": 8,
        "linear_value_head_dim": 12,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 24,
        "shared_expert_intermediate_size": 40,
        "mlp_only_layers": [0],
    },
    "lfm2": _ATTN
    | {
        "model_type": "lfm2",
        "num_hidden_layers": 4,
        "full_attn_idxs": [1, 3],
        "intermediate_size": 100,
        "block_multiple_of": 16,
        "block_ffn_dim_multiplier": 1.5,
        "conv_L_cache": 3,
        "conv_bias": True,
    },
    "lfm2_moe": _ATTN
    | {
        "model_type": "lfm2_moe",
        "num_hidden_layers": 4,
        "layer_types": ["conv", "full_attention", "conv", "full_attention"],
        "num_dense_layers": 1,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 24,
        "conv_L_cache": 3,
    },
    "falcon_mamba": {
        "model_type": "falcon_mamba",
        "vocab_size": 128,
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "state_size": 8,
        "conv_kernel": 4,
    },
    "qwen3_5_text": _ATTN
    | {
        "model_type": "qwen3_5_text",
        "num_hidden_layers": 4,
        "head_dim": 16,
        "linear_num_key_heads": 2,
        "linear_num_value_heads": 4,
        "linear_key_head_dim": 8,
        "linear_value_head_dim": 12,
        "full_attention_interval": 2,
    },
    "qwen3_5_moe_text": {
        "model_type": "qwen3_5_moe_text",
        "vocab_size": 128,
        "hidden_size": 64,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
        "head_dim": 16,
        "linear_num_key_heads": 2,
        "linear_num_value_heads": 4,
        "linear_key_head_dim": 8,
        "linear_value_head_dim": 12,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 24,
        "shared_expert_intermediate_size": 40,
    },
    "nemotron_h": _ATTN
    | {
        "model_type": "nemotron_h",
        "head_dim": 16,
        "hybrid_override_pattern": "M-M*-",
        "num_hidden_layers": 5,
        "mamba_num_heads": 8,
        "mamba_head_dim": 16,
        "n_groups": 2,
        "ssm_state_size": 8,
        "mlp_bias": True,
    },
}


@pytest.mark.parametrize("key", sorted(HYBRID_CONFIGS))
def test_count_matches_transformers(key: str) -> None:
    spec, _ = spec_from_config(HYBRID_CONFIGS[key], key)
    assert param_count(spec) == meta_param_count(HYBRID_CONFIGS[key])


@pytest.mark.parametrize("key", sorted(HYBRID_CONFIGS))
def test_cache_matches_transformers(key: str) -> None:
    spec, _ = spec_from_config(HYBRID_CONFIGS[key], key)
    assert cache_elements(HYBRID_CONFIGS[key]) == (kv_elements_per_token(spec), spec.state_elements)


def test_mamba_state_by_hand() -> None:
    spec, _ = spec_from_config(HYBRID_CONFIGS["mamba"], "m")
    # d_inner = 2 × 64 = 128; per layer conv window 128 × 4 + SSM state 128 × N 8 = 1536;
    # two layers: 3072 elements per sequence, whatever the context; no keys or values
    assert (spec.ssm_d_inner, spec.state_elements, kv_elements_per_token(spec)) == (128, 3072, 0)
    assert kv_cache_bytes(spec, 3, 100_000, 2) == 3 * 3072 * 2


def test_mamba2_state_by_hand() -> None:
    spec, _ = spec_from_config(HYBRID_CONFIGS["mamba2"], "m2")
    # conv over d_inner 128 + 2 groups × 2 (B, C) × N 8 = 160 channels × 4 = 640;
    # state 8 heads × 16 × 8 = 1024 -> 1664 per layer, 3328 for two
    assert spec.state_elements == 2 * (160 * 4 + 8 * 16 * 8) == 3328


def test_jamba_layout_and_cache() -> None:
    spec, _ = spec_from_config(HYBRID_CONFIGS["jamba"], "j")
    # layers 1 and 3 attend (period 2, offset 1), 0 and 2 are Mamba; experts in layers 0 and 2
    assert (spec.attention_layers, spec.ssm_layers, spec.moe_layers) == (2, 2, 2)
    # 2 attention layers × K, V × 2 kv heads × 16 = 128 per token
    assert kv_elements_per_token(spec) == 2 * 2 * 2 * 16 == 128


def test_estimates_run_and_say_what_is_approximate() -> None:
    for key in sorted(HYBRID_CONFIGS):
        spec, _ = spec_from_config(HYBRID_CONFIGS[key], key)
        est = estimate_inference(spec, seq_len=1024)
        assert est.component("kv_cache") == kv_cache_bytes(spec, 1, 1024, 2)
        assert any("state-space" in a for a in est.assumptions)
        train = estimate_training(spec, seq_len=128)
        assert any("state-space" in a for a in train.assumptions)
        cost = estimate_inference_cost(spec, gpu="h100", prompt_tokens=1000, output_tokens=100)
        # decode reads the weights and the cache at the mean context of 1050 tokens
        assert cost.decode_bytes_per_step >= kv_cache_bytes(spec, 1, 1050, 2)


def test_moe_estimates_run() -> None:
    from test_hf_config_moe import MOE_CONFIGS

    for key, cfg in sorted(MOE_CONFIGS.items()):
        spec, _ = spec_from_config(cfg, key)
        est = estimate_inference(spec, seq_len=512)
        # parameters as counted, the cache as kv_cache computes it (the weights are bf16 here)
        assert est.params == param_count(spec)
        assert est.component("kv_cache") == kv_cache_bytes(spec, 1, 512, 2)
        assert estimate_training(spec, seq_len=128).total_bytes > est.component("weights")


def test_unmapped_nemotron_blocks_are_refused() -> None:
    bad = HYBRID_CONFIGS["nemotron_h"] | {"hybrid_override_pattern": "ME*-"}
    with pytest.raises(VramcalcError, match="blocks E are not mapped"):
        spec_from_config(bad, "n")
    with pytest.raises(VramcalcError, match="state_size = 8.5 in config.json: must be an integer"):
        spec_from_config(HYBRID_CONFIGS["mamba"] | {"state_size": 8.5}, "m")


def test_published_sizes() -> None:
    from vramcalc.spec.params import active_param_count

    # Jamba v0.1 is JambaConfig's defaults (ai21labs/Jamba-v0.1 config.json): the paper
    # (arXiv 2403.19887, §3.1) reports 52B total and 12B active parameters
    jamba, _ = spec_from_config({"model_type": "jamba"}, "jamba-v0.1")
    assert (round(param_count(jamba) / 1e9), round(active_param_count(jamba) / 1e9)) == (52, 12)
    # 4 attention layers of 32: 2 × 4 × 8 kv heads × 128 = 8192 elements per token
    assert kv_elements_per_token(jamba) == 8192
    # state-spaces/mamba-2.8b-hf config.json (64 layers of 2560, vocab 50280): "2.8B"
    mamba, _ = spec_from_config(
        {"model_type": "mamba", "hidden_size": 2560, "num_hidden_layers": 64, "vocab_size": 50280},
        "mamba-2.8b",
    )
    assert round(param_count(mamba) / 1e9, 1) == 2.8
