"""Builders for state-space and hybrid models: Mamba, Falcon-Mamba, Mamba-2, Jamba, Bamba,
Granite-4.0 (granitemoehybrid), Falcon-H1 and Nemotron-H.

Their cache is a fixed state per sequence in every state-space layer (the causal conv1d window
and the recurrent SSM state) plus keys and values in the attention layers only (Mamba,
arXiv 2312.00752, §3.4; Mamba-2, arXiv 2405.21060; Jamba, arXiv 2403.19887, §2). Tensors follow
transformers v5 (``modeling_<type>.py``); which layers hold attention follows each configuration
class (attn_layer_period/offset, attn_layer_indices, hybrid_override_pattern). Counts read from
config.json are validated as whole numbers before any arithmetic or loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from vramcalc.errors import VramcalcError

from .checks import layer_types
from .reader import LAYERS_MAX, Reader, common_fields

# A recurrent model has no position table: the context is bounded by memory, not by the model.
# This only sets the default context (min(4096, this)); nothing is derived from it.
_NO_POSITION_LIMIT = 1 << 20


def _dt_rank(r: Reader, key: str, hidden: int) -> int:
    """Mamba's dt projection rank: "auto" is ceil(hidden / 16) (MambaConfig, JambaConfig)."""
    if r.cfg.get(key, "auto") == "auto":
        return math.ceil(hidden / 16)
    return int(r.positive(key))


def _recurrent_only(r: Reader, arch: str, tie_default: bool) -> dict[str, Any]:
    """Fields shared by the attention-free Mamba models: one RMSNorm and one mixer per layer, no
    MLP and no attention (one placeholder head that no tensor or cache uses)."""
    hidden = r.need("hidden_size", "hidden_size", "d_model")
    layers = r.need("num_layers", "num_hidden_layers", "n_layer")
    return {
        "architecture": arch,
        "vocab_size": r.need("vocab_size", "vocab_size"),
        "hidden_size": hidden,
        "num_layers": layers,
        "num_attention_heads": 1,
        "intermediate_size": hidden,
        "max_position_embeddings": _NO_POSITION_LIMIT,
        "norms_per_layer": 1,
        "tie_word_embeddings": r.flag("tie_word_embeddings", tie_default),
        "attention_layers": 0,
        "mlp_layers": 0,
        "ssm_layers": layers,
        "ssm_d_state": r.need("state_size", "state_size"),
        "ssm_d_conv": r.need("conv_kernel", "conv_kernel"),
        "ssm_proj_bias": r.flag("use_bias", False),
        "ssm_conv_bias": r.flag("use_conv_bias", True),
    }


def _mamba(r: Reader, arch: str) -> dict[str, Any]:
    """Mamba (MambaMixer): d_inner = expand × hidden, dt_rank "auto" = ceil(hidden / 16),
    tied embeddings by default. Falcon-Mamba is the same mixer; its RMSNorms of dt, B and C have
    no weights (FalconMambaWeightlessRMSNorm keeps a buffer), so the tensors are Mamba's."""
    out = _recurrent_only(r, arch, tie_default=True)
    expand = r.positive("expand", 2)
    inner = r.positive("intermediate_size", expand * out["hidden_size"])
    out |= {"ssm_kind": "mamba", "ssm_d_inner": inner}
    out["ssm_dt_rank"] = _dt_rank(r, "time_step_rank", out["hidden_size"])
    return out


def _mamba2(r: Reader, arch: str) -> dict[str, Any]:
    """Mamba-2 (Mamba2Mixer): d_inner = expand × hidden = num_heads × head_dim, n_groups groups
    of B and C, a gated RMSNorm of d_inner; embeddings untied by default."""
    out = _recurrent_only(r, arch, tie_default=False)
    expand = r.positive("expand", 2)
    out |= {
        "ssm_kind": "mamba2",
        "ssm_d_inner": expand * out["hidden_size"],
        "ssm_heads": r.need("num_heads", "num_heads"),
        "ssm_n_groups": r.positive("n_groups", 8),
    }
    return out


