"""Mixture-of-experts families (issue 13, part C): exact parameters against transformers on the
meta device and the cache a real forward pass holds, from the same small configs."""

from __future__ import annotations

from typing import Any

import pytest
from hf_reference import cache_elements, meta_param_count
from hypothesis import given, settings
from hypothesis import strategies as st

from vramcalc.core.kv_cache import kv_elements_per_token
from vramcalc.errors import VramcalcError
from vramcalc.sources.hf_config import spec_from_config
from vramcalc.spec.params import active_param_count, param_count

_BASE: dict[str, Any] = {
    "vocab_size": 128,
    "hidden_size": 64,
    "intermediate_size": 48,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
}
MOE_CONFIGS: dict[str, dict[str, Any]] = {
    "olmoe": _BASE
    | {"model_type": "olmoe", "num_experts": 4, "num_experts_per_tok": 2, "attention_bias": True},
    "phimoe": _BASE
    | {
        "model_type": "phimoe",
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
        "attention_bias": True,
        "lm_head_bias": True,
        "sliding_window": 32,
    },
    "granitemoe": _BASE
    | {"model_type": "granitemoe", "num_local_experts": 4, "num_experts_per_tok": 2},
    "granitemoeshared": _BASE
    | {
        "model_type": "granitemoeshared",
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
        "shared_intermediate_size": 40,
        "attention_bias": True,
    },
    "glm4_moe": _BASE
    | {
        "model_type": "glm4_moe",
        "head_dim": 24,
        "n_routed_experts": 4,
        "num_experts_per_tok": 2,
        "n_shared_experts": 2,
        "moe_intermediate_size": 24,
        "first_k_dense_replace": 1,
        "use_qk_norm": True,
        "attention_bias": True,
        "n_group": 1,
        "topk_group": 1,
    },
    "ernie4_5_moe": _BASE
    | {
        "model_type": "ernie4_5_moe",
        "moe_num_experts": 4,
        "moe_k": 2,
        "moe_num_shared_experts": 1,
        "moe_intermediate_size": 24,
        "moe_layer_start_index": 1,
        "moe_layer_end_index": 2,
        "moe_layer_interval": 1,
        "use_bias": True,
        "tie_word_embeddings": False,
    },
    "ernie4_5_moe-tied": _BASE
    | {
        "model_type": "ernie4_5_moe",
        "moe_num_experts": 4,
        "moe_k": 2,
        "moe_num_shared_experts": 0,
        "moe_intermediate_size": 24,
        "moe_layer_interval": 2,
    },
    "dbrx": {
        "model_type": "dbrx",
        "vocab_size": 128,
        "d_model": 64,
        "n_heads": 4,
        "n_layers": 3,
        "max_seq_len": 256,
        "attn_config": {"kv_n_heads": 2, "clip_qkv": 8, "rope_theta": 10000.0},
        "ffn_config": {"ffn_hidden_size": 48, "moe_num_experts": 4, "moe_top_k": 2},
    },
    "llama4_text": _BASE
    | {
        "model_type": "llama4_text",
        "head_dim": 16,
        "intermediate_size_mlp": 80,
        "num_local_experts": 4,
        "num_experts_per_tok": 1,
        "interleave_moe_layer_step": 2,
        "no_rope_layer_interval": 2,
        "attention_chunk_size": 16,
    },
    "llama4_text-moe_layers": _BASE
    | {
        "model_type": "llama4_text",
        "head_dim": 16,
        "intermediate_size_mlp": 80,
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
        "moe_layers": [0, 1, 3],
    },
    "granitemoe_swa": _BASE
    | {
        "model_type": "granitemoe_swa",
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
        "shared_intermediate_size": 40,
        "sliding_window": 16,
    },
    "flex_olmo": _BASE
    | {"model_type": "flex_olmo", "num_experts": 4, "num_experts_per_tok": 2, "pad_token_id": 0},
    "glm4_moe_lite": _BASE
    | {
        "model_type": "glm4_moe_lite",
        "n_routed_experts": 4,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 24,
        "n_shared_experts": 2,
        "kv_lora_rank": 16,
        "q_lora_rank": 24,
        "qk_rope_head_dim": 8,
        "qk_nope_head_dim": 16,
        "v_head_dim": 12,
        "mlp_layer_types": ["dense", "sparse", "dense", "sparse"],
        "n_group": 1,
        "topk_group": 1,
    },
    "dots1": _BASE
    | {
        "model_type": "dots1",
        "n_routed_experts": 4,
        "num_experts_per_tok": 2,
        "n_shared_experts": 1,
        "moe_intermediate_size": 24,
        "first_k_dense_replace": 1,
        "attention_bias": True,
        "sliding_window": 32,
        "max_window_layers": 3,
    },
    "exaone_moe": _BASE
    | {
        "model_type": "exaone_moe",
        "head_dim": 16,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 24,
        "num_shared_experts": 2,
        "first_k_dense_replace": 1,
        "sliding_window": 32,
        "sliding_window_pattern": 2,
    },
    "minimax_m2": _BASE
    | {
        "model_type": "minimax_m2",
        "head_dim": 16,
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
    },
    "gpt_oss": _BASE
    | {
        "model_type": "gpt_oss",
        "intermediate_size": 32,
        "head_dim": 16,
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
        "sliding_window": 16,
    },
}


