"""Activations one GPU saves for backward, per token: a decoder layer split into the part tensor
parallelism leaves whole and the part it splits, with LoRA's changes and the stack's conventions.

The per-op counts are activations.py's (transformers layers) or parallel.megatron_layer_parts
(Megatron-Core layers under tensor/context/expert parallelism). LoRA: a frozen projection saves no
input (it has no weight gradient), the adapters save theirs (lora.adapter_saved_bytes_per_token).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from vramcalc.core import activations as act
from vramcalc.core import lora
from vramcalc.core import parallel as par
from vramcalc.core.train.terms import Finetune
from vramcalc.spec.conventions import Conventions
from vramcalc.spec.model import ModelSpec
from vramcalc.spec.precision import DTYPE_BYTES, precision

_BNB = ("nf4", "nf4-nodq", "fp4", "llm.int8")


def activation_precision(name: str, full: bool, framework: str) -> str:
    """The precision activations are saved in. Under torch autocast a full fine-tune keeps fp32
    weights and a fp32 residual stream (activations.py); DeepSpeed, FSDP MixedPrecision and Megatron
    run the forward on 16-bit weights without autocast, and a LoRA base computes in its own
    16-bit dtype: activations as in pure 16-bit (fp32 stays fp32)."""
    if name == "fp32" or (full and framework == "torch"):
        return name
    return precision(name).compute_dtype


@dataclass(frozen=True, slots=True)
class LayerParts:
    """One layer's saved bytes per token before dividing by tp: (replicated, split)."""

    dense: tuple[float, float]
    moe: tuple[float, float]
    head: int  # final norm and lm_head input, per token (before the sequence-parallel divisor)
    input_bytes: int  # one layer's input per token (what full checkpointing keeps)


def adapter_input_copies(p_name: str, act_name: str, conv: Conventions) -> tuple[bool, int]:
    """(each adapted module saves its own input copy, its width in bytes).

    PEFT keeps LoRA A/B in fp32 (get_peft_model(autocast_adapter_dtype=True)) and casts each
    adapted module's input to the adapter dtype (peft.tuners.lora.layer.Linear.forward,
    _cast_input_dtype), so every adapted module saves its own copy: bf16 under autocast, which
    casts it back for the matmul; the adapter width without. Adapters in the base's 16-bit dtype
    (LitGPT, torchtune, the QLoRA code) cast nothing: modules reading one stream save that one tensor.
    """
    a = DTYPE_BYTES[precision(act_name).compute_dtype]
    if conv.adapter_dtype == "fp32":  # PEFT's default (as measured: tests/test_lora.py)
        return True, a if precision(p_name).mixed else 4
    width = a if conv.adapter_dtype == "model" else DTYPE_BYTES[conv.adapter_dtype]
    return width != a, a if precision(p_name).mixed else width


@lru_cache(maxsize=1024)
def layer_parts(
    spec: ModelSpec,
    p_name: str,
    act_name: str,
    seq: int,
    attention: str,
    ft: Finetune,
    megatron: bool,
    conv: Conventions,
) -> LayerParts:
    """Saved bytes per token of one dense and one MoE layer (replicated, split), the head's and a
    layer input's, for `ft` under the activation precision `act_name`."""
    w = act.widths(act_name)
    rep_all = par.layer_replicated_bytes_per_token(spec, act_name)
    extra = 0
    unsaved = dict.fromkeys(("attention", "mlp"), (0, 0))
    norm_copies = 0  # a frozen RMSNorm weight saves no normalised copy (transformers layers)
    if not ft.full:
        if not megatron:
            norm_copies = lora.frozen_norm_copies_not_saved_per_token(spec, act_name)
        # bitsandbytes < 0.43.2 kept every 4-bit linear's input for backward although its weight
        # is frozen (MatMul4Bit ctx.tensors = (A, B); fixed in bitsandbytes PR #1270): a reference
        # to the input tensor, so each distinct tensor is held once (q/k/v share one, gate/up one,
        # a parallel block's attention and MLP one) and adapters in the input's dtype, which save
        # that same tensor, add nothing of their own
        keeps = conv.bnb_keeps_4bit_inputs and ft.method == "qlora"
        keeps = keeps and ft.base_format is not None and ft.base_format.name in _BNB
        per_module, width = adapter_input_copies(p_name, act_name, conv)
        extra = sum(
            lora.adapter_saved_bytes_per_token(
                spec,
                ft.targets,
                ft.rank,
                ft.dropout,
                width,
                shared_input=not per_module,
                fused_qkv=conv.fused_qkv_adapter,
                inputs_held=keeps,
            ).values()
        )
        frozen = lora.frozen_inputs_not_saved_per_token(spec, act_name)
        if not keeps:
            for part in ("attention", "mlp"):
                unsaved[part] = (frozen[f"{part}_replicated"], frozen[f"{part}_split"])
        elif spec.parallel_block and not megatron:  # the MLP reads attention's normed tensor
            unsaved["mlp"] = (frozen["mlp_replicated"], 0)

    def parts(moe: bool) -> tuple[float, float]:
        if megatron:
            m_rep, m_split = par.megatron_layer_parts(spec, seq, attention, moe)
            r, s = float(m_rep), float(m_split + extra)
        else:
            total = act.layer_bytes_per_token(spec, act_name, seq, attention, moe=moe)
            r, s = float(rep_all), total - rep_all + extra
        for part in ("attention",) if moe else ("attention", "mlp"):
            r -= unsaved[part][0]
            s -= unsaved[part][1]
        return r - norm_copies, s

    head = act.head_saved_bytes_per_token(spec, act_name)
    if not ft.full:  # a frozen lm_head saves no input, a frozen final RMSNorm no normalised copy
        head -= act.projection_inputs_saved(1, True, spec, w)
        head -= norm_copies // max(spec.norms_per_layer, 1)
    return LayerParts(
        parts(False), parts(True) if spec.is_moe else (0.0, 0.0), head, spec.hidden_size * w.r
    )
