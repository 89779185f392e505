"""Snapshot of library estimates (run by hand): dump `estimate_inference(...).model_dump()` over a
grid of every model preset × formats × shapes × modes × GPUs (and some training estimates) to a
JSON file, to check that a speed change alters no number or text:

    python benchmarks/inference_snapshot.py before.json   # on the old code
    python benchmarks/inference_snapshot.py after.json    # on the new code
    cmp before.json after.json

Refusals are recorded by their message, so the errors must stay the same too.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import vramcalc
from vramcalc.core.inference import estimate_inference
from vramcalc.core.training import estimate_training
from vramcalc.errors import VramcalcError

PRESETS = sorted(
    p.stem for p in (Path(__file__).parent.parent / "presets" / "models").glob("*.toml")
)
FORMATS: list[dict[str, Any]] = [
    {},
    {"dtype": "fp32"},
    {"dtype": "int4"},
    {"dtype": "int4", "quant": "nf4"},
    {"dtype": "int4", "quant": "awq"},
    {"dtype": "fp8", "quant": "fp8-e4m3"},
    {"dtype": "int8", "quant": "llm.int8"},
    {"dtype": "fp16", "kv_dtype": "fp8"},
    {"quant": "bogus"},
    {"dtype": "int8", "kv_dtype": "int8"},
]
SHAPES: list[dict[str, Any]] = [
    {},
    {"batch_size": 3, "seq_len": 1000},
    {"batch_size": 64, "seq_len": 8192},
    {"seq_len": 300000},
]
MODES: list[dict[str, Any]] = [
    {},
    {"logits": "all"},
    {"attention": "eager", "batch_size": 2, "seq_len": 512},
    {"tp": 2},
    {"tp": 4, "pp": 2},
    {"prefill_chunk": 512},
    {"prefill_chunk": 512, "attention": "eager"},
]
GPUS: list[dict[str, Any]] = [{}, {"gpu": "h100"}, {"gpu_mem_gib": 24}]


def snapshot() -> dict[str, Any]:
    out: dict[str, Any] = {}

    def record(key: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> None:
        try:
            out[key] = fn(*args, **kw).model_dump(mode="json")
        except VramcalcError as exc:
            out[key] = f"ERR {exc}"

    for name in PRESETS:
        spec = vramcalc.get_model(name)
        for i, (fmt, shape, mode) in enumerate(itertools.product(FORMATS, SHAPES, MODES)):
            kw = {**fmt, **shape, **mode, **GPUS[i % len(GPUS)]}
            key = f"{name}|{json.dumps(kw, sort_keys=True)}"
            record(key, estimate_inference, name, **kw)
            if i % 5 == 0:  # a ModelSpec takes the same route after resolution
                record(f"spec:{key}", estimate_inference, spec, **kw)
    record("params 7B int4", estimate_inference, params="7B", dtype="int4", gpu="h100")
    record("params 70B nf4", estimate_inference, params="70B", quant="nf4")
    record("batch 0", estimate_inference, "llama-2-7b", batch_size=0)
    record("gpu and memory", estimate_inference, "llama-2-7b", gpu="h100", gpu_mem_gib=3)
    for name in PRESETS[:10]:
        record(f"train:{name}", estimate_training, name, batch_size=2, seq_len=1024)
    return out


def main() -> None:
    out = snapshot()
    Path(sys.argv[1]).write_text(json.dumps(out, sort_keys=True, indent=0))
    refused = sum(isinstance(v, str) for v in out.values())
    print(f"{len(out)} estimates ({refused} refusals) written to {sys.argv[1]}")


if __name__ == "__main__":
    main()
