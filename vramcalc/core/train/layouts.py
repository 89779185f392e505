"""One memory layout per framework: bytes per trainable parameter, and what it allocates besides.

* ``torch`` (one GPU, DistributedDataParallel): autocast keeps fp32 weights as the masters, fp32
  gradients and state, plus the 16-bit copies autocast caches; DDP adds its gradient buckets, one
  more gradient-sized buffer (``gradient_as_bucket_view=False``, the default;
  torch.nn.parallel.DistributedDataParallel docs).
* ``deepspeed`` (--zero): the ZeRO paper's mixed-precision Adam layout, 2 + 2 + 12 = 16 bytes
  (16-bit weights and grads, fp32 master + m + v; Rajbhandari et al. 2019 §3.1), partitioned per
  stage; plus the buffers DeepSpeed really allocates (the 5e8-element reduce bucket, allocated
  whole at every stage; under ZeRO-3 the gathered layer and the 5e7-element prefetch bucket; at the
  step the fp32 copy of the gradient partition). The engine casts the whole module, LoRA adapters
  included, to its 16-bit dtype (deepspeed/runtime/engine.py ``_configure_distributed_model``:
  ``self.module.bfloat16()``) and keeps the fp32 masters in the optimizer.
* ``fsdp`` (--fsdp, MixedPrecision(param_dtype=bf16)): sharded fp32 parameters (what the optimizer
  updates: no separate master), fp32 sharded gradients and state; the 16-bit parameters of the
  running unit and of the prefetched one are gathered, and the unit's unsharded gradient waits for
  its reduce-scatter. SHARD_GRAD_OP keeps all 16-bit parameters gathered between forward and
  backward; NO_SHARD keeps everything replicated.
* ``megatron`` (tp/pp/cp/ep without --fsdp, with --zero 0/1 or none): bf16 parameters, fp32 main
  gradients, fp32 master + Adam state: 18 bytes (fp16: 20); --zero 1 is Megatron's distributed
  optimizer (Megatron-LM distributed-optimizer docs).

LoRA outside DeepSpeed: adapters in the stack's adapter dtype (PEFT: fp32, autocast_adapter_dtype).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vramcalc.core import parallel as par
from vramcalc.core.results import ComponentName
from vramcalc.core.train.terms import ZERO, Term, n
from vramcalc.spec.conventions import Conventions
from vramcalc.spec.precision import DTYPE_BYTES, Precision


@dataclass(frozen=True, slots=True)
class Layout:
    """Bytes per trainable parameter: weights, gradients, separate fp32 master, optimizer state
    width; whether autocast caches 16-bit weight copies; the dtype the trained weights are kept in."""

    weights: int
    grads: int
    master: int
    state: int
    autocast: bool = False
    dtype: str = ""

    @classmethod
    def as_stored(cls, p: Precision) -> Layout:
        """Every state in the precision's own widths, no separate master (pure fp32/bf16/fp16)."""
        return cls(p.param_bytes, p.grad_bytes, 0, p.optimizer_state_bytes, dtype=p.param_dtype)


@dataclass(frozen=True, slots=True)
class Buffers:
    """What a framework holds besides the model states, for one GPU of one stage."""

    copies_name: ComponentName
    copies: Term  # weight copies alive from the forward to the start of backward
    copies_end: Term | None  # at the end of backward, when different
    comm: Term  # communication buffers
    late_comm: int = 0  # part of comm allocated at the first gradient and freed when backward ends


@dataclass(frozen=True, slots=True)
class BufferInputs:
    """What the buffers depend on (one GPU of one stage)."""

    full: bool
    checkpointing: bool
    unit: int  # parameters of the largest gathered unit (parallel.unit_numel)
    base_bpp: float  # bytes per parameter of a gathered unit
    stage_numel: int  # every parameter of the stage
    trainable_numel: int
    layers: int  # decoder layers of the stage
    grads_all: Term


def adapter_dtype(p: Precision, conv: Conventions) -> str:
    """The dtype LoRA adapters are kept in: conv.adapter_dtype, 'model' being the base's dtype."""
    return p.compute_dtype if conv.adapter_dtype == "model" else conv.adapter_dtype


class Framework:
    """The memory layout of one framework (subclasses below, looked up by FRAMEWORKS[name])."""

    name = "torch"
    # "foreach": torch AdamW's sqrt(exp_avg_sq) buffer; "fp32-grads": ZeRO's fp32 gradient copy
    step_temporaries = "foreach"

    def layout(self, p: Precision, full: bool, conv: Conventions) -> Layout:
        if not full:
            w = DTYPE_BYTES[adapter_dtype(p, conv)]
            return Layout(w, w, 0, w, dtype=adapter_dtype(p, conv))
        return Layout(
            p.param_bytes, p.grad_bytes, 0, p.optimizer_state_bytes, p.autocast, p.param_dtype
        )

    def buffers(
        self,
        plan: par.ParallelPlan,
        lay: Layout,
        b: BufferInputs,
        spec_copies: tuple[Term, Term] | None,
    ) -> Buffers:
        copies, end = spec_copies if (lay.autocast and b.full and spec_copies) else (ZERO, None)
        comm = ZERO
        if plan.dp > 1:
            comm = Term(
                b.grads_all.bytes, f"DDP gradient buckets = gradients = {n(b.grads_all.bytes)}"
            )
        comm = comm.noted("gradient buckets / reduce-scatter input")
        return Buffers(ComponentName.autocast_weight_copies, copies, end, comm)


