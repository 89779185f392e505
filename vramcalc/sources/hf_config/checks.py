"""Validated reads of config.json values for the family modules: whole numbers (not bools or
strings), layer-index lists and per-layer type lists, each refused with one line naming the
field and what is valid."""

from __future__ import annotations

from typing import Any

from vramcalc.errors import VramcalcError

from .reader import Reader


def whole(value: Any, name: str, low: int = 0) -> int:
    """`value` as a whole number ≥ `low` (a bool or a string is refused, not coerced)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise VramcalcError(f"config.json {name} must be a whole number ≥ {low}, got {value!r}")
    return value


def count(r: Reader, field: str, *names: str, low: int = 1) -> int:
    """A required count read under the first of `names` present, validated; a missing one is
    recorded on the reader (which names it in its error) and stands as 1 meanwhile."""
    for name in names:
        value = r.cfg.get(name)
        if value is not None:
            return whole(value, name, low)
    r.need(field, *names)
    return 1


def index_list(r: Reader, key: str, layers: int) -> list[int] | None:
    """A list of layer indices (moe_layers, mlp_only_layers), each checked to be a layer."""
    value = r.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise VramcalcError(f"config.json {key} must be a list of layer indices, got {value!r}")
    return [whole(i, f"{key}[]", 0) for i in value if whole(i, f"{key}[]", 0) < layers]


def layer_types(r: Reader, layers: int) -> list[str] | None:
    value = r.get("layer_types")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise VramcalcError(f"config.json layer_types must be a list of names, got {value!r}")
    if len(value) != layers:
        raise VramcalcError(
            f"config.json layer_types has {len(value)} entries for {layers} layers; give one per layer"
        )
    return value