@pytest.mark.parametrize("key", sorted(MOE_CONFIGS))
def test_count_matches_transformers(key: str) -> None:
    spec, _ = spec_from_config(MOE_CONFIGS[key], key)
    assert spec.is_moe
    assert param_count(spec) == meta_param_count(MOE_CONFIGS[key])
    assert active_param_count(spec) < param_count(spec)


# MLA: transformers caches the decompressed K and V, vramcalc the latent that vLLM and SGLang keep
_LATENT_CACHE = {"glm4_moe_lite"}


@pytest.mark.parametrize("key", sorted(set(MOE_CONFIGS) - _LATENT_CACHE))
def test_cache_matches_transformers(key: str) -> None:
    # keys and values a real forward pass of 4 and of 8 tokens leaves in the cache (all inside
    # every window), per token; nothing fixed per sequence for attention-only models
    spec, _ = spec_from_config(MOE_CONFIGS[key], key)
    assert cache_elements(MOE_CONFIGS[key]) == (kv_elements_per_token(spec), 0)


def test_gpt_oss_by_hand() -> None:
    spec, _ = spec_from_config(MOE_CONFIGS["gpt_oss"], "tiny-gpt-oss")
    # embed and lm_head 128×64 = 8192 each; per layer: q 64×64 + k,v 32×64 + o 64×64 = 12288,
    # biases 64 + 32 + 32 + 64 = 192, sinks 4, two RMSNorms 128, router 4×64 + bias 4 = 260,
    # 4 experts × (gate_up 64×64 + 64 + down 32×64 + 64) = 4 × 6272 = 25088 -> 37960 × 4 layers;
    # final norm 64
    assert param_count(spec) == 8192 + 4 * 37960 + 64 + 8192 == 168_288
    # 2 of 4 experts per token: 12544 expert parameters per layer instead of 25088
    assert active_param_count(spec) == 168_288 - 4 * 12544 == 118_112
    # 4 layers × K and V × 2 kv heads × 16; layers 0 and 2 keep a 16-token window
    assert kv_elements_per_token(spec) == 4 * 2 * 2 * 16 == 256
    assert (spec.sliding_window, spec.windowed_layers) == (16, 2)


def test_interleaved_and_chunked_layers() -> None:
    spec, _ = spec_from_config(MOE_CONFIGS["llama4_text"], "l4")
    # interleave step 2: layers 1 and 3 sparse, 0 and 2 dense (intermediate_size_mlp 80);
    # no_rope interval 2: RoPE layers 0 and 2 use chunked attention over 16 tokens
    assert (spec.moe_layers, spec.intermediate_size, spec.expert_intermediate_size) == (2, 80, 48)
    assert (spec.sliding_window, spec.windowed_layers) == (16, 2)
    listed, _ = spec_from_config(MOE_CONFIGS["llama4_text-moe_layers"], "l4")
    assert listed.moe_layers == 3
    ernie, _ = spec_from_config(MOE_CONFIGS["ernie4_5_moe"], "e")
    assert ernie.moe_layers == 2  # layers 1 and 2 (start 1, end 2)
    dots, _ = spec_from_config(MOE_CONFIGS["dots1"], "d")
    assert (dots.windowed_layers, dots.moe_layers) == (1, 3)  # layer 3 windowed; 1-3 sparse
    exaone, _ = spec_from_config(MOE_CONFIGS["exaone_moe"], "x")
    # pattern 2: layers 0 and 2 windowed, 1 and 3 full; layers 1-3 sparse (first_k_dense 1)
    assert (exaone.windowed_layers, exaone.moe_layers) == (2, 3)
    swa, _ = spec_from_config(MOE_CONFIGS["granitemoe_swa"], "s")
    assert (swa.sliding_window, swa.windowed_layers) == (16, 3)  # full when i % 4 == 0: layer 0


