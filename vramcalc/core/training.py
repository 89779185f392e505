"""Memory to train a model on one GPU: the peak over backward and the optimizer step.

Model states follow PyTorch as users run it (transformers Trainer / a plain loop):
* ``fp32``: fp32 weights, gradients and optimizer state.
* ``bf16-mixed`` / ``fp16-mixed`` (torch.autocast): fp32 weights (they are the master weights), fp32
  gradients, fp32 optimizer state, plus the 16-bit copies of the matmul weights that autocast caches
  for the forward and keeps for backward (2 bytes per linear parameter) — 18 B/param with AdamW, the
  Megatron docs' "bf16 params + fp32 grads" figure, not the ZeRO paper's 16Ψ (DeepSpeed keeps 16-bit
  weights and gradients beside fp32 masters; the distributed estimates follow that layout).
* ``bf16`` / ``fp16``: everything in 16-bit, optimizer state included (torch keeps state in the
  parameter's dtype).

Gradients are freed between steps (``zero_grad(set_to_none=True)``), so with one micro-batch per
step the backward pass trades activations for gradients layer by layer and the peak is the larger
of its two ends; with gradient accumulation the gradients stay through the next forward.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from vramcalc.core import activations as act
from vramcalc.core.inference import runtime_overhead_components
from vramcalc.core.optimizers import Optimizer, state_bytes, step_temporary_bytes
from vramcalc.core.results import Component, Estimate, make_estimate
from vramcalc.core.workloads import (
    Common,
    context_warnings,
    resolve_gpu,
    resolve_seq_len,
    resolve_source,
    validate,
)
from vramcalc.errors import checked_keywords
from vramcalc.spec.model import ModelSpec
from vramcalc.spec.params import (
    EMBEDDING,
    LINEAR,
    LM_HEAD,
    ROUTER,
    active_param_count,
    param_count,
    tensor_groups,
)

if TYPE_CHECKING:  # pragma: no cover
    from vramcalc.sources import ModelSource

Precision = Literal["fp32", "bf16-mixed", "fp16-mixed", "bf16", "fp16"]


class TrainingRequest(Common):
    precision: Precision = "bf16-mixed"
    optimizer: Optimizer = Optimizer.adamw
    grad_accum: int = Field(1, gt=0, le=1_000_000, description="micro-batches per optimizer step")
    grad_checkpointing: Literal["none", "full"] = "none"


def param_width(precision: str) -> int:
    return 4 if precision in ("fp32", "bf16-mixed", "fp16-mixed") else 2


@lru_cache(maxsize=512)
def autocast_copy_bytes(spec: ModelSpec) -> int:
    """16-bit copies autocast caches of the weights that matmuls read (linear layers, routers and the
    output projection, which is the embedding matrix when tied); embeddings and norms run uncast."""
    total = 0
    for g in tensor_groups(spec):
        if g.kind in (LINEAR, LM_HEAD, ROUTER) or (
            g.kind == EMBEDDING and spec.tie_word_embeddings
        ):
            total += 2 * g.numel
    return total


@lru_cache(maxsize=512)
def optimizer_bytes(spec: ModelSpec, optimizer: str, state_width: int) -> tuple[int, int]:
    """state_bytes and step_temporary_bytes of all of `spec`'s tensors, cached per spec (hashing
    the spec is cheaper than hashing its tensor groups, which the optimizer caches would do)."""
    groups = tensor_groups(spec)
    return state_bytes(groups, optimizer, state_width), step_temporary_bytes(
        groups, optimizer, state_width
    )


def autocast_copies(spec: ModelSpec, autocast: bool, checkpointing: bool) -> tuple[int, int]:
    """Autocast weight copies alive (during the forward and start of backward, at its end).

    Under full checkpointing the layers' copies are not saved: autocast's cache is cleared when the
    forward leaves autocast, so only the output projection's copy (saved by the lm_head matmul
    outside the checkpointed layers) reaches backward; each recomputed layer recasts its own
    weights. By the end of backward the copies saved by the other layers have been released with
    their graph nodes: one layer's remain (traced: tiny-llama, tiny-mistral, tiny-gpt2).
    """
    if not autocast:
        return 0, 0
    every = autocast_copy_bytes(spec)
    head = 2 * spec.head_numel
    one_layer = max(every - head, 0) // spec.num_layers
    return (head if checkpointing else every), one_layer


@dataclass(frozen=True, slots=True)
class Moment:
    """What is alive at one moment of the backward pass (bytes), besides the static model states."""

    phase: str
    copies: float
    activations: float
    logits: float
    gradients: float
    temporaries: float
    # the largest activations + logits of any backward moment, not only this one: the caching
    # allocator keeps the blocks it reserved there (CUDACachingAllocator releases cached blocks only
    # on empty_cache() or an allocation failure), so the allocator slack is sized on it
    working_set: float = 0.0

    @property
    def dynamic(self) -> float:
        return self.copies + self.activations + self.logits + self.gradients + self.temporaries


@lru_cache(maxsize=1024, typed=True)  # pure in its arguments; returns a frozen Moment
def backward_peak_moment(
    *,
    copies: float,
    copies_end: float,
    acts_start: float,
    recompute: float,
    layer_ws: float,
    logits: float,
    grads_persist: float,
    grads_head: float,
    grads_all: float,
    tied_grad: float,
    late: float = 0.0,
) -> Moment:
    """The largest of three candidate moments of the backward pass.

    * start (the loss): every saved activation and the logits buffers;
    * the last layer: the logits are gone, lm_head's gradient has arrived, the top layer is
      recomputed when checkpointing (its input is the checkpointed tensor: not counted twice);
    * the end (first layer): all gradients and one layer's activations; with tied embeddings the
      embedding's dense V×h gradient is alive beside the lm_head's before AccumulateGrad adds them
      (traced: gemma-2-9b and tiny-qwen2, sgd, short sequences).

    With gradient accumulation the gradients of earlier micro-batches are alive throughout.
    `late`: bytes allocated at the first gradient and freed when backward ends (DeepSpeed ZeRO-1/2's
    reduce bucket), alive at the last two moments only; the caller adds them to the chosen one.
    """
    moments = (
        Moment("backward start (loss)", copies, acts_start, logits, grads_persist, 0),
        Moment(
            "backward (last layer)",
            copies,
            acts_start + recompute,
            0,
            grads_persist or grads_head,
            0,
        ),
        Moment("backward end (first layer)", copies_end, layer_ws, 0, grads_all, tied_grad),
    )
    peak = max(moments, key=lambda m: m.dynamic + (late if m is not moments[0] else 0))
    return replace(peak, working_set=max(m.activations + m.logits for m in moments))


def _non_default(plan_args: dict[str, Any]) -> bool:
    """True when a GPU count, sharding or parallel option asks for more than one plain GPU."""
    if any(plan_args[k] is not None for k in ("zero", "fsdp")):
        return True
    if plan_args["offload"] not in (None, "none") or plan_args["sp"]:
        return True
    return any(
        plan_args[k] not in (None, 1)
        for k in ("num_gpus", "nodes", "gpus_per_node", "tp", "pp", "ep", "cp")
    )


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
) -> Estimate:
    """Peak GPU memory of a training step of `model` (micro-batch `batch_size`), per GPU.

    The defaults describe a full fine-tune on one GPU. ``method`` (lora/qlora with ``lora_*`` and
    ``quant``), sharding (``zero``/``fsdp``/``offload``), GPU counts and parallel degrees (``tp``,
    ``pp``, ``sp``, ``ep``, ``cp``) hand over to :mod:`vramcalc.core.distributed`; so does ``explain``
    (same figures, with each component's formula filled in).
    """
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
    plan_args: dict[str, Any] = dict(num_gpus=num_gpus, nodes=nodes, gpus_per_node=gpus_per_node)
    plan_args |= dict(zero=zero, fsdp=fsdp, offload=offload, tp=tp, pp=pp, sp=sp, ep=ep, cp=cp)
    if explain or method != "full" or quant is not None or _non_default(plan_args):
        from vramcalc.core.distributed import estimate_job

        lora_args: dict[str, Any] = dict(lora_rank=lora_rank, lora_alpha=lora_alpha)
        lora_args |= dict(lora_targets=lora_targets, lora_dropout=lora_dropout, quant=quant)
        est = estimate_job(spec, req, method=method, **lora_args, **plan_args)
        return est.model_copy(update={"assumptions": [*est.assumptions, *source.notes]})
    seq = resolve_seq_len(spec, req.seq_len)
    fit = resolve_gpu(req.gpu, req.gpu_mem_gib)
    n_params = param_count(spec)
    pw = param_width(req.precision)
    w = act.widths(req.precision)
    tokens = req.batch_size * seq
    opt = req.optimizer.value

    weights = n_params * pw
    ckpt = req.grad_checkpointing == "full"
    autocast, autocast_end = autocast_copies(spec, w.autocast, ckpt)
    grads_all = n_params * pw
    # lm_head (or tied embedding, or scalar head) gradient first
    grads_head = spec.head_numel * pw
    opt_state, opt_temp = optimizer_bytes(spec, opt, pw)

    dense_layer = tokens * act.layer_bytes_per_token(
        spec, req.precision, seq, req.attention, moe=False
    )
    moe_layer = (
        tokens * act.layer_bytes_per_token(spec, req.precision, seq, req.attention, moe=True)
        if spec.is_moe
        else 0
    )
    layer_ws = max(dense_layer if spec.dense_layers else 0, moe_layer)
    head = tokens * act.head_saved_bytes_per_token(spec, req.precision)
    logits = tokens * act.training_logits_peak_bytes_per_token(spec, w.a)
    layer_input = tokens * spec.hidden_size * w.r
    if ckpt:  # each layer keeps only its input; backward recomputes one layer at a time
        acts_start = spec.num_layers * layer_input + head
    else:
        acts_start = spec.dense_layers * dense_layer + spec.moe_layers * moe_layer + head
    grads_persist = grads_all if req.grad_accum > 1 else 0

    peak = backward_peak_moment(
        copies=autocast,
        copies_end=autocast_end,
        acts_start=acts_start,
        recompute=max(layer_ws - layer_input, 0) if ckpt else 0,
        layer_ws=layer_ws,
        logits=logits,
        grads_persist=grads_persist,
        grads_head=grads_head,
        grads_all=grads_all,
        tied_grad=spec.head_numel * pw if spec.tie_word_embeddings else 0,
    )
    phase = peak.phase
    autocast, acts, logit_bytes = int(peak.copies), int(peak.activations), int(peak.logits)
    grads, temp = int(peak.gradients), int(peak.temporaries)
    backward_peak = weights + autocast + opt_state + acts + logit_bytes + grads + temp
    step_peak = weights + grads_all + opt_state + opt_temp

    rt_dynamic = max(int(peak.working_set), grads_all)
    if step_peak > backward_peak:
        phase, autocast, acts, logit_bytes, grads, temp = (
            "optimizer step",
            0,
            0,
            0,
            grads_all,
            opt_temp,
        )
    components = [
        Component(
            name="weights", bytes=weights, note=f"{n_params:,} params × {pw} B ({req.precision})"
        ),
        Component(
            name="autocast_weight_copies",
            bytes=autocast,
            note="16-bit copies of matmul weights kept by autocast for backward",
        ),
        Component(
            name="gradients",
            bytes=grads,
            note=f"{pw} B per parameter; freed between steps unless accumulating",
        ),
        Component(
            name="optimizer_state", bytes=opt_state, note=f"{opt}, state in {pw}-byte precision"
        ),
        Component(
            name="optimizer_temporaries" if phase == "optimizer step" else "temporaries",
            bytes=temp,
            note="foreach AdamW's sqrt(exp_avg_sq) buffer during step()"
            if phase == "optimizer step"
            else "the embedding's dense gradient before it is added to the tied lm_head's",
        ),
        Component(
            name="activations",
            bytes=acts,
            note=f"saved for backward: {req.batch_size}×{seq} tokens, {req.attention} attention, checkpointing {req.grad_checkpointing}",
        ),
        Component(
            name="logits_buffer",
            bytes=logit_bytes,
            note="fp32 log-softmax output and two vocab-sized gradients at the loss",
        ),
        *runtime_overhead_components(rt_dynamic),
    ]
    components = [
        c for c in components if c.bytes or c.name in ("weights", "gradients", "activations")
    ]
    inputs = {
        "model": spec.name,
        "precision": req.precision,
        "optimizer": opt,
        "batch_size": req.batch_size,
        "grad_accum": req.grad_accum,
        "seq_len": seq,
        "grad_checkpointing": req.grad_checkpointing,
        "attention": req.attention,
    }
    return make_estimate(
        components,
        fit,
        kind="training",
        model=spec.name,
        assumed_architecture=spec.assumed_architecture,
        params=n_params,
        active_params=active_param_count(spec),
        phase=phase,
        inputs=inputs,
        assumptions=[
            "steady-state step (optimizer state exists); gradients set to None between steps",
            "peak = larger of the backward pass and optimizer.step()",
            *source.notes,
            *act.approximation_notes(spec),
        ],
        warnings=context_warnings(spec, seq),
    )
