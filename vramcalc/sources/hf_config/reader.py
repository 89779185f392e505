"""Reading config.json fields: required names with their aliases, sliding-window and common fields."""

from __future__ import annotations

from typing import Any

Config = dict[str, Any]

FIELD_NAMES: dict[str, tuple[str, ...]] = {
    "vocab_size": ("vocab_size", "padded_vocab_size"),
    "hidden_size": ("hidden_size", "n_embd", "d_model", "dim"),
    "num_layers": ("num_hidden_layers", "n_layer", "num_layers", "n_layers"),
    "num_attention_heads": ("num_attention_heads", "n_head", "n_heads"),
    "intermediate_size": ("intermediate_size", "n_inner", "ffn_dim", "ffn_hidden_size"),
    "max_position_embeddings": ("max_position_embeddings", "n_positions", "seq_length"),
}


class Reader:
    """Reads config fields, remembering which required ones are missing."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.missing: list[str] = []

    def get(self, key: str, default: Any = None) -> Any:
        value = self.cfg.get(key, default)
        return default if value is None else value

    def need(self, field: str, *names: str) -> Any:
        for name in names or FIELD_NAMES[field]:
            value = self.cfg.get(name)
            if value is not None:
                return value
        self.missing.append(f"{field} (tried {', '.join(names or FIELD_NAMES[field])})")
        return 1  # placeholder; the caller raises before building a spec


def window_fields(r: Reader, layers: int, default_windowed: int | None) -> dict[str, Any]:
    """Sliding-window fields: an explicit ``layer_types`` list wins over each family's default."""
    window = r.get("sliding_window")
    layer_types = r.get("layer_types")
    if isinstance(layer_types, list) and layer_types:
        windowed = sum(1 for t in layer_types if t == "sliding_attention")
        if not windowed or window is None:
            return {}
        return {"sliding_window": window, "sliding_window_layers": windowed}
    if window is None or default_windowed == 0:
        return {}
    if default_windowed is None or default_windowed >= layers:
        return {"sliding_window": window}
    return {"sliding_window": window, "sliding_window_layers": default_windowed}


def common_fields(r: Reader, arch: str, tie_default: bool) -> dict[str, Any]:
    heads = r.need("num_attention_heads")
    hidden = r.need("hidden_size")
    kv = r.get("num_key_value_heads", heads)
    out: dict[str, Any] = {
        "architecture": arch,
        "vocab_size": r.need("vocab_size"),
        "hidden_size": hidden,
        "num_layers": r.need("num_layers"),
        "num_attention_heads": heads,
        "num_kv_heads": kv,
        "intermediate_size": r.need("intermediate_size"),
        "max_position_embeddings": r.need("max_position_embeddings"),
        "tie_word_embeddings": bool(r.get("tie_word_embeddings", tie_default)),
        "activation": str(r.get("hidden_act", r.get("hidden_activation", "silu"))),
    }
    head_dim = r.get("head_dim")
    if head_dim is not None and not r.missing and head_dim * heads != hidden:
        out["head_dim"] = head_dim
    return out
