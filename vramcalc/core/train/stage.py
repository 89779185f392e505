"""One GPU of one pipeline stage at the peak of its training step.

The peak is the largest of three moments of the backward pass (its start at the loss, the last
layer, its end at the first layer) and the optimizer step (moments); each term is a function that
returns its bytes with its formula (terms, states, layouts, saved), so --explain, the notes and the
numbers come from one expression.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from vramcalc.core import activations as act
from vramcalc.core import parallel as par
from vramcalc.core.lora import TARGETS
from vramcalc.core.results import Component, ComponentName
from vramcalc.core.train import conventions as cv
from vramcalc.core.train.layouts import FRAMEWORKS, BufferInputs, Buffers, Layout
from vramcalc.core.train.moments import backward_peak_moment
from vramcalc.core.train.saved import activation_precision
from vramcalc.core.train.states import States, model_states
from vramcalc.core.train.terms import (
    ZERO,
    Finetune,
    Term,
    autocast_copies,
    ceil_div,
    dequant_term,
    n,
    runtime_terms,
)
from vramcalc.spec.conventions import Conventions
from vramcalc.spec.model import ModelSpec
from vramcalc.spec.precision import Precision

C = ComponentName


@dataclass(frozen=True, slots=True)
class StageJob:
    """What every stage of a job shares."""

    spec: ModelSpec
    precision: Precision
    optimizer: str
    batch_size: int
    seq_len: int
    grad_accum: int
    checkpointing: bool
    attention: str
    ft: Finetune
    plan: par.ParallelPlan
    conv: Conventions


@dataclass(frozen=True, slots=True)
class StageResult:
    stage: int
    components: list[Component]
    phase: str
    total: int
    cpu_bytes: int
    host_activation_bytes: int = 0  # activation offload: checkpointed activations on the host


def layout_of(job: StageJob) -> Layout:
    return FRAMEWORKS[job.plan.framework].layout(job.precision, job.ft.full, job.conv)


@lru_cache(maxsize=512)
def _head_gradients(
    spec: ModelSpec, plan: par.ParallelPlan, lay: Layout, full: bool, last: bool
) -> tuple[Term, Term]:
    """The output head's gradient (the first to arrive in backward) and, with tied embeddings,
    the embedding's dense V×h gradient alive beside it before AccumulateGrad adds them (traced:
    gemma-2-9b and tiny-qwen2, sgd, short sequences)."""
    text = f"{n(spec.output_width)} × {spec.embed_dim} × {lay.grads} B"
    raw = spec.head_numel * lay.grads
    tp_txt = f" ÷ {plan.tp}" if plan.tp > 1 else ""
    N = plan.shard_degree if plan.shards("gradients") and plan.shard_degree > 1 else 1

    def term(on: bool) -> Term:
        if not on:
            return ZERO
        b = ceil_div(raw, plan.tp)
        f = f"{text}{tp_txt}"
        if N > 1:
            b, f = ceil_div(b, N), f"{f} ÷ {N}"
        return Term(b, f)

    head = term(full and last)
    tied = term(full and spec.tie_word_embeddings and plan.pp == 1)
    note = "the embedding's dense gradient before it is added to the tied lm_head's"
    return head, tied.noted(note)


@dataclass(frozen=True, slots=True)
class Static:
    """The batch-independent terms of one GPU of one stage (cached per job shape)."""

    lay: Layout
    st: States
    act_name: str
    act_bytes: int
    grads_all: Term
    grads_head: Term
    tied: Term
    step_temp: Term
    buf: Buffers
    dequant: Term


@lru_cache(maxsize=512)
def static_terms(
    spec: ModelSpec,
    plan: par.ParallelPlan,
    stage: int,
    ft: Finetune,
    p: Precision,
    optimizer: str,
    checkpointing: bool,
    conv: Conventions,
) -> Static:
    """Model states, gradients, weight copies and buffers of one GPU of `stage`."""
    fw = FRAMEWORKS[plan.framework]
    lay = fw.layout(p, ft.full, conv)
    st = model_states(spec, plan, stage, ft, lay, fw, optimizer, conv)
    last = stage == plan.pp - 1
    act_name = activation_precision(p.name, ft.full, fw.name)
    a = act.widths(act_name).a
    grads_all = st.grads_all
    grads_head, tied = _head_gradients(spec, plan, lay, ft.full, last)
    if grads_all.bytes == 0 and plan.offload != "none":
        grads_head = ZERO  # offloaded: the GPU keeps no gradient partition
    grads_all = cv.optimizer_in_backward(conv, grads_all, st, lay)
    step_temp = st.temp
    if conv.optimizer_in_backward:  # each step runs per parameter: no group-wide step buffer
        grads_head, tied, step_temp = ZERO, ZERO, ZERO
    base_bpp: float = 2 if a == 2 else 4
    if not ft.full:
        base_bpp = round(st.frozen_bytes / max(st.stage_numel, 1), 3)
    b_in = BufferInputs(
        ft.full, checkpointing, par.unit_numel(spec, plan), base_bpp,
        st.stage_numel, st.numel, spec.num_layers // plan.pp, grads_all,
    )  # fmt: skip
    copies_pair = autocast_copies(spec, checkpointing) if lay.autocast and ft.full else None
    buf = fw.buffers(plan, lay, b_in, copies_pair)
    dequant = ZERO
    if ft.method == "qlora":
        width = ft.base_format.compute_bytes if ft.base_format else 2
        dequant = dequant_term(spec, width, plan.tp)
    return Static(lay, st, act_name, a, grads_all, grads_head, tied, step_temp, buf, dequant)


def stage_estimate(job: StageJob, stage: int) -> StageResult:
    """The per-GPU components of pipeline `stage` at its peak."""
    spec, plan, ft, conv = job.spec, job.plan, job.ft, job.conv
    s = static_terms(spec, plan, stage, ft, job.precision, job.optimizer, job.checkpointing, conv)
    lay, st, act_name, a, buf, dequant = s.lay, s.st, s.act_name, s.act_bytes, s.buf, s.dequant
    grads_all, grads_head, tied, step_temp = s.grads_all, s.grads_head, s.tied, s.step_temp
    last = stage == plan.pp - 1
    acts = cv.activation_terms(job, stage, act_name)
    tokens = job.batch_size * job.seq_len // plan.cp
    logits = ZERO
    if last:
        logits = cv.loss_logits(conv, spec, tokens, a, plan.tp)
    late = buf.late_comm
    grads_persist = grads_all.bytes if job.grad_accum > 1 else 0
    copies_end = buf.copies_end.bytes if buf.copies_end is not None else buf.copies.bytes
    peak = backward_peak_moment(
        copies=buf.copies.bytes,
        copies_end=copies_end,
        acts_start=acts.start_raw,
        recompute=acts.recompute,
        layer_ws=acts.end_raw,
        logits=logits.bytes,
        grads_persist=grads_persist,
        grads_head=grads_head.bytes,
        grads_all=grads_all.bytes,
        tied_grad=tied.bytes,
        late=late,
    )
    at_loss = peak.phase == "backward start (loss)"
    comm = buf.comm
    states = st.weights.bytes + st.adapter.bytes + st.master.bytes + st.optimizer.bytes
    static = states + comm.bytes - (late if at_loss else 0)
    backward_peak = static + peak.dynamic + dequant.bytes
    step_peak = states + comm.bytes - late + grads_all.bytes + step_temp.bytes
    working_set = int(peak.working_set)  # the largest activations + logits of any backward moment
    rt_dynamic = max(working_set, grads_all.bytes)

    temp, copies, act_term, logit_t, grads_t, tied_t = (
        ZERO,
        buf.copies,
        acts.start,
        logits,
        grads_all,
        tied,
    )
    if late and at_loss:
        comm = Term(0, "0 [ZeRO-1/2 reduce bucket: allocated at the first gradient]", comm.note)
    phase = peak.phase
    if step_peak > backward_peak:
        if late:
            comm = Term(0, "0 [ZeRO-1/2 reduce bucket: freed when backward ends]", comm.note)
        phase, temp = "optimizer step", step_temp
        copies, dequant, logit_t, tied_t = ZERO, ZERO, ZERO, ZERO
        act_term = Term(0, "0 [freed before optimizer.step()]")
    else:
        act_term = {"backward start (loss)": acts.start, "backward (last layer)": acts.last}.get(
            phase, acts.end
        )
        if phase == "backward end (first layer)" and buf.copies_end is not None:
            copies = buf.copies_end
        if peak.logits == 0:
            logit_t = ZERO
        if peak.temporaries == 0:
            tied_t = ZERO
        if peak.gradients == 0:
            grads_t = Term(0, "0 [none held: set to None after each step; kept while accumulating]")
        elif peak.gradients != grads_all.bytes:
            grads_t = grads_head
    where = f"stage {stage} of {plan.pp}, " if plan.pp > 1 else ""
    notes = component_notes(job, lay, where, plan.framework)
    terms = (
        (C.weights, st.weights.noted(notes.weights)),
        (C.adapter_weights, st.adapter.noted(notes.adapter)),
        (buf.copies_name, copies),
        (C.gradients, grads_t.noted(notes.gradients)),
        (C.master_weights, st.master.noted("fp32 copy the optimizer updates")),
        (C.optimizer_state, st.optimizer.noted(notes.optimizer)),
        (C.optimizer_temporaries, temp),
        (C.temporaries, tied_t),
        (C.communication_buffers, comm),
        (C.dequant_buffer, dequant),
        (C.activations, act_term.noted(notes.activations)),
        (C.logits_buffer, logit_t),
    )
    keep = (C.weights, C.gradients, C.activations)
    comps = [t.component(name) for name, t in terms if t.bytes or name in keep]
    comps += runtime_terms(rt_dynamic, working_set, grads_all.bytes)
    phase = f"{where}{phase}" if where else phase
    total = sum(c.bytes for c in comps)
    return StageResult(stage, comps, phase, total, st.cpu_bytes, acts.host_bytes)


@dataclass(frozen=True, slots=True)
class Notes:
    weights: str
    adapter: str
    gradients: str
    optimizer: str
    activations: str


def component_notes(job: StageJob, lay: Layout, where: str, fw: str) -> Notes:
    """What each model-state and activation component holds, in words (the formula has the numbers)."""
    ft = job.ft
    if ft.full:
        weights = f"{where}{lay.weights}-byte weights ({fw} layout)"
    else:
        assert ft.base_format is not None
        weights = f"{where}frozen base in {ft.base_format.name} ({ft.base_format.description})"
    adapter = ""
    if not ft.full:
        targets = ",".join(t for t in TARGETS if t in ft.targets)
        adapter = f"LoRA r={ft.rank} on {targets}, {lay.dtype}"
        if lay.master:  # DeepSpeed casts the module, adapters included (layouts.DeepSpeed)
            adapter += " (the engine's 16-bit copy; fp32 master in the optimizer)"
    return Notes(
        weights,
        adapter,
        f"{lay.grads} B per trainable parameter; freed between steps unless accumulating",
        f"{job.optimizer}, {lay.state}-byte state",
        f"saved for backward: {job.batch_size}×{job.seq_len} tokens, {job.attention} attention, "
        f"checkpointing {'full' if job.checkpointing else 'none'}",
    )
