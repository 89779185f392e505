"""ModelSpec → Hugging Face config.json dict (pure data; no transformers import).

Used to build the reference implementation (tests' parameter-count cross-check, the fake-tensor
trace). The reverse direction (reading any config.json) lives with the model-source code.
"""

from __future__ import annotations

from typing import Any

from .specs import ModelSpec


def hf_config_dict(spec: ModelSpec) -> dict[str, Any]:
    """The config.json fields that make transformers build this architecture."""
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
    if arch == "phi3":
        cfg["architectures"] = ["Phi3ForCausalLM"]
        cfg["sliding_window"] = spec.sliding_window
        cfg["pad_token_id"] = 0
    return cfg
