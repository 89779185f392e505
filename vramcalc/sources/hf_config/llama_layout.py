"""Builders for families that keep the Llama decoder layout and differ in defaults, bias flags,
MLP kind, norms or window pattern: Helium, Seed-OSS, Ministral-3, InternLM3, EXAONE-3, CWM,
IQuest-Coder, Arcee (AFM), Jais-2, nanochat, VaultGemma, OLMo-3, HyperCLOVA X, Apertus; with their transformers (v5)
configuration defaults. Checked against transformers on the meta device by
tests/test_hf_config_dense.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vramcalc.errors import VramcalcError

from .dense import olmo2_fields
from .reader import Reader, common_fields, window_fields


def _biases(r: Reader, qkv: bool, out: bool) -> dict[str, Any]:
    """attention_bias on q/k/v (and on o when `out`), mlp_bias on the MLP."""
    bias = r.flag("attention_bias", False)
    return {"attention_qkv_bias": bias and qkv, "attention_out_bias": bias and out} | {
        "mlp_bias": r.flag("mlp_bias", False)
    }


def _llama_like(r: Reader, arch: str) -> dict[str, Any]:
    """Llama's own classes under another config (InternLM3, EXAONE-3, IQuest-Coder): attention_bias
    on q/k/v/o, mlp_bias; InternLM3's config.json spells them qkv_bias and bias."""
    out = common_fields(r, arch, tie_default=False)
    if arch == "exaone":
        out["activation"] = r.text("activation_function", "silu")
    qkv = r.flag("qkv_bias", r.flag("attention_bias", False))
    out |= {"attention_qkv_bias": qkv, "attention_out_bias": qkv}
    return out | {"mlp_bias": r.flag("bias", r.flag("mlp_bias", False))}


def _helium(r: Reader, arch: str) -> dict[str, Any]:
    """Helium: attention_bias on q/k/v only (o_proj never), mlp_bias, untied. Its o_proj is
    hidden × hidden, so a config whose heads × head_dim differs from hidden_size cannot run."""
    out = common_fields(r, arch, tie_default=False) | _biases(r, qkv=True, out=False)
    if not r.missing and out["num_attention_heads"] * out.get("head_dim", 0) not in (
        0,
        out["hidden_size"],
    ):
        raise VramcalcError(
            f"{r.where}: helium needs num_attention_heads × head_dim = hidden_size "
            f"({out['num_attention_heads']} × {out['head_dim']} ≠ {out['hidden_size']}): "
            "transformers' HeliumAttention projects o_proj from hidden_size"
        )
    return out


def _seed_oss(r: Reader, arch: str) -> dict[str, Any]:
    """Seed-OSS: attention_bias (default true) on q/k/v, attention_out_bias on o, mlp_bias."""
    out = common_fields(r, arch, tie_default=False)
    out["attention_qkv_bias"] = r.flag("attention_bias", True)
    out["attention_out_bias"] = r.flag("attention_out_bias", False)
    return out | {"mlp_bias": r.flag("mlp_bias", False)}


def _ministral3(r: Reader, arch: str) -> dict[str, Any]:
    """Ministral-3: no biases; a sliding_window applies to every layer (as Mistral)."""
    out = common_fields(r, arch, tie_default=False)
    return out | window_fields(r, out["num_layers"], None)


