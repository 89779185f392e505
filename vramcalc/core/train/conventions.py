"""The training-stack conventions (vramcalc.spec.conventions.Conventions) as memory terms.

Each function names the mechanism it models and its source. DEFAULT_CONVENTIONS (transformers +
PEFT) reproduce the estimator's figures exactly; every other value changes only the terms below.
Not modelled (assumption lines, bytes unchanged): ``compile`` and ``packing`` (see notes()).

Activation offloading (torchtune OffloadActivations, torchtune/training/_activation_offload.py;
Unsloth's offloaded gradient checkpointing): saved tensors go to host memory through saved-tensor
hooks as the forward leaves each layer and come back before its backward, on a side stream. The
GPU keeps the layers in flight: the one computing and the one in transfer (2 layers' worth per
micro-batch in flight); the rest is on the host (Estimate.host_activation_bytes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vramcalc.core import parallel as par
from vramcalc.core.train.job import StageJob
from vramcalc.core.train.layouts import Layout
from vramcalc.core.train.saved import layer_parts
from vramcalc.core.train.states import States
from vramcalc.core.train.terms import Finetune, Term, logits_term, n
from vramcalc.errors import VramcalcError
from vramcalc.spec.conventions import DEFAULT_CONVENTIONS, Conventions
from vramcalc.spec.model import ModelSpec


def _per_token(rep: float, split: float, rd: float, sd: float) -> tuple[float, str]:
    value = rep / rd + split / sd
    if rd == 1 and sd == 1:
        return value, n(rep + split)
    return value, f"({n(rep)} ÷ {rd:g} + {n(split)} ÷ {sd:g})"


@dataclass(frozen=True, slots=True)
class Shape:
    """The batch-independent part of a stage's activations (cached per job shape)."""

    dense_pt: float  # saved bytes per token of one dense layer on this GPU
    moe_pt: float
    dense_txt: str
    moe_txt: str
    layers: int
    dense_layers: int
    moe_layers: int
    head_pt: float  # head per token on this GPU (0 off the last stage)
    head_txt: str  # "" or " × head-per-token [÷ rd]"
    input_pt: float  # one layer input per token on this GPU
    input_txt: str


def activation_shape(
    spec: ModelSpec, plan: par.ParallelPlan, stage: int, p_name: str, act_name: str, seq: int,
    attention: str, ft: Finetune, conv: Conventions,
) -> Shape:  # fmt: skip
    parts = layer_parts(spec, p_name, act_name, seq, attention, ft, plan.megatron_layers, conv)
    rd, sd = par.activation_divisor(plan)
    dense_pt, dense_txt = _per_token(*parts.dense, rd, sd)
    moe_pt, moe_txt = _per_token(*parts.moe, rd, sd)
    layers = spec.num_layers // plan.pp
    moe_s = round(spec.moe_layers * layers / spec.num_layers)
    div = f" ÷ {rd:g}" if rd > 1 else ""
    last = stage == plan.pp - 1
    return Shape(
        dense_pt, moe_pt, dense_txt, moe_txt, layers, layers - moe_s, moe_s,
        parts.head / rd if last else 0.0, f" × {n(parts.head)}{div}" if last else "",
        parts.input_bytes / rd, f" × {n(parts.input_bytes)}{div}",
    )  # fmt: skip


