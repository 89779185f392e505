"""Builders for dense decoder families beyond the first core: Phi-1/2, GPT-BigCode (StarCoder),
StarCoder2, GPT-Neo, GPT-J, CodeGen, BLOOM, MPT, StableLM, OLMo, OLMo-2, Cohere (Command-R),
Cohere2, Granite, GLM, GLM-4, Nemotron, Persimmon, EXAONE-4, ERNIE-4.5, MiniCPM3, SmolLM3.

Each follows its transformers (v5) ``modeling_<type>.py``: which projections carry biases, how
many norms a layer has and of which kind, q/k norms, tied embeddings with the family's own
default, windows. Partial rotary embeddings (Phi, GPT-J, Persimmon, GLM, Nemotron) have no
parameters and do not change the cache. tests/test_hf_config_dense.py builds each family on the
meta device and compares parameters and the cache to the element.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vramcalc.errors import VramcalcError

from .reader import Reader, common_fields, window_fields

_BIASED = {"attention_qkv_bias": True, "attention_out_bias": True, "mlp_bias": True}


def _hidden_over_heads(out: dict[str, Any]) -> dict[str, Any]:
    """Families whose attention computes head_dim = hidden // heads and ignores a head_dim key."""
    out.pop("head_dim", None)
    return out


def _phi(r: Reader, arch: str) -> dict[str, Any]:
    """Phi-1/1.5/2 (PhiDecoderLayer): one LayerNorm feeding attention and MLP in parallel, biased
    q/k/v/dense and fc1/fc2, final LayerNorm, lm_head with a bias; optional q/k LayerNorms of
    head_dim (qk_layernorm)."""
    out = common_fields(r, arch, tie_default=False)
    out |= _BIASED | {
        "mlp_kind": "plain",
        "activation": r.text("hidden_act", "gelu_new"),
        "norm_kind": "layernorm",
        "norms_per_layer": 1,
        "parallel_block": True,
        "lm_head_bias": True,
    }
    if r.flag("qk_layernorm", False):
        out |= {"qk_norm": True, "qk_norm_bias": True}
    return out


def _gpt_bigcode(r: Reader, arch: str) -> dict[str, Any]:
    """GPT-BigCode (SantaCoder, StarCoder, OctoCoder): fused c_attn of hidden + 2·kv_dim with
    kv_heads 1 under multi_query (the default), else heads; biases everywhere, two LayerNorms,
    learned positions, n_inner (default 4·hidden) plain MLP, tied embeddings."""
    heads = r.need("num_attention_heads", "n_head", "num_attention_heads")
    hidden = r.need("hidden_size", "n_embd", "hidden_size")
    out: dict[str, Any] = {
        "architecture": arch,
        "vocab_size": r.need("vocab_size"),
        "hidden_size": hidden,
        "num_layers": r.need("num_layers", "n_layer", "num_hidden_layers"),
        "num_attention_heads": heads,
        "num_kv_heads": 1 if r.flag("multi_query", True) else heads,
        "intermediate_size": r.positive("n_inner") or 4 * hidden,
        "max_position_embeddings": r.need("max_position_embeddings", "n_positions"),
        "mlp_kind": "plain",
        "activation": r.text("activation_function", "gelu_pytorch_tanh"),
        "norm_kind": "layernorm",
        "tie_word_embeddings": r.flag("tie_word_embeddings", True),
        "position_embedding": "learned",
    }
    return out | _BIASED


def _starcoder2(r: Reader, arch: str) -> dict[str, Any]:
    """StarCoder2: Llama-shaped attention with use_bias on q/k/v/o and on the plain c_fc/c_proj
    MLP, LayerNorms with bias, tied embeddings; sliding_window on every layer (as Mistral)."""
    out = common_fields(r, arch, tie_default=True)
    bias = r.flag("use_bias", True)
    out |= {
        "attention_qkv_bias": bias,
        "attention_out_bias": bias,
        "mlp_bias": bias,
        "mlp_kind": "plain",
        "activation": r.text("hidden_act", "gelu_pytorch_tanh"),
        "norm_kind": "layernorm",
    }
    return out | window_fields(r, out["num_layers"], None)


