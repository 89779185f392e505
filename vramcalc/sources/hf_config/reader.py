"""Reading config.json fields: typed, bounded accessors (every builder reads through them), the
required names with their aliases, and the sliding-window and common fields.

A config.json is untrusted input: a value of the wrong type or an absurd size is refused with one
line naming the key, before any arithmetic or per-layer loop sees it (``num_hidden_layers: 1e9``
would loop a billion times, ``1e320`` is an infinite float, ``true`` would count as 1).
"""

from __future__ import annotations

import math
from typing import Any

from vramcalc.errors import VramcalcError

Config = dict[str, Any]

FIELD_NAMES: dict[str, tuple[str, ...]] = {
    "vocab_size": ("vocab_size", "padded_vocab_size"),
    "hidden_size": ("hidden_size", "n_embd", "d_model", "dim"),
    "num_layers": ("num_hidden_layers", "n_layer", "num_layers", "n_layers"),
    "num_attention_heads": ("num_attention_heads", "n_head", "n_heads"),
    "intermediate_size": ("intermediate_size", "n_inner", "ffn_dim", "ffn_hidden_size"),
    "max_position_embeddings": ("max_position_embeddings", "n_positions", "seq_length"),
}

# Upper bounds, far beyond any published model (the largest have ~1e2 layers, widths ~3e4,
# vocabularies ~3e5, contexts ~1e7), low enough that per-layer loops and products stay cheap.
LAYERS_MAX = 100_000
WIDTH_MAX = 10**7
VOCAB_MAX = 10**8
HEADS_MAX = 10**6
POSITIONS_MAX = 1 << 32
EXPERTS_MAX = 1 << 20
LIST_MAX = LAYERS_MAX
_LIMITS: dict[str, int] = {
    "vocab_size": VOCAB_MAX,
    "num_layers": LAYERS_MAX,
    "num_attention_heads": HEADS_MAX,
    "num_key_value_heads": HEADS_MAX,
    "max_position_embeddings": POSITIONS_MAX,
    "sliding_window": POSITIONS_MAX,
    "num_experts": EXPERTS_MAX,
    "experts_per_token": EXPERTS_MAX,
}


def _limit(field: str) -> int:
    """Bound of a field by its name: layers, vocabulary, heads, positions, experts, else a width."""
    if field in _LIMITS:
        return _LIMITS[field]
    if "layer" in field or field.endswith(("_step", "_pattern", "_replace")):
        return LAYERS_MAX
    if "expert" in field:
        return EXPERTS_MAX
    if "head" in field and "dim" not in field:
        return HEADS_MAX
    return WIDTH_MAX


