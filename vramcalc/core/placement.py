"""Memory per GPU of a job spread over GPUs: the one function the planners (vramcalc.core.fitting)
call for every candidate, and that a richer model of parallelism can replace (``MemoryFn``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from vramcalc.core.cost import split_over_tp
from vramcalc.core.inference import estimate_inference
from vramcalc.core.results import Component, Estimate
from vramcalc.core.training import estimate_training
from vramcalc.errors import VramcalcError
from vramcalc.spec.model import ModelSpec

Task = Literal["infer", "train"]

_INFER_KEYS = {"dtype", "quant", "kv_dtype", "batch_size", "seq_len", "logits", "attention"}
# every estimate_training option but the model, the GPU (the planner's) and the GPU count (its own)
_TRAIN_KEYS = {
    "precision",
    "optimizer",
    "batch_size",
    "grad_accum",
    "seq_len",
    "grad_checkpointing",
    "attention",
    "method",
    "lora_rank",
    "lora_alpha",
    "lora_targets",
    "lora_dropout",
    "quant",
    "zero",
    "fsdp",
    "offload",
    "conventions",
}
_SHARDING = ("zero", "fsdp")


def single_gpu_estimate(spec: ModelSpec, task: Task, workload: Mapping[str, Any]) -> Estimate:
    """The one-GPU memory estimate of `workload` (keyword arguments of estimate_inference or
    estimate_training; unknown keys are an error)."""
    allowed = _INFER_KEYS if task == "infer" else _TRAIN_KEYS
    extra = set(workload) - allowed
    if extra:
        raise VramcalcError(
            f"{task}: unknown workload option(s) {', '.join(sorted(extra))}; "
            f"valid: {', '.join(sorted(allowed))}"
        )
    if task == "infer":
        return estimate_inference(spec, **workload)
    if task == "train":
        return estimate_training(spec, **workload)
    raise VramcalcError(f"task must be infer or train (got {task!r})")


class Placement(BaseModel):
    """Memory of one GPU when a job runs on `num_gpus` GPUs, and the parallelism assumed."""

    model_config = ConfigDict(frozen=True)

    num_gpus: int
    parallelism: str
    per_gpu_bytes: int
    components: list[Component]


MemoryFn = Callable[[ModelSpec, Task, Mapping[str, Any], int], Placement]


def job_peak_bytes(est: Estimate) -> int:
    """The most one GPU holds over the job: the step peak, or the load-time peak where loading
    (quantizing a QLoRA base) needs more (Estimate.load_peak_bytes; 0 where not modelled)."""
    return max(est.total_bytes, est.load_peak_bytes)


def simple_placement(
    spec: ModelSpec, task: Task, workload: Mapping[str, Any], num_gpus: int
) -> Placement:
    """Per-GPU memory of a job spread over `num_gpus` GPUs.

    * infer: tensor parallel over `num_gpus`: weights, KV cache, activations and allocator slack
      split evenly; each GPU keeps its own CUDA context.
    * train: PyTorch FSDP full sharding over `num_gpus` (each GPU its own micro-batch of
      `batch_size`), computed by the distributed-training model (vramcalc.core.distributed): sharded
      fp32 states, gathered 16-bit units, the reduce-scatter buffer.
    """
    if task == "train" and (num_gpus > 1 or any(workload.get(k) is not None for k in _SHARDING)):
        single_gpu_estimate(spec, task, {**workload, "zero": None, "fsdp": None})  # checks keys
        sharding = {k: workload[k] for k in _SHARDING if workload.get(k) is not None}
        est = estimate_training(
            spec, **{**workload, **(sharding or {"fsdp": "full"})}, num_gpus=num_gpus
        )
        how = (
            f"ZeRO-{sharding['zero']}"
            if "zero" in sharding
            else f"FSDP {sharding.get('fsdp', 'full')}"
        )
        return Placement(
            num_gpus=num_gpus,
            parallelism=f"{how} over {num_gpus} GPU{'s' if num_gpus > 1 else ''}",
            per_gpu_bytes=job_peak_bytes(est),
            components=est.components,
        )
    if task == "infer" and spec.num_attention_heads % num_gpus:  # as cost.estimate_inference_cost
        raise VramcalcError(
            f"tensor parallel over {num_gpus} GPUs needs the {spec.num_attention_heads} attention "
            f"heads of {spec.name} to divide evenly; use a divisor of {spec.num_attention_heads}"
        )
    est = single_gpu_estimate(spec, task, workload)
    if task == "train":
        return Placement(
            num_gpus=1,
            parallelism="single GPU",
            per_gpu_bytes=job_peak_bytes(est),
            components=est.components,
        )
    comps = split_over_tp(est.components, num_gpus)  # as `cost infer` counts its memory
    return Placement(
        num_gpus=num_gpus,
        parallelism=f"TP={num_gpus}",
        per_gpu_bytes=sum(c.bytes for c in comps),
        components=comps,
    )