def _gpt_neo(r: Reader, arch: str) -> dict[str, Any]:
    """GPT-Neo: q/k/v without bias, out_proj with, biased plain MLP (intermediate_size, default
    4·hidden), learned positions, tied. Its "local" layers only mask (window_size): transformers'
    cache keeps every token of every layer, so no window is modelled."""
    hidden = r.need("hidden_size", "hidden_size", "n_embd")
    return {
        "architecture": arch,
        "vocab_size": r.need("vocab_size"),
        "hidden_size": hidden,
        "num_layers": r.need("num_layers", "num_layers", "num_hidden_layers"),
        "num_attention_heads": r.need("num_attention_heads", "num_heads", "num_attention_heads"),
        "intermediate_size": r.positive("intermediate_size") or 4 * hidden,
        "max_position_embeddings": r.need("max_position_embeddings", "max_position_embeddings"),
        "mlp_kind": "plain",
        "activation": r.text("activation_function", "gelu_new"),
        "attention_out_bias": True,
        "mlp_bias": True,
        "norm_kind": "layernorm",
        "tie_word_embeddings": r.flag("tie_word_embeddings", True),
        "position_embedding": "learned",
    }


def _gptj(r: Reader, arch: str) -> dict[str, Any]:
    """GPT-J and CodeGen: one LayerNorm (ln_1) feeding attention and MLP in parallel, q/k/v/out
    (CodeGen: fused qkv_proj) without bias, biased fc_in/fc_out of n_inner (default 4·hidden),
    rotary on rotary_dim (no parameters), lm_head with a bias, untied."""
    hidden = r.need("hidden_size", "n_embd", "hidden_size")
    return {
        "architecture": arch,
        "vocab_size": r.need("vocab_size"),
        "hidden_size": hidden,
        "num_layers": r.need("num_layers", "n_layer", "num_hidden_layers"),
        "num_attention_heads": r.need("num_attention_heads", "n_head", "num_attention_heads"),
        "intermediate_size": r.positive("n_inner") or 4 * hidden,
        "max_position_embeddings": r.need("max_position_embeddings", "n_positions"),
        "mlp_kind": "plain",
        "activation": r.text("activation_function", "gelu_new"),
        "mlp_bias": True,
        "norm_kind": "layernorm",
        "norms_per_layer": 1,
        "parallel_block": True,
        "lm_head_bias": True,
        "tie_word_embeddings": r.flag("tie_word_embeddings", False),
    }


# BLOOM has no position limit in its config (ALiBi); 2048 is the sequence length it was trained
# at (BigScience, "BLOOM", arXiv 2211.05100, §3.3), used as the default context cap.
_BLOOM_TRAINED_CONTEXT = 2048


def _bloom(r: Reader, arch: str) -> dict[str, Any]:
    """BLOOM: LayerNorm after the word embeddings, fused query_key_value and dense with biases,
    biased 4·hidden plain MLP, two LayerNorms per layer, ALiBi (no position parameters), tied."""
    hidden = r.need("hidden_size", "hidden_size", "n_embed")
    return {
        "architecture": arch,
        "vocab_size": r.need("vocab_size"),
        "hidden_size": hidden,
        "num_layers": r.need("num_layers", "n_layer", "num_hidden_layers"),
        "num_attention_heads": r.need("num_attention_heads", "n_head", "num_attention_heads"),
        "intermediate_size": 4 * hidden,
        "max_position_embeddings": r.positive("seq_length", _BLOOM_TRAINED_CONTEXT),
        "mlp_kind": "plain",
        "activation": "gelu",
        "norm_kind": "layernorm",
        "embedding_norm": True,
        "tie_word_embeddings": r.flag("tie_word_embeddings", True),
        "position_embedding": "alibi",
    } | _BIASED


