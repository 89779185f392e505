"""Run the workload for real on a CUDA GPU with random weights and read what it used.

Readings: ``torch.cuda.max_memory_allocated`` / ``max_memory_reserved`` over the measured step and
the process's memory as NVML reports it (nvidia-smi's figure) before and after. An out-of-memory
error is a result (``oom: true``), not a crash. :func:`append_record` adds one self-describing JSON
line per run to a file without ever rewriting what is there.
"""

from __future__ import annotations

import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vramcalc import nvml as gpu
from vramcalc.errors import VramcalcError

from .workload import Workload, build_model, run_inference, run_training


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def cuda_device_count() -> int:
    import torch

    return int(torch.cuda.device_count())


def measure(wl: Workload, device_index: int = 0) -> dict[str, Any]:
    """Readings of one run of `wl` on GPU `device_index` (raises VramcalcError without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        raise VramcalcError("measure needs a CUDA GPU (none found); use `vramcalc trace` instead")
    torch.cuda.set_device(device_index)
    pid = os.getpid()
    readings: dict[str, Any] = {"oom": False, "error": None}
    readings["nvml_process_bytes_before"] = gpu.process_used_bytes(pid, device_index)
    t0 = time.perf_counter()
    model = None
    try:
        model = build_model(wl, "cuda")
        torch.cuda.synchronize()
        readings["weights_allocated_bytes"] = int(torch.cuda.memory_allocated())

        def phase(name: str) -> None:
            if name == "step 1: forward" or (wl.kind == "inference" and name == "prefill"):
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()

        if wl.kind == "inference":
            out = run_inference(model, wl, "cuda", phase)
            del out
        else:
            run_training(model, wl, "cuda", phase, steps=2)
        torch.cuda.synchronize()
    except torch.cuda.OutOfMemoryError as exc:
        readings["oom"] = True
        readings["error"] = str(exc).splitlines()[0][:300]
    readings["max_memory_allocated_bytes"] = int(torch.cuda.max_memory_allocated())
    readings["max_memory_reserved_bytes"] = int(torch.cuda.max_memory_reserved())
    readings["nvml_process_bytes_after"] = gpu.process_used_bytes(pid, device_index)
    readings["seconds"] = round(time.perf_counter() - t0, 3)
    del model
    import gc

    gc.collect()
    torch.cuda.empty_cache()  # the next run of a suite starts from an empty cache
    return readings


def measured_error(estimate_total_bytes: int, readings: dict[str, Any]) -> float | None:
    """Relative error of a full estimate against what nvidia-smi showed for the process (or, when
    NVML cannot attribute memory to processes, against max_memory_reserved); None after an OOM."""
    if readings.get("oom"):
        return None
    truth = readings.get("nvml_process_bytes_after") or readings.get("max_memory_reserved_bytes")
    return estimate_total_bytes / truth - 1 if truth else None


def environment(device_index: int = 0) -> dict[str, Any]:
    """GPU, driver, torch and transformers versions for a record."""
    import torch
    import transformers

    dev = next((g for g in gpu.local_gpus() if g.index == device_index), None)
    return {
        "gpu": dev.name if dev else torch.cuda.get_device_name(device_index),
        "gpu_memory_bytes": dev.total_bytes if dev else None,
        "driver": dev.driver_version if dev else None,
        "cuda": torch.version.cuda,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def make_record(wl: Workload, readings: dict[str, Any], env: dict[str, Any]) -> dict[str, Any]:
    """One self-describing record: what ran, where, what it read, and the estimate beside it."""
    from vramcalc.core.results import Estimate

    est: Estimate = wl.estimate()
    return {
        "record_version": 1,
        "time_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": wl.describe(),
        "environment": env,
        "readings": readings,
        "estimate": {
            "total_bytes": est.total_bytes,
            "components": {c.name: c.bytes for c in est.components},
        },
    }


def append_record(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line to `path` (existing bytes are never rewritten): under an exclusive
    file lock, a missing final newline (an interrupted earlier write) is added first, then the
    whole line goes out in one write on an O_APPEND descriptor and is fsync'd, so concurrent
    writers never tear or interleave lines (:func:`vramcalc.safe_io.append_line`)."""
    from vramcalc.safe_io import append_line

    append_line(path, json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False))


def read_records(path: Path) -> list[dict[str, Any]]:
    """Records of a JSONL file; lines that do not parse (a torn write) are skipped."""
    out = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(raw))
        except json.JSONDecodeError:
            continue
    return out