def _cwm(r: Reader, arch: str) -> dict[str, Any]:
    """CWM: no attention biases, mlp_bias; layer i is global when i % 4 == 0, else windowed."""
    out = common_fields(r, arch, tie_default=False) | {"mlp_bias": r.flag("mlp_bias", False)}
    layers = out["num_layers"]
    return out | window_fields(r, layers, layers - (layers + 3) // 4)


def _arcee(r: Reader, arch: str) -> dict[str, Any]:
    """Arcee (AFM): plain up/down MLP (relu²) with mlp_bias, attention_bias on q/k/v/o."""
    out = common_fields(r, arch, tie_default=False) | _biases(r, qkv=True, out=True)
    return out | {"mlp_kind": "plain", "activation": r.text("hidden_act", "relu2")}


def _jais2(r: Reader, arch: str) -> dict[str, Any]:
    """Jais-2: plain up/down MLP, attention_bias (default true) on q/k/v/o, mlp_bias (default
    true), LayerNorms with bias, untied."""
    out = common_fields(r, arch, tie_default=False)
    bias = r.flag("attention_bias", True)
    return out | {
        "attention_qkv_bias": bias,
        "attention_out_bias": bias,
        "mlp_bias": r.flag("mlp_bias", True),
        "mlp_kind": "plain",
        "activation": r.text("hidden_act", "relu2"),
        "norm_kind": "layernorm",
    }


def _nanochat(r: Reader, arch: str) -> dict[str, Any]:
    """nanochat: parameter-free RMSNorms, bias-free fc1/fc2 MLP (relu²), attention_bias on
    q/k/v/o, untied."""
    out = common_fields(r, arch, tie_default=False)
    bias = r.flag("attention_bias", False)
    return out | {
        "attention_qkv_bias": bias,
        "attention_out_bias": bias,
        "mlp_kind": "plain",
        "activation": r.text("hidden_act", "relu2"),
        "norm_affine": False,
    }


def _vaultgemma(r: Reader, arch: str) -> dict[str, Any]:
    """VaultGemma: the Gemma-2 attention without post-norms (input and pre-feedforward norms),
    head_dim 256 by default, attention_bias on q/k/v/o, tied; every other layer windowed."""
    out = common_fields(r, arch, tie_default=True) | _biases(r, qkv=True, out=True)
    layers = out["num_layers"]
    return out | {"mlp_bias": False} | window_fields(r, layers, (layers + 1) // 2)


def _hyperclovax(r: Reader, arch: str) -> dict[str, Any]:
    """HyperCLOVA X: the Llama layout (attention_bias on q/k/v/o, mlp_bias) with, under
    use_post_norm (default true), two more RMSNorms after attention and the MLP: four per layer."""
    out = common_fields(r, arch, tie_default=False) | _biases(r, qkv=True, out=True)
    return out | {"norms_per_layer": 4 if r.flag("use_post_norm", True) else 2}


def _apertus(r: Reader, arch: str) -> dict[str, Any]:
    """Apertus: plain up/down MLP without bias whose xIELU activation (hidden_act "xielu", the
    default) learns two scalars per layer, q/k RMSNorms of head_dim, attention_bias on q/k/v/o,
    two norms per layer, untied."""
    out = common_fields(r, arch, tie_default=False) | _biases(r, qkv=True, out=True)
    act = r.text("hidden_act", "xielu")
    out |= {"mlp_bias": False, "mlp_kind": "plain", "activation": act, "qk_norm": True}
    return out | {"activation_params_per_layer": 2 if act == "xielu" else 0}


def _olmo3(r: Reader, arch: str) -> dict[str, Any]:
    """OLMo-3: OLMo-2's layer, with 3 of every 4 layers windowed ((i + 1) % 4 != 0)."""
    out = olmo2_fields(r, arch)
    layers = out["num_layers"]
    return out | window_fields(r, layers, layers - layers // 4)


BUILDERS: dict[str, Callable[[Reader, str], dict[str, Any]]] = {
    "helium": _helium,
    "seed_oss": _seed_oss,
    "ministral3": _ministral3,
    "internlm3": _llama_like,
    "exaone": _llama_like,
    "iquestcoder": _llama_like,
    "cwm": _cwm,
    "arcee": _arcee,
    "jais2": _jais2,
    "nanochat": _nanochat,
    "vaultgemma": _vaultgemma,
    "olmo3": _olmo3,
    "hyperclovax": _hyperclovax,
    "apertus": _apertus,
}

_H128 = {"head_dim": 128}
DEFAULTS: dict[str, dict[str, Any]] = {
    "helium": {
        "vocab_size": 48000,
        "hidden_size": 2560,
        "intermediate_size": 7040,
        "num_hidden_layers": 24,
        "num_attention_heads": 20,
        "max_position_embeddings": 4096,
    }
    | _H128,
    "seed_oss": {
        "vocab_size": 155136,
        "hidden_size": 4096,
        "intermediate_size": 27648,
        "num_hidden_layers": 64,
        "num_attention_heads": 80,
        "num_key_value_heads": 8,
        "max_position_embeddings": 524288,
    }
    | _H128,
    "ministral3": {
        "vocab_size": 131072,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 34,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 262144,
    }
    | _H128,
    "internlm3": {
        "vocab_size": 128512,
        "hidden_size": 4096,
        "intermediate_size": 10240,
        "num_hidden_layers": 48,
        "num_attention_heads": 32,
        "num_key_value_heads": 2,
        "max_position_embeddings": 32768,
    }
    | _H128,
    "exaone": {
        "vocab_size": 102400,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 4096,
    },
    "iquestcoder": {
        "vocab_size": 76800,
        "hidden_size": 5120,
        "intermediate_size": 27648,
        "num_hidden_layers": 80,
        "num_attention_heads": 40,
        "num_key_value_heads": 8,
        "max_position_embeddings": 131072,
    }
    | _H128,
    "cwm": {
        "vocab_size": 128256,
        "hidden_size": 6144,
        "intermediate_size": 21504,
        "num_hidden_layers": 64,
        "num_attention_heads": 48,
        "num_key_value_heads": 8,
        "max_position_embeddings": 131072,
        "sliding_window": 8192,
    }
    | _H128,
    "arcee": {
        "vocab_size": 32000,
        "hidden_size": 2560,
        "intermediate_size": 18432,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "max_position_embeddings": 4096,
    },
    "jais2": {
        "vocab_size": 150272,
        "hidden_size": 3328,
        "intermediate_size": 26624,
        "num_hidden_layers": 32,
        "num_attention_heads": 26,
        "max_position_embeddings": 8192,
    },
    "nanochat": {
        "vocab_size": 50304,
        "hidden_size": 768,
        "intermediate_size": 8192,
        "num_hidden_layers": 12,
        "num_attention_heads": 6,
        "max_position_embeddings": 2048,
    },
    "vaultgemma": {
        "vocab_size": 256000,
        "hidden_size": 2304,
        "intermediate_size": 9216,
        "num_hidden_layers": 26,
        "num_attention_heads": 8,
        "num_key_value_heads": 4,
        "head_dim": 256,
        "max_position_embeddings": 8192,
        "sliding_window": 4096,
    },
    "apertus": {
        "vocab_size": 131072,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "max_position_embeddings": 65536,
    },
    "hyperclovax": {
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "max_position_embeddings": 2048,
    },
    "olmo3": {
        "vocab_size": 50304,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "max_position_embeddings": 2048,
        "sliding_window": 4096,
    },
}
