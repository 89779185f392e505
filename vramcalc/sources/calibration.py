"""Constants fitted to measurements, loaded once from ``presets/calibration.toml``."""

from __future__ import annotations

import tomllib
from functools import cache

from pydantic import BaseModel, ConfigDict

from vramcalc.sources.presets import presets_dir
from vramcalc.units import MIB


class Runtime(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cuda_context_mib: int
    cuda_context_low_mib: int
    cuda_context_high_mib: int
    cuda_context_source: str
    allocator_slack_fraction: float
    allocator_slack_low_fraction: float
    allocator_slack_high_fraction: float
    allocator_slack_source: str

    @property
    def cuda_context_bytes(self) -> int:
        return self.cuda_context_mib * MIB


@cache
def runtime() -> Runtime:
    data = tomllib.loads((presets_dir() / "calibration.toml").read_text(encoding="utf-8"))
    return Runtime.model_validate(data["runtime"])


class TraceResiduals(BaseModel):
    """Range of (estimate / trace − 1) of tensor bytes over the validation grid, per task."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inference_low: float
    inference_high: float
    training_low: float
    training_high: float
    source: str

    def range(self, kind: str) -> tuple[float, float]:
        if kind == "inference":
            return self.inference_low, self.inference_high
        return self.training_low, self.training_high


@cache
def trace_residuals() -> TraceResiduals:
    data = tomllib.loads((presets_dir() / "calibration.toml").read_text(encoding="utf-8"))
    return TraceResiduals.model_validate(data["trace_residuals"])