def _jamba(r: Reader, arch: str) -> dict[str, Any]:
    """Jamba: layer i has attention when i % attn_layer_period == attn_layer_offset, else a Mamba
    mixer (with RMSNorms on dt, B and C); every layer has an MLP, a mixture of num_experts when
    i % expert_layer_period == expert_layer_offset (JambaConfig.layers_num_experts)."""
    out = common_fields(r, arch, tie_default=False)
    layers, hidden = out["num_layers"], out["hidden_size"]
    period = r.positive("attn_layer_period", 8)
    offset = r.integer("attn_layer_offset", 4)
    attention = sum(1 for i in range(layers) if i % period == offset)
    experts = r.positive("num_experts", 16)
    e_period = r.positive("expert_layer_period", 2)
    e_offset = r.integer("expert_layer_offset", 1)
    sparse = sum(1 for i in range(layers) if i % e_period == e_offset) if experts > 1 else 0
    out |= {
        "attention_layers": attention,
        "ssm_layers": layers - attention,
        "ssm_kind": "mamba",
        "ssm_d_inner": r.positive("mamba_expand", 2) * hidden,
        "ssm_d_state": r.positive("mamba_d_state", 16),
        "ssm_d_conv": r.positive("mamba_d_conv", 4),
        "ssm_dt_rank": _dt_rank(r, "mamba_dt_rank", hidden),
        "ssm_proj_bias": r.flag("mamba_proj_bias", False),
        "ssm_conv_bias": r.flag("mamba_conv_bias", True),
        "ssm_inner_norms": True,
    }
    if sparse:
        out |= {
            "num_experts": experts,
            "experts_per_token": r.need("experts_per_token", "num_experts_per_tok"),
            "first_dense_layers": layers - sparse,
        }
    return out


def _bamba(r: Reader, arch: str) -> dict[str, Any]:
    """Bamba: attention in attn_layer_indices (Llama-style, attention_bias), Mamba-2 mixers in the
    other layers (BambaMixer), a gated MLP (mlp_bias) and two RMSNorms in every layer."""
    out = common_fields(r, arch, tie_default=False)
    layers, hidden = out["num_layers"], out["hidden_size"]
    attention = len({i for i in r.int_list("attn_layer_indices") if i < layers})
    bias = r.flag("attention_bias", False)
    out |= {"attention_qkv_bias": bias, "attention_out_bias": bias}
    out["mlp_bias"] = r.flag("mlp_bias", False)
    out |= _mamba2_fields(r, hidden) | {"attention_layers": attention}
    out["ssm_layers"] = layers - attention
    return out


def _mamba2_fields(r: Reader, hidden: int) -> dict[str, Any]:
    """The Mamba-2 mixer fields under their mamba_* names (BambaConfig, GraniteMoeHybridConfig
    defaults)."""
    return {
        "ssm_kind": "mamba2",
        "ssm_d_inner": r.positive("mamba_expand", 2) * hidden,
        "ssm_d_state": r.positive("mamba_d_state", 256),
        "ssm_d_conv": r.positive("mamba_d_conv", 4),
        "ssm_heads": r.positive("mamba_n_heads", 128),
        "ssm_n_groups": r.positive("mamba_n_groups", 1),
        "ssm_proj_bias": r.flag("mamba_proj_bias", False),
        "ssm_conv_bias": r.flag("mamba_conv_bias", True),
    }