class Reader:
    """Reads config fields through typed accessors, remembering which required ones are missing.

    ``integer``/``flag``/``text``/``number``/``int_list``/``str_list`` refuse a value of the wrong
    type or out of bounds with a VramcalcError naming the key; ``need`` (required structural
    integers, under their alias names) records a missing one in ``missing`` instead, so the caller
    can list them all in one line.
    """

    def __init__(self, cfg: Config, where: str = "config.json") -> None:
        self.cfg = cfg
        self.where = where
        self.missing: list[str] = []

    def _bad(self, key: str, value: Any, valid: str) -> VramcalcError:
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        return VramcalcError(f"{self.where}: {key} = {shown} in config.json: must be {valid}")

    def has(self, key: str) -> bool:
        return self.cfg.get(key) is not None

    def _int(self, key: str, value: Any, lo: int, hi: int) -> int:
        valid = f"an integer from {lo:,} to {hi:,}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._bad(key, value, valid)
        if isinstance(value, float):
            if not math.isfinite(value) or not value.is_integer():
                raise self._bad(key, value, valid)
            if not lo <= value <= hi:  # compare the float first: int(1e300) is slow and huge
                raise self._bad(key, value, valid)
            value = int(value)
        if not lo <= value <= hi:
            raise self._bad(key, value, valid)
        return value

    def integer(
        self, key: str, default: int | None = None, lo: int = 0, hi: int | None = None
    ) -> Any:
        """An integer field (integral floats such as 4096.0 accepted; bools, strings refused),
        `default` when absent or null."""
        value = self.cfg.get(key)
        if value is None:
            return default
        return self._int(key, value, lo, _limit(key) if hi is None else hi)

    def positive(self, key: str, default: int | None = None) -> Any:
        """An integer field of at least 1."""
        return self.integer(key, default, lo=1)

    def need(self, field: str, *names: str) -> int:
        """A required positive integer under any of its names; missing ones are recorded."""
        for name in names or FIELD_NAMES[field]:
            value = self.cfg.get(name)
            if value is not None:
                return self._int(name, value, 1, _limit(field))
        self.missing.append(f"{field} (tried {', '.join(names or FIELD_NAMES[field])})")
        return 1  # placeholder; the caller raises before building a spec

    def flag(self, key: str, default: bool) -> bool:
        """A JSON boolean (0 and 1 accepted as older configs write them)."""
        value = self.cfg.get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise self._bad(key, value, "true or false")

    def text(self, key: str, default: str) -> str:
        value = self.cfg.get(key)
        if value is None:
            return default
        if not isinstance(value, str) or len(value) > 200:
            raise self._bad(key, value, "a string")
        return value

    def number(self, key: str, default: float, lo: float = 0.0, hi: float = 1e9) -> float:
        """A finite real number (partial rotary fractions, scales)."""
        value = self.cfg.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._bad(key, value, f"a number from {lo:g} to {hi:g}")
        if not (math.isfinite(value) and lo <= value <= hi):
            raise self._bad(key, value, f"a number from {lo:g} to {hi:g}")
        return float(value)

    def int_list(self, key: str, lo: int = 0, hi: int | None = None) -> list[int]:
        """A list of bounded integers (at most LIST_MAX of them); [] when absent or null."""
        value = self.cfg.get(key)
        if value is None:
            return []
        top = _limit(key) if hi is None else hi
        if not isinstance(value, list) or len(value) > LIST_MAX:
            raise self._bad(key, value, f"a list of at most {LIST_MAX:,} integers")
        return [self._int(key, v, lo, top) for v in value]

    def str_list(self, key: str) -> list[str] | None:
        """A list of strings (layer_types); None when absent or null."""
        value = self.cfg.get(key)
        if value is None:
            return None
        if (
            not isinstance(value, list)
            or len(value) > LIST_MAX
            or not all(isinstance(v, str) for v in value)
        ):
            raise self._bad(key, value, f"a list of at most {LIST_MAX:,} strings")
        return value


def window_fields(r: Reader, layers: int, default_windowed: int | None) -> dict[str, Any]:
    """Sliding-window fields: an explicit ``layer_types`` list wins over each family's default."""
    window = r.integer("sliding_window") or None  # some configs write 0 for "no window"
    layer_types = r.str_list("layer_types")
    if layer_types:
        windowed = sum(1 for t in layer_types if t == "sliding_attention")
        if not windowed or window is None:
            return {}
        return {"sliding_window": window, "sliding_window_layers": min(windowed, layers)}
    if window is None or default_windowed == 0:
        return {}
    if default_windowed is None or default_windowed >= layers:
        return {"sliding_window": window}
    return {"sliding_window": window, "sliding_window_layers": default_windowed}


def common_fields(r: Reader, arch: str, tie_default: bool) -> dict[str, Any]:
    heads = r.need("num_attention_heads")
    hidden = r.need("hidden_size")
    kv = r.positive("num_key_value_heads", heads)
    out: dict[str, Any] = {
        "architecture": arch,
        "vocab_size": r.need("vocab_size"),
        "hidden_size": hidden,
        "num_layers": r.need("num_layers"),
        "num_attention_heads": heads,
        "num_kv_heads": kv,
        "intermediate_size": r.need("intermediate_size"),
        "max_position_embeddings": r.need("max_position_embeddings"),
        "tie_word_embeddings": r.flag("tie_word_embeddings", tie_default),
        "activation": r.text("hidden_act", r.text("hidden_activation", "silu")),
    }
    head_dim = r.positive("head_dim")
    if head_dim is not None and not r.missing and head_dim * heads != hidden:
        out["head_dim"] = head_dim
    return out
