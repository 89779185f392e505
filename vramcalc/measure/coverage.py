"""Which causal-LM architectures of the installed transformers the exact meta-device route answers.

One place for the check that both ``scripts/architecture_coverage.py`` (docs/architectures.md) and
``benchmarks/meta_coverage.py`` run: each ``model_type`` goes through the route itself
(:func:`vramcalc.measure.meta.inspect_config` then
:func:`vramcalc.measure.meta_spec.spec_from_inventory`): the build on the meta device, the cache
forward and the generic fields. A type is "exact" only when that whole route returns a ModelSpec.

Each type is tried with its configuration class's defaults, cut to at most MAX_LAYERS layers (the
defaults are often 7B-sized; the cut keeps the layer kinds of the first layers and is dropped when
transformers rejects it). A real config.json can do better than the defaults (DeepSeek-V2's default
names no experts-per-token), so "refused" here means "refused for the default configuration".
"""

from __future__ import annotations

import signal
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from vramcalc.errors import VramcalcError

RouteStatus = Literal["exact", "refused", "config"]

LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers", "decoder_layers")
LAYER_LISTS = ("layer_types", "layers_block_type", "attn_type_list", "mlp_only_layers")
MAX_LAYERS = 8
TIMEOUT_S = 120
_DETAIL_CHARS = 200


def causal_lm_types() -> list[str]:
    """Every model_type transformers maps to a causal-LM class, sorted."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return sorted(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)


def shrink(cfg: dict[str, Any]) -> dict[str, Any]:
    """`cfg` with at most MAX_LAYERS layers (per-layer lists cut to match), nested configs too."""
    out = dict(cfg)
    for key in LAYER_KEYS:
        if isinstance(out.get(key), int) and out[key] > MAX_LAYERS:
            out[key] = MAX_LAYERS
    for key in LAYER_LISTS:
        if isinstance(out.get(key), list) and len(out[key]) > MAX_LAYERS:
            out[key] = out[key][:MAX_LAYERS]
    for key in ("text_config", "decoder"):
        if isinstance(out.get(key), dict):
            out[key] = shrink(out[key])
    return out


class _Timeout(Exception):
    pass


def _alarm(*_: Any) -> None:
    raise _Timeout


@contextmanager
def _time_limit(seconds: int) -> Iterator[None]:
    """SIGALRM after `seconds` (main thread of a POSIX process; no limit elsewhere)."""
    if not hasattr(signal, "SIGALRM"):  # pragma: no cover - Windows
        yield
        return
    try:
        previous = signal.signal(signal.SIGALRM, _alarm)
    except ValueError:  # pragma: no cover - not the main thread
        yield
        return
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _one_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= _DETAIL_CHARS else line[: _DETAIL_CHARS - 1] + "…"


def _route(model_type: str) -> tuple[RouteStatus, str]:
    from transformers import AutoConfig

    from .meta import inspect_config, spec_from_inventory

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cfg = AutoConfig.for_model(model_type).to_dict()
    except Exception as exc:  # transformers' own default configuration does not validate
        return "config", _one_line(f"{type(exc).__name__}: {exc}")
    cfg["model_type"] = model_type
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                inv = inspect_config(shrink(cfg))
            except VramcalcError as exc:
                if "rejects" not in str(exc):
                    raise
                inv = inspect_config(cfg)
            spec, _ = spec_from_inventory(inv, model_type)
    except VramcalcError as exc:
        return "refused", _one_line(str(exc).removeprefix(f"{model_type}: "))
    state = spec.state_elements_per_sequence
    detail = f"kv/token {spec.kv_elements_per_token}" + (f", state {state}" if state else "")
    return "exact", detail


def route_status(model_type: str, timeout_s: int = TIMEOUT_S) -> tuple[RouteStatus, str]:
    """("exact", cache detail) when the meta-device route answers `model_type`'s default
    configuration; ("refused", the route's one-line reason) when it refuses or runs past
    `timeout_s`; ("config", why) when transformers' own default configuration does not build."""
    try:
        with _time_limit(timeout_s):
            return _route(model_type)
    except _Timeout:
        return "refused", f"the meta-device build and forward ran past {timeout_s} s"


__all__ = ["causal_lm_types", "route_status", "shrink", "MAX_LAYERS", "TIMEOUT_S"]
