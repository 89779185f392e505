"""Builders for the first architectures mapped: Llama/Mistral/Mixtral, Qwen2/3 (+MoE), Gemma 1-3,
Phi-3, GPT-2, GPT-NeoX, Falcon, OPT, DeepSeek-V2/V3. Each returns ModelSpec fields for one
``model_type``; its defaults are transformers' configuration-class defaults (v5)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .reader import Reader, common_fields, window_fields


def _llama(r: Reader, arch: str) -> dict[str, Any]:
    """Llama, Mistral, Mixtral: attention_bias on q/k/v/o, mlp_bias on the MLP (LlamaAttention)."""
    out = common_fields(r, arch, tie_default=False)
    bias = r.flag("attention_bias", False)
    out |= {"attention_qkv_bias": bias, "attention_out_bias": bias}
    out["mlp_bias"] = r.flag("mlp_bias", False)
    out |= window_fields(r, out["num_layers"], None)
    if arch == "mixtral":
        out["num_experts"] = r.need("num_experts", "num_local_experts")
        out["experts_per_token"] = r.need("experts_per_token", "num_experts_per_tok")
    return out


def _moe_layer_count(r: Reader, layers: int) -> int:
    """Qwen2-MoE / Qwen3-MoE: layer i is sparse unless listed in mlp_only_layers, and only every
    decoder_sparse_step-th layer is ((i + 1) % step == 0)."""
    step = r.positive("decoder_sparse_step", 1)
    dense_only = set(r.int_list("mlp_only_layers"))
    return sum(1 for i in range(layers) if i not in dense_only and (i + 1) % step == 0)


def _qwen(r: Reader, arch: str) -> dict[str, Any]:
    """Qwen2 (q/k/v biased, o not), Qwen2-MoE (qkv_bias, shared expert + its sigmoid gate),
    Qwen3 / Qwen3-MoE (attention_bias on all four, RMSNorm on q and k)."""
    out = common_fields(r, arch, tie_default=False)
    layers = out["num_layers"]
    if arch == "qwen2":
        out["attention_qkv_bias"] = True
    elif arch == "qwen2_moe":
        out["attention_qkv_bias"] = r.flag("qkv_bias", True)
    else:  # qwen3, qwen3_moe
        bias = r.flag("attention_bias", False)
        out |= {"attention_qkv_bias": bias, "attention_out_bias": bias, "qk_norm": True}
    windowed = 0
    if r.flag("use_sliding_window", False):
        windowed = max(layers - r.integer("max_window_layers", layers), 0)
    out |= window_fields(r, layers, windowed)
    if arch.endswith("_moe"):
        experts = r.integer("num_experts", 0)
        moe_layers = _moe_layer_count(r, layers) if experts else 0
        out |= {
            "num_experts": experts,
            "experts_per_token": r.need("experts_per_token", "num_experts_per_tok"),
            "moe_intermediate_size": r.positive("moe_intermediate_size"),
            "first_dense_layers": layers - moe_layers,
        }
        if arch == "qwen2_moe":
            out["shared_expert_intermediate_size"] = r.positive("shared_expert_intermediate_size")
            out["shared_expert_gate"] = bool(out["shared_expert_intermediate_size"])
    return out


def _gemma(r: Reader, arch: str) -> dict[str, Any]:
    """Gemma (2 norms per layer), Gemma-2 (4; every other layer windowed), Gemma-3 (4 + q/k norms;
    5 of every 6 layers windowed). head_dim defaults to 256; embeddings are tied."""
    out = common_fields(r, arch, tie_default=True)
    if "head_dim" not in out and not r.has("head_dim") and not r.missing:
        if 256 * out["num_attention_heads"] != out["hidden_size"]:
            out["head_dim"] = 256
    bias = r.flag("attention_bias", False)
    out |= {"attention_qkv_bias": bias, "attention_out_bias": bias}
    layers = out["num_layers"]
    if arch == "gemma":
        return out
    out["norms_per_layer"] = 4
    if arch == "gemma2":
        out |= window_fields(r, layers, (layers + 1) // 2)
    else:
        pattern = r.positive("sliding_window_pattern", 6)
        out |= window_fields(r, layers, layers - layers // pattern)
        out["qk_norm"] = True
        out["architecture"] = "gemma3_text"
    return out


def _phi3(r: Reader, arch: str) -> dict[str, Any]:
    """Phi-3: fused qkv_proj and gate_up_proj (same counts as separate ones), no biases."""
    out = common_fields(r, arch, tie_default=False)
    out |= window_fields(r, out["num_layers"], None)
    return out


def _gpt2(r: Reader, arch: str) -> dict[str, Any]:
    """GPT-2: Conv1D with biases everywhere, LayerNorm, learned positions, n_inner = 4·n_embd."""
    hidden = r.need("hidden_size", "n_embd")
    return {
        "architecture": arch,
        "vocab_size": r.need("vocab_size"),
        "hidden_size": hidden,
        "num_layers": r.need("num_layers", "n_layer"),
        "num_attention_heads": r.need("num_attention_heads", "n_head"),
        "intermediate_size": r.positive("n_inner") or 4 * hidden,
        "max_position_embeddings": r.need("max_position_embeddings", "n_positions"),
        "mlp_kind": "plain",
        "activation": r.text("activation_function", "gelu_new"),
        "attention_qkv_bias": True,
        "attention_out_bias": True,
        "mlp_bias": True,
        "norm_kind": "layernorm",
        "tie_word_embeddings": r.flag("tie_word_embeddings", True),
        "position_embedding": "learned",
    }


def _gpt_neox(r: Reader, arch: str) -> dict[str, Any]:
    """GPT-NeoX (Pythia): fused qkv and dense with attention_bias, biased MLP, two LayerNorms,
    separate embed_out (partial rotary has no parameters)."""
    out = common_fields(r, arch, tie_default=False)
    bias = r.flag("attention_bias", True)
    out |= {
        "num_kv_heads": None,
        "mlp_kind": "plain",
        "activation": r.text("hidden_act", "gelu"),
        "attention_qkv_bias": bias,
        "attention_out_bias": bias,
        "mlp_bias": True,
        "norm_kind": "layernorm",
    }
    return out


def _falcon(r: Reader, arch: str) -> dict[str, Any]:
    """Falcon: fused query_key_value of (heads + 2·kv_heads)·head_dim, where kv_heads is num_kv_heads
    (new decoder architecture), 1 (multi_query) or heads; `bias` on attention and MLP; one LayerNorm
    per layer for parallel attention, two for the new architecture or sequential blocks."""
    heads = r.need("num_attention_heads", "num_attention_heads", "n_head")
    hidden = r.need("hidden_size", "hidden_size", "n_embd")
    new_arch = r.flag("new_decoder_architecture", False)
    parallel = r.flag("parallel_attn", True)
    if new_arch:
        kv = r.positive("num_kv_heads", heads)
    elif r.flag("multi_query", True):
        kv = 1
    else:
        kv = heads
    n_ln = r.positive("num_ln_in_parallel_attn") or (2 if new_arch else 1)
    norms = 2 if (not parallel or n_ln == 2) else 1
    bias = r.flag("bias", False)
    return {
        "architecture": arch,
        "vocab_size": r.need("vocab_size"),
        "hidden_size": hidden,
        "num_layers": r.need("num_layers", "num_hidden_layers", "n_layer"),
        "num_attention_heads": heads,
        "num_kv_heads": kv,
        "intermediate_size": r.positive("ffn_hidden_size") or 4 * hidden,
        "max_position_embeddings": r.positive("max_position_embeddings", 2048),
        "mlp_kind": "plain",
        "activation": r.text("activation", "gelu"),
        "attention_qkv_bias": bias,
        "attention_out_bias": bias,
        "mlp_bias": bias,
        "norm_kind": "layernorm",
        "norms_per_layer": norms,
        "tie_word_embeddings": r.flag("tie_word_embeddings", True),
    }


def _opt(r: Reader, arch: str) -> dict[str, Any]:
    """OPT: biased q/k/v/out and fc1/fc2 (enable_bias), learned positions with an offset of 2,
    word_embed_proj_dim with project_in/out when it differs, no final norm for post-norm models."""
    hidden = r.need("hidden_size", "hidden_size")
    proj = r.positive("word_embed_proj_dim", hidden)
    bias = r.flag("enable_bias", True)
    final = r.flag("do_layer_norm_before", True) and not r.flag("_remove_final_layer_norm", False)
    if not r.flag("layer_norm_elementwise_affine", True):
        r.missing.append("layer_norm_elementwise_affine=false (LayerNorms without parameters)")
    return {
        "architecture": arch,
        "vocab_size": r.need("vocab_size"),
        "hidden_size": hidden,
        "num_layers": r.need("num_layers", "num_hidden_layers"),
        "num_attention_heads": r.need("num_attention_heads", "num_attention_heads"),
        "intermediate_size": r.need("intermediate_size", "ffn_dim"),
        "max_position_embeddings": r.need("max_position_embeddings", "max_position_embeddings"),
        "mlp_kind": "plain",
        "activation": r.text("activation_function", "relu"),
        "attention_qkv_bias": bias,
        "attention_out_bias": bias,
        "mlp_bias": bias,
        "norm_kind": "layernorm",
        "tie_word_embeddings": r.flag("tie_word_embeddings", True),
        "position_embedding": "learned",
        "position_offset": 2,
        "word_embed_proj_dim": proj if proj != hidden else None,
        "final_norm": final,
    }


def _deepseek(r: Reader, arch: str) -> dict[str, Any]:
    """DeepSeek-V2/V3: multi-head latent attention and a mixture of experts after
    first_k_dense_replace dense layers, n_shared_experts × moe_intermediate_size shared MLP."""
    out = common_fields(r, arch, tie_default=False)
    out.pop("head_dim", None)
    bias = r.flag("attention_bias", False)
    out |= {
        "num_kv_heads": None,
        "attention_qkv_bias": bias,
        "attention_out_bias": bias,
        "q_lora_rank": r.positive("q_lora_rank"),
        "kv_lora_rank": r.need("kv_lora_rank", "kv_lora_rank"),
        "qk_rope_head_dim": r.need("qk_rope_head_dim", "qk_rope_head_dim"),
        "qk_nope_head_dim": r.need("qk_nope_head_dim", "qk_nope_head_dim"),
        "v_head_dim": r.need("v_head_dim", "v_head_dim"),
    }
    experts = r.integer("n_routed_experts", 0)
    if experts:
        layers = out["num_layers"]
        out |= {
            "num_experts": experts,
            "experts_per_token": r.need("experts_per_token", "num_experts_per_tok"),
            "moe_intermediate_size": r.positive("moe_intermediate_size"),
            "num_shared_experts": r.integer("n_shared_experts", 0),
            "first_dense_layers": min(r.integer("first_k_dense_replace", 0), layers),
        }
    return out


BUILDERS: dict[str, Callable[[Reader, str], dict[str, Any]]] = {
    "llama": _llama,
    "mistral": _llama,
    "mixtral": _llama,
    "qwen2": _qwen,
    "qwen2_moe": _qwen,
    "qwen3": _qwen,
    "qwen3_moe": _qwen,
    "gemma": _gemma,
    "gemma2": _gemma,
    "gemma3_text": _gemma,
    "phi3": _phi3,
    "gpt2": _gpt2,
    "gpt_neox": _gpt_neox,
    "falcon": _falcon,
    "opt": _opt,
    "deepseek_v2": _deepseek,
    "deepseek_v3": _deepseek,
}
# Older or wrapper names of the same architectures.


# What transformers (v5) fills in when a config.json leaves a field out: its configuration class
# defaults (configuration_<type>.py). Configs saved as a diff, such as the text_config of many
# multimodal models (Gemma-3, LLaVA), rely on them. Only structural fields are listed, and only
# those whose default is a number rather than derived from others (head_dim, kv heads = heads).
_LLAMA_7B = {
    "vocab_size": 32000,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "max_position_embeddings": 2048,
}
_QWEN = {"vocab_size": 151936, "hidden_size": 4096, "intermediate_size": 22016}
_QWEN |= {"num_hidden_layers": 32, "num_attention_heads": 32, "max_position_embeddings": 32768}
_GEMMA2 = {"vocab_size": 256000, "hidden_size": 2304, "intermediate_size": 9216}
_GEMMA2 |= {"num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4}
_MLA = {"kv_lora_rank": 512, "q_lora_rank": 1536, "qk_rope_head_dim": 64}
_MLA |= {"qk_nope_head_dim": 128, "v_head_dim": 128}
DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": _LLAMA_7B,
    "mistral": _LLAMA_7B
    | {"intermediate_size": 14336, "num_key_value_heads": 8, "max_position_embeddings": 131072},
    "mixtral": _LLAMA_7B
    | {
        "intermediate_size": 14336,
        "num_key_value_heads": 8,
        "max_position_embeddings": 131072,
        "num_local_experts": 8,
        "num_experts_per_tok": 2,
    },
    "qwen2": _QWEN,
    "qwen2_moe": _QWEN
    | {
        "hidden_size": 2048,
        "intermediate_size": 5632,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "moe_intermediate_size": 1408,
        "num_experts": 60,
        "num_experts_per_tok": 4,
        "shared_expert_intermediate_size": 5632,
    },
    "qwen3": _QWEN | {"head_dim": 128},
    "qwen3_moe": _QWEN
    | {
        "hidden_size": 2048,
        "intermediate_size": 6144,
        "num_hidden_layers": 24,
        "num_key_value_heads": 4,
        "head_dim": 128,
        "moe_intermediate_size": 768,
        "num_experts": 128,
        "num_experts_per_tok": 8,
    },
    "gemma": {
        "vocab_size": 256000,
        "hidden_size": 3072,
        "intermediate_size": 24576,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "max_position_embeddings": 8192,
    },
    "gemma2": _GEMMA2 | {"max_position_embeddings": 8192, "sliding_window": 4096},
    "gemma3_text": _GEMMA2
    | {"vocab_size": 262208, "max_position_embeddings": 131072, "sliding_window": 4096},
    "phi3": _LLAMA_7B
    | {
        "vocab_size": 32064,
        "hidden_size": 3072,
        "intermediate_size": 8192,
        "max_position_embeddings": 4096,
    },
    "gpt2": {"vocab_size": 50257, "n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024},
    "gpt_neox": {
        "vocab_size": 50432,
        "hidden_size": 6144,
        "intermediate_size": 24576,
        "num_hidden_layers": 44,
        "num_attention_heads": 64,
        "max_position_embeddings": 2048,
    },
    "falcon": {
        "vocab_size": 65024,
        "hidden_size": 4544,
        "num_hidden_layers": 32,
        "num_attention_heads": 71,
        "max_position_embeddings": 2048,
    },
    "opt": {
        "vocab_size": 50272,
        "hidden_size": 768,
        "ffn_dim": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "max_position_embeddings": 2048,
    },
    "deepseek_v2": _LLAMA_7B
    | _MLA
    | {
        "vocab_size": 102400,
        "moe_intermediate_size": 1407,
        "n_routed_experts": 64,
        "n_shared_experts": 2,
    },
    "deepseek_v3": _MLA
    | {
        "vocab_size": 129280,
        "hidden_size": 7168,
        "intermediate_size": 18432,
        "num_hidden_layers": 61,
        "num_attention_heads": 128,
        "max_position_embeddings": 4096,
        "moe_intermediate_size": 2048,
        "n_routed_experts": 256,
        "num_experts_per_tok": 8,
        "n_shared_experts": 1,
        "first_k_dense_replace": 3,
    },
}
