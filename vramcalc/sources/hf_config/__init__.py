"""Hugging Face ``config.json`` → :class:`ModelSpec`, one mapping per ``model_type``.

Each architecture's field names and defaults follow its transformers configuration and modeling
code (``transformers/models/<type>/configuration_<type>.py`` / ``modeling_<type>.py``, v5): which
projections carry biases, how many norms a layer has, which layers are mixture-of-experts, which
use a sliding window. Tests build the transformers model from the same config on the meta device
and compare parameter counts to the parameter.

Pure data in, data out: no file or network access here (``vramcalc.sources`` reads the files).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from vramcalc.errors import UnmappedArchitectureError, VramcalcError, format_validation_error
from vramcalc.safe_io import clean_text
from vramcalc.spec.model import ModelSpec

from .core import BUILDERS as _CORE
from .core import DEFAULTS as _CORE_DEFAULTS
from .dense import BUILDERS as _DENSE
from .dense_defaults import DEFAULTS as _DENSE_DEFAULTS
from .hybrid import BUILDERS as _HYBRID
from .hybrid import DEFAULTS as _HYBRID_DEFAULTS
from .linear import BUILDERS as _LINEAR
from .linear import DEFAULTS as _LINEAR_DEFAULTS
from .llama_layout import BUILDERS as _LLAMA_LAYOUT
from .llama_layout import DEFAULTS as _LLAMA_LAYOUT_DEFAULTS
from .moe import BUILDERS as _MOE
from .moe import DEFAULTS as _MOE_DEFAULTS
from .reader import FIELD_NAMES, Config, Reader

# model_type -> builder; each family module contributes its BUILDERS and DEFAULTS.
_BUILDERS: dict[str, Callable[[Reader, str], dict[str, Any]]] = {
    **_CORE,
    **_DENSE,
    **_LLAMA_LAYOUT,
    **_MOE,
    **_HYBRID,
    **_LINEAR,
}
_DEFAULTS: dict[str, dict[str, Any]] = {
    **_CORE_DEFAULTS,
    **_DENSE_DEFAULTS,
    **_LLAMA_LAYOUT_DEFAULTS,
    **_MOE_DEFAULTS,
    **_HYBRID_DEFAULTS,
    **_LINEAR_DEFAULTS,
}

_ALIASES = {"RefinedWeb": "falcon", "RefinedWebModel": "falcon", "gemma3": "gemma3_text"}

_MODEL_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")

SUPPORTED_MODEL_TYPES = tuple(sorted(_BUILDERS))


def _with_defaults(cfg: Config, arch: str) -> tuple[Config, list[str]]:
    """`cfg` completed with transformers' defaults for the fields it leaves out."""
    defaults = _DEFAULTS.get(arch, {})
    # an explicit null stays null; a field given under another of its names is not defaulted
    given = {k for k in cfg} | {
        name for names in FIELD_NAMES.values() if any(n in cfg for n in names) for name in names
    }
    filled = {k: v for k, v in defaults.items() if k not in given}
    if not filled:
        return cfg, []
    shown = ", ".join(f"{k}={v}" for k, v in filled.items())
    return cfg | filled, [f"not in config.json, transformers' {arch} defaults used: {shown}"]


# Configs whose Llama reading is far outside the ×2 band of --assume-llama (issue 13: every
# mixture of experts read as dense came out near −89 %, multi-query attention's KV cache 48× too
# large, a state-space layer has no attention at all): refused even with --assume-llama.
_NOT_LLAMA_KEYS = (
    "num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts", "num_experts_per_tok",
    "moe_intermediate_size", "multi_query", "state_size", "ssm_state_size", "mamba_d_state",
    "d_state", "conv_kernel", "linear_num_value_heads",
)  # fmt: skip


def unmapped_message(where: str, model_type: str) -> str:
    """The one line for an architecture vramcalc does not map."""
    shown = repr(model_type) if model_type else "(no model_type)"
    return (
        f"{where}: architecture {shown} is not mapped, so its parameters and KV cache cannot be "
        'counted exactly; pip install "vramcalc[torch]" for the exact route (the model built on '
        "the meta device), or pass --assume-llama for a rough estimate read as a Llama-style "
        "decoder (labelled, band ×2, never 'fits')"
    )


def _assume_llama(r: Reader, cfg: Config, where: str, model_type: str) -> dict[str, Any]:
    """Fields of an unmapped config read as Llama, for --assume-llama (refused when the config
    shows a structure the Llama reading misses by far more than the widened band)."""
    odd = [k for k in _NOT_LLAMA_KEYS if cfg.get(k) not in (None, False, 0)]
    if odd:
        raise VramcalcError(
            f"{where}: architecture {model_type!r} has {', '.join(odd)}, which a Llama-style "
            'reading cannot honour, not even roughly; pip install "vramcalc[torch]" for the '
            "exact route"
        )
    fields = _CORE["llama"](r, model_type)
    if r.missing:
        raise VramcalcError(
            f"{where}: --assume-llama: {model_type!r} lacks the Llama fields {'; '.join(r.missing)}"
        )
    fields["assumed_architecture"] = model_type
    return fields


def spec_from_config(
    cfg: Config, name: str, source: str = "", *, assume_llama: bool = False
) -> tuple[ModelSpec, list[str]]:
    """The ModelSpec a config.json describes, and notes on what was assumed.

    An unmapped model_type is refused (VramcalcError naming the exact route and --assume-llama);
    with ``assume_llama`` it is read with the generic Llama-style field names, and the spec says
    so (``assumed_architecture``), so every estimate made from it is labelled rough.
    """
    where = source or name
    if not isinstance(cfg, dict):
        raise VramcalcError(f"{where}: config.json must hold a JSON object")
    notes: list[str] = []
    raw_type = cfg.get("model_type")
    if raw_type is not None and not (isinstance(raw_type, str) and _MODEL_TYPE.fullmatch(raw_type)):
        # not a name any library could map: refused here, before any route loads torch for it
        raise VramcalcError(
            f"{where}: model_type must be an architecture name such as 'llama' (got "
            f"{clean_text(repr(raw_type))[:60]})"
        )
    model_type = raw_type or ""
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
    if arch not in _BUILDERS and not assume_llama:
        raise UnmappedArchitectureError(model_type, unmapped_message(where, model_type))
    cfg, filled = _with_defaults(cfg, arch)
    notes += filled
    r = Reader(cfg, where)
    if arch in _BUILDERS:
        fields = _BUILDERS[arch](r, arch)
    else:
        fields = _assume_llama(r, cfg, where, model_type or "unknown")
        notes.append(
            f"ROUGH ESTIMATE: architecture {model_type or '(no model_type)'!r} is not mapped; read "
            "as a Llama-style decoder (--assume-llama): parameters and KV cache may be off by "
            "tens of percent, the likely range is widened to ×2 either way"
        )
    if r.missing:
        raise VramcalcError(f"{where}: {arch} config could not map {'; '.join(r.missing)}")
    fields = {k: v for k, v in fields.items() if v is not None}
    try:
        spec = ModelSpec(name=name, source=source, **fields)
    except ValidationError as exc:
        raise VramcalcError(f"{where}: {format_validation_error(exc)}") from None
    quant = cfg.get("quantization_config")
    if isinstance(quant, dict) and quant.get("quant_method") == "mxfp4" and spec.is_moe:
        notes.append(  # gpt-oss ships its experts in MXFP4; the estimate is in the chosen --dtype
            "the checkpoint stores its experts in MXFP4 (quantization_config): --dtype int4 "
            "--quant mxfp4 for the weights as shipped"
        )
    return spec, notes
