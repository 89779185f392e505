"""GPUs of this machine through NVML: the only module that imports pynvml (lazily).

Without the NVIDIA driver (or without nvidia-ml-py) :func:`local_gpus` returns ``[]``; callers say
"no NVIDIA GPU found" rather than guess. Memory figures are NVML's ``nvmlDeviceGetMemoryInfo``
(the same totals nvidia-smi prints, in bytes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class LocalGPU:
    index: int
    name: str
    total_bytes: int
    free_bytes: int
    used_bytes: int
    driver_version: str


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def local_gpus() -> list[LocalGPU]:
    """The NVIDIA GPUs NVML sees, or [] when there is no driver, no library or no GPU."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound / DriverNotLoaded / ...
        return []
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        found = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            found.append(
                LocalGPU(
                    index=i,
                    name=_text(pynvml.nvmlDeviceGetName(handle)),
                    total_bytes=int(mem.total),
                    free_bytes=int(mem.free),
                    used_bytes=int(mem.used),
                    driver_version=driver,
                )
            )
        return found
    except Exception:
        return []
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def process_used_bytes(pid: int, index: int = 0) -> int | None:
    """Memory NVML attributes to process `pid` on GPU `index` (nvidia-smi's per-process figure);
    None when unknown: no driver or library, or the process is not listed (some containers)."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if proc.pid == pid and proc.usedGpuMemory is not None:
                return int(proc.usedGpuMemory)
        return None
    except Exception:
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass
