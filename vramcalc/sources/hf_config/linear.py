"""Builders for hybrids whose recurrent layers are not Mamba: Qwen3-Next and Qwen3.5 (gated
DeltaNet, arXiv 2412.06464, beside gated attention) and LFM2 / LFM2-MoE (gated short convolutions).

Their cache is, as for Mamba hybrids, keys and values in the attention layers only plus a fixed
state per sequence in the others: the conv window (and for the gated DeltaNet its matrix-valued
recurrent state, value heads × key head dim × value head dim), described with the same ssm_*
fields (vramcalc.spec.model). Tensors follow transformers v5 ``modeling_<type>.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vramcalc.errors import VramcalcError

from .checks import layer_types
from .reader import Reader, common_fields


def _gated_deltanet_hybrid(r: Reader, arch: str) -> dict[str, Any]:
    """What Qwen3-Next and Qwen3.5 share: layer_types (default: every full_attention_interval-th
    layer full attention) pick gated attention (q_proj doubled into query and output gate,
    per-head q/k RMSNorm) or a gated DeltaNet (Qwen3NextGatedDeltaNet / Qwen3_5GatedDeltaNet: the
    input projections to q, k, v, z, b and a, their conv over q, k and v, dt_bias and A_log per
    value head, a gated RMSNorm of one value head, out_proj; its recurrent state is value heads ×
    key head dim × value head dim)."""
    out = common_fields(r, arch, tie_default=False)
    layers = out["num_layers"]
    types = layer_types(r, layers)
    if types is None:
        interval = r.positive("full_attention_interval", 4)
        types = [
            "linear_attention" if (i + 1) % interval else "full_attention" for i in range(layers)
        ]
    unknown = sorted({t for t in types if t not in ("linear_attention", "full_attention")})
    if unknown:
        raise VramcalcError(f"{arch} layer_types {', '.join(unknown)} are not mapped")
    attention = types.count("full_attention")
    bias = r.flag("attention_bias", False)
    out |= {"attention_qkv_bias": bias, "attention_out_bias": bias, "qk_norm": True}
    out |= {"attention_output_gate": True, "attention_layers": attention}
    k_heads = r.positive("linear_num_key_heads", 16)
    v_heads = r.positive("linear_num_value_heads", 32)
    v_dim = r.positive("linear_value_head_dim", 128)
    out |= {
        "ssm_layers": layers - attention,
        "ssm_kind": "gated_deltanet",
        "ssm_d_inner": v_heads * v_dim,
        "ssm_d_state": r.positive("linear_key_head_dim", 128),
        "ssm_d_conv": r.positive("linear_conv_kernel_dim", 4),
        "ssm_n_groups": k_heads,
        "ssm_heads": v_heads,
        "ssm_conv_bias": False,
    }
    return out


def _shared_expert_moe(r: Reader, sparse_layers: int, layers: int) -> dict[str, Any]:
    """Routed experts of moe_intermediate_size plus one shared expert with a sigmoid gate."""
    return {
        "num_experts": r.need("num_experts", "num_experts"),
        "experts_per_token": r.need("experts_per_token", "num_experts_per_tok"),
        "moe_intermediate_size": r.need("moe_intermediate_size", "moe_intermediate_size"),
        "first_dense_layers": layers - sparse_layers,
        "shared_expert_intermediate_size": r.positive("shared_expert_intermediate_size", 512),
        "shared_expert_gate": True,
    }


def _qwen3_next(r: Reader, arch: str) -> dict[str, Any]:
    """Qwen3-Next: the gated DeltaNet hybrid above; the MLP is sparse as in Qwen2-MoE
    (mlp_only_layers, decoder_sparse_step) with a shared expert and its sigmoid gate."""
    out = _gated_deltanet_hybrid(r, arch)
    layers = out["num_layers"]
    step = r.positive("decoder_sparse_step", 1)
    dense_only = set(r.int_list("mlp_only_layers"))
    sparse = sum(1 for i in range(layers) if i not in dense_only and (i + 1) % step == 0)
    if r.integer("num_experts", 512) and sparse:
        out |= _shared_expert_moe(r, sparse, layers)
    return out


def _qwen3_5(r: Reader, arch: str) -> dict[str, Any]:
    """Qwen3.5 text models: the gated DeltaNet hybrid above (its input projection split into
    in_proj_qkv, in_proj_z, in_proj_b and in_proj_a: the same tensors); qwen3_5_text has a dense
    MLP in every layer, qwen3_5_moe_text a sparse one (experts + gated shared expert) in every
    layer and no intermediate_size field (Qwen3_5MoeTextConfig)."""
    if arch == "qwen3_5_text":
        return _gated_deltanet_hybrid(r, arch)
    # no dense MLP anywhere: stand the experts' width in for the field common_fields requires
    inner = Reader(r.cfg | {"intermediate_size": r.positive("moe_intermediate_size", 512)}, r.where)
    out = _gated_deltanet_hybrid(inner, arch)
    r.missing += inner.missing
    return out | _shared_expert_moe(r, out["num_layers"], out["num_layers"])


def _lfm2(r: Reader, arch: str) -> dict[str, Any]:
    """LFM2: layer_types (or full_attn_idxs) pick attention (per-head q/k RMSNorm, no biases) or a
    gated short convolution (Lfm2ShortConv: in_proj h → 3h, depthwise conv of conv_L_cache taps,
    out_proj; conv_bias on all three) whose cache is the conv window only; a gated MLP whose
    width block_auto_adjust_ff_dim rounds (2/3 × intermediate_size × block_ffn_dim_multiplier, up
    to a multiple of block_multiple_of); two RMSNorms per layer and one after the embeddings.
    LFM2-MoE (Lfm2MoeDecoderLayer): the MLP keeps intermediate_size as written in the first
    num_dense_layers layers, the others hold num_experts experts of moe_intermediate_size (the
    router's expert_bias is a buffer); layer_types is required."""
    out = common_fields(r, arch, tie_default=True)
    layers, hidden = out["num_layers"], out["hidden_size"]
    types = layer_types(r, layers)
    if types is None and arch == "lfm2_moe":  # Lfm2MoeConfig has no default layer pattern
        raise VramcalcError("lfm2_moe config.json needs layer_types (conv / full_attention)")
    if types is None:
        full = r.int_list("full_attn_idxs") if r.has("full_attn_idxs") else range(layers)
        full_set = set(full)
        types = ["full_attention" if i in full_set else "conv" for i in range(layers)]
    attention = sum(1 for t in types if t != "conv")
    inter = r.positive("block_ff_dim", out["intermediate_size"])
    if arch == "lfm2_moe":
        dense = min(r.integer("num_dense_layers", 2), layers)
        out |= {
            "num_experts": r.need("num_experts", "num_experts"),
            "experts_per_token": r.need("experts_per_token", "num_experts_per_tok"),
            "moe_intermediate_size": r.need("moe_intermediate_size", "moe_intermediate_size"),
            "first_dense_layers": dense,
        }
    elif r.flag("block_auto_adjust_ff_dim", True):
        inter = int(2 * inter / 3)
        if "block_ffn_dim_multiplier" not in r.cfg or r.has("block_ffn_dim_multiplier"):
            multiplier = r.number("block_ffn_dim_multiplier", 1.0, hi=1e3)
            step = r.positive("block_multiple_of", 256)
            inter = step * -(-int(multiplier * inter) // step)
    bias = r.flag("conv_bias", False)
    out |= {
        "intermediate_size": inter,
        "qk_norm": True,
        "attention_layers": attention,
        "ssm_layers": layers - attention,
        "ssm_kind": "short_conv",
        "ssm_d_inner": hidden,
        "ssm_d_conv": r.positive("conv_L_cache", 3),
        "ssm_proj_bias": bias,
        "ssm_conv_bias": bias,
        "tie_word_embeddings": r.flag("tie_word_embeddings", r.flag("tie_embedding", True)),
    }
    return out


BUILDERS: dict[str, Callable[[Reader, str], dict[str, Any]]] = {
    "qwen3_next": _qwen3_next,
    "lfm2": _lfm2,
    "lfm2_moe": _lfm2,
    "qwen3_5_text": _qwen3_5,
    "qwen3_5_moe_text": _qwen3_5,
}

# transformers v5 configuration-class defaults (configuration_<type>.py).
DEFAULTS: dict[str, dict[str, Any]] = {
    "qwen3_next": {
        "vocab_size": 151936,
        "hidden_size": 2048,
        "intermediate_size": 5632,
        "num_hidden_layers": 48,
        "num_attention_heads": 16,
        "num_key_value_heads": 2,
        "head_dim": 256,
        "max_position_embeddings": 32768,
        "moe_intermediate_size": 512,
        "num_experts_per_tok": 10,
    },
    "lfm2": {
        "vocab_size": 65536,
        "hidden_size": 2560,
        "intermediate_size": 12288,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 128000,
    },
    "qwen3_5_text": {
        "vocab_size": 248320,
        "hidden_size": 4096,
        "intermediate_size": 12288,
        "num_hidden_layers": 32,
        "num_attention_heads": 16,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "max_position_embeddings": 32768,
    },
    "qwen3_5_moe_text": {
        "vocab_size": 248320,
        "hidden_size": 2048,
        "num_hidden_layers": 40,
        "num_attention_heads": 16,
        "num_key_value_heads": 2,
        "head_dim": 256,
        "max_position_embeddings": 32768,
        "moe_intermediate_size": 512,
        "num_experts": 256,
        "num_experts_per_tok": 8,
    },
    "lfm2_moe": {
        "vocab_size": 65536,
        "hidden_size": 2048,
        "intermediate_size": 7168,
        "moe_intermediate_size": 1792,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 128000,
        "num_experts": 32,
        "num_experts_per_tok": 4,
    },
}