@dataclass(slots=True)  # built per estimate: a plain slots class is the cheapest
class Activations:
    """Saved activations at the three backward moments (raw, unrounded: the peak is chosen on
    them); `term(phase)` writes the chosen one's formula. `host_bytes`: moved to host memory."""

    start: float
    recompute: float
    end: float
    shape: Shape
    tokens: int
    micro_batches: int
    checkpointing: bool
    moe_end: bool  # the end moment's layer is an MoE layer
    offload_per_layer: float = -1.0  # >= 0: activation offload, the GPU keeps 2 layers in flight
    host_bytes: int = 0

    def term(self, phase: str) -> Term:
        sh, tok, m = self.shape, n(self.tokens), self.micro_batches
        kind = "MoE layer" if self.moe_end else "layer"
        ws = f"{tok} tok × {sh.moe_txt if self.moe_end else sh.dense_txt}"
        ws = ws if (sh.dense_layers or sh.moe_layers) else "0"
        if phase.endswith("(first layer)"):
            return Term(int(self.end), f"one {kind} {ws}")
        inp = f"{tok} tok{sh.input_txt}"
        if self.offload_per_layer >= 0:
            kept = f"2 layers in flight × {m} micro-batch × {n(self.offload_per_layer)} [activation offload; the rest on the host]"
        elif self.checkpointing:
            kept = f"{m} micro-batch × {sh.layers} layer inputs × {inp}"
        else:
            kept = f"{m} micro-batch × ({sh.dense_layers} layers × {tok} tok × {sh.dense_txt}"
            kept += (
                f" + {sh.moe_layers} MoE layers × {tok} tok × {sh.moe_txt})"
                if sh.moe_layers
                else ")"
            )
        text = kept + (f" + head {tok} tok{sh.head_txt}" if sh.head_txt else "")
        if phase.endswith("(loss)"):
            return Term(int(self.start), text)
        if self.checkpointing:
            text += f" + max(recomputed {kind} {ws} − {inp}, 0)"
        return Term(int(self.start + self.recompute), text)


def activation_terms(job: StageJob, stage: int, sh: Shape) -> Activations:
    """Activations of one GPU of `stage` (its batch-independent Shape from activation_shape): every
    saved tensor of its layers (or, with full checkpointing, each layer's input and one recomputed
    layer), for the micro-batches in flight."""
    plan = job.plan
    tokens = job.batch_size * job.seq_len // plan.cp
    dense_layer, moe_layer = tokens * sh.dense_pt, tokens * sh.moe_pt
    moe_end = bool(sh.moe_layers and (not sh.dense_layers or moe_layer >= dense_layer))
    layer_ws = moe_layer if moe_end else dense_layer
    if not sh.dense_layers and not sh.moe_layers:
        layer_ws = 0.0
    m = par.in_flight_micro_batches(plan, stage, job.grad_accum) if plan.pp > 1 else 1
    layer_input = tokens * sh.input_pt
    if job.checkpointing:  # each layer keeps only its input; backward recomputes one at a time
        kept = m * sh.layers * layer_input
        recompute = max(layer_ws - layer_input, 0.0)
    else:
        kept = m * (sh.dense_layers * dense_layer + sh.moe_layers * moe_layer)
        recompute = 0.0
    host, per_layer = 0, -1.0
    if job.conv.activation_offload:
        per_layer = layer_input if job.checkpointing else layer_ws
        gpu = min(kept, 2 * m * per_layer)
        host, kept = int(kept - gpu), gpu
        per_layer = per_layer if host else -1.0
    start = kept + tokens * sh.head_pt
    return Activations(
        start, recompute, layer_ws, sh, tokens, m, job.checkpointing, moe_end, per_layer, host
    )