def _mpt(r: Reader, arch: str) -> dict[str, Any]:
    """MPT as transformers builds it (MptBlock): fused Wqkv and out_proj without bias, a 4·d_model
    up/down GELU MLP, LayerNorms without bias, ALiBi, tied. Configs transformers cannot build the
    same way (another expansion_ratio, grouped-query or q/k-normed attention, no ALiBi, biases)
    are refused rather than counted as something else."""
    attn = r.cfg.get("attn_config") or {}
    if not isinstance(attn, dict):
        raise VramcalcError(f"{r.where}: attn_config in config.json must be an object")
    odd = []
    if r.integer("expansion_ratio", 4) != 4:
        odd.append(f"expansion_ratio={r.cfg.get('expansion_ratio')}")
    if not r.flag("no_bias", True):
        odd.append("no_bias=false")
    for key, want in (("attn_type", "multihead_attention"), ("alibi", True), ("qk_ln", False)):
        if attn.get(key, want) != want:
            odd.append(f"attn_config.{key}={attn.get(key)!r}")
    if odd:
        raise VramcalcError(
            f"{r.where}: MPT with {', '.join(odd)} is not what transformers' MPT builds (4·d_model "
            'MLP, multi-head ALiBi attention, no biases); pip install "vramcalc[torch]" for the '
            "exact route"
        )
    hidden = r.need("hidden_size", "d_model", "hidden_size")
    return {
        "architecture": arch,
        "vocab_size": r.need("vocab_size"),
        "hidden_size": hidden,
        "num_layers": r.need("num_layers", "n_layers", "num_hidden_layers"),
        "num_attention_heads": r.need("num_attention_heads", "n_heads", "num_attention_heads"),
        "intermediate_size": 4 * hidden,
        "max_position_embeddings": r.need("max_position_embeddings", "max_seq_len"),
        "mlp_kind": "plain",
        "activation": "gelu",
        "norm_kind": "layernorm",
        "norm_bias": False,
        "tie_word_embeddings": r.flag("tie_word_embeddings", True),
        "position_embedding": "alibi",
    }


def _stablelm(r: Reader, arch: str) -> dict[str, Any]:
    """StableLM: use_qkv_bias on q/k/v (o never), gated MLP without bias, LayerNorms with bias;
    use_parallel_residual drops post_attention_layernorm; qk_layernorm is one bias-free
    LayerNorm per head (StableLmLayerNormPerHead)."""
    out = _hidden_over_heads(common_fields(r, arch, tie_default=False))
    out |= {"attention_qkv_bias": r.flag("use_qkv_bias", False), "norm_kind": "layernorm"}
    if r.flag("use_parallel_residual", False):
        out |= {"norms_per_layer": 1, "parallel_block": True}
    if r.flag("qk_layernorm", False):
        out |= {"qk_norm": True, "qk_norm_kind": "per_head"}
    return out


def _olmo(r: Reader, arch: str) -> dict[str, Any]:
    """OLMo (1): Llama layout with parameter-free LayerNorms (OlmoLayerNorm has no weight or
    bias); attention_bias on q/k/v/o."""
    out = common_fields(r, arch, tie_default=False)
    bias = r.flag("attention_bias", False)
    out |= {"attention_qkv_bias": bias, "attention_out_bias": bias}
    return out | {"norm_kind": "layernorm", "norm_affine": False}


def olmo2_fields(r: Reader, arch: str) -> dict[str, Any]:
    """OLMo-2: norms after attention and after the MLP (two RMSNorms per layer), RMSNorm over the
    whole q (q_dim) and k (kv_dim) projections, attention_bias on q/k/v/o."""
    out = common_fields(r, arch, tie_default=False)
    bias = r.flag("attention_bias", False)
    out |= {"attention_qkv_bias": bias, "attention_out_bias": bias}
    return out | {"qk_norm": True, "qk_norm_kind": "full"}