def _falcon_h1(r: Reader, arch: str) -> dict[str, Any]:
    """Falcon-H1: attention and a Mamba-2 mixer side by side in every layer (both caches in every
    layer), d_inner = mamba_d_ssm (else expand × hidden), in_proj bias mamba_proj_bias, out_proj
    bias projectors_bias, the gated RMSNorm only with mamba_rms_norm (FalconH1Mixer); a gated MLP
    and two RMSNorms per layer. The muP multipliers are buffers, not parameters."""
    out = common_fields(r, arch, tie_default=False)
    layers, hidden = out["num_layers"], out["hidden_size"]
    bias = r.flag("attention_bias", False)
    out |= {"attention_qkv_bias": bias, "attention_out_bias": bias}
    out["mlp_bias"] = r.flag("mlp_bias", False)
    out |= _mamba2_fields(r, hidden) | {"attention_layers": layers, "ssm_layers": layers}
    if "mamba_d_ssm" not in r.cfg or r.has("mamba_d_ssm"):  # an explicit null: expand × hidden
        out["ssm_d_inner"] = r.positive("mamba_d_ssm", 1024)
    out["ssm_out_bias"] = r.flag("projectors_bias", False)
    out["ssm_gated_norm"] = r.flag("mamba_rms_norm", False)
    return out


_ATTENTION_TYPES = {"full_attention", "attention"}
_MAMBA_TYPES = {"linear_attention", "mamba"}


def _granitemoehybrid(r: Reader, arch: str) -> dict[str, Any]:
    """Granite-4.0 (granitemoehybrid): layer_types name each layer's mixer, Mamba-2
    ("mamba"/"linear_attention", GraniteMoeHybridMambaLayer) or attention ("attention"/
    "full_attention"; attention_bias); every layer has a shared gated MLP of
    shared_intermediate_size and, when num_local_experts > 0, num_local_experts experts of
    intermediate_size (GraniteMoeHybridDecoderLayer); two RMSNorms per layer."""
    out = common_fields(r, arch, tie_default=False)
    layers, hidden = out["num_layers"], out["hidden_size"]
    types = layer_types(r, layers) or ["mamba"] * layers
    unknown = sorted({t for t in types if t not in _ATTENTION_TYPES | _MAMBA_TYPES})
    if unknown:
        raise VramcalcError(
            f"granitemoehybrid layer_types {', '.join(unknown)} are not mapped "
            "(valid: mamba, attention, linear_attention, full_attention)"
        )
    attention = sum(1 for t in types if t in _ATTENTION_TYPES)
    bias = r.flag("attention_bias", False)
    out |= {"attention_qkv_bias": bias, "attention_out_bias": bias}
    out |= _mamba2_fields(r, hidden) | {"attention_layers": attention}
    out["ssm_layers"] = layers - attention
    shared = r.positive("shared_intermediate_size", 1024)
    experts = r.integer("num_local_experts", 8)
    if experts:
        out |= {
            "num_experts": experts,
            "experts_per_token": r.need("experts_per_token", "num_experts_per_tok"),
            "moe_intermediate_size": out["intermediate_size"],
            "shared_expert_intermediate_size": shared,
        }
    else:
        out["intermediate_size"] = shared
    return out


_NEMOTRON_BLOCKS = {
    "M": "M",
    "linear_attention": "M",
    "mamba": "M",
    "*": "*",
    "full_attention": "*",
    "attention": "*",
    "-": "-",
    "mlp": "-",
}


def _nemotron_blocks(r: Reader) -> list[str]:
    """Each layer's block: M (Mamba-2), * (attention) or - (MLP), from layers_block_type /
    layer_types or the older hybrid_override_pattern string (NemotronHConfig)."""
    items = r.str_list("layers_block_type") or r.str_list("layer_types")
    pattern = r.cfg.get("hybrid_override_pattern")
    if items is None and pattern is not None:
        if not isinstance(pattern, str) or len(pattern) > LAYERS_MAX:
            raise VramcalcError(
                f"nemotron_h hybrid_override_pattern must be a string of M, * and -, "
                f"got {str(pattern)[:60]!r}"
            )
        items = list(pattern)
    if items is None:
        raise VramcalcError(
            "nemotron_h config.json needs layers_block_type or hybrid_override_pattern"
        )
    unknown = sorted({b for b in items if b not in _NEMOTRON_BLOCKS})
    if unknown:  # "E"/"moe": the latent mixture-of-experts variant is not mapped
        raise VramcalcError(
            f"nemotron_h blocks {', '.join(unknown)} are not mapped (mapped: Mamba-2 'M', "
            "attention '*', MLP '-'); install vramcalc[torch] for the exact route"
        )
    return [_NEMOTRON_BLOCKS[b] for b in items]


