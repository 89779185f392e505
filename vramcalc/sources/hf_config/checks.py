"""Per-layer type lists for the family modules: the typed Reader's list of names, checked to
hold one entry per layer (a shorter or longer list would silently shift which layers attend)."""

from __future__ import annotations

from vramcalc.errors import VramcalcError

from .reader import Reader


def layer_types(r: Reader, layers: int) -> list[str] | None:
    """config.json layer_types, one name per layer; None when absent."""
    value = r.str_list("layer_types")
    if value is not None and len(value) != layers:
        raise VramcalcError(
            f"config.json layer_types has {len(value)} entries for {layers} layers; give one per layer"
        )
    return value
