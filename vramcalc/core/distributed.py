"""Training memory per GPU for LoRA/QLoRA and for sharded / parallel jobs.

``training.estimate_training`` hands over here when a job is not a full fine-tune on one GPU. The
peak is found the way training.py finds it (the three moments of the backward pass and the optimizer
step), with each term sized for one GPU of each pipeline stage; the most loaded GPU is the estimate.

Model-state layouts (bytes per trainable parameter: weights / gradients / fp32 master / state width):

* ``torch`` (one GPU, DistributedDataParallel): as training.py (autocast: fp32 weights are the
  masters, fp32 grads, 16-bit autocast copies). DDP adds its gradient buckets, one more gradient-sized
  buffer (``gradient_as_bucket_view=False``, the default; torch.nn.parallel.DistributedDataParallel docs).
* ``deepspeed`` (--zero): the ZeRO paper's mixed-precision Adam layout, 2 + 2 + 12 = 16 bytes
  (16-bit weights and grads, fp32 master + m + v; Rajbhandari et al. 2019 §3.1), partitioned per stage
  over N ranks: ZeRO-1 4Ψ + 12Ψ/N, ZeRO-2 2Ψ + 14Ψ/N, ZeRO-3 16Ψ/N. We follow the paper's partition
  and add the buffers DeepSpeed really allocates as their own components (the 5e8-element reduce
  bucket, allocated whole at every stage; under ZeRO-3 the gathered layer and the 5e7-element
  prefetch bucket; at the step the fp32
  copy of the gradient partition, 4Ψ/N). DeepSpeed's own estimator
  (``estimate_zero3_model_states_mem_needs``) instead writes 18Ψ/N + 4·largest_layer without naming
  the terms; tests check that our model states plus buffers lie at or below it.
* ``fsdp`` (--fsdp, MixedPrecision(param_dtype=bf16)): sharded fp32 parameters (which are what the
  optimizer updates: no separate master), fp32 sharded gradients, fp32 optimizer state; the 16-bit
  parameters of the running unit and of the prefetched one are gathered, and the unit's unsharded
  gradient waits for its reduce-scatter. SHARD_GRAD_OP keeps all 16-bit parameters gathered between
  forward and backward; NO_SHARD keeps everything replicated.
* ``megatron`` (tp/pp/cp/ep without --fsdp, with --zero 0/1 or none): bf16 parameters, fp32 main
  gradients, fp32 master + Adam state: 18 bytes (fp16: 20); --zero 1 is Megatron's distributed
  optimizer, 6 + 12/d (Megatron-LM distributed-optimizer docs). Tensor, context and expert
  parallelism use Megatron-Core layers' activations (parallel.megatron_layer_parts).

LoRA/QLoRA: only the adapters are trainable (fp32, see lora.py); the frozen base costs its storage
only and is sharded with the parameters under ZeRO-3 / FSDP. Activations are those of the frozen base
in its compute dtype without the inputs of its frozen projections (backprop still runs through every
layer; no weight gradients) plus what the adapters save.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from vramcalc.core import activations as act
from vramcalc.core import lora
from vramcalc.core import parallel as par
from vramcalc.core.inference import runtime_overhead_components
from vramcalc.core.optimizers import state_bytes, step_temporary_bytes
from vramcalc.core.results import Component, Estimate, Saving, make_estimate
from vramcalc.core.training import autocast_copies, backward_peak_moment
from vramcalc.core.workloads import context_warnings
from vramcalc.spec.model import ModelSpec
from vramcalc.spec.params import TensorGroup, active_param_count, param_count, tensor_groups
from vramcalc.spec.quant import FORMATS, WeightFormat

METHODS = ("full", "lora", "qlora")


@dataclass(frozen=True, slots=True)
class Finetune:
    """What is trained: everything, or LoRA adapters over a (possibly quantized) frozen base."""

    method: str = "full"
    rank: int = 16
    alpha: float = 32.0
    targets: frozenset[str] = frozenset()
    dropout: float = 0.0
    base_format: WeightFormat | None = None


@dataclass(frozen=True, slots=True)
class Layout:
    """Bytes per trainable parameter: weights, gradients, separate fp32 master, optimizer state width."""

    weights: int
    grads: int
    master: int
    state: int
    autocast: bool = False  # 16-bit autocast copies of matmul weights (torch layout)


def _layout(framework: str, precision: str, method: str) -> Layout:
    mixed = precision in ("bf16-mixed", "fp16-mixed")
    pw = 4 if precision == "fp32" or mixed else 2
    if method != "full" and framework != "deepspeed":
        return Layout(4, 4, 0, 4)  # fp32 adapters (PEFT autocast_adapter_dtype)
    if framework == "torch":
        return Layout(pw, pw, 0, pw, autocast=mixed)
    if framework == "deepspeed":
        return Layout(2, 2, 4, 4) if mixed else Layout(pw, pw, 0, pw)
    if framework == "fsdp":
        return Layout(pw, pw, 0, pw)
    # Megatron (distributed-optimizer docs): bf16 params + fp32 main grads + fp32 main params + Adam
    # = 18 B; fp16 params + fp16 grads + fp32 main params and main grads + Adam = 20 B, whose fp32
    # grads are optimizer-side (sharded by the distributed optimizer: 4 + 16/d)
    if precision == "fp16-mixed":
        return Layout(2, 2, 8, 4)
    return Layout(2, 4, 4, 4) if mixed else Layout(pw, pw, 0, pw)


def _act_precision(precision: str, method: str, framework: str) -> str:
    """Activation widths. Under torch autocast a full fine-tune keeps fp32 weights and a fp32
    residual stream (training.py); DeepSpeed, FSDP MixedPrecision and Megatron run the forward on
    16-bit weights without autocast, and a LoRA base computes in its own 16-bit dtype."""
    if precision == "fp32" or (method == "full" and framework == "torch"):
        return precision
    return "fp16" if precision.startswith("fp16") else "bf16"


def _runtime_with_formulas(dynamic: int, acts_logits: int, grads_all: int) -> list[Component]:
    """inference.runtime_overhead_components with the arithmetic written out for --explain."""
    from vramcalc.sources.calibration import runtime

    rt = runtime()
    formulas = {
        "cuda_context": f"{rt.cuda_context_mib} MiB (presets/calibration.toml)",
        "allocator_slack": f"{rt.allocator_slack_fraction:g} × max(largest activations + logits "
        f"of backward {acts_logits:,}, all gradients {grads_all:,})",
    }
    return [
        c.model_copy(update={"formula": formulas.get(c.name, "")})
        for c in runtime_overhead_components(dynamic)
    ]


def _target_list(ft: Finetune) -> str:
    return ",".join(t for t in lora.TARGETS if t in ft.targets)


def _div(n: float, d: int) -> int:
    return math.ceil(n / d)


@dataclass
class _Stage:
    stage: int
    components: list[Component]
    phase: str
    total: int
    cpu_bytes: int


def _states(
    groups: tuple[TensorGroup, ...],
    plan: par.ParallelPlan,
    lay: Layout,
    optimizer: str,
) -> dict[str, Any]:
    """Per-GPU weights, gradients, master, optimizer state and step temporaries of trainable groups."""
    n_dense, n_exp = par.numel(groups, False), par.numel(groups, True)
    N = plan.shard_degree
    Ne = max(1, N // plan.ep) if N > 1 else 1

    def shard(state: str, dense: float, expert: float) -> tuple[int, str]:
        if plan.shards(state) and N > 1:
            text = f"÷ {N}" + (f" (experts ÷ {Ne})" if expert and Ne != N else "")
            return _div(dense, N) + _div(expert, Ne), text
        return int(dense + expert), ""

    dense_g = tuple(g for g in groups if not g.expert)
    exp_g = tuple(g for g in groups if g.expert)
    weights, wtxt = shard("params", n_dense * lay.weights, n_exp * lay.weights)
    grads, gtxt = shard("gradients", n_dense * lay.grads, n_exp * lay.grads)
    master, mtxt = shard("optimizer", n_dense * lay.master, n_exp * lay.master)
    opt, otxt = shard(
        "optimizer",
        state_bytes(dense_g, optimizer, lay.state),
        state_bytes(exp_g, optimizer, lay.state),
    )
    temp, temp_note = 0, ""
    if plan.framework in ("torch", "fsdp"):
        temp, _ = shard(
            "optimizer",
            step_temporary_bytes(dense_g, optimizer, lay.state),
            step_temporary_bytes(exp_g, optimizer, lay.state),
        )
        temp_note = "foreach AdamW's sqrt(exp_avg_sq) buffer of the local partition"
    elif plan.framework == "deepspeed" and lay.master:
        # ZeRO step() flattens this rank's 16-bit gradient partition into a fp32 copy for the
        # optimizer (stage_1_and_2.py / stage3.py: single_grad_partition .to(fp32)), freed after it
        temp, _ = shard("optimizer", n_dense * 4, n_exp * 4)
        temp_note = (
            "fp32 copy of the gradient partition that DeepSpeed's step() hands the optimizer"
        )
    return {
        "numel": n_dense + n_exp,
        "weights": (weights, wtxt),
        "gradients": (grads, gtxt),
        "master": (master, mtxt),
        "optimizer": (opt, otxt),
        "temp": temp,
        "temp_note": temp_note,
    }


def _stage_estimate(
    spec: ModelSpec,
    req: Any,
    seq: int,
    ft: Finetune,
    plan: par.ParallelPlan,
    stage: int,
) -> _Stage:
    precision, opt_name = req.precision, req.optimizer.value
    fw = plan.framework
    lay = _layout(fw, precision, ft.method)
    ap = _act_precision(precision, ft.method, fw)
    w = act.widths(ap)
    last = stage == plan.pp - 1
    N = plan.shard_degree
    all_groups = tensor_groups(spec)
    stage_all = par.stage_groups(all_groups, spec, plan, stage)
    full = ft.method == "full"
    if full:
        trainable = stage_all
    else:
        trainable = par.stage_groups(
            lora.adapter_groups(spec, ft.targets, ft.rank), spec, plan, stage
        )
    st = _states(trainable, plan, lay, opt_name)
    where = f"stage {stage} of {plan.pp}, " if plan.pp > 1 else ""
    tp_txt = f" ÷ tp {plan.tp}" if plan.tp > 1 else ""
    held = f" on this GPU ({spec.num_layers // plan.pp} layers of stage {stage}{tp_txt})"
    held = held if plan.pp > 1 or plan.tp > 1 else ""

    # ---- weights (full: the trained model; LoRA: the frozen base + adapters) --------------------
    weights, wtxt = st["weights"]
    off_params = plan.offload == "params"
    off_opt = plan.offload in ("optimizer", "params")
    cpu = 0
    frozen_bytes = 0
    comps: list[Component] = []
    if full:
        w_formula = f"{st['numel']:,} params{held} × {lay.weights} B {wtxt}".strip()
        w_note = f"{where}{lay.weights}-byte weights ({fw} layout)"
        adapter = 0
        ad_formula = ""
    else:
        assert ft.base_format is not None
        base = frozen_bytes = lora.base_weight_bytes(stage_all, ft.method, ft.base_format)
        frozen_n = par.numel(stage_all)
        if plan.shards("params") and N > 1:
            base_gpu = _div(base, N)
            w_formula = f"{base:,} B frozen base ({frozen_n:,} params, {ft.base_format.name}) ÷ {N}"
        else:
            base_gpu = base
            w_formula = f"{frozen_n:,} params in {ft.base_format.name}"
        w_note = f"{where}frozen base in {ft.base_format.name} ({ft.base_format.description})"
        adapter = weights
        ad_formula = f"{st['numel']:,} adapter params × {lay.weights} B {wtxt}".strip()
        weights = base_gpu
    if off_params:
        cpu += weights + adapter
        w_note += "; offloaded to CPU"
        weights, adapter = 0, 0
    comps.append(Component(name="weights", bytes=weights, note=w_note, formula=w_formula))
    if not full:
        comps.append(
            Component(
                name="adapter_weights",
                bytes=adapter,
                note=f"LoRA r={ft.rank} on {_target_list(ft)}, fp32",
                formula=ad_formula,
            )
        )

    # ---- gradients, master weights, optimizer state -------------------------------------------
    grads_all, gtxt = st["gradients"]
    master, mtxt = st["master"]
    opt_state, otxt = st["optimizer"]
    temp = st["temp"]
    g_formula = f"{st['numel']:,} × {lay.grads} B {gtxt}".strip()
    if off_opt:
        # ZeRO-Offload keeps fp32 gradient partitions, masters and state on the CPU (DeepSpeed's
        # estimator: 16 B/param on CPU with optimizer offload, 18 with parameter offload).
        cpu += master + opt_state
        if fw == "deepspeed":
            # fp32 gradient partition on the CPU; from stage 2 on the GPU keeps no gradient
            # partition (ZeRO-1 still all-reduces full 16-bit gradients on the GPU)
            cpu += _div(st["numel"] * 4, N)
            if plan.zero and plan.zero >= 2:
                grads_all = 0
        elif fw == "fsdp":
            cpu += grads_all
            grads_all = 0
        master, opt_state, temp = 0, 0, 0
    grads_head = 0
    if full and last:
        grads_head = _div(spec.head_numel * lay.grads, plan.tp)
        if plan.shards("gradients") and N > 1:
            grads_head = _div(grads_head, N)
    if off_opt and grads_all == 0:
        grads_head = 0

    # ---- transient copies of weights and communication buffers ---------------------------------
    unit = par.unit_numel(spec, plan)
    # bytes per parameter of a gathered unit: 16-bit (fp32) weights, or the frozen base's storage
    # (a quantized base is gathered packed, as FSDP-QLoRA does with bnb_4bit_quant_storage)
    base_bpp: float = 2 if w.a == 2 else 4
    if not full:
        base_bpp = round(frozen_bytes / max(par.numel(stage_all), 1), 3)
    copies, copies_name, copies_formula = 0, "autocast_weight_copies", ""
    copies_end = -1  # -1: the same copies are alive at the end of backward
    comm, comm_formula = 0, ""
    if fw == "torch":
        if lay.autocast:
            if full:
                copies, copies_end = autocast_copies(spec, True, req.grad_checkpointing == "full")
                copies_formula = (
                    "2 B × lm_head weight (checkpointed layers recast theirs)"
                    if req.grad_checkpointing == "full"
                    else "2 B × every matmul weight (linear, router, lm_head)"
                )
            else:
                copies = copies_end = 2 * st["numel"]
                copies_formula = f"2 B × {st['numel']:,} fp32 adapter params"
        if plan.dp > 1:
            comm = grads_all
            comm_formula = f"DDP gradient buckets = gradients = {grads_all:,} B"
    elif fw == "deepspeed":
        if plan.zero == 3:
            prefetch = min(par.DS_PREFETCH_BUCKET_ELEMENTS, unit)
            copies_name = "gathered_parameters"
            copies = math.ceil((unit + prefetch) * base_bpp)
            copies_formula = f"(layer {unit:,} + prefetch {prefetch:,}) params × {base_bpp} B"
        # contiguous_gradients (on by default) allocates the whole reduce bucket up front, whatever
        # the model's size: torch.empty(reduce_bucket_size) in stage_1_and_2.py setup_buckets and
        # stage3.py __init__ (measured on DeepSpeed 0.19.8, docs/distributed.md)
        comm = par.DS_REDUCE_BUCKET_ELEMENTS * lay.grads
        comm_formula = f"reduce bucket 5e8 elements × {lay.grads} B (allocated whole)"
        if plan.zero == 3:
            # a layer larger than the bucket still holds its 16-bit gradients before they are
            # reduce-scattered (not measured: the grid's layers are smaller than the bucket)
            layer_grads = unit if full else _div(st["numel"], max(spec.num_layers // plan.pp, 1))
            if layer_grads * 2 > comm:
                comm = layer_grads * 2
                comm_formula = (
                    f"16-bit gradients of one layer (> the 5e8 bucket): {layer_grads:,} × 2 B"
                )
    elif fw == "fsdp":
        copies_name = "gathered_parameters"
        if plan.fsdp in ("full", "hybrid"):
            copies = math.ceil(2 * unit * base_bpp)
            copies_formula = f"2 units (running + prefetched) × {unit:,} params × {base_bpp} B"
        else:
            copies = math.ceil(par.numel(stage_all) * base_bpp)
            copies_formula = f"all {par.numel(stage_all):,} params kept gathered × {base_bpp} B"
        if plan.fsdp != "no-shard" and full:
            comm = math.ceil(unit * base_bpp)
            comm_formula = f"unsharded gradient of one unit: {unit:,} × {base_bpp} B"
        elif plan.fsdp == "no-shard":
            comm = grads_all
            comm_formula = "DDP-style gradient buckets = gradients"
    dequant = 0
    if ft.method == "qlora":
        dequant = lora.dequant_buffer_bytes(
            spec, ft.base_format.compute_bytes if ft.base_format else 2
        )
        if plan.tp > 1:
            dequant = _div(dequant, plan.tp)

    # ---- activations ----------------------------------------------------------------------------
    tokens = req.batch_size * seq // plan.cp
    rep_div, split_div = par.activation_divisor(plan)
    rep = par.layer_replicated_bytes_per_token(spec, ap)
    extra = 0
    unsaved = dict.fromkeys(("attention", "mlp"), (0, 0))
    if not full:
        # adapters keep their own input copies: bf16 under autocast, fp32 (their dtype) without
        copy_width = w.a if precision.endswith("-mixed") else 4
        extra = sum(
            lora.adapter_saved_bytes_per_token(
                spec, ft.targets, ft.rank, ft.dropout, copy_width
            ).values()
        )
        frozen = lora.frozen_inputs_not_saved_per_token(spec, ap)
        for part in ("attention", "mlp"):
            unsaved[part] = (frozen[f"{part}_replicated"], frozen[f"{part}_split"])

    def parts(moe: bool) -> tuple[float, float]:
        """One layer's saved bytes per token: (replicated, split) before dividing by tp. LoRA drops
        the inputs of frozen projections (MoE layers: attention only) and adds its own tensors."""
        if plan.megatron_layers:
            m_rep, m_split = par.megatron_layer_parts(spec, seq, req.attention, moe)
            r, sp_part = float(m_rep), float(m_split + extra)
        else:
            total = act.layer_bytes_per_token(spec, ap, seq, req.attention, moe=moe)
            r, sp_part = float(rep), total - rep + extra
        for part in ("attention",) if moe else ("attention", "mlp"):
            r -= unsaved[part][0]
            sp_part -= unsaved[part][1]
        return r, sp_part

    dense_rep, dense_split = parts(False)
    dense_pt = dense_rep / rep_div + dense_split / split_div
    moe_pt = 0.0
    if spec.is_moe:
        moe_rep, moe_split = parts(True)
        moe_pt = moe_rep / rep_div + moe_split / split_div
    layers_s = spec.num_layers // plan.pp
    moe_s = round(spec.moe_layers * layers_s / spec.num_layers)
    dense_s = layers_s - moe_s
    dense_layer = tokens * dense_pt
    moe_layer = tokens * moe_pt
    layer_ws = max(dense_layer if dense_s else 0, moe_layer if moe_s else 0)
    head_per_token = act.head_saved_bytes_per_token(spec, ap)
    if not full:  # a frozen lm_head saves no input
        head_per_token -= act._inputs_saved(1, True, spec, w)
    head = tokens * head_per_token / rep_div if last else 0
    logits = (
        _div(tokens * act.training_logits_peak_bytes_per_token(spec, w.a), plan.tp) if last else 0
    )
    ckpt = req.grad_checkpointing == "full"
    m = par.in_flight_micro_batches(plan, stage, req.grad_accum)
    layer_input = tokens * spec.hidden_size * w.r / rep_div
    rep_txt = f"/{rep_div:g}" if rep_div > 1 else ""
    split_txt = f"/{split_div:g}" if split_div > 1 else ""
    input_txt = f"{tokens:,} tok × {spec.hidden_size} × {w.r} B{rep_txt}"
    head_txt = f" + head {head:,.0f}" if head else ""
    per_tok_txt = (
        f"({dense_rep:,.0f} replicated{rep_txt} + {dense_split:,.0f} split{split_txt}) B/tok"
    )
    if spec.is_moe:
        per_tok_txt = f"{dense_pt:,.0f} (dense) / {moe_pt:,.0f} (MoE) B/tok"
    one_layer = f"one layer {tokens:,} tok × {per_tok_txt}"
    if ckpt:
        acts_start = m * layers_s * layer_input + head
        start_txt = f"{m} micro-batch × {layers_s} layer inputs × {input_txt}{head_txt}"
        last_txt = f"{start_txt} + recomputed {one_layer} − its input"
        end_txt = f"recomputed {one_layer}"
    else:
        acts_start = m * (dense_s * dense_layer + moe_s * moe_layer) + head
        start_txt = (
            f"{m} micro-batch × {layers_s} layers × {tokens:,} tok × {per_tok_txt}{head_txt}"
        )
        last_txt = start_txt
        end_txt = one_layer
    # ZeRO-1/2 allocate their reduce bucket at the first gradient hook and free it when backward
    # ends (stage_1_and_2.py setup_buckets / _release_ipg_buffers): not alive at the loss or the step
    late_comm = comm if fw == "deepspeed" and plan.zero in (1, 2) else 0
    grads_persist = grads_all if req.grad_accum > 1 else 0
    tied_grad = 0
    if full and spec.tie_word_embeddings and plan.pp == 1:
        tied_grad = _div(spec.head_numel * lay.grads, plan.tp)
        if plan.shards("gradients") and N > 1:
            tied_grad = _div(tied_grad, N)
    peak = backward_peak_moment(
        copies=copies,
        copies_end=copies if copies_end < 0 else copies_end,
        acts_start=acts_start,
        recompute=max(layer_ws - layer_input, 0) if ckpt else 0,
        layer_ws=layer_ws,
        logits=logits,
        grads_persist=grads_persist,
        grads_head=grads_head,
        grads_all=grads_all,
        tied_grad=tied_grad,
        late=late_comm,
    )
    phase, copies, acts, logit_bytes = peak.phase, int(peak.copies), peak.activations, peak.logits
    grads, tied = peak.gradients, int(peak.temporaries)
    a_formula = {
        "backward start (loss)": start_txt,
        "backward (last layer)": last_txt,
        "backward end (first layer)": end_txt,
    }[phase]
    static = weights + adapter + master + opt_state + comm - late_comm
    if peak.phase != "backward start (loss)":
        static += late_comm
    backward_peak = static + copies + dequant + acts + logit_bytes + grads + tied
    step_peak = weights + adapter + master + opt_state + comm - late_comm + grads_all + temp
    backward_dynamic = int(peak.working_set)  # the largest of any backward moment (training.Moment)
    rt_dynamic = max(backward_dynamic, grads_all)
    if late_comm and peak.phase == "backward start (loss)":
        comm = 0
    if step_peak > backward_peak:
        comm -= late_comm if comm else 0
        phase, copies, dequant, acts, logit_bytes, grads = "optimizer step", 0, 0, 0, 0, grads_all
        tied = 0
        a_formula = "freed before optimizer.step()"
    else:
        temp = 0
    if grads == 0:
        g_formula = "none held (set to None after each step; kept while accumulating)"
    elif grads != grads_all:
        g_formula = f"output head gradient first: {spec.output_width:,} × {spec.embed_dim} × {lay.grads} B{tp_txt}"
        g_formula += f" ÷ {N}" if plan.shards("gradients") and N > 1 else ""
    phase = f"{where}{phase}" if where else phase

    comps += [
        Component(
            name=copies_name,
            bytes=copies,
            note="16-bit weights used by forward/backward beside the stored ones",
            formula=copies_formula,
        ),
        Component(
            name="gradients",
            bytes=int(grads),
            note=f"{lay.grads} B per trainable parameter",
            formula=g_formula,
        ),
        Component(
            name="master_weights",
            bytes=master,
            note="fp32 copy the optimizer updates",
            formula=f"{st['numel']:,} × {lay.master} B {mtxt}".strip(),
        ),
        Component(
            name="optimizer_state",
            bytes=opt_state,
            note=f"{opt_name}, {lay.state}-byte state",
            formula=f"{opt_name} state of {st['numel']:,} params at {lay.state} B {otxt}".strip(),
        ),
        Component(
            name="optimizer_temporaries",
            bytes=temp,
            note="transient buffer of optimizer.step()",
            formula=st["temp_note"],
        ),
        Component(
            name="temporaries",
            bytes=tied,
            note="the embedding's dense gradient before it is added to the tied lm_head's",
            formula=f"{spec.output_width:,} × {spec.embed_dim} × {lay.grads} B{tp_txt}",
        ),
        Component(
            name="communication_buffers",
            bytes=comm,
            note="gradient buckets / reduce-scatter input",
            formula=comm_formula,
        ),
        Component(
            name="dequant_buffer",
            bytes=dequant,
            note="one quantized linear dequantized to bf16 for its matmul",
            formula="largest linear weight × compute width",
        ),
        Component(
            name="activations",
            bytes=int(acts),
            note=f"saved for backward: {req.batch_size}×{seq} tokens, {req.attention} attention, "
            f"checkpointing {req.grad_checkpointing}",
            formula=a_formula,
        ),
        Component(
            name="logits_buffer",
            bytes=int(logit_bytes),
            note="fp32 log-softmax output and two vocab-sized gradients at the loss",
            formula=f"{tokens:,} tok × 12 B × {spec.output_width:,} outputs{tp_txt}",
        ),
        *_runtime_with_formulas(int(rt_dynamic), backward_dynamic, grads_all),
    ]
    keep = ("weights", "gradients", "activations")
    comps = [c for c in comps if c.bytes or c.name in keep]
    return _Stage(stage, comps, phase, sum(c.bytes for c in comps), cpu)


def estimate_finetune(
    spec: ModelSpec,
    req: Any,
    seq: int,
    fit: tuple[str, int] | None,
    ft: Finetune,
    plan: par.ParallelPlan,
    savings: bool = True,
) -> Estimate:
    """Per-GPU peak of the most loaded GPU, with cluster sums, CPU offload and savings."""
    stages = [_stage_estimate(spec, req, seq, ft, plan, s) for s in range(plan.pp)]
    worst = max(stages, key=lambda s: s.total)
    per_stage_gpus = plan.num_gpus // plan.pp
    components = []
    for c in worst.components:
        cluster = sum(s_c.bytes for s in stages for s_c in s.components if s_c.name == c.name)
        components.append(c.model_copy(update={"cluster_bytes": cluster * per_stage_gpus}))
    extra_names = {c.name for s in stages for c in s.components} - {c.name for c in components}
    for name in sorted(extra_names):  # present on another stage only: keep the cluster sum whole
        cluster = sum(c.bytes for s in stages for c in s.components if c.name == name)
        components.append(Component(name=name, bytes=0, cluster_bytes=cluster * per_stage_gpus))
    inputs: dict[str, Any] = {
        "model": spec.name,
        "method": ft.method,
        "precision": req.precision,
        "optimizer": req.optimizer.value,
        "batch_size": req.batch_size,
        "grad_accum": req.grad_accum,
        "seq_len": seq,
        "grad_checkpointing": req.grad_checkpointing,
        "attention": req.attention,
    }
    if ft.method != "full":
        inputs |= {
            "lora_rank": ft.rank,
            "lora_alpha": ft.alpha,
            "lora_targets": _target_list(ft),
            "lora_dropout": ft.dropout,
            "trainable_params": lora.adapter_param_count(spec, ft.targets, ft.rank),
        }
        if ft.base_format is not None:
            inputs["base_format"] = ft.base_format.name
    parallel = {
        "framework": plan.framework,
        "num_gpus": plan.num_gpus,
        "nodes": plan.nodes,
        "gpus_per_node": plan.gpus_per_node,
        "dp": plan.dp,
        "tp": plan.tp,
        "pp": plan.pp,
        "cp": plan.cp,
        "ep": plan.ep,
        "sequence_parallel": plan.sp,
        "zero": plan.zero,
        "fsdp": plan.fsdp,
        "offload": plan.offload,
        "shard_degree": plan.shard_degree,
        "most_loaded_stage": worst.stage,
    }
    assumptions = [
        "steady-state step (optimizer state exists); gradients set to None between steps",
        "peak = larger of the backward pass and optimizer.step(), on the most loaded GPU",
        f"parallel layout: {plan.describe()} ({plan.framework} memory layout)",
        *act.approximation_notes(spec),
    ]
    if ft.method != "full":
        assumptions.append(
            "adapters fp32 (PEFT autocast_adapter_dtype); frozen base has no gradients or optimizer state"
        )
    if ft.method == "qlora":
        assumptions.append(
            "paged optimizers (bitsandbytes paged_adamw, QLoRA §3) hold the same state but can "
            "spill it to CPU under memory spikes; counted here as resident on the GPU"
        )
    if plan.pp > 1:
        assumptions.append(
            f"1F1B schedule: stage 0 holds min(pp, micro-batches) = "
            f"{par.in_flight_micro_batches(plan, 0, req.grad_accum)} micro-batches of activations"
        )
    cluster_total = sum(s.total for s in stages) * per_stage_gpus
    cpu_node = max(s.cpu_bytes for s in stages) * plan.gpus_per_node
    est = make_estimate(
        components,
        fit,
        kind="training",
        model=spec.name,
        assumed_architecture=spec.assumed_architecture,
        params=param_count(spec),
        active_params=active_param_count(spec),
        phase=worst.phase,
        inputs=inputs,
        assumptions=assumptions,
        num_gpus=plan.num_gpus,
        cluster_total_bytes=cluster_total,
        cpu_bytes_per_node=cpu_node,
        stage_totals_bytes=[s.total for s in stages],
        parallel=parallel,
        warnings=context_warnings(spec, seq),
    )
    if savings:
        est = est.model_copy(update={"savings": _savings(spec, req, seq, ft, plan, est)})
    return est


def _savings(
    spec: ModelSpec, req: Any, seq: int, ft: Finetune, plan: par.ParallelPlan, est: Estimate
) -> list[Saving]:
    """Per-GPU bytes each non-default choice saves: the same job without it, minus this one."""
    from vramcalc.errors import VramcalcError

    alternatives: list[tuple[str, str, Finetune, par.ParallelPlan]] = []
    if ft.method == "qlora":
        base = FORMATS["fp32" if req.precision == "fp32" else "bf16"]
        alternatives.append(
            ("qlora", "lora (16-bit base)", replace(ft, method="lora", base_format=base), plan)
        )
    if ft.method != "full":
        alternatives.append((ft.method, "full fine-tune", Finetune(), plan))
    if plan.zero:
        alternatives.append(
            (
                f"ZeRO-{plan.zero}",
                "ZeRO-0 (replicated states)",
                ft,
                replace(plan, zero=0, offload="none"),
            )
        )
    if plan.fsdp not in (None, "no-shard"):
        no_shard = replace(plan, fsdp="no-shard", offload="none")
        alternatives.append((f"FSDP {plan.fsdp}", "FSDP no-shard", ft, no_shard))
    if plan.offload != "none":
        alternatives.append(
            (f"offload {plan.offload}", "no offload", ft, replace(plan, offload="none"))
        )
    if plan.tp > 1:
        alternatives.append((f"tp={plan.tp}", "tp=1", ft, replace(plan, tp=1, sp=False)))
    if plan.sp:
        alternatives.append(("sequence parallel", "tp without it", ft, replace(plan, sp=False)))
    if plan.pp > 1:
        alternatives.append((f"pp={plan.pp}", "pp=1", ft, replace(plan, pp=1)))
    if plan.cp > 1:
        alternatives.append((f"cp={plan.cp}", "cp=1", ft, replace(plan, cp=1)))
    if plan.ep > 1:
        alternatives.append((f"ep={plan.ep}", "ep=1", ft, replace(plan, ep=1)))
    out = []
    for choice, compared, alt_ft, alt_plan in alternatives:
        try:
            other = estimate_finetune(spec, req, seq, None, alt_ft, alt_plan, savings=False)
        except (VramcalcError, ZeroDivisionError):
            continue
        out.append(
            Saving(
                choice=choice, saved_bytes=other.total_bytes - est.total_bytes, compared_to=compared
            )
        )
    return out


def estimate_job(
    model: str | ModelSpec,
    req: Any,
    *,
    method: str = "full",
    lora_rank: int = 8,
    lora_alpha: float = 8.0,
    lora_targets: str | list[str] | tuple[str, ...] = "all-linear",
    lora_dropout: float = 0.0,
    quant: str | None = None,
    **plan_args: Any,
) -> Estimate:
    """The estimate of a validated TrainingRequest with a fine-tuning method and a parallel plan."""
    from vramcalc.core.workloads import resolve_gpu, resolve_model, resolve_seq_len
    from vramcalc.errors import VramcalcError

    spec = resolve_model(model)
    seq = resolve_seq_len(spec, req.seq_len)
    fit = resolve_gpu(req.gpu, req.gpu_mem_gib)
    if method not in METHODS:
        raise VramcalcError(f"--method {method!r}; valid: {', '.join(METHODS)}")
    if method == "full":
        if quant is not None:
            raise VramcalcError(
                "--quant sets the frozen base of --method qlora; a full fine-tune trains 16/32-bit weights"
            )
        ft = Finetune()
    else:
        if not isinstance(lora_rank, int) or lora_rank < 1:
            raise VramcalcError(f"--lora-rank must be a positive integer (got {lora_rank!r})")
        if not 0.0 <= lora_dropout < 1.0:
            raise VramcalcError(f"--lora-dropout must be in [0, 1) (got {lora_dropout!r})")
        if method == "qlora":
            if req.precision == "fp32":
                raise VramcalcError(
                    "--method qlora computes in 16-bit: use --precision bf16-mixed or fp16-mixed"
                )
            base = lora.qlora_format(quant)
        else:
            if quant is not None:
                raise VramcalcError(
                    f"--quant {quant} needs --method qlora (LoRA keeps a 16/32-bit base)"
                )
            base = FORMATS[
                "fp32"
                if req.precision == "fp32"
                else ("fp16" if req.precision.startswith("fp16") else "bf16")
            ]
        targets = lora.parse_targets(spec, lora_targets)
        ft = Finetune(method, lora_rank, float(lora_alpha), targets, float(lora_dropout), base)
    plan = par.make_plan(spec, seq, **plan_args)
    return estimate_finetune(spec, req, seq, fit, ft, plan)
