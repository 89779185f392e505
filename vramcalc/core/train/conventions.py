"""The training-stack conventions (vramcalc.spec.conventions.Conventions) as memory terms.

Each function names the mechanism it models and its source. DEFAULT_CONVENTIONS (transformers +
PEFT) reproduce the estimator's figures exactly; every other value changes only the terms below.
Not modelled (assumption lines, bytes unchanged): ``compile`` and ``packing`` (see notes()).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vramcalc.core import parallel as par
from vramcalc.core.train.saved import layer_parts
from vramcalc.core.train.terms import Term, logits_term, n
from vramcalc.errors import VramcalcError
from vramcalc.spec.conventions import DEFAULT_CONVENTIONS, Conventions
from vramcalc.spec.model import ModelSpec

if TYPE_CHECKING:  # pragma: no cover
    from vramcalc.core.train.layouts import Layout
    from vramcalc.core.train.stage import StageJob
    from vramcalc.core.train.states import States


@dataclass(frozen=True, slots=True)
class Activations:
    """Saved activations at the three backward moments, with the raw (unrounded) values the peak
    is chosen on; `host_bytes`: moved to host memory by activation offloading."""

    start: Term
    last: Term
    end: Term
    start_raw: float
    recompute: float
    end_raw: float
    host_bytes: int = 0


def _per_token(rep: float, split: float, rd: float, sd: float) -> tuple[float, str]:
    value = rep / rd + split / sd
    if rd == 1 and sd == 1:
        return value, n(rep + split)
    return value, f"({n(rep)} ÷ {rd:g} + {n(split)} ÷ {sd:g})"


def activation_terms(job: StageJob, stage: int, act_name: str) -> Activations:
    """Activations of one GPU of `stage`: every saved tensor of its layers (or, with full
    checkpointing, each layer's input and one recomputed layer), for the micro-batches in flight."""
    spec, plan = job.spec, job.plan
    parts = layer_parts(
        spec, job.precision.name, act_name, job.seq_len, job.attention, job.ft,
        plan.megatron_layers, job.conv,
    )  # fmt: skip
    tokens = job.batch_size * job.seq_len // plan.cp
    rd, sd = par.activation_divisor(plan)
    dense_pt, dense_txt = _per_token(*parts.dense, rd, sd)
    moe_pt, moe_txt = _per_token(*parts.moe, rd, sd)
    layers = spec.num_layers // plan.pp
    moe_s = round(spec.moe_layers * layers / spec.num_layers)
    dense_s = layers - moe_s
    dense_layer, moe_layer = tokens * dense_pt, tokens * moe_pt
    if moe_s and (not dense_s or moe_layer >= dense_layer):
        layer_ws, ws_txt = moe_layer, f"one MoE layer {n(tokens)} tok × {moe_txt}"
    else:
        layer_ws, ws_txt = dense_layer, f"one layer {n(tokens)} tok × {dense_txt}"
    if not dense_s and not moe_s:
        layer_ws, ws_txt = 0.0, "0"
    last = stage == plan.pp - 1
    head = tokens * parts.head / rd if last else 0.0
    head_txt = f" + head {n(tokens)} tok × {n(parts.head)}" + (f" ÷ {rd:g}" if rd > 1 else "")
    head_txt = head_txt if last else ""
    m = par.in_flight_micro_batches(plan, stage, job.grad_accum)
    layer_input = tokens * parts.input_bytes / rd
    input_txt = f"{n(tokens)} tok × {n(parts.input_bytes)}" + (f" ÷ {rd:g}" if rd > 1 else "")
    if job.checkpointing:  # each layer keeps only its input; backward recomputes one at a time
        kept, kept_txt = (
            m * layers * layer_input,
            f"{m} micro-batch × {layers} layer inputs × {input_txt}",
        )
        recompute = max(layer_ws - layer_input, 0.0)
        rec_txt = f" + max({ws_txt.replace('one ', 'recomputed ', 1)} − {input_txt}, 0)"
    else:
        kept = m * (dense_s * dense_layer + moe_s * moe_layer)
        kept_txt = f"{m} micro-batch × ({dense_s} layers × {n(tokens)} tok × {dense_txt}"
        kept_txt += f" + {moe_s} MoE layers × {n(tokens)} tok × {moe_txt})" if moe_s else ")"
        recompute, rec_txt = 0.0, ""
    host = 0
    if job.conv.activation_offload:
        kept, kept_txt, host = _offload(
            kept, kept_txt, layer_input if job.checkpointing else layer_ws, m
        )
    start = kept + head
    start_txt = kept_txt + head_txt
    return Activations(
        Term(int(start), start_txt),
        Term(int(start + recompute), start_txt + rec_txt),
        Term(int(layer_ws), ws_txt),
        start,
        recompute,
        layer_ws,
        host,
    )


def _offload(kept: float, text: str, per_layer: float, m: int) -> tuple[float, str, int]:
    """Activation offloading (torchtune OffloadActivations, torchtune/training/_activation_offload.py;
    Unsloth's offloaded gradient checkpointing): saved tensors go to host memory through
    saved-tensor hooks as the forward leaves each layer and come back before its backward, on a
    side stream. The GPU keeps the layers in flight: the one computing and the one in transfer
    (2 layers' worth per micro-batch in flight); the rest is on the host."""
    gpu = min(kept, 2 * m * per_layer)
    if gpu >= kept:
        return kept, text, 0
    formula = f"2 layers in flight × {m} micro-batch × {n(per_layer)} [activation offload; the rest on the host]"
    return gpu, formula, int(kept - gpu)


def loss_logits(conv: Conventions, spec: ModelSpec, tokens: int, act_bytes: int, tp: int) -> Term:
    """The logits buffers at the start of backward under the stack's loss implementation.

    * standard (transformers): the whole tokens × vocab fp32 log-softmax and two gradients (12 B).
    * chunked (torchtune CEWithChunkedOutputLoss, loss_chunks slices of the sequence): each chunk
      is upcast and its cross-entropy taken on its own, so only one chunk's fp32 gradient buffers
      (8 B per value) are alive at once; every chunk's saved fp32 log-softmax (4 B) stays.
    * fused (Liger FusedLinearCrossEntropy, Unsloth, cut-cross-entropy): lm_head and the loss run
      over chunks of rows and the gradient is computed in the forward, so the logits never exist
      whole: one chunk of rows, Liger's ceil(tokens / ceil(vocab / hidden)) rounded up to a power of
      two (liger_kernel/ops/fused_linear_cross_entropy.py), at the standard 12 B per value.
    """
    if conv.loss == "standard":
        return logits_term(spec, tokens, act_bytes, tp)
    V = spec.output_width
    if conv.loss == "chunked":
        chunks = min(conv.loss_chunks, tokens)
        saved = tokens * 4 * V
        grads = math.ceil(tokens / chunks) * 8 * V
        text = (
            f"{n(tokens)} tok × 4 B × {n(V)} outputs + {n(math.ceil(tokens / chunks))} tok "
            f"[one of {chunks} chunks] × 8 B × {n(V)} outputs"
        )
        t = (
            Term(saved + grads, text)
            if tp == 1
            else Term(math.ceil((saved + grads) / tp), f"({text}) ÷ {tp}")
        )
        return t.noted("chunked cross-entropy: saved fp32 log-softmax, one chunk's gradients")
    rows = 1 << max(math.ceil(tokens / math.ceil(V / spec.hidden_size)) - 1, 0).bit_length()
    rows = min(rows, tokens)
    t = logits_term(spec, rows, act_bytes, tp)
    return t.noted(f"fused linear + cross-entropy: one chunk of {rows:,} rows at a time")


def optimizer_in_backward(conv: Conventions, grads_all: Term, st: States, lay: Layout) -> Term:
    """torchtune's optimizer_in_bwd (torch.distributed.optim _apply_optimizer_in_backward): each
    parameter is stepped by a hook as soon as its gradient is ready and the gradient freed, so no
    full gradient buffer exists: the largest trainable tensor's gradient at a time."""
    if not conv.optimizer_in_backward:
        return grads_all
    largest = st.largest_trainable
    return Term(
        largest * lay.grads,
        f"largest trainable tensor {n(largest)} × {lay.grads} B [optimizer in backward]",
        "one parameter's gradient at a time (stepped and freed in backward)",
    )


def check(conv: Conventions, grad_accum: int) -> None:
    """Combinations no stack runs: refused, never guessed."""
    if conv.optimizer_in_backward and grad_accum > 1:
        raise VramcalcError(
            "optimizer in backward steps each parameter during backward, so gradients cannot be "
            f"accumulated: --grad-accum {grad_accum} needs 1 (torchtune refuses it too)"
        )


def notes(conv: Conventions, method: str) -> list[str]:
    """Assumption lines for the conventions that change no bytes, or that need saying."""
    out = []
    if conv == DEFAULT_CONVENTIONS:
        return out
    if conv.compile:
        out.append(
            "torch.compile: not modelled (its fusions change which intermediates autograd saves "
            "per graph; no size we can name), bytes as without it"
        )
    if conv.packing:
        out.append(
            "packing: not modelled as bytes; a packed batch is batch_size × seq_len real tokens, "
            "which is what the estimate already counts"
        )
    if conv.paged_optimizer:
        out.append(
            "paged optimizer (bitsandbytes paged_adamw, QLoRA §3): its state lives in unified "
            "memory and can page to the host under pressure; the total counts it on the GPU, "
            "paged_optimizer_bytes says how much could spill"
        )
    return out
