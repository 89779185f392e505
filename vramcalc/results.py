"""Result models: one typed breakdown whose components add up to its total.

The JSON schema (``--json``) is this model's ``model_dump``; it is documented in the README and kept
stable: ``params``, ``total_bytes`` and ``components`` (list of ``{name, bytes, note}``) are always there.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


class Component(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = Field(description="what the bytes hold: weights, kv_cache, activations, ...")
    bytes: int = Field(ge=0)
    note: str = Field("", description="the formula or assumption behind the figure")
    formula: str = Field("", description="the arithmetic with numbers substituted (--explain)")
    cluster_bytes: int | None = Field(
        None, description="this component summed over every GPU of a multi-GPU job"
    )


class GPUFit(BaseModel):
    """Whether the estimate fits one GPU of `memory_bytes`, and the headroom left (negative: short)."""

    model_config = ConfigDict(frozen=True)

    gpu: str
    memory_bytes: int
    fits: bool
    headroom_bytes: int


class Saving(BaseModel):
    """What one choice (LoRA, ZeRO stage, offload, a parallel degree) saves per GPU."""

    model_config = ConfigDict(frozen=True)

    choice: str
    saved_bytes: int = Field(description="per-GPU total without the choice minus with it")
    compared_to: str = Field("", description="the configuration it is compared with")


class Estimate(BaseModel):
    """A memory estimate at the peak of the workload."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    kind: Literal["inference", "training"]
    model: str
    params: int = Field(description="total parameters (all experts of an MoE model)")
    active_params: int = Field(description="parameters one token passes through")
    weights_only: bool = Field(False, description="True when the model was given only by size")
    phase: str = Field("", description="the moment of the peak the components describe")
    components: list[Component]
    total_bytes: int
    gpu: GPUFit | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    assumptions: list[str] = Field(default_factory=list)
    # Multi-GPU jobs (training with sharding or parallelism); defaults describe one GPU.
    num_gpus: int = Field(1, description="GPUs of the job; components and total are per GPU")
    cluster_total_bytes: int | None = Field(None, description="GPU memory summed over all GPUs")
    cpu_bytes_per_node: int = Field(0, description="host memory per node for offloaded state")
    stage_totals_bytes: list[int] = Field(
        default_factory=list, description="per-GPU total of each pipeline stage (the max is total)"
    )
    parallel: dict[str, Any] = Field(default_factory=dict, description="degrees and sharding")
    savings: list[Saving] = Field(default_factory=list)

    def component(self, name: str) -> int:
        """Bytes of one component (0 when absent)."""
        return sum(c.bytes for c in self.components if c.name == name)


def make_estimate(
    components: list[Component], gpu_memory: tuple[str, int] | None, **fields: Any
) -> Estimate:
    """Build an Estimate whose total is the sum of its components, with the GPU fit if asked."""
    total = sum(c.bytes for c in components)
    fit = None
    if gpu_memory is not None:
        name, memory = gpu_memory
        fit = GPUFit(
            gpu=name, memory_bytes=memory, fits=total <= memory, headroom_bytes=memory - total
        )
    return Estimate(components=components, total_bytes=total, gpu=fit, **fields)
