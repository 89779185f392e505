"""The load-time peak: loading and quantizing a QLoRA base can need more than the steady step.

transformers loads a bitsandbytes checkpoint tensor by tensor and quantizes each linear as it
reaches the GPU (bitsandbytes Params4bit quantizes in ``.to(device)``): while one layer is
quantized its 16-bit weight sits beside the 4-bit weights already placed, the rest of the model
still 16-bit. PEFT's ``prepare_model_for_kbit_training`` then upcasts every non-quantized
parameter to fp32 one at a time (``param.data = param.data.to(torch.float32)``): while the largest
of them (the embedding or lm_head, V × h) is upcast, its 16-bit original and fp32 copy coexist —
the head materialised twice. The load peak is the larger of the two moments, plus the CUDA context.
Jobs that shard or split the base (ZeRO-3, FSDP, tensor/pipeline parallel) load differently and are
not modelled here (no load phase is reported for them), except the full-state-dict load of a sharded
16-bit job (Conventions.full_state_dict_load): loading a full state dict into an FSDP-wrapped model
(Lightning Fabric FSDPStrategy.load_raw under FULL_STATE_DICT, Lit-GPT 2023) unshards every unit
on every rank, so each holds the whole model in its parameter dtype beside its own flat shard.
torchtune does not (load_from_full_model_state_dict: the state dict on the CPU, each full tensor
distributed to its shards one at a time).
"""

from __future__ import annotations

from dataclasses import dataclass

from vramcalc.core.inference import runtime_overhead_components
from vramcalc.core.results import Component, ComponentName
from vramcalc.core.train.job import StageJob
from vramcalc.core.train.layouts import FRAMEWORKS
from vramcalc.core.train.states import stage_groups, trainable_groups
from vramcalc.core.train.terms import Term, n
from vramcalc.spec.params import LINEAR, LM_HEAD

_BNB = ("nf4", "nf4-nodq", "fp4", "llm.int8")


@dataclass(frozen=True, slots=True)
class LoadPeak:
    phase: str
    components: list[Component]
    total: int


def load_peak(job: StageJob) -> LoadPeak | None:
    """The peak while loading a bitsandbytes QLoRA base on one GPU, or a sharded 16-bit job's full
    state dict (None when not modelled)."""
    ft, plan = job.ft, job.plan
    sharded = plan.shards("params") and plan.shard_degree > 1
    if job.conv.full_state_dict_load and sharded and plan.tp == 1 and plan.pp == 1:
        return _full_state_dict_load(job)
    fmt = ft.base_format
    if ft.method != "qlora" or fmt is None or fmt.name not in _BNB:
        return None
    if plan.tp > 1 or plan.pp > 1 or (plan.shards("params") and plan.shard_degree > 1):
        return None
    groups = stage_groups(job.spec, plan, 0)
    quant_head = job.conv.quantized_lm_head
    quantized = [g for g in groups if g.kind == LINEAR or (quant_head and g.kind == LM_HEAD)]
    rest = [g for g in groups if g not in quantized]
    q_bytes = sum(fmt.quantized_tensor_bytes(g.rows, g.cols) * g.count for g in quantized)
    rest_numel = sum(g.numel for g in rest)
    largest_linear = max((g.per_tensor_numel for g in quantized), default=0)
    largest_rest = max((g.per_tensor_numel for g in rest), default=0)
    # moment 1: quantizing the largest linear, the rest still in 16-bit
    quantizing = Term(
        q_bytes + 2 * rest_numel + 2 * largest_linear,
        f"{n(q_bytes)} quantized linears + {n(rest_numel)} other values × 2 B + "
        f"largest linear {n(largest_linear)} × 2 B [its 16-bit copy while quantized]",
    )
    # moment 2: prepare_model_for_kbit_training upcasting the largest non-quantized tensor
    upcasting = Term(
        q_bytes + 4 * rest_numel + 2 * largest_rest,
        f"{n(q_bytes)} quantized linears + {n(rest_numel)} other values × 4 B + "
        f"largest of them {n(largest_rest)} × 2 B [16-bit original beside its fp32 copy]",
    )
    if not job.conv.kbit_prep_upcasts_to_fp32:  # torchtune, LitGPT, Unsloth: no fp32 upcast
        upcasting = Term(0, "0")
    peak, phase = max(
        (quantizing, "load: quantizing a layer"),
        (upcasting, "load: upcasting to fp32"),
        key=lambda x: x[0].bytes,
    )
    weights = Term(
        peak.bytes, peak.formula, "base weights during loading, with the tensor being converted"
    )
    comps = [weights.component(ComponentName.load_buffer), runtime_overhead_components(0)[0]]
    return LoadPeak(phase, comps, sum(c.bytes for c in comps))


def _full_state_dict_load(job: StageJob) -> LoadPeak | None:
    """Full state dict into an FSDP-wrapped 16-bit model: P × w (every unit gathered) + its own
    shard ⌈P × w ÷ N⌉, with P the base parameters at their width w (adapters at theirs, in both).
    A quantized base is not modelled (the stacks that load this way refuse quantized multi-GPU)."""
    ft, plan, spec = job.ft, job.plan, job.spec
    lay = FRAMEWORKS[plan.framework].layout(job.precision, ft.full, job.conv)
    N = plan.shard_degree
    groups = stage_groups(spec, plan, 0)
    numel = sum(g.numel for g in groups)
    if ft.full:
        width, extra, extra_txt = lay.weights, 0, ""
    else:
        fmt = ft.base_format
        if fmt is None or fmt.name not in ("bf16", "fp16", "fp32"):
            return None
        adapters = sum(
            g.numel for g in trainable_groups(spec, plan, 0, ft, job.conv.fused_qkv_adapter)
        )
        width, extra = fmt.compute_bytes, adapters * lay.weights
        extra_txt = f" + {n(adapters)} adapter params × {lay.weights} B"
    full = numel * width + extra
    shard = -(-full // N)
    text = f"{n(numel)} params × {width} B{extra_txt}"
    weights = Term(
        full + shard,
        f"{text} [the full state dict, gathered] + ({text}) ÷ {N} [this rank's shard]",
        "the whole model gathered on each rank while its full state dict loads, beside its shard",
    )
    comps = [weights.component(ComponentName.load_buffer), runtime_overhead_components(0)[0]]
    return LoadPeak("load: full state dict into FSDP", comps, sum(c.bytes for c in comps))
