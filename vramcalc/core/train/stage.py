"""One GPU of one pipeline stage at the peak of its training step.

The peak is the largest of three moments of the backward pass (its start at the loss, the last
layer, its end at the first layer) and the optimizer step (moments); each term is a function that
returns its bytes with its formula (terms, states, layouts, saved), so --explain, the notes and the
numbers come from one expression.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from vramcalc.core import activations as act
from vramcalc.core import parallel as par
from vramcalc.core.lora import TARGETS
from vramcalc.core.results import Component, ComponentName
from vramcalc.core.train import conventions as cv
from vramcalc.core.train.job import StageJob
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
from vramcalc.spec.params import active_param_count, param_count
from vramcalc.spec.precision import Precision

C = ComponentName


@dataclass(slots=True)  # built per estimate: a plain slots class is the cheapest
class StageResult:
    static: Static
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


@dataclass(frozen=True, slots=True, eq=False)  # unique per key (cached): hashed by identity
class Static:
    """The batch-independent terms of one GPU of one stage (cached per job shape), with their
    components built once (name → Component; variants for the moments that change them)."""

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
    comps: dict[str, Component | None]
    shape: cv.Shape
    job_key: tuple[ModelSpec, par.ParallelPlan, Finetune, Precision, Conventions]
    params: int
    active_params: int


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
    seq: int,
    attention: str,
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
        dequant = dequant_term(spec, width, plan.tp, head=conv.quantized_lm_head)
    where = f"stage {stage} of {plan.pp}, " if plan.pp > 1 else ""
    notes = component_notes(ft, lay, where, fw.name, optimizer, st, p, plan.offload)
    grads_note = notes.gradients
    none = "0 [none held: set to None after each step; kept while accumulating]"
    late = "0 [ZeRO-1/2 reduce bucket: allocated at the first gradient, freed when backward ends]"

    def c(
        name: ComponentName, t: Term, note: str | None = None, keep: bool = False
    ) -> Component | None:
        if not (t.bytes or keep):
            return None
        return t.component(name) if note is None else t.noted(note).component(name)

    comps = {
        "weights": c(C.weights, st.weights, notes.weights, keep=True),
        "adapter": c(C.adapter_weights, st.adapter, notes.adapter, keep=not ft.full),
        "copies": c(buf.copies_name, buf.copies),
        "copies_end": c(buf.copies_name, buf.copies_end or buf.copies),
        "grads_all": c(C.gradients, grads_all, grads_note, keep=True),
        "grads_head": c(C.gradients, grads_head, grads_note, keep=True),
        "grads_none": c(C.gradients, Term(0, none), grads_note, keep=True),
        "master": c(C.master_weights, st.master, "fp32 copy the optimizer updates"),
        "optimizer": c(C.optimizer_state, st.optimizer, notes.optimizer),
        "temp": c(C.optimizer_temporaries, step_temp),
        "tied": c(C.temporaries, tied),
        "comm": c(C.communication_buffers, buf.comm),
        "comm_late": c(C.communication_buffers, Term(buf.comm.bytes - buf.late_comm, late)),
        "dequant": c(C.dequant_buffer, dequant),
    }
    shape = cv.activation_shape(spec, plan, stage, p.name, act_name, seq, attention, ft, conv)
    key = (spec, plan, ft, p, conv)
    params, active = param_count(spec), active_param_count(spec)
    return Static(
        lay, st, act_name, a, grads_all, grads_head, tied, step_temp, buf, dequant, comps, shape,
        key, params, active,
    )  # fmt: skip


# Identity front of static_terms' cache: callers pass the same spec, plan, precision and
# conventions objects again and again, and hashing those five values costs more than the rest of
# a lookup. The stored references keep the objects alive, so an id is never reused while cached.
_FRONT: dict[tuple[Any, ...], tuple[Any, ...]] = {}


def _static_of(job: StageJob, stage: int) -> Static:
    spec, plan, ft, p, conv = job.spec, job.plan, job.ft, job.precision, job.conv
    key = (id(spec), id(plan), id(ft), id(p), id(conv), stage, job.optimizer, job.checkpointing,
           job.seq_len, job.attention)  # fmt: skip
    hit = _FRONT.get(key)
    if hit is not None and hit[0] is spec and hit[1] is plan and hit[2] is ft:
        if hit[3] is p and hit[4] is conv:
            return hit[5]  # type: ignore[no-any-return]
    found = static_terms(
        spec, plan, stage, ft, p, job.optimizer, job.checkpointing, conv, job.seq_len,
        job.attention,
    )  # fmt: skip
    if len(_FRONT) >= 512:
        _FRONT.clear()
    _FRONT[key] = (spec, plan, ft, p, conv, found)
    return found


def stage_estimate(job: StageJob, stage: int) -> StageResult:
    """The per-GPU components of pipeline `stage` at its peak."""
    spec, plan, conv = job.spec, job.plan, job.conv
    s = _static_of(job, stage)
    st, buf, grads_all = s.st, s.buf, s.grads_all
    acts = cv.activation_terms(job, stage, s.shape)
    logits = ZERO
    if stage == plan.pp - 1:
        tokens = job.batch_size * job.seq_len // plan.cp
        logits = cv.loss_logits(conv, spec, tokens, s.act_bytes, plan.tp)
    late = buf.late_comm
    copies_end = buf.copies_end.bytes if buf.copies_end is not None else buf.copies.bytes
    peak = backward_peak_moment(
        copies=buf.copies.bytes,
        copies_end=copies_end,
        acts_start=acts.start,
        recompute=acts.recompute,
        layer_ws=acts.end,
        logits=logits.bytes,
        grads_persist=grads_all.bytes if job.grad_accum > 1 else 0,
        grads_head=s.grads_head.bytes,
        grads_all=grads_all.bytes,
        tied_grad=s.tied.bytes,
        late=late,
    )
    phase = peak.phase
    at_loss = phase == "backward start (loss)"
    states = st.weights.bytes + st.adapter.bytes + st.master.bytes + st.optimizer.bytes
    static = states + buf.comm.bytes - (late if at_loss else 0)
    backward_peak = static + peak.dynamic + s.dequant.bytes
    step_peak = states + buf.comm.bytes - late + grads_all.bytes + s.step_temp.bytes
    working_set = int(peak.working_set)  # the largest activations + logits of any backward moment
    k = s.comps
    if step_peak > backward_peak:
        phase = "optimizer step"
        chosen = [
            k["weights"],
            k["adapter"],
            k["grads_all"],
            k["master"],
            k["optimizer"],
            k["temp"],
        ]
        chosen += [k["comm_late"] if late else k["comm"]]
        act_term = Term(0, "0 [freed before optimizer.step()]")
        logit_c = None
    else:
        end = phase == "backward end (first layer)"
        grads = "grads_all" if peak.gradients == grads_all.bytes else "grads_head"
        grads = "grads_none" if peak.gradients == 0 else grads
        chosen = [k["weights"], k["adapter"], k["copies_end" if end else "copies"], k[grads]]
        chosen += [k["master"], k["optimizer"], k["tied"] if peak.temporaries else None]
        chosen += [k["comm_late"] if late and at_loss else k["comm"], k["dequant"]]
        act_term = acts.term(phase)
        logit_c = logits.component(C.logits_buffer) if peak.logits else None
    act_note = (
        f"saved for backward: {job.batch_size}×{job.seq_len} tokens, {job.attention} attention, "
        f"checkpointing {'full' if job.checkpointing else 'none'}"
    )
    comps = [x for x in chosen if x is not None]
    comps.append(
        Component(name=C.activations, bytes=act_term[0], note=act_note, formula=act_term[1])
    )
    if logit_c is not None:
        comps.append(logit_c)
    comps += runtime_terms(max(working_set, grads_all.bytes), working_set, grads_all.bytes)
    if plan.pp > 1:
        phase = f"stage {stage} of {plan.pp}, {phase}"
    total = sum([x.bytes for x in comps])
    return StageResult(s, stage, comps, phase, total, st.cpu_bytes, acts.host_bytes)


@dataclass(frozen=True, slots=True)
class Notes:
    weights: str
    adapter: str
    gradients: str
    optimizer: str


def component_notes(
    ft: Finetune,
    lay: Layout,
    where: str,
    fw: str,
    optimizer: str,
    st: States,
    p: Precision,
    offload: str,
) -> Notes:
    """What each model-state component holds, in words (the formula has the numbers)."""
    if ft.full and fw == "torch":
        weights = f"{where}{st.numel:,} params × {lay.weights} B ({p.name})"
    elif ft.full:
        weights = f"{where}{lay.weights}-byte weights ({fw} layout)"
    else:
        assert ft.base_format is not None
        weights = f"{where}frozen base in {ft.base_format.name} ({ft.base_format.description})"
    if offload == "params":
        weights += "; offloaded to CPU"
    adapter = ""
    if not ft.full:
        targets = ",".join(t for t in TARGETS if t in ft.targets)
        adapter = f"LoRA r={ft.rank} on {targets}, {lay.dtype}"
        if lay.master:  # DeepSpeed casts the module, adapters included (layouts.DeepSpeed)
            adapter += " (the engine's 16-bit copy; fp32 master in the optimizer)"
    return Notes(
        weights,
        adapter,
        f"{lay.grads} B per trainable parameter",
        f"{optimizer}, {lay.state}-byte state",
    )
