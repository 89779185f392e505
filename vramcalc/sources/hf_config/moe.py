"""Builders for mixture-of-experts families: PhiMoE, OLMoE, Granite-MoE (+ shared, + SWA),
GLM-4.5 (glm4_moe), GLM-4.7-Flash (glm4_moe_lite), FlexOlmo, EXAONE-MoE, dots.llm1, ERNIE-4.5-MoE, DBRX, Llama-4 (text), gpt-oss and MiniMax-M2.

Each follows its transformers v5 modeling code (``transformers/models/<type>/modeling_<type>.py``):
which projections carry biases, how the router is built, which layers are sparse and which
attention layers keep a windowed (or chunked) cache. Counts whose position in the stack does not
change a tensor are given as ``first_dense_layers`` = layers with a dense MLP. Expert counts are read
under each family's own name (num_local_experts, num_experts, n_routed_experts, moe_num_experts,
ffn_config.moe_num_experts) and validated as whole numbers before any arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vramcalc.errors import VramcalcError

from .checks import layer_types
from .reader import Reader, common_fields, window_fields


def _experts(r: Reader, *names: str) -> dict[str, Any]:
    return {
        "num_experts": r.need("num_experts", *names),
        "experts_per_token": r.need("experts_per_token", "num_experts_per_tok"),
    }


def _olmoe(r: Reader, arch: str) -> dict[str, Any]:
    """OLMoE: attention_bias on q/k/v/o, RMSNorm over the whole q (q_dim) and k (kv_dim)
    projections, 64 experts of intermediate_size, router without bias (OlmoeAttention,
    OlmoeSparseMoeBlock). FlexOlmo has the same tensors (its two norms per layer come after
    attention and MLP instead of before)."""
    out = common_fields(r, arch, tie_default=False)
    bias = r.flag("attention_bias", False)
    out |= {"attention_qkv_bias": bias, "attention_out_bias": bias}
    out |= {"qk_norm": True, "qk_norm_kind": "full"}
    return out | _experts(r, "num_experts")


def _phimoe(r: Reader, arch: str) -> dict[str, Any]:
    """PhiMoE (Phi-3.5-MoE): LayerNorms with bias, attention_bias on q/k/v/o, lm_head_bias,
    num_local_experts experts of intermediate_size; the cache is windowed on every layer when
    sliding_window is set."""
    out = common_fields(r, arch, tie_default=False)
    bias = r.flag("attention_bias", False)
    out |= {"attention_qkv_bias": bias, "attention_out_bias": bias, "norm_kind": "layernorm"}
    out["lm_head_bias"] = r.flag("lm_head_bias", False)
    out |= window_fields(r, out["num_layers"], None)
    return out | _experts(r, "num_local_experts")


def _granitemoe(r: Reader, arch: str) -> dict[str, Any]:
    """Granite-MoE: Llama-style attention (attention_bias), parallel experts input_linear
    (2·inter × h) and output_linear without bias; granitemoeshared adds a shared MLP of
    shared_intermediate_size (GraniteMoeSharedMLP) when it is positive."""
    out = common_fields(r, arch, tie_default=False)
    bias = r.flag("attention_bias", False)
    out |= {"attention_qkv_bias": bias, "attention_out_bias": bias}
    out |= _experts(r, "num_local_experts")
    if arch == "granitemoeshared":
        shared = r.integer("shared_intermediate_size", 0)
        out["shared_expert_intermediate_size"] = shared or None
    return out


def _granitemoe_swa(r: Reader, arch: str) -> dict[str, Any]:
    """Granite-MoE-SWA: Granite-MoE (plus the shared MLP of shared_intermediate_size when
    positive) with one learned sink logit per head and layer_types (default: full attention when
    i % 4 == 0, else a sliding window of 128)."""
    out = _granitemoe(r, "granitemoeshared") | {"architecture": arch, "attention_sinks": True}
    layers = out["num_layers"]
    if layer_types(r, layers) is None:  # GraniteMoeSWAConfig.__post_init__
        out |= window_fields(r, layers, layers - len(range(0, layers, 4)))
    else:
        out |= window_fields(r, layers, None)
    return out


def _minimax_m2(r: Reader, arch: str) -> dict[str, Any]:
    """MiniMax-M2: q/k/v/o without biases, RMSNorms over the whole q and k projections, every
    layer sparse with num_local_experts experts of intermediate_size (the router's
    e_score_correction_bias is a buffer); partial rotary has no parameters."""
    out = common_fields(r, arch, tie_default=False)
    out |= {"qk_norm": True, "qk_norm_kind": "full"}
    return out | _experts(r, "num_local_experts")


def _glm4_moe_lite(r: Reader, arch: str) -> dict[str, Any]:
    """GLM-4.7-Flash (glm4_moe_lite): DeepSeek-V3's multi-head latent attention (q_a/q_b with
    q_lora_rank, kv_a_proj_with_mqa to kv_lora_rank + rope, kv_b_proj; attention_bias on q_a,
    kv_a and o) and mixture (n_routed_experts of moe_intermediate_size, n_shared_experts shared,
    the router's e_score_correction_bias a buffer); mlp_layer_types names the sparse layers
    (default: all but the first). head_dim is an alias of qk_rope_head_dim here."""
    out = common_fields(r, arch, tie_default=False)
    out.pop("head_dim", None)
    layers = out["num_layers"]
    bias = r.flag("attention_bias", False)
    out |= {
        "num_kv_heads": None,
        "attention_qkv_bias": bias,
        "attention_out_bias": bias,
        "q_lora_rank": r.positive("q_lora_rank") if "q_lora_rank" in r.cfg else 768,
        "kv_lora_rank": r.positive("kv_lora_rank", 512),
        "qk_rope_head_dim": r.positive("qk_rope_head_dim", r.positive("head_dim", 64)),
        "qk_nope_head_dim": r.positive("qk_nope_head_dim", 192),
        "v_head_dim": r.positive("v_head_dim", 256),
    }
    types = r.str_list("mlp_layer_types")
    if types is not None and (len(types) != layers or set(types) - {"dense", "sparse"}):
        raise VramcalcError(
            f"config.json mlp_layer_types must name each of the {layers} layers dense or sparse"
        )
    sparse = types.count("sparse") if types is not None else layers - 1
    out |= _experts(r, "n_routed_experts", "num_local_experts")
    out |= {
        "moe_intermediate_size": r.need("moe_intermediate_size", "moe_intermediate_size"),
        "num_shared_experts": r.integer("n_shared_experts", 1),
        "first_dense_layers": layers - sparse,
    }
    return out


def _exaone_moe(r: Reader, arch: str) -> dict[str, Any]:
    """EXAONE-MoE: q/k/v/o without biases and a per-head q/k RMSNorm; mlp_layer_types names the
    sparse layers (default: all from first_k_dense_replace), each with num_experts experts of
    moe_intermediate_size and num_shared_experts × moe_intermediate_size shared (the router's
    e_score_correction_bias is a buffer); layer_types (default: every sliding_window_pattern-th
    layer full, the others windowed) set the cache."""
    out = common_fields(r, arch, tie_default=False)
    layers = out["num_layers"]
    out["qk_norm"] = True
    mlp_types = r.str_list("mlp_layer_types")
    if mlp_types is not None and (len(mlp_types) != layers or set(mlp_types) - {"dense", "sparse"}):
        raise VramcalcError(
            f"config.json mlp_layer_types must name each of the {layers} layers dense or sparse"
        )
    first = min(r.integer("first_k_dense_replace", 1), layers)
    sparse = mlp_types.count("sparse") if mlp_types is not None else layers - first
    out |= _experts(r, "num_experts")
    out |= {
        "moe_intermediate_size": r.need("moe_intermediate_size", "moe_intermediate_size"),
        "num_shared_experts": r.integer("num_shared_experts", 1),
        "first_dense_layers": layers - sparse,
    }
    if layer_types(r, layers) is not None or not r.has("sliding_window"):
        return out | window_fields(r, layers, None if r.has("layer_types") else 0)
    if not isinstance(r.cfg.get("sliding_window_pattern", 4), int):
        raise VramcalcError(
            "exaone_moe config.json with a non-integer sliding_window_pattern needs layer_types"
        )
    pattern = r.positive("sliding_window_pattern", 4)
    return out | window_fields(r, layers, sum(1 for i in range(layers) if (i + 1) % pattern))


def _dots1(r: Reader, arch: str) -> dict[str, Any]:
    """dots.llm1 (dots1): attention_bias on q/k/v/o, one head_dim RMSNorm each for q and k,
    first_k_dense_replace dense layers, then n_routed_experts experts of moe_intermediate_size
    and n_shared_experts × moe_intermediate_size shared (router e_score_correction_bias a
    buffer); layer_types default: windowed from max_window_layers on when sliding_window is set
    (Dots1Config)."""
    out = common_fields(r, arch, tie_default=False)
    layers = out["num_layers"]
    bias = r.flag("attention_bias", False)
    out |= {"attention_qkv_bias": bias, "attention_out_bias": bias, "qk_norm": True}
    out |= _experts(r, "n_routed_experts", "num_local_experts")
    out |= {
        "moe_intermediate_size": r.need("moe_intermediate_size", "moe_intermediate_size"),
        "num_shared_experts": r.integer("n_shared_experts", 0),
        "first_dense_layers": min(r.integer("first_k_dense_replace", 0), layers),
    }
    if layer_types(r, layers) is not None:
        return out | window_fields(r, layers, None)
    first_windowed = min(r.integer("max_window_layers", layers), layers)
    return out | window_fields(r, layers, layers - first_windowed)


def _glm4_moe(r: Reader, arch: str) -> dict[str, Any]:
    """GLM-4.5 (glm4_moe): attention_bias on q/k/v only, optional per-head q/k RMSNorm
    (use_qk_norm), first_k_dense_replace dense layers, n_shared_experts × moe_intermediate_size
    shared MLP; the router's e_score_correction_bias is a buffer, not a parameter. The
    multi-token-prediction layers (num_nextn_predict_layers) are not built by transformers."""
    out = common_fields(r, arch, tie_default=False)
    out["attention_qkv_bias"] = r.flag("attention_bias", False)
    out["qk_norm"] = r.flag("use_qk_norm", False)
    layers = out["num_layers"]
    first = r.integer("first_k_dense_replace", 1)
    out |= _experts(r, "n_routed_experts", "num_local_experts")
    out |= {
        "moe_intermediate_size": r.need("moe_intermediate_size", "moe_intermediate_size"),
        "num_shared_experts": r.integer("n_shared_experts", 1),
        "first_dense_layers": min(first, layers),
    }
    return out


def _ernie4_5_moe(r: Reader, arch: str) -> dict[str, Any]:
    """ERNIE-4.5-MoE: use_bias on every attention and MLP projection and on lm_head (not on the
    experts); layer i is sparse when (i + 1) % moe_layer_interval == 0 and moe_layer_start_index
    ≤ i ≤ moe_layer_end_index (−1: the last); moe_num_shared_experts × moe_intermediate_size
    shared MLP; the gate keeps a per-expert e_score_correction_bias parameter."""
    out = common_fields(r, arch, tie_default=True)
    bias = r.flag("use_bias", False)
    out |= {"attention_qkv_bias": bias, "attention_out_bias": bias, "mlp_bias": bias}
    out |= {"lm_head_bias": bias, "expert_bias": False, "router_bias": True}
    out["num_experts"] = r.need("num_experts", "moe_num_experts", "num_experts")
    out["experts_per_token"] = r.need("experts_per_token", "moe_k", "num_experts_per_tok")
    layers = out["num_layers"]
    start = r.integer("moe_layer_start_index", 1)
    end = r.integer("moe_layer_end_index", -1, lo=-1)
    end = layers - 1 if end == -1 else end
    step = r.positive("moe_layer_interval", 1)
    sparse = sum(1 for i in range(layers) if (i + 1) % step == 0 and start <= i <= end)
    out["first_dense_layers"] = layers - sparse
    out["moe_intermediate_size"] = r.need("moe_intermediate_size", "moe_intermediate_size")
    out["num_shared_experts"] = r.integer("moe_num_shared_experts", 0)
    return out


def _dbrx(r: Reader, arch: str) -> dict[str, Any]:
    """DBRX: fused Wqkv of (h + 2·kv_heads·head_dim) and out_proj without bias, two
    LayerNorm(bias=False) per layer, every layer sparse with ffn_config.moe_num_experts gated
    experts of ffn_config.ffn_hidden_size (w1, v1, w2), router without bias (DbrxFFN)."""
    attn_cfg, ffn_cfg = r.cfg.get("attn_config") or {}, r.cfg.get("ffn_config") or {}
    if not isinstance(attn_cfg, dict) or not isinstance(ffn_cfg, dict):
        raise VramcalcError("config.json attn_config and ffn_config must be objects (DBRX)")
    attn, ffn = Reader(attn_cfg, r.where), Reader(ffn_cfg, r.where)
    # DbrxAttentionConfig / DbrxFFNConfig defaults for what the nested objects leave out
    kv = attn.positive("kv_n_heads", 1)
    inter = ffn.positive("ffn_hidden_size", 3584)
    experts = ffn.positive("moe_num_experts", 4)
    top_k = ffn.positive("moe_top_k", 1)
    act = ffn_cfg.get("ffn_act_fn") or {"name": "silu"}
    return {
        "architecture": arch,
        "vocab_size": r.need("vocab_size", "vocab_size"),
        "hidden_size": r.need("hidden_size", "d_model"),
        "num_layers": r.need("num_layers", "n_layers"),
        "num_attention_heads": r.need("num_attention_heads", "n_heads"),
        "num_kv_heads": kv,
        "intermediate_size": inter,
        "max_position_embeddings": r.need("max_position_embeddings", "max_seq_len"),
        "activation": Reader(act, r.where).text("name", "silu")
        if isinstance(act, dict)
        else "silu",
        "norm_kind": "layernorm",
        "norm_bias": False,
        "tie_word_embeddings": r.flag("tie_word_embeddings", False),
        "num_experts": experts,
        "experts_per_token": top_k,
    }


def _llama4_text(r: Reader, arch: str) -> dict[str, Any]:
    """Llama-4 text model: MoE layers are `moe_layers` (default every interleave_moe_layer_step-th,
    from step − 1), each with num_local_experts experts of intermediate_size, a top-k sigmoid
    router without bias and one shared expert of intermediate_size; the other layers have a dense
    MLP of intermediate_size_mlp. The q/k L2 norm has no weights. RoPE layers use chunked
    attention: their cache holds at most attention_chunk_size tokens (transformers'
    chunked_attention cache layers); the NoPE layers (every no_rope_layer_interval-th) are full."""
    out = common_fields(r, arch, tie_default=False)
    bias = r.flag("attention_bias", False)
    out |= {"attention_qkv_bias": bias, "attention_out_bias": bias}
    layers = out["num_layers"]
    expert_inter = out["intermediate_size"]
    out["intermediate_size"] = r.need("intermediate_size_mlp", "intermediate_size_mlp")
    out |= _experts(r, "num_local_experts")
    out |= {"moe_intermediate_size": expert_inter, "num_shared_experts": 1}
    moe_layers = (
        [i for i in r.int_list("moe_layers") if i < layers] if r.has("moe_layers") else None
    )
    if moe_layers is None:
        step = r.positive("interleave_moe_layer_step", 1)
        moe_layers = list(range(step - 1, layers, step))
    out["first_dense_layers"] = layers - len(set(moe_layers))
    chunk = r.positive("attention_chunk_size")
    types = layer_types(r, layers)
    if types is None:
        rope = r.int_list("no_rope_layers", hi=1)
        if rope:  # 1 = the layer uses RoPE (and chunked attention)
            if len(rope) != layers:
                raise VramcalcError("config.json no_rope_layers must list one 0/1 per layer")
            chunked = sum(1 for flag in rope if flag)
        else:
            interval = r.positive("no_rope_layer_interval", 4)
            chunked = sum(1 for i in range(layers) if (i + 1) % interval)
        chunked = chunked if chunk is not None else 0
    else:
        chunked = sum(1 for t in types if t == "chunked_attention")
    if chunked and chunk is not None:
        out |= {"sliding_window": chunk}
        out["sliding_window_layers"] = chunked
    return out


def _gpt_oss(r: Reader, arch: str) -> dict[str, Any]:
    """gpt-oss: attention_bias on q/k/v/o plus one learned sink logit per head, RMSNorm, a router
    with a bias, experts with biases on gate_up and down (GptOssExperts), every layer sparse;
    layer_types alternate sliding (window 128) and full attention, sliding first."""
    out = common_fields(r, arch, tie_default=False)
    bias = r.flag("attention_bias", True)
    out |= {"attention_qkv_bias": bias, "attention_out_bias": bias, "attention_sinks": True}
    out |= {"router_bias": True, "expert_bias": True}
    out |= _experts(r, "num_local_experts", "num_experts")
    layers = out["num_layers"]
    if layer_types(r, layers) is None:  # GptOssConfig: sliding when (i + 1) % 2, i.e. even i
        out |= window_fields(r, layers, (layers + 1) // 2)
    else:
        out |= window_fields(r, layers, None)
    return out


BUILDERS: dict[str, Callable[[Reader, str], dict[str, Any]]] = {
    "olmoe": _olmoe,
    "phimoe": _phimoe,
    "granitemoe": _granitemoe,
    "granitemoeshared": _granitemoe,
    "glm4_moe": _glm4_moe,
    "glm4_moe_lite": _glm4_moe_lite,
    "exaone_moe": _exaone_moe,
    "dots1": _dots1,
    "flex_olmo": _olmoe,
    "ernie4_5_moe": _ernie4_5_moe,
    "dbrx": _dbrx,
    "llama4_text": _llama4_text,
    "gpt_oss": _gpt_oss,
    "granitemoe_swa": _granitemoe_swa,
    "minimax_m2": _minimax_m2,
}

# transformers v5 configuration-class defaults (configuration_<type>.py) for the structural
# fields a sparse config.json may leave out.
_GRANITE = {"vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008}
_GRANITE |= {"num_hidden_layers": 32, "num_attention_heads": 32, "max_position_embeddings": 2048}
_GRANITE |= {"num_local_experts": 8, "num_experts_per_tok": 2}
DEFAULTS: dict[str, dict[str, Any]] = {
    "olmoe": {
        "vocab_size": 50304,
        "hidden_size": 2048,
        "intermediate_size": 2048,
        "num_hidden_layers": 16,
        "num_attention_heads": 16,
        "max_position_embeddings": 4096,
        "num_experts": 64,
        "num_experts_per_tok": 8,
    },
    "phimoe": {
        "vocab_size": 32064,
        "hidden_size": 4096,
        "intermediate_size": 6400,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 131072,
        "num_local_experts": 16,
        "num_experts_per_tok": 2,
    },
    "granitemoe": _GRANITE,
    "granitemoeshared": _GRANITE,
    "glm4_moe": {
        "vocab_size": 151552,
        "hidden_size": 4096,
        "intermediate_size": 10944,
        "num_hidden_layers": 46,
        "num_attention_heads": 96,
        "num_key_value_heads": 8,
        "max_position_embeddings": 131072,
        "moe_intermediate_size": 1408,
        "num_experts_per_tok": 8,
        "n_shared_experts": 1,
        "n_routed_experts": 128,
        "first_k_dense_replace": 1,
    },
    "ernie4_5_moe": {
        "vocab_size": 103424,
        "hidden_size": 2560,
        "intermediate_size": 12288,
        "num_hidden_layers": 28,
        "num_attention_heads": 20,
        "num_key_value_heads": 4,
        "max_position_embeddings": 131072,
        "moe_intermediate_size": 1536,
        "moe_k": 6,
        "moe_num_experts": 64,
        "moe_num_shared_experts": 2,
    },
    "dbrx": {
        "vocab_size": 32000,
        "d_model": 2048,
        "n_heads": 16,
        "n_layers": 24,
        "max_seq_len": 2048,
    },
    "llama4_text": {
        "vocab_size": 202048,
        "hidden_size": 5120,
        "intermediate_size": 8192,
        "intermediate_size_mlp": 16384,
        "num_hidden_layers": 48,
        "num_attention_heads": 40,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "max_position_embeddings": 131072,
        "num_experts_per_tok": 1,
        "num_local_experts": 16,
        "attention_chunk_size": 8192,
    },
    "granitemoe_swa": _GRANITE | {"sliding_window": 128},
    "flex_olmo": {
        "vocab_size": 100352,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "max_position_embeddings": 4096,
        "num_experts": 7,
        "num_experts_per_tok": 5,
    },
    "dots1": {
        "vocab_size": 152064,
        "hidden_size": 4608,
        "intermediate_size": 10944,
        "moe_intermediate_size": 1408,
        "num_hidden_layers": 62,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "max_position_embeddings": 2048,
        "sliding_window": 4096,
        "max_window_layers": 62,
    },
    "exaone_moe": {
        "vocab_size": 102400,
        "hidden_size": 4096,
        "intermediate_size": 16384,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "max_position_embeddings": 2048,
        "sliding_window": 4096,
        "moe_intermediate_size": 1024,
        "num_experts": 64,
        "num_experts_per_tok": 8,
    },
    "glm4_moe_lite": {
        "vocab_size": 154880,
        "hidden_size": 2048,
        "intermediate_size": 10240,
        "moe_intermediate_size": 1536,
        "num_hidden_layers": 47,
        "num_attention_heads": 20,
        "n_routed_experts": 64,
        "num_experts_per_tok": 4,
        "max_position_embeddings": 202752,
    },
    "minimax_m2": {
        "vocab_size": 200064,
        "hidden_size": 3072,
        "intermediate_size": 1536,
        "num_hidden_layers": 62,
        "num_attention_heads": 48,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "max_position_embeddings": 196608,
        "num_experts_per_tok": 8,
        "num_local_experts": 256,
    },
    "gpt_oss": {
        "vocab_size": 201088,
        "hidden_size": 2880,
        "intermediate_size": 2880,
        "num_hidden_layers": 36,
        "num_attention_heads": 64,
        "num_key_value_heads": 8,
        "head_dim": 64,
        "max_position_embeddings": 131072,
        "num_local_experts": 128,
        "num_experts_per_tok": 4,
        "sliding_window": 128,
    },
}