def loss_logits(conv: Conventions, spec: ModelSpec, tokens: int, act_bytes: int, tp: int) -> Term:
    """The logits buffers at the start of backward under the stack's loss implementation.

    * standard (transformers): the whole tokens × vocab fp32 log-softmax and two gradients (12 B).
    * chunked (torchtune CEWithChunkedOutputLoss, loss_chunks slices of the sequence): each chunk
      is upcast and its cross-entropy taken on its own, so only one chunk's fp32 gradient buffers
      (8 B per value) are alive at once; every chunk's saved fp32 log-softmax (4 B) stays.
      With torch.compile (`compile`; torchtune's training.compile_loss compiles only
      compute_cross_entropy, the upcast + cross-entropy of one chunk) the fused graph saves its
      bf16 input chunk and two fp32 per-row statistics instead of the fp32 log-softmax (traced:
      tests/test_training_conventions.py), and its backward returns the chunk's bf16 gradient:
      every chunk's bf16 logits (2 B per value, alive until their backward, although the recipe
      drops its own reference) + one chunk's bf16 gradient (2 B) + 8 B per token.
    * fused (Liger FusedLinearCrossEntropy, Unsloth, cut-cross-entropy): lm_head and the loss run
      over chunks of rows and the gradient is computed in the forward, so the logits never exist
      whole: one chunk of rows, Liger's ceil(tokens / ceil(vocab / hidden)) rounded up to a power of
      two (liger_kernel/ops/fused_linear_cross_entropy.py), at the standard 12 B per value.
      Not counted: in a full fine-tune Liger also accumulates lm_head's weight gradient during the
      forward, which the estimate counts from the last layer's moment on, as without fusion.
    """
    if conv.loss == "standard":
        return logits_term(spec, tokens, act_bytes, tp)
    V = spec.output_width
    if conv.loss == "chunked" and conv.compile:
        return _compiled_chunked(V, tokens, min(conv.loss_chunks, tokens), tp)
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


def _compiled_chunked(V: int, tokens: int, chunks: int, tp: int) -> Term:
    """torchtune's chunked cross-entropy with its per-chunk loss compiled (loss_logits)."""
    per_chunk = math.ceil(tokens / chunks)
    total = tokens * 2 * V + per_chunk * 2 * V + tokens * 8
    text = (
        f"{n(tokens)} tok × 2 B × {n(V)} outputs [bf16 logit chunks] + {n(per_chunk)} tok "
        f"[one of {chunks} chunks] × 2 B × {n(V)} outputs [its bf16 gradient] + {n(tokens)} tok "
        "× 8 B [fp32 row max and log-sum-exp]"
    )
    t = Term(total, text) if tp == 1 else Term(math.ceil(total / tp), f"({text}) ÷ {tp}")
    return t.noted("compiled chunked cross-entropy: bf16 logit chunks saved, one chunk's gradient")


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
    out: list[str] = []
    if conv is DEFAULT_CONVENTIONS or conv == DEFAULT_CONVENTIONS:
        return out
    if conv.compile:
        out.append(
            "torch.compile: not modelled in the layers (its fusions change which intermediates "
            "autograd saves per graph; no size we can name), bytes as without it"
            + (
                "; the compiled chunked loss is (bf16 logit chunks saved)"
                if conv.loss == "chunked"
                else ""
            )
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
            "spillable_bytes says how much could spill (GPU floor: total − spillable)"
        )
    active = {
        "loss": f"{conv.loss} cross-entropy"
        + (f" ({conv.loss_chunks} chunks)" if conv.loss == "chunked" else "")
        if conv.loss != "standard"
        else "",
        "activation_offload": "activations offloaded to the host (2 layers in flight on the GPU)"
        if conv.activation_offload
        else "",
        "optimizer_in_backward": "optimizer stepped in backward (one gradient at a time)"
        if conv.optimizer_in_backward
        else "",
        "fused_qkv_adapter": "one LoRA adapter over fused q/k/v (LitGPT)"
        if conv.fused_qkv_adapter
        else "",
        "quantized_lm_head": "QLoRA quantizes lm_head too"
        if conv.quantized_lm_head and method == "qlora"
        else "",
        "kbit_prep_upcasts_to_fp32": "QLoRA base's non-quantized tensors kept 16-bit (no prepare_model_for_kbit_training)"
        if not conv.kbit_prep_upcasts_to_fp32 and method == "qlora"
        else "",
        "full_state_dict_load": "FSDP loads a full state dict (the whole model gathered per rank)"
        if conv.full_state_dict_load
        else "",
        "bnb_keeps_4bit_inputs": "bitsandbytes < 0.43.2 keeps every 4-bit layer's input (fixed in PR #1270)"
        if conv.bnb_keeps_4bit_inputs and method == "qlora"
        else "",
    }
    stack = "; ".join(v for v in active.values() if v)
    if stack:
        out.insert(0, f"training stack ({conv.framework}): {stack}")
    return out
