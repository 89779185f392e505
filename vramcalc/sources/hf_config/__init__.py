"""Hugging Face ``config.json`` → :class:`ModelSpec`, one mapping per ``model_type``.

Each architecture's field names and defaults follow its transformers configuration and modeling
code (``transformers/models/<type>/configuration_<type>.py`` / ``modeling_<type>.py``, v5): which
projections carry biases, how many norms a layer has, which layers are mixture-of-experts, which
use a sliding window. Tests build the transformers model from the same config on the meta device
and compare parameter counts to the parameter.

Pure data in, data out: no file or network access here (``vramcalc.sources`` reads the files).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from vramcalc.errors import VramcalcError, format_validation_error
from vramcalc.specs import ModelSpec

from .core import BUILDERS as _CORE
from .core import DEFAULTS as _CORE_DEFAULTS
from .reader import Config, Reader

# model_type -> builder; each family module contributes its BUILDERS and DEFAULTS.
_BUILDERS: dict[str, Callable[[Reader, str], dict[str, Any]]] = {**_CORE}
_DEFAULTS: dict[str, dict[str, Any]] = {**_CORE_DEFAULTS}

_ALIASES = {"RefinedWeb": "falcon", "RefinedWebModel": "falcon", "gemma3": "gemma3_text"}

SUPPORTED_MODEL_TYPES = tuple(sorted(_BUILDERS))


def _with_defaults(cfg: Config, arch: str) -> tuple[Config, list[str]]:
    """`cfg` completed with transformers' defaults for the fields it leaves out."""
    defaults = _DEFAULTS.get(arch, {})
    filled = {k: v for k, v in defaults.items() if k not in cfg}  # an explicit null stays null
    if not filled:
        return cfg, []
    shown = ", ".join(f"{k}={v}" for k, v in filled.items())
    return cfg | filled, [f"not in config.json, transformers' {arch} defaults used: {shown}"]


def spec_from_config(cfg: Config, name: str, source: str = "") -> tuple[ModelSpec, list[str]]:
    """The ModelSpec a config.json describes, and notes on what was assumed.

    An unknown model_type is read with the generic Llama-style field names when they are all
    there (and says so in the notes); otherwise the error lists the fields it could not map.
    """
    if not isinstance(cfg, dict):
        raise VramcalcError(f"{source or name}: config.json must hold a JSON object")
    notes: list[str] = []
    model_type = str(cfg.get("model_type", "") or "")
    arch = _ALIASES.get(model_type, model_type)
    if arch == "gemma3_text" and isinstance(cfg.get("text_config"), dict):
        cfg = {"model_type": "gemma3_text"} | cfg["text_config"]
        notes.append("Gemma-3 multimodal config: text model only (vision tower not counted)")
    elif arch not in _BUILDERS and isinstance(cfg.get("text_config"), dict):
        inner = cfg["text_config"]
        inner_type = _ALIASES.get(
            str(inner.get("model_type", "")), str(inner.get("model_type", ""))
        )
        if inner_type in _BUILDERS:
            notes.append(f"{model_type} config: its {inner_type} text model only")
            cfg, arch = inner, inner_type
    cfg, filled = _with_defaults(cfg, arch)
    notes += filled
    r = Reader(cfg)
    if arch in _BUILDERS:
        fields = _BUILDERS[arch](r, arch)
    else:
        fields = _CORE["llama"](r, arch or "unknown")
        if r.missing:
            raise VramcalcError(
                f"{source or name}: unknown architecture {model_type or '(no model_type)'!r}; "
                f"could not map {'; '.join(r.missing)} (supported: {', '.join(SUPPORTED_MODEL_TYPES)})"
            )
        notes.append(
            f"unknown model_type {model_type!r}: read as a Llama-style decoder from its generic fields"
        )
    if r.missing:
        raise VramcalcError(f"{source or name}: {arch} config could not map {'; '.join(r.missing)}")
    fields = {k: v for k, v in fields.items() if v is not None}
    try:
        spec = ModelSpec(name=name, source=source, **fields)
    except ValidationError as exc:
        raise VramcalcError(f"{source or name}: {format_validation_error(exc)}") from None
    return spec, notes
