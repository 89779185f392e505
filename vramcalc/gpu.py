"""NVML queries (the only module that imports pynvml): devices and per-process used memory.

Without a driver or the nvidia-ml-py package every function returns [] / None, never raises.
"""

from __future__ import annotations

from typing import Any


def _nvml() -> Any | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # no package, no driver, no device
        return None


def devices() -> list[dict[str, Any]]:
    """Name, total memory (bytes) and driver version of each GPU; [] without a driver."""
    nv = _nvml()
    if nv is None:
        return []
    out = []
    try:
        driver = nv.nvmlSystemGetDriverVersion()
        for i in range(nv.nvmlDeviceGetCount()):
            h = nv.nvmlDeviceGetHandleByIndex(i)
            name = nv.nvmlDeviceGetName(h)
            out.append(
                {
                    "index": i,
                    "name": name.decode() if isinstance(name, bytes) else name,
                    "memory_bytes": int(nv.nvmlDeviceGetMemoryInfo(h).total),
                    "driver": driver.decode() if isinstance(driver, bytes) else driver,
                }
            )
    except Exception:
        return out
    return out


def process_used_bytes(pid: int, index: int = 0) -> int | None:
    """Memory NVML attributes to process `pid` on GPU `index` (what nvidia-smi shows); None when
    unknown (no driver, or the process is not listed, e.g. inside some containers)."""
    nv = _nvml()
    if nv is None:
        return None
    try:
        h = nv.nvmlDeviceGetHandleByIndex(index)
        for p in nv.nvmlDeviceGetComputeRunningProcesses(h):
            if p.pid == pid and p.usedGpuMemory is not None:
                return int(p.usedGpuMemory)
        return None
    except Exception:
        return None
