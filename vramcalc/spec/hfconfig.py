"""ModelSpec → Hugging Face config.json dict (pure data; no transformers import).

Used to build the reference implementation (tests' parameter-count cross-check, the fake-tensor
trace). The reverse direction (reading any config.json) lives with the model-source code.
"""

from __future__ import annotations

from typing import Any

from vramcalc.spec.model import ModelSpec

# The architectures whose fields hf_config_dict writes in full (every preset's); for any other the
# llama-style fields below would build a different model, so callers refuse those specs.
HF_CONFIG_ARCHITECTURES = frozenset(
    {"gpt2", "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "gemma2", "olmo2", "smollm3"}
    | {"qwen3", "gemma3_text", "deepseek_v3", "qwen3_moe", "gpt_oss", "llama4_text", "phi3"}
)


def hf_config_dict(spec: ModelSpec) -> dict[str, Any]:
    """The config.json fields that make transformers build this architecture (one of
    HF_CONFIG_ARCHITECTURES)."""
    arch = spec.architecture
    if arch == "gpt2":
        return {
            "model_type": "gpt2",
            "architectures": ["GPT2LMHeadModel"],
            "vocab_size": spec.vocab_size,
            "n_embd": spec.hidden_size,
            "n_layer": spec.num_layers,
            "n_head": spec.num_attention_heads,
            "n_inner": spec.intermediate_size,
            "n_positions": spec.max_position_embeddings,
            "activation_function": spec.activation,
            "tie_word_embeddings": spec.tie_word_embeddings,
        }
    cfg: dict[str, Any] = {
        "model_type": arch,
        "vocab_size": spec.vocab_size,
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size,
        "num_hidden_layers": spec.num_layers,
        "num_attention_heads": spec.num_attention_heads,
        "num_key_value_heads": spec.kv_heads,
        "head_dim": spec.head_dim,
        "max_position_embeddings": spec.max_position_embeddings,
        "tie_word_embeddings": spec.tie_word_embeddings,
        "hidden_act": spec.activation,
        "rms_norm_eps": 1e-6,
    }
    if arch in ("llama", "mistral", "mixtral"):
        cfg["architectures"] = {
            "llama": ["LlamaForCausalLM"],
            "mistral": ["MistralForCausalLM"],
            "mixtral": ["MixtralForCausalLM"],
        }[arch]
        if arch == "llama":
            cfg["attention_bias"] = spec.attention_qkv_bias
            cfg["mlp_bias"] = spec.mlp_bias
        cfg["sliding_window"] = spec.sliding_window
    if arch == "mixtral":
        cfg["num_local_experts"] = spec.num_experts
        cfg["num_experts_per_tok"] = spec.experts_per_token
    if arch in ("qwen2", "qwen2_moe"):
        cfg["architectures"] = ["Qwen2ForCausalLM"]
        cfg["use_sliding_window"] = spec.sliding_window is not None
        cfg["sliding_window"] = spec.sliding_window
    if arch == "gemma2":
        cfg["architectures"] = ["Gemma2ForCausalLM"]
        cfg["hidden_activation"] = spec.activation
        cfg["sliding_window"] = spec.sliding_window
        cfg["query_pre_attn_scalar"] = spec.head_dim
    if arch in ("olmo2", "smollm3"):  # presets olmo-2-7b, smollm3-3b (hf_config/dense.py)
        cfg["architectures"] = {"olmo2": ["Olmo2ForCausalLM"], "smollm3": ["SmolLM3ForCausalLM"]}[
            arch
        ]
        cfg["attention_bias"] = spec.attention_qkv_bias
    if arch == "qwen3":
        cfg["architectures"] = ["Qwen3ForCausalLM"]
        cfg["attention_bias"] = spec.attention_qkv_bias
    if arch == "gemma3_text":
        cfg["architectures"] = ["Gemma3ForCausalLM"]
        cfg["hidden_activation"] = spec.activation
        cfg["query_pre_attn_scalar"] = spec.head_dim
        cfg["sliding_window"] = spec.sliding_window
        cfg["layer_types"] = _gemma3_layer_types(spec)
    if arch == "deepseek_v3":
        cfg |= _deepseek_v3_fields(spec)
    if arch in _MOE_CONFIGS:  # issue 13 part C: the mixture-of-experts families with presets
        cfg |= _MOE_CONFIGS[arch](spec)
    if arch == "phi3":
        cfg["architectures"] = ["Phi3ForCausalLM"]
        cfg["sliding_window"] = spec.sliding_window
        cfg["pad_token_id"] = 0
    return cfg


def _gemma3_layer_types(spec: ModelSpec) -> list[str]:
    """Gemma-3's pattern: every 6th layer attends fully, the others use the window
    (Gemma3TextConfig's default layer_types); the windowed count is the spec's."""
    full = spec.num_layers - spec.windowed_layers
    types = [
        "full_attention" if (i + 1) % 6 == 0 else "sliding_attention"
        for i in range(spec.num_layers)
    ]
    if types.count("full_attention") != full:  # another split: the full layers last
        types = ["sliding_attention"] * (spec.num_layers - full) + ["full_attention"] * full
    return types


def _deepseek_v3_fields(spec: ModelSpec) -> dict[str, Any]:
    """MLA ranks and head widths, routed/shared experts and the leading dense layers
    (DeepseekV3Config); head_dim is derived by the config from the MLA widths."""
    return {
        "architectures": ["DeepseekV3ForCausalLM"],
        "head_dim": spec.qk_rope_head_dim,
        "q_lora_rank": spec.q_lora_rank,
        "kv_lora_rank": spec.kv_lora_rank,
        "qk_rope_head_dim": spec.qk_rope_head_dim,
        "qk_nope_head_dim": spec.qk_nope_head_dim,
        "v_head_dim": spec.v_head_dim,
        "n_routed_experts": spec.num_experts,
        "num_experts_per_tok": spec.experts_per_token,
        "n_shared_experts": spec.num_shared_experts,
        "moe_intermediate_size": spec.moe_intermediate_size,
        "first_k_dense_replace": spec.first_dense_layers,
        "attention_bias": spec.attention_qkv_bias,
        "n_group": 1,
        "topk_group": 1,
    }


# ---- Issue 13 part C: mixture-of-experts families ------------------------------------------
def _sparse_layers(spec: ModelSpec) -> list[int]:
    """Which layers are sparse: the last moe_layers (a count fixes the tensors, not the place)."""
    return list(range(spec.num_layers - spec.moe_layers, spec.num_layers))


def _qwen3_moe(spec: ModelSpec) -> dict[str, Any]:
    return {
        "architectures": ["Qwen3MoeForCausalLM"],
        "num_experts": spec.num_experts,
        "num_experts_per_tok": spec.experts_per_token,
        "moe_intermediate_size": spec.expert_intermediate_size,
        "decoder_sparse_step": 1,
        "mlp_only_layers": list(range(spec.num_layers - spec.moe_layers)),
        "attention_bias": spec.attention_qkv_bias,
    }


def _gpt_oss(spec: ModelSpec) -> dict[str, Any]:
    windowed = spec.windowed_layers
    return {
        "architectures": ["GptOssForCausalLM"],
        "num_local_experts": spec.num_experts,
        "num_experts_per_tok": spec.experts_per_token,
        "attention_bias": spec.attention_qkv_bias,
        "sliding_window": spec.sliding_window,
        "layer_types": [
            "sliding_attention" if i < windowed else "full_attention"
            for i in range(spec.num_layers)
        ],
    }


def _llama4_text(spec: ModelSpec) -> dict[str, Any]:
    chunked = spec.windowed_layers
    return {
        "architectures": ["Llama4ForCausalLM"],
        "intermediate_size": spec.expert_intermediate_size,
        "intermediate_size_mlp": spec.intermediate_size,
        "num_local_experts": spec.num_experts,
        "num_experts_per_tok": spec.experts_per_token,
        "moe_layers": _sparse_layers(spec),
        "attention_bias": spec.attention_qkv_bias,
        "attention_chunk_size": spec.sliding_window,
        "no_rope_layers": [1 if i < chunked else 0 for i in range(spec.num_layers)],
    }


_MOE_CONFIGS = {"qwen3_moe": _qwen3_moe, "gpt_oss": _gpt_oss, "llama4_text": _llama4_text}