class DeepSpeed(Framework):
    name = "deepspeed"
    step_temporaries = "fp32-grads"

    def layout(self, p: Precision, full: bool, conv: Conventions) -> Layout:
        if (
            p.mixed
        ):  # 16-bit weights and gradients, fp32 master + state (the engine casts adapters too)
            return Layout(2, 2, 4, 4, dtype=p.compute_dtype)
        return Layout.as_stored(p)

    def buffers(
        self,
        plan: par.ParallelPlan,
        lay: Layout,
        b: BufferInputs,
        spec_copies: tuple[Term, Term] | None,
    ) -> Buffers:
        copies = ZERO
        if plan.zero == 3:
            prefetch = min(par.DS_PREFETCH_BUCKET_ELEMENTS, b.unit)
            copies = Term(
                math.ceil((b.unit + prefetch) * b.base_bpp),
                f"(layer {n(b.unit)} + prefetch {n(prefetch)}) params × {b.base_bpp:g} B",
            )
        # contiguous_gradients (on by default) allocates the whole reduce bucket up front, whatever
        # the model's size: torch.empty(reduce_bucket_size) in stage_1_and_2.py setup_buckets and
        # stage3.py __init__ (measured on DeepSpeed 0.19.8, docs/distributed.md)
        comm = Term(
            par.DS_REDUCE_BUCKET_ELEMENTS * lay.grads,
            f"{n(par.DS_REDUCE_BUCKET_ELEMENTS)} reduce-bucket elements × {lay.grads} B [allocated whole]",
        )
        if plan.zero == 3:
            # a layer larger than the bucket still holds its 16-bit gradients before they are
            # reduce-scattered (not measured: the grid's layers are smaller than the bucket)
            layer_grads = b.unit if b.full else math.ceil(b.trainable_numel / max(b.layers, 1))
            if layer_grads * 2 > comm.bytes:
                comm = Term(
                    layer_grads * 2,
                    f"gradients of one layer {n(layer_grads)} × 2 B [16-bit, larger than the bucket]",
                )
        # ZeRO-1/2 allocate their reduce bucket at the first gradient hook and free it when backward
        # ends (stage_1_and_2.py setup_buckets / _release_ipg_buffers): not alive at the loss or step
        late = comm.bytes if plan.zero in (1, 2) else 0
        comm = comm.noted("gradient buckets / reduce-scatter input")
        return Buffers(
            ComponentName.gathered_parameters, copies.noted(_COPIES_NOTE), None, comm, late
        )


class FSDP(Framework):
    name = "fsdp"

    def layout(self, p: Precision, full: bool, conv: Conventions) -> Layout:
        if not full:
            return super().layout(p, full, conv)
        return Layout.as_stored(p)

    def buffers(
        self,
        plan: par.ParallelPlan,
        lay: Layout,
        b: BufferInputs,
        spec_copies: tuple[Term, Term] | None,
    ) -> Buffers:
        if plan.fsdp in ("full", "hybrid"):
            copies = Term(
                math.ceil(2 * b.unit * b.base_bpp),
                f"2 units [running + prefetched] × {n(b.unit)} params × {b.base_bpp:g} B",
            )
        else:
            copies = Term(
                math.ceil(b.stage_numel * b.base_bpp),
                f"all {n(b.stage_numel)} params kept gathered × {b.base_bpp:g} B",
            )
        comm = ZERO
        if plan.fsdp != "no-shard" and b.full:
            comm = Term(
                math.ceil(b.unit * b.base_bpp),
                f"unsharded gradient of one unit {n(b.unit)} × {b.base_bpp:g} B",
            )
        elif plan.fsdp == "no-shard":
            comm = Term(
                b.grads_all.bytes,
                f"DDP-style gradient buckets = gradients = {n(b.grads_all.bytes)}",
            )
        comm = comm.noted("gradient buckets / reduce-scatter input")
        return Buffers(ComponentName.gathered_parameters, copies.noted(_COPIES_NOTE), None, comm)


class Megatron(Framework):
    name = "megatron"
    step_temporaries = (
        "none"  # Megatron's fused Adam (apex/TE FusedAdam) allocates no state-sized buffer
    )

    def layout(self, p: Precision, full: bool, conv: Conventions) -> Layout:
        if not full:
            return super().layout(p, full, conv)
        # Megatron (distributed-optimizer docs): bf16 params + fp32 main grads + fp32 main params +
        # Adam = 18 B; fp16 params + fp16 grads + fp32 main params and main grads + Adam = 20 B,
        # whose fp32 grads are optimizer-side (sharded by the distributed optimizer: 4 + 16/d)
        if p.name == "fp16-mixed":
            return Layout(2, 2, 8, 4, dtype="fp16")
        if p.mixed:
            return Layout(2, 4, 4, 4, dtype=p.compute_dtype)
        return Layout.as_stored(p)

    def buffers(
        self,
        plan: par.ParallelPlan,
        lay: Layout,
        b: BufferInputs,
        spec_copies: tuple[Term, Term] | None,
    ) -> Buffers:
        return Buffers(ComponentName.autocast_weight_copies, ZERO, None, ZERO)


_COPIES_NOTE = "16-bit weights used by forward/backward beside the stored ones"

FRAMEWORKS: dict[str, Framework] = {
    f.name: f for f in (Framework(), DeepSpeed(), FSDP(), Megatron())
}