def _cohere(r: Reader, arch: str) -> dict[str, Any]:
    """Cohere (Command-R) and Cohere2: one bias-free LayerNorm feeding attention and MLP in
    parallel, attention_bias on q/k/v/o, gated MLP, tied; Cohere's use_qk_norm is a bias-free
    LayerNorm per head; Cohere2 windows 3 of every 4 layers (sliding_window_pattern)."""
    out = common_fields(r, arch, tie_default=True)
    bias = r.flag("attention_bias", False)
    out |= {"attention_qkv_bias": bias, "attention_out_bias": bias, "norm_kind": "layernorm"}
    out |= {"norm_bias": False, "norms_per_layer": 1, "parallel_block": True}
    if arch == "cohere" and r.flag("use_qk_norm", False):
        out |= {"qk_norm": True, "qk_norm_kind": "per_head"}
    if arch == "cohere2":  # Cohere2Config sets head_dim = hidden // heads, whatever is given
        out.pop("head_dim", None)
        pattern = r.positive("sliding_window_pattern", 4)
        layers = out["num_layers"]
        out |= window_fields(r, layers, layers - layers // pattern)
    return out


def _granite(r: Reader, arch: str) -> dict[str, Any]:
    """Granite: the Llama layout (attention_bias on q/k/v/o, mlp_bias); its embedding, residual,
    attention and logit multipliers have no parameters."""
    out = common_fields(r, arch, tie_default=False)
    bias = r.flag("attention_bias", False)
    out |= {"attention_qkv_bias": bias, "attention_out_bias": bias}
    return out | {"mlp_bias": r.flag("mlp_bias", False)}


def _glm(r: Reader, arch: str) -> dict[str, Any]:
    """GLM / GLM-4: attention_bias (default true) on q/k/v only, fused gate_up_proj (same count as
    gate + up), untied; GLM-4 adds norms after attention and after the MLP (four per layer)."""
    out = common_fields(r, arch, tie_default=False)
    out["attention_qkv_bias"] = r.flag("attention_bias", True)
    if arch == "glm4":
        out["norms_per_layer"] = 4
    return out


def _nemotron(r: Reader, arch: str) -> dict[str, Any]:
    """Nemotron: plain up/down MLP (relu²) with mlp_bias, attention_bias on q/k/v/o, LayerNorm1P
    (weight and bias) twice per layer and at the end, untied."""
    out = common_fields(r, arch, tie_default=False)
    bias = r.flag("attention_bias", False)
    return out | {
        "attention_qkv_bias": bias,
        "attention_out_bias": bias,
        "mlp_bias": r.flag("mlp_bias", False),
        "mlp_kind": "plain",
        "activation": r.text("hidden_act", "relu2"),
        "norm_kind": "layernorm",
    }


def _persimmon(r: Reader, arch: str) -> dict[str, Any]:
    """Persimmon (Fuyu's text model): multi-head attention with fused, biased query_key_value and
    dense, q/k LayerNorms of head_dim with bias (qk_layernorm), biased plain MLP, LayerNorms."""
    out = _hidden_over_heads(common_fields(r, arch, tie_default=False))
    out |= _BIASED | {
        "num_kv_heads": None,
        "mlp_kind": "plain",
        "activation": r.text("hidden_act", "relu2"),
        "norm_kind": "layernorm",
    }
    if r.flag("qk_layernorm", True):
        out |= {"qk_norm": True, "qk_norm_bias": True}
    return out


def _pattern_windowed(r: Reader, layers: int, default: int) -> int:
    """Windowed layers of an EXAONE-4 sliding_window_pattern: every pattern-th layer is global
    ((i + 1) % pattern == 0), or a string such as "LLLG" (L local, G global) repeated."""
    pattern = r.cfg.get("sliding_window_pattern", default)
    if isinstance(pattern, str) and pattern and set(pattern) <= {"L", "G"} and len(pattern) < 1000:
        return sum(1 for i in range(layers) if pattern[i % len(pattern)] == "L")
    step = r.positive("sliding_window_pattern", default)
    return layers - layers // step


def _exaone4(r: Reader, arch: str) -> dict[str, Any]:
    """EXAONE-4: RMSNorms after attention and after the MLP (two per layer), q/k RMSNorms of
    head_dim, no biases; local layers by layer_types or sliding_window_pattern (default 4)."""
    out = common_fields(r, arch, tie_default=False) | {"qk_norm": True}
    layers = out["num_layers"]
    windowed = _pattern_windowed(r, layers, 4) if r.has("sliding_window") else 0
    return out | window_fields(r, layers, windowed)


def _ernie4_5(r: Reader, arch: str) -> dict[str, Any]:
    """ERNIE-4.5 (dense): use_bias on q/k/v/o and the gated MLP, tied by default."""
    out = common_fields(r, arch, tie_default=True)
    bias = r.flag("use_bias", False)
    return out | {"attention_qkv_bias": bias, "attention_out_bias": bias, "mlp_bias": bias}


def _minicpm3(r: Reader, arch: str) -> dict[str, Any]:
    """MiniCPM3: multi-head latent attention as DeepSeek-V2 (q_a/q_b with a q_lora_rank norm,
    kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj), attention_bias on q_a, kv_a and o, gated MLP
    with mlp_bias, tied. KV cache: the latent plus the rotary key per token (ModelSpec)."""
    out = common_fields(r, arch, tie_default=True)
    out.pop("head_dim", None)
    bias = r.flag("attention_bias", False)
    return out | {
        "num_kv_heads": None,
        "attention_qkv_bias": bias,
        "attention_out_bias": bias,
        "mlp_bias": r.flag("mlp_bias", False),
        "q_lora_rank": r.positive("q_lora_rank"),
        "kv_lora_rank": r.need("kv_lora_rank", "kv_lora_rank"),
        "qk_rope_head_dim": r.need("qk_rope_head_dim", "qk_rope_head_dim"),
        "qk_nope_head_dim": r.need("qk_nope_head_dim", "qk_nope_head_dim"),
        # MiniCpm3Config: v_head_dim defaults to hidden // heads
        "v_head_dim": r.positive("v_head_dim") or out["hidden_size"] // out["num_attention_heads"],
    }


def _smollm3(r: Reader, arch: str) -> dict[str, Any]:
    """SmolLM3: the Llama layout, tied; with use_sliding_window the layers without RoPE
    (no_rope_layers[i] == 0, by default every no_rope_layer_interval-th) use the window."""
    out = common_fields(r, arch, tie_default=True)
    bias = r.flag("attention_bias", False)
    out |= {"attention_qkv_bias": bias, "attention_out_bias": bias}
    out["mlp_bias"] = r.flag("mlp_bias", False)
    layers = out["num_layers"]
    windowed = 0
    if r.flag("use_sliding_window", False):
        no_rope = r.int_list("no_rope_layers", hi=1)
        if no_rope:
            windowed = sum(1 for i in range(min(layers, len(no_rope))) if not no_rope[i])
        else:
            interval = r.positive("no_rope_layer_interval", 4)
            windowed = layers // interval
    return out | window_fields(r, layers, windowed)


BUILDERS: dict[str, Callable[[Reader, str], dict[str, Any]]] = {
    "phi": _phi,
    "gpt_bigcode": _gpt_bigcode,
    "starcoder2": _starcoder2,
    "gpt_neo": _gpt_neo,
    "gptj": _gptj,
    "codegen": _gptj,
    "bloom": _bloom,
    "mpt": _mpt,
    "stablelm": _stablelm,
    "olmo": _olmo,
    "olmo2": olmo2_fields,
    "cohere": _cohere,
    "cohere2": _cohere,
    "granite": _granite,
    "glm": _glm,
    "glm4": _glm,
    "nemotron": _nemotron,
    "persimmon": _persimmon,
    "exaone4": _exaone4,
    "ernie4_5": _ernie4_5,
    "minicpm3": _minicpm3,
    "smollm3": _smollm3,
}
