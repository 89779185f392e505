"""User-facing errors. The CLI catches :class:`VramcalcError` once and prints one line (exit 2)."""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class VramcalcError(Exception):
    """A problem with what the user asked for: bad value, unknown name, broken preset file."""


class UnknownNameError(VramcalcError, KeyError):
    """An unknown preset name; carries the closest known names as suggestions.

    `known` maps each lookup key (normalised: lower case, no '-', '_', '.', '/' or spaces) to
    (the spelling it came from, the preset's name), so that suggestions read `llama-2-7b` or
    `h100-80gb (h100-sxm)`, never the key `llama27b`; one suggestion per preset."""

    def __init__(
        self, kind: str, name: str, known: dict[str, tuple[str, str]], normalise: Any = None
    ) -> None:
        self.kind = kind
        self.name = name
        key = normalise(name) if normalise is not None else name.lower()
        shown: dict[str, str] = {}  # preset → how it is suggested
        for k in difflib.get_close_matches(key, list(known), n=12, cutoff=0.5):
            spelling, preset = known[k]
            shown.setdefault(preset, spelling if spelling == preset else f"{spelling} ({preset})")
        self.suggestions = list(shown.values())[:3]
        hint = f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        where = "vramcalc gpus" if kind.lower() == "gpu" else "vramcalc presets list"
        super().__init__(f"unknown {kind} {name!r}{hint} (see `{where}`)")

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
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}{shown}")
    return "; ".join(parts)


class UnmappedArchitectureError(VramcalcError):
    """A config.json whose ``model_type`` no builder maps exactly. ``vramcalc.sources`` catches
    it to try the exact meta-device route (torch extra) before the refusal reaches the user."""

    def __init__(self, model_type: str, message: str) -> None:
        self.model_type = model_type
        super().__init__(message)


def checked_keywords(fn: Callable[P, R]) -> Callable[P, R]:
    """Make a misspelt keyword argument a VramcalcError naming the close matches, like every other
    bad input; a call that binds costs nothing extra (the signature is read only on TypeError)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except TypeError:
            problem = _binding_problem(fn, args, kwargs)
            if problem is None:
                raise
            raise VramcalcError(problem) from None

    return wrapper


def _binding_problem(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> str | None:
    """Why `args`/`kwargs` do not fit `fn`'s signature, or None when they do."""
    signature = inspect.signature(fn)
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        known = [
            p.name
            for p in signature.parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        unknown = [k for k in kwargs if k not in known]
        if not unknown:
            return f"{fn.__name__}(): {exc}"
        close = difflib.get_close_matches(unknown[0], known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        return f"{fn.__name__}(): unknown keyword {unknown[0]!r}{hint} (valid: {', '.join(known)})"
    return None