def _nemotron_h(r: Reader, arch: str) -> dict[str, Any]:
    """Nemotron-H: each layer is one block, a Mamba-2 mixer (d_inner = mamba_num_heads ×
    mamba_head_dim), attention without biases or an MLP (up, down; relu2, mlp_bias), after one
    RMSNorm; the number of layers is the length of the block list."""
    blocks = _nemotron_blocks(r)
    heads = r.need("num_attention_heads", "num_attention_heads")
    hidden = r.need("hidden_size", "hidden_size")
    m_heads = r.positive("mamba_num_heads", 128)
    m_dim = r.positive("mamba_head_dim", 64)
    out: dict[str, Any] = {
        "architecture": arch,
        "vocab_size": r.need("vocab_size", "vocab_size"),
        "hidden_size": hidden,
        "num_layers": len(blocks),
        "num_attention_heads": heads,
        "num_kv_heads": r.positive("num_key_value_heads", heads),
        "intermediate_size": r.need("intermediate_size", "intermediate_size"),
        "max_position_embeddings": r.need("max_position_embeddings", "max_position_embeddings"),
        "mlp_kind": "plain",
        "activation": r.text("mlp_hidden_act", "relu2"),
        "mlp_bias": r.flag("mlp_bias", False),
        "norms_per_layer": 1,
        "tie_word_embeddings": r.flag("tie_word_embeddings", False),
        "attention_layers": blocks.count("*"),
        "mlp_layers": blocks.count("-"),
        "ssm_layers": blocks.count("M"),
        "ssm_kind": "mamba2",
        "ssm_d_inner": m_heads * m_dim,
        "ssm_heads": m_heads,
        "ssm_d_state": r.positive("ssm_state_size", 128),
        "ssm_d_conv": r.positive("conv_kernel", r.positive("mamba_d_conv", 4)),
        "ssm_n_groups": r.positive("n_groups", r.positive("mamba_n_groups", 8)),
        "ssm_proj_bias": r.flag("mamba_proj_bias", False),
        "ssm_conv_bias": r.flag("use_conv_bias", r.flag("mamba_conv_bias", True)),
    }
    head_dim = r.positive("head_dim")
    if head_dim is not None and head_dim * heads != hidden:
        out["head_dim"] = head_dim
    return out


BUILDERS: dict[str, Callable[[Reader, str], dict[str, Any]]] = {
    "mamba": _mamba,
    "falcon_mamba": _mamba,
    "mamba2": _mamba2,
    "jamba": _jamba,
    "bamba": _bamba,
    "nemotron_h": _nemotron_h,
    "granitemoehybrid": _granitemoehybrid,
    "falcon_h1": _falcon_h1,
}

# transformers v5 configuration-class defaults (configuration_<type>.py).
DEFAULTS: dict[str, dict[str, Any]] = {
    "mamba": {"vocab_size": 50280, "hidden_size": 768, "state_size": 16, "num_hidden_layers": 32}
    | {"conv_kernel": 4},
    "falcon_mamba": {"vocab_size": 50280, "hidden_size": 768, "state_size": 16}
    | {"num_hidden_layers": 32, "conv_kernel": 4},
    "mamba2": {"vocab_size": 32768, "hidden_size": 4096, "state_size": 128}
    | {"num_hidden_layers": 64, "num_heads": 128, "conv_kernel": 4},
    "jamba": {
        "vocab_size": 65536,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 262144,
        "num_experts_per_tok": 2,
    },
    "bamba": {
        "vocab_size": 128000,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 262144,
    },
    "granitemoehybrid": {
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "max_position_embeddings": 2048,
        "num_experts_per_tok": 2,
    },
    "falcon_h1": {
        "vocab_size": 128000,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 8192,
    },
    "nemotron_h": {
        "vocab_size": 131072,
        "hidden_size": 4096,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "max_position_embeddings": 4096,
        "intermediate_size": 21504,
    },
}
