"""Memory to train a model: the peak over backward and the optimizer step, per GPU.

One estimator for 1..N GPUs: a single GPU is the default parallel plan, LoRA/QLoRA a choice of
what is trained, a training stack's conventions (vramcalc.spec.conventions) a value it reads. The
terms live in vramcalc.core.train (each returns its bytes with its formula); the job over its
pipeline stages in vramcalc.core.distributed.

Model states follow PyTorch as users run it (transformers Trainer / a plain loop) on one GPU:
* ``fp32``: fp32 weights, gradients and optimizer state.
* ``bf16-mixed`` / ``fp16-mixed`` (torch.autocast): fp32 weights (they are the master weights), fp32
  gradients, fp32 optimizer state, plus the 16-bit copies of the matmul weights that autocast caches
  for the forward and keeps for backward (2 bytes per linear parameter) — 18 B/param with AdamW, the
  Megatron docs' "bf16 params + fp32 grads" figure, not the ZeRO paper's 16Ψ (DeepSpeed keeps 16-bit
  weights and gradients beside fp32 masters: vramcalc.core.train.layouts).
* ``bf16`` / ``fp16``: everything in 16-bit, optimizer state included (torch keeps state in the
  parameter's dtype).

Gradients are freed between steps (``zero_grad(set_to_none=True)``), so with one micro-batch per
step the backward pass trades activations for gradients layer by layer and the peak is the larger
of its two ends; with gradient accumulation the gradients stay through the next forward.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from vramcalc.core import lora
from vramcalc.core import parallel as par
from vramcalc.core.distributed import DEFAULT_PLAN, estimate_job
from vramcalc.core.optimizers import Optimizer
from vramcalc.core.results import Estimate
from vramcalc.core.train import conventions as cv
from vramcalc.core.train.job import StageJob
from vramcalc.core.train.terms import Finetune
from vramcalc.core.workloads import (
    Common,
    resolve_gpu,
    resolve_seq_len,
    resolve_source,
    validate,
)
from vramcalc.errors import VramcalcError, checked_keywords
from vramcalc.spec.conventions import DEFAULT_CONVENTIONS, Conventions
from vramcalc.spec.model import ModelSpec
from vramcalc.spec.precision import PrecisionName, precision
from vramcalc.spec.quant import FORMATS

if TYPE_CHECKING:  # pragma: no cover
    from vramcalc.sources import ModelSource

Precision = PrecisionName  # the --precision names (vramcalc.spec.precision)
METHODS = ("full", "lora", "qlora")
FULL = Finetune()  # a full fine-tune: every parameter trained


class TrainingRequest(Common):
    precision: Precision = "bf16-mixed"
    optimizer: Optimizer = Optimizer.adamw
    grad_accum: int = Field(1, gt=0, le=1_000_000, description="micro-batches per optimizer step")
    grad_checkpointing: Literal["none", "full"] = "none"


def finetune(
    spec: ModelSpec,
    precision_name: str,
    method: str,
    rank: int,
    alpha: float,
    targets: str | list[str] | tuple[str, ...],
    dropout: float,
    quant: str | None,
) -> Finetune:
    """What is trained, validated: everything, or LoRA adapters over a (quantized) frozen base."""
    if method not in METHODS:
        raise VramcalcError(f"--method {method!r}; valid: {', '.join(METHODS)}")
    if method == "full":
        if quant is not None:
            raise VramcalcError(
                "--quant sets the frozen base of --method qlora; a full fine-tune trains 16/32-bit weights"
            )
        return FULL
    if not isinstance(rank, int) or rank < 1:
        raise VramcalcError(f"--lora-rank must be a positive integer (got {rank!r})")
    if not 0.0 <= dropout < 1.0:
        raise VramcalcError(f"--lora-dropout must be in [0, 1) (got {dropout!r})")
    if method == "qlora":
        if precision_name == "fp32":
            raise VramcalcError(
                "--method qlora computes in 16-bit: use --precision bf16-mixed or fp16-mixed"
            )
        base = lora.qlora_format(quant)
    else:
        if quant is not None:
            raise VramcalcError(
                f"--quant {quant} needs --method qlora (LoRA keeps a 16/32-bit base)"
            )
        base = FORMATS[precision(precision_name).compute_dtype]
    chosen = lora.parse_targets(spec, targets)
    return Finetune(method, rank, float(alpha), chosen, float(dropout), base)


@checked_keywords
def estimate_training(
    model: str | ModelSpec | ModelSource,
    *,
    precision: str = "bf16-mixed",
    optimizer: str = "adamw",
    batch_size: int = 1,
    grad_accum: int = 1,
    seq_len: int | None = None,
    grad_checkpointing: str = "none",
    attention: str = "flash",
    gpu: str | None = None,
    gpu_mem_gib: float | None = None,
    method: str = "full",
    lora_rank: int = 8,
    lora_alpha: float = 8.0,
    lora_targets: str | list[str] | tuple[str, ...] = "all-linear",
    lora_dropout: float = 0.0,
    quant: str | None = None,
    num_gpus: int | None = None,
    nodes: int | None = None,
    gpus_per_node: int | None = None,
    zero: int | None = None,
    fsdp: str | None = None,
    offload: str | None = None,
    tp: int = 1,
    pp: int = 1,
    sp: bool = False,
    ep: int = 1,
    cp: int = 1,
    explain: bool = False,
    revision: str | None = None,
    assume_llama: bool = False,
    conventions: Conventions | None = None,
) -> Estimate:
    """Peak GPU memory of a training step of `model` (micro-batch `batch_size`), per GPU.

    The defaults describe a full fine-tune on one GPU. ``method`` (lora/qlora with ``lora_*`` and
    ``quant``), sharding (``zero``/``fsdp``/``offload``), GPU counts and parallel degrees (``tp``,
    ``pp``, ``sp``, ``ep``, ``cp``) describe the job; ``conventions`` the training stack (None:
    transformers + PEFT, DEFAULT_CONVENTIONS). ``explain`` is accepted for compatibility: every
    component always carries its formula.
    """
    del explain  # formulas are always filled in; --explain only chooses what the report prints
    req = validate(
        TrainingRequest,
        precision=precision,
        optimizer=optimizer,
        batch_size=batch_size,
        grad_accum=grad_accum,
        seq_len=seq_len,
        grad_checkpointing=grad_checkpointing,
        attention=attention,
        gpu=gpu,
        gpu_mem_gib=gpu_mem_gib,
    )
    assert isinstance(req, TrainingRequest)
    # the same source as infer: a checkpoint folder or Hub id brings its header's exact tensors
    source = resolve_source(model, revision, assume_llama=assume_llama)
    spec = source.spec
    seq = resolve_seq_len(spec, req.seq_len)
    fit = resolve_gpu(req.gpu, req.gpu_mem_gib)
    conv = DEFAULT_CONVENTIONS if conventions is None else conventions
    if not isinstance(conv, Conventions):
        raise VramcalcError(
            f"conventions must be a vramcalc.spec.conventions.Conventions (got {conv!r})"
        )
    cv.check(conv, req.grad_accum)
    ft = finetune(
        spec, req.precision, method, lora_rank, lora_alpha, lora_targets, lora_dropout, quant
    )
    plan = _plan(spec, seq, num_gpus, nodes, gpus_per_node, zero, fsdp, offload, tp, pp, sp, ep, cp)
    job = StageJob(
        spec, precision_of(req.precision), req.optimizer.value, req.batch_size, seq,
        req.grad_accum, req.grad_checkpointing == "full", req.attention, ft, plan, conv,
    )  # fmt: skip
    est = estimate_job(job, fit)
    if source.notes:
        est = est.model_copy(update={"assumptions": [*est.assumptions, *source.notes]})
    return est


precision_of = precision


def _plan(
    spec: ModelSpec,
    seq: int,
    num_gpus: int | None,
    nodes: int | None,
    gpus_per_node: int | None,
    zero: int | None,
    fsdp: str | None,
    offload: str | None,
    tp: int,
    pp: int,
    sp: bool,
    ep: int,
    cp: int,
) -> par.ParallelPlan:
    """The parallel plan (parallel.make_plan validates it); one plain GPU is the default plan."""
    plain = num_gpus in (None, 1) and nodes in (None, 1) and gpus_per_node in (None, 1)
    plain = plain and zero is None and fsdp is None and offload in (None, "none") and not sp
    if plain and tp == pp == ep == cp == 1:
        return DEFAULT_PLAN
    return par.make_plan(
        spec, seq, num_gpus=num_gpus, nodes=nodes, gpus_per_node=gpus_per_node, tp=tp, pp=pp,
        cp=cp, ep=ep, sp=sp, zero=zero, fsdp=fsdp, offload=offload,
    )  # fmt: skip
