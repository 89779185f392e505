"""Hostile config.json values: refused in one line before any arithmetic (issue 17), and a fuzz
of the structural keys: spec_from_config returns a valid spec or raises VramcalcError, quickly."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vramcalc.errors import UnmappedArchitectureError, VramcalcError
from vramcalc.sources.hf_config import spec_from_config
from vramcalc.spec.params import param_count

_BASE = {
    "vocab_size": 128,
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
}
QWEN2_MOE = _BASE | {
    "model_type": "qwen2_moe",
    "num_experts": 4,
    "num_experts_per_tok": 2,
    "moe_intermediate_size": 24,
    "shared_expert_intermediate_size": 48,
}


def refused(cfg: dict[str, Any], *words: str) -> str:
    """The one-line message spec_from_config raises for `cfg` (it must contain `words`)."""
    start = time.perf_counter()
    with pytest.raises(VramcalcError) as err:
        spec_from_config(cfg, "hostile")
    assert time.perf_counter() - start < 1.0
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
    return message


def test_a_billion_layers_is_refused_before_the_layer_loop() -> None:
    refused(QWEN2_MOE | {"num_hidden_layers": 1e9}, "num_hidden_layers", "100,000")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("num_hidden_layers", "24"),
        ("decoder_sparse_step", "2"),
        ("decoder_sparse_step", 0),
        ("mlp_only_layers", "0,1"),
        ("mlp_only_layers", [0.5]),
        ("mlp_only_layers", [True]),
        ("max_window_layers", [3]),
        ("hidden_size", True),
        ("hidden_size", 64.5),
        ("num_attention_heads", -4),
        ("vocab_size", 10**9),
        ("moe_intermediate_size", {"a": 1}),
        ("qkv_bias", "yes"),
        ("use_sliding_window", "true"),
    ],
)
def test_wrong_types_name_the_key(key: str, value: Any) -> None:
    refused(QWEN2_MOE | {key: value, "use_sliding_window": True} | {key: value}, key)


def test_non_finite_numbers_are_a_line_not_an_overflow() -> None:
    # json.loads reads 1e320 and Infinity as float('inf')
    cfg = json.loads('{"num_hidden_layers": 1e320, "mlp_only_layers": [Infinity]}')
    assert math.isinf(cfg["num_hidden_layers"])
    refused(QWEN2_MOE | cfg, "num_hidden_layers")
    refused(QWEN2_MOE | {"mlp_only_layers": [math.inf]}, "mlp_only_layers")
    refused(QWEN2_MOE | {"hidden_size": math.nan}, "hidden_size")


def test_other_families_wrong_types() -> None:
    gemma3 = _BASE | {"model_type": "gemma3_text", "head_dim": 32}
    refused(gemma3 | {"sliding_window_pattern": "6"}, "sliding_window_pattern")
    v3 = _BASE | {
        "model_type": "deepseek_v3",
        "kv_lora_rank": 16,
        "qk_rope_head_dim": 8,
        "qk_nope_head_dim": 16,
        "v_head_dim": 12,
        "n_routed_experts": 4,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 24,
    }
    refused(v3 | {"first_k_dense_replace": "1"}, "first_k_dense_replace")
    refused(v3 | {"first_k_dense_replace": -1}, "first_k_dense_replace")
    llama = _BASE | {"model_type": "llama"}
    refused(llama | {"head_dim": "x", "num_attention_heads": 2e9}, "num_attention_heads")
    refused(llama | {"head_dim": "x"}, "head_dim")
    refused(llama | {"layer_types": ["full_attention", 3]}, "layer_types")


def test_mixtral_without_experts_is_refused_not_dense() -> None:
    mixtral = _BASE | {"model_type": "mixtral", "num_local_experts": 0, "num_experts_per_tok": 2}
    refused(mixtral, "num_local_experts")


def test_integral_floats_are_read() -> None:
    spec, _ = spec_from_config(_BASE | {"model_type": "llama", "hidden_size": 64.0}, "f")
    assert spec.hidden_size == 64 and isinstance(spec.hidden_size, int)


# ---- fuzz ----------------------------------------------------------------------------------------
_FAMILIES: dict[str, dict[str, Any]] = {
    "llama": _BASE | {"model_type": "llama"},
    "qwen2_moe": QWEN2_MOE | {"decoder_sparse_step": 1, "mlp_only_layers": [0]},
    "gemma3_text": _BASE | {"model_type": "gemma3_text", "head_dim": 32, "sliding_window": 16},
    "mixtral": _BASE | {"model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 2},
    "deepseek_v3": _BASE
    | {
        "model_type": "deepseek_v3",
        "q_lora_rank": 24,
        "kv_lora_rank": 16,
        "qk_rope_head_dim": 8,
        "qk_nope_head_dim": 16,
        "v_head_dim": 12,
        "n_routed_experts": 4,
        "num_experts_per_tok": 2,
        "moe_intermediate_size": 24,
        "first_k_dense_replace": 1,
    },
    "gpt2": {"model_type": "gpt2", "vocab_size": 128, "n_embd": 64, "n_layer": 2, "n_head": 4},
    "falcon": {"model_type": "falcon", "vocab_size": 128, "hidden_size": 64, "n_layer": 2},
    "phi": _BASE | {"model_type": "phi", "qk_layernorm": True},
    "gpt_bigcode": {"model_type": "gpt_bigcode", "vocab_size": 128, "n_embd": 64, "n_layer": 2},
    "mpt": {"model_type": "mpt", "vocab_size": 128, "d_model": 64, "n_layers": 2, "n_heads": 4},
    "cohere2": _BASE | {"model_type": "cohere2", "sliding_window": 16},
    "exaone4": _BASE | {"model_type": "exaone4", "sliding_window": 16},
    "smollm3": _BASE | {"model_type": "smollm3", "use_sliding_window": True, "sliding_window": 8},
    "minicpm3": _BASE | {"model_type": "minicpm3", "kv_lora_rank": 16, "q_lora_rank": 24},
}
_KEYS = sorted(
    {k for cfg in _FAMILIES.values() for k in cfg if k != "model_type"}
    | {"decoder_sparse_step", "max_window_layers", "sliding_window_pattern", "layer_types"}
    | {"use_sliding_window", "tie_word_embeddings", "attention_bias", "multi_query"}
    | {"no_rope_layers", "expansion_ratio", "attn_config", "n_inner", "qk_layernorm"}
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.integers(min_value=0, max_value=300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
)
_values = st.one_of(_scalars, st.lists(_scalars, max_size=5), st.dictionaries(st.text(), _scalars))


@settings(
    max_examples=300, deadline=1000, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(
    family=st.sampled_from(sorted(_FAMILIES)),
    changes=st.dictionaries(st.sampled_from(_KEYS), _values, max_size=4),
)
def test_fuzzed_configs_give_a_spec_or_one_line(family: str, changes: dict[str, Any]) -> None:
    cfg = _FAMILIES[family] | changes
    try:
        spec, _ = spec_from_config(cfg, "fuzz")
    except VramcalcError as exc:
        assert "\n" not in str(exc)
        return
    assert param_count(spec) > 0
    assert spec.num_layers <= 100_000 and spec.hidden_size <= 10**7


@pytest.mark.parametrize("model_type", [[], {}, 7, True, "", "../x", "a b", "x" * 200])
def test_model_type_that_is_no_name_is_refused_before_any_route(model_type: object) -> None:
    """A model_type no library could name is refused by hf_config itself, as a plain error, so
    the exact route never imports torch and builds nothing for it (the file fuzz once spent 14 s
    there on `"model_type": []`)."""
    cfg = {"model_type": model_type, "hidden_size": 64, "num_hidden_layers": 2}
    with pytest.raises(VramcalcError, match="model_type must be an architecture name") as info:
        spec_from_config(cfg, "x")
    assert not isinstance(info.value, UnmappedArchitectureError)
