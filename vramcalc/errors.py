"""User-facing errors. The CLI catches :class:`VramcalcError` once and prints one line (exit 2)."""

from __future__ import annotations

import difflib


class VramcalcError(Exception):
    """A problem with what the user asked for: bad value, unknown name, broken preset file."""


class UnknownNameError(VramcalcError, KeyError):
    """An unknown preset name; carries the closest known names as suggestions."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.suggestions = difflib.get_close_matches(name.lower(), known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"unknown {kind} {name!r}{hint} (see `vramcalc presets list`)")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class PresetError(VramcalcError):
    """A preset file that is missing a field or has a wrong one: names the file and the field."""


def format_validation_error(exc: Exception) -> str:
    """Turn a pydantic ValidationError into one short 'field: message' line."""
    errors = getattr(exc, "errors", None)
    if errors is None:
        return str(exc)
    parts = []
    for err in errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or "input"
        value = err.get("input")
        shown = f" (got {value!r})" if value is not None and not isinstance(value, dict) else ""
        parts.append(f"{where}: {err.get('msg', 'invalid')}{shown}")
    return "; ".join(parts)


class UnmappedArchitectureError(VramcalcError):
    """A config.json whose ``model_type`` no builder maps exactly. ``vramcalc.sources`` catches
    it to try the exact meta-device route (torch extra) before the refusal reaches the user."""

    def __init__(self, model_type: str, message: str) -> None:
        self.model_type = model_type
        super().__init__(message)
