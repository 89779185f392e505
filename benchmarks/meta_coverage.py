"""Which causal-LM architectures of the installed transformers the exact meta-device route counts
(run by hand; needs vramcalc[torch]; minutes).

PYTHONPATH=. python benchmarks/meta_coverage.py           # one line per model_type, then totals
PYTHONPATH=. python benchmarks/meta_coverage.py --json    # {model_type: [status, detail]}

Each model_type is tried with its configuration class's defaults, cut to at most 8 layers (the
defaults are often 7B-sized; the cut keeps the layer kinds of the first 8 layers and is skipped when
transformers rejects it). Status: "exact" (tensors and cache read from the model), "refused" (the
route's one-line reason: no causal-LM class, the build or the meta-device forward fails, a generic
field is missing) or "config" (transformers' own default config does not validate). A real
config.json can do better than the defaults (DeepSeek-V2's default names no experts-per-token).
"""

from __future__ import annotations

import json
import signal
import sys
import time
import warnings
from typing import Any

warnings.filterwarnings("ignore")

LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers", "decoder_layers")
LAYER_LISTS = ("layer_types", "layers_block_type", "attn_type_list", "mlp_only_layers")
MAX_LAYERS = 8
TIMEOUT_S = 120


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


def status_of(model_type: str) -> tuple[str, str]:
    from transformers import AutoConfig

    from vramcalc.errors import VramcalcError
    from vramcalc.measure.meta import inspect_config, spec_from_inventory

    try:
        cfg = AutoConfig.for_model(model_type).to_dict()
    except Exception as exc:
        return "config", f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    cfg["model_type"] = model_type
    try:
        try:
            inv = inspect_config(shrink(cfg))
        except VramcalcError as exc:
            if "rejects" not in str(exc):
                raise
            inv = inspect_config(cfg)
        spec, _ = spec_from_inventory(inv, model_type)
    except VramcalcError as exc:
        return "refused", str(exc).removeprefix(f"{model_type}: ")
    state = spec.state_elements_per_sequence
    detail = f"kv/token {spec.kv_elements_per_token}" + (f", state {state}" if state else "")
    return "exact", detail


def main() -> None:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    signal.signal(signal.SIGALRM, _alarm)
    rows: dict[str, tuple[str, str]] = {}
    for model_type in sorted(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES):
        start = time.perf_counter()
        signal.alarm(TIMEOUT_S)
        try:
            rows[model_type] = status_of(model_type)
        except _Timeout:
            rows[model_type] = ("refused", f"timed out after {TIMEOUT_S} s")
        finally:
            signal.alarm(0)
        if "--json" not in sys.argv:
            status, detail = rows[model_type]
            seconds = time.perf_counter() - start
            print(f"{model_type:32s} {status:8s} {seconds:5.1f} s  {detail[:150]}", flush=True)
    totals = {s: sum(1 for v in rows.values() if v[0] == s) for s in ("exact", "refused", "config")}
    if "--json" in sys.argv:
        print(json.dumps({"totals": totals, "rows": rows}, indent=1))
    else:
        print(
            f"{len(rows)} causal-LM model types: "
            + ", ".join(f"{v} {k}" for k, v in totals.items())
        )


if __name__ == "__main__":
    main()