@pytest.mark.parametrize(
    ("patch", "match"),
    [
        ({"num_local_experts": "8"}, "num_local_experts = '8' in config.json: must be an integer"),
        ({"num_local_experts": True}, "num_local_experts = True in config.json: must be an int"),
        ({"moe_layers": "all"}, "moe_layers = 'all' in config.json: must be a list"),
        ({"layer_types": ["full_attention"]}, "layer_types has 1 entries for 4 layers"),
    ],
)
def test_bad_values_are_refused(patch: dict[str, Any], match: str) -> None:
    with pytest.raises(VramcalcError, match=match):
        spec_from_config(MOE_CONFIGS["llama4_text"] | patch, "bad")


@pytest.mark.parametrize("key", ["mixtral", "qwen2_moe", "qwen3_moe"])
def test_cache_of_earlier_moe_mappings(key: str) -> None:
    # the families mapped before issue 13: same check of the cache a forward pass fills.
    # (DeepSeek is left out on purpose: transformers caches the decompressed K and V, vramcalc
    # the MLA latent that vLLM and SGLang keep; tests/test_kv_cache.py checks that by hand.)
    from test_sources_hf_config import CONFIGS

    spec, _ = spec_from_config(CONFIGS[key], key)
    assert cache_elements(CONFIGS[key]) == (kv_elements_per_token(spec), 0)


def test_published_sizes_of_moe_presets() -> None:
    import vramcalc
    from vramcalc.spec.params import tensor_groups

    def counts(name: str) -> tuple[int, int, int]:
        spec = vramcalc.get_model(name)
        embed = sum(g.numel for g in tensor_groups(spec) if g.kind == "embedding")
        return param_count(spec), active_param_count(spec), embed

    # gpt-oss model card (arXiv 2508.10925, Table 1): 20.91B / 116.83B total; 3.61B / 5.13B active
    # per token, a figure that leaves out the 201,088 × 2880 input embedding
    total, active, embed = counts("gpt-oss-20b")
    assert (round(total / 1e9, 2), round((active - embed) / 1e9, 2)) == (20.91, 3.61)
    total, active, embed = counts("gpt-oss-120b")
    assert (round(total / 1e9, 2), round((active - embed) / 1e9, 2)) == (116.83, 5.13)
    # Mixtral-8x22B (Mistral AI): 141B total, 39B active
    total, active, _ = counts("mixtral-8x22b")
    assert (round(total / 1e9), round(active / 1e9)) == (141, 39)
    # Qwen3 technical report (arXiv 2505.09388, Table 2): 235B total, 22B activated
    total, active, _ = counts("qwen3-235b-a22b")
    assert (round(total / 1e9), round(active / 1e9)) == (235, 22)
    # Llama-4 Scout (Meta model card): 17B active; 109B total includes the vision encoder,
    # whose parameters this text model does not count
    total, active, _ = counts("llama-4-scout-17b-16e")
    assert round(active / 1e9) == 17 and 107e9 < total < 109e9


@settings(max_examples=60, deadline=None)
@given(
    experts=st.integers(2, 64),
    top_k=st.integers(1, 64),
    layers=st.integers(1, 12),
    step=st.integers(1, 4),
    bias=st.booleans(),
)
def test_expert_arithmetic(experts: int, top_k: int, layers: int, step: int, bias: bool) -> None:
    """Invariants of any mixture: the total does not depend on how many experts a token uses; the
    active count grows by exactly one expert's tensors (times the sparse layers) per extra expert."""
    top_k = min(top_k, experts)
    cfg = MOE_CONFIGS["llama4_text"] | {
        "num_hidden_layers": layers,
        "num_local_experts": experts,
        "num_experts_per_tok": top_k,
        "interleave_moe_layer_step": step,
        "attention_bias": bias,
    }
    spec, _ = spec_from_config(cfg, "p")
    total, active = param_count(spec), active_param_count(spec)
    assert spec.moe_layers == len(range(step - 1, layers, step))
    assert active <= total
    if top_k < experts:
        more, _ = spec_from_config(cfg | {"num_experts_per_tok": top_k + 1}, "p")
        assert param_count(more) == total
        # one more expert of intermediate_size 48 (gate, up, down: 3 × 48 × 64) per sparse layer
        assert active_param_count(more) - active == spec.moe_layers * 3 * 48 * 64


def test_glm4_moe_lite_latent_cache_and_layers() -> None:
    spec, _ = spec_from_config(MOE_CONFIGS["glm4_moe_lite"], "g")
    # MLA: 4 layers × (kv_lora_rank 16 + rope 8) = 96 elements per token; layers 1 and 3 sparse
    assert (kv_elements_per_token(spec), spec.moe_layers, spec.num_shared_experts) == (96, 2, 2)
