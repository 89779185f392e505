"""Parameter-efficient fine-tuning: LoRA adapters over a frozen base, and QLoRA's quantized base.

LoRA (Hu et al. 2021, arXiv 2106.09685) replaces the update of a frozen weight W (d_out × d_in) by
B·A with A: r × d_in and B: d_out × r, so one adapted matrix trains r·(d_in + d_out) parameters.
The adapted matrices are the *modules* the Hugging Face implementation has: where transformers fuses
projections (GPT-2's ``c_attn`` = q,k,v; Phi-3's ``qkv_proj`` and ``gate_up_proj``) one adapter covers
the fused matrix, as PEFT does (``peft.tuners.lora.layer.Linear`` wraps whole modules). Counts are
checked against ``peft.get_peft_model`` on the meta device (tests/test_lora.py).

Precision (PEFT 0.21): ``get_peft_model(..., autocast_adapter_dtype=True)`` (the default) keeps adapter
weights in fp32 even over a bf16/fp16 base, so adapter weights, their gradients and the optimizer
state are fp32.

QLoRA (Dettmers et al. 2023, arXiv 2305.14314): the frozen base is stored in 4-bit NormalFloat with
double quantization (``quant.FORMATS["nf4"]``), computed in bf16; ``peft.prepare_model_for_kbit_training``
upcasts every parameter it does not quantize (embeddings, norms, lm_head) to fp32. Each quantized
linear is dequantized to a bf16 matrix for its matmul (``bitsandbytes.functional.dequantize_4bit``)
in the forward and again in the backward, one module at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from vramcalc.core import activations as act
from vramcalc.errors import VramcalcError
from vramcalc.spec.model import ModelSpec
from vramcalc.spec.params import LINEAR, LM_HEAD, ROUTER, TensorGroup, tensor_groups
from vramcalc.spec.quant import FORMATS, WeightFormat

TARGETS = ("q", "k", "v", "o", "gate", "up", "down", "experts", "router")
ALL_LINEAR = "all-linear"
# Accepted spellings of the same targets (Hugging Face module names).
_ALIASES = {
    "q_proj": "q",
    "k_proj": "k",
    "v_proj": "v",
    "o_proj": "o",
    "gate_proj": "gate",
    "up_proj": "up",
    "down_proj": "down",
    "fc_in": "up",
    "c_fc": "up",
    "fc_out": "down",
    "fc1": "up",
    "fc2": "down",
}
# Base formats an adapter can be trained over with --method qlora (bitsandbytes 4/8-bit through
# PEFT's kbit path; GPTQ/AWQ kernels with a backward through PEFT's quantized LoRA layers).
QLORA_FORMATS = ("nf4", "nf4-nodq", "fp4", "llm.int8", "gptq", "awq")
_BNB_FORMATS = ("nf4", "nf4-nodq", "fp4", "llm.int8")


@dataclass(frozen=True, slots=True)
class AdapterSite:
    """``count`` adapted matrices of shape d_out × d_in, selected by any of ``targets``."""

    name: str
    targets: frozenset[str]
    d_in: int
    d_out: int
    count: int
    expert: bool = False
    a_blocks: int = 1  # lora_A rows = rank × a_blocks (LitGPT's fused qkv adapter: one per part)

    def params(self, rank: int) -> int:
        return rank * (self.a_blocks * self.d_in + self.d_out) * self.count


def _target_of(group_name: str) -> str | None:
    """'layers.attn.q_proj' → 'q'; routed experts → 'experts'; MoE routers (and Qwen2-MoE's
    shared-expert gate) → 'router'; other tensors → None."""
    if group_name in ("layers.moe.router", "layers.moe.shared_expert_gate"):
        return "router"
    if group_name.startswith("layers.moe.experts."):
        return "experts"
    leaf = group_name.rsplit(".", 1)[-1]
    return _ALIASES.get(leaf)


@lru_cache(maxsize=256)
def adapter_sites(spec: ModelSpec) -> tuple[AdapterSite, ...]:
    """The linear modules of the decoder blocks, as transformers builds them (fused where fused)."""
    sites: dict[str, AdapterSite] = {}
    fuse = {}
    if spec.architecture in act.FUSED_QKV:
        fuse.update({"q": "qkv", "k": "qkv", "v": "qkv"})
    if spec.architecture in act.FUSED_GATE_UP:
        fuse.update({"gate": "gate_up", "up": "gate_up"})
    for g in tensor_groups(spec):
        target = _target_of(g.name) if g.kind in (LINEAR, ROUTER) else None
        if target is None:
            continue
        prefix = g.name.rsplit(".", 1)[0]
        unfused = target in ("experts", "router")
        key = g.name if unfused else f"{prefix}.{fuse.get(target, target)}"
        prev = sites.get(key)
        if prev is None:
            sites[key] = AdapterSite(key, frozenset({target}), g.cols, g.rows, g.count, g.expert)
        else:  # a fused module: same input, outputs concatenated
            sites[key] = AdapterSite(
                key, prev.targets | {target}, g.cols, prev.d_out + g.rows, g.count, g.expert
            )
    return tuple(sites.values())


def valid_targets(spec: ModelSpec) -> list[str]:
    found = set().union(*(s.targets for s in adapter_sites(spec)))
    return [t for t in TARGETS if t in found]


def parse_targets(spec: ModelSpec, targets: str | list[str] | tuple[str, ...]) -> frozenset[str]:
    """'q,v' / ['q','v'] / 'all-linear' → the set of target keys; unknown or absent ones are errors."""
    items = targets.split(",") if isinstance(targets, str) else list(targets)
    names = [t.strip().lower() for t in items if t.strip()]
    valid = valid_targets(spec)
    if not names:
        raise VramcalcError(f"--lora-targets is empty; valid for {spec.name}: {', '.join(valid)}")
    chosen: set[str] = set()
    for name in names:
        if name == ALL_LINEAR:
            chosen.update(valid)
            continue
        key = _ALIASES.get(name, name)
        if key not in valid:
            raise VramcalcError(
                f"LoRA target {name!r} does not exist in {spec.name} ({spec.architecture}); "
                f"valid: {', '.join(valid)}, {ALL_LINEAR}"
            )
        chosen.add(key)
    return frozenset(chosen)


@lru_cache(maxsize=256)
def selected_sites(
    spec: ModelSpec, targets: frozenset[str], fused_qkv: bool = False
) -> tuple[AdapterSite, ...]:
    """Adapted modules: a fused module is adapted when any of its parts is targeted (as in PEFT).

    `fused_qkv` (LitGPT, litgpt/lora.py LoRAQKVLinear): one adapter over the fused q/k/v matrix,
    lora_A of r × (enabled parts) rows over the input and lora_B of (Σ enabled parts' outputs) × r;
    the same count as separate pairs, but one module (one input, one dropout) per layer."""
    chosen = [s for s in adapter_sites(spec) if s.targets & targets]
    qkv = [s for s in chosen if s.targets & _QKV and not s.expert]
    if not fused_qkv or len(qkv) < 2:
        return tuple(chosen)
    parts = {t for s in qkv for t in s.targets} & targets
    fused = AdapterSite(
        qkv[0].name.rsplit(".", 1)[0] + ".qkv",
        frozenset(t for s in qkv for t in s.targets),
        qkv[0].d_in,
        sum(s.d_out for s in qkv),
        qkv[0].count,
        a_blocks=len(parts),
    )
    return (fused, *(s for s in chosen if s not in qkv))


def adapter_groups(
    spec: ModelSpec, targets: frozenset[str], rank: int, fused_qkv: bool = False
) -> tuple[TensorGroup, ...]:
    """The trainable tensors: lora_A (r × d_in) and lora_B (d_out × r) per adapted module."""
    groups: list[TensorGroup] = []
    for s in selected_sites(spec, targets, fused_qkv):
        a_rows = rank * s.a_blocks
        groups.append(TensorGroup(f"{s.name}.lora_A", LINEAR, a_rows, s.d_in, s.count, s.expert))
        groups.append(TensorGroup(f"{s.name}.lora_B", LINEAR, s.d_out, rank, s.count, s.expert))
    return tuple(groups)


def adapter_param_count(
    spec: ModelSpec, targets: frozenset[str], rank: int, fused_qkv: bool = False
) -> int:
    """Σ r·(d_in + d_out) over the adapted matrices (Hu et al. 2021, §4.1)."""
    return sum(s.params(rank) for s in selected_sites(spec, targets, fused_qkv))


# the stream each adapted module reads: modules reading one stream share its tensor when nothing
# casts or drops it out (dense layers; routed experts each read their own gathered copy)
_STREAM = {"q": "attn_in", "k": "attn_in", "v": "attn_in", "o": "attn_out", "gate": "mlp_in",
           "up": "mlp_in", "down": "mlp_out", "router": "mlp_in"}  # fmt: skip
_QKV = frozenset({"q", "k", "v"})


def adapter_saved_bytes_per_token(
    spec: ModelSpec,
    targets: frozenset[str],
    rank: int,
    dropout: float,
    width: int,
    shared_input: bool = False,
    fused_qkv: bool = False,
    inputs_held: bool = False,
) -> dict[str, int]:
    """Bytes per token one decoder layer saves for the adapters' backward.

    PEFT 0.21 ``lora.Linear.forward`` casts the module input to the adapter's fp32 dtype
    (``_cast_input_dtype``) before ``lora_A(dropout(x))``: every adapted module therefore saves its
    own copy of its input, ``width`` bytes per element (2 under autocast, which casts it back to
    bf16 for the matmul; 4 without autocast), and lora_B saves lora_A's output (r values per part,
    same width). With lora_dropout > 0 each adapter's nn.Dropout keeps a mask (1 byte per element
    with CUDA's native_dropout) and its output. `shared_input`: adapters in the input's own dtype
    cast nothing, so without dropout the modules reading one stream save that one tensor (counted
    once per stream). `inputs_held`: with `shared_input`, the base linear already keeps that tensor
    (bitsandbytes < 0.43.2), so the adapters add none of their own. Routed experts see
    experts_per_token copies of each token. Measured with autograd saved-tensor hooks on a PEFT
    model (tests/test_lora.py).
    """
    per_layer = {"attention": 0, "mlp": 0}
    streams: dict[tuple[str, str], float] = {}
    for s in selected_sites(spec, targets, fused_qkv):
        modules_per_layer = s.count / max(spec.num_layers, 1)
        if s.expert:
            # count = moe_layers × E; a token passes experts_per_token of them
            modules_per_layer = spec.moe_layers * spec.experts_per_token / spec.num_layers
        part = "attention" if ".attn." in s.name else "mlp"
        per_module = rank * s.a_blocks * width
        if dropout > 0:
            per_module += s.d_in * width + s.d_in
        elif shared_input and not s.expert:
            stream = _STREAM[min(s.targets)]
            streams[part, stream] = max(
                streams.get((part, stream), 0), s.d_in * width * modules_per_layer
            )
        else:
            per_module += s.d_in * width
        per_layer[part] += int(per_module * modules_per_layer)
    for (part, _), saved in streams.items():
        per_layer[part] += 0 if inputs_held else int(saved)
    return per_layer


def frozen_inputs_not_saved_per_token(spec: ModelSpec, precision: str) -> dict[str, int]:
    """Bytes per token of one dense decoder layer that a full fine-tune saves and LoRA does not.

    A matmul saves its input only to compute its weight's gradient: a frozen projection saves
    nothing (adapters keep their own copies, adapter_saved_bytes_per_token). Keys: attention/mlp ×
    replicated (layer-boundary inputs, whole under tensor parallelism) / split (inside the block).
    The inputs are the ones activations.py counts: the normalised stream read by q,k,v and by the
    MLP's first projection(s), o_proj's input (the attention output) and down_proj's (the product).
    """
    w = act.widths(precision)
    arch = spec.architecture
    gated = spec.mlp_kind == "gated"
    fused_mlp = arch in act.FUSED_GATE_UP or not gated
    return {
        "attention_replicated": act.projection_inputs_saved(3, arch in act.FUSED_QKV, spec, w),
        "attention_split": w.a * spec.q_dim,
        "mlp_replicated": act.projection_inputs_saved(2 if gated else 1, fused_mlp, spec, w),
        "mlp_split": w.a * spec.intermediate_size,
    }


def frozen_norm_copies_not_saved_per_token(spec: ModelSpec, precision: str) -> int:
    """Bytes per token of one decoder layer's norms that a full fine-tune saves and LoRA does not.

    transformers' RMSNorm ends with ``weight * normed.to(dtype)``: the multiply saves its
    right-hand side only for the weight's gradient, so with the weight frozen the normalised copy
    (a·h on a 16-bit stream, the fp32 4·h on a fp32 one; activations.norm_saved_bytes) is not
    kept. LayerNorm's fused kernel saves its input for the input's gradient either way: 0.
    Traced: tests/test_lora.py (saved-tensor hooks on a tiny Llama, adapters bf16 and fp32).
    """
    if spec.norm_kind == "layernorm":
        return 0
    w = act.widths(precision)
    return spec.norms_per_layer * (w.a if w.r == 2 else 4) * spec.hidden_size


def qlora_format(quant: str | None) -> WeightFormat:
    """The frozen base format of --method qlora (default NF4 + double quantization)."""
    name = (quant or "nf4").lower()
    if name not in FORMATS:
        raise VramcalcError(
            f"unknown --quant {quant!r}; valid for qlora: {', '.join(QLORA_FORMATS)}"
        )
    if name not in QLORA_FORMATS:
        raise VramcalcError(
            f"--quant {name} cannot be trained with --method qlora; valid: {', '.join(QLORA_FORMATS)}"
            + (
                " (use --method lora for a 16/32-bit base)"
                if name in ("fp32", "bf16", "fp16")
                else ""
            )
        )
    return FORMATS[name]


def base_weight_bytes(
    groups: tuple[TensorGroup, ...],
    method: str,
    fmt: WeightFormat,
    quantize_head: bool = False,
    upcast_rest: bool = True,
) -> int:
    """Frozen base weights. QLoRA over bitsandbytes: the quantized linears in their format and the
    rest upcast to fp32 by peft.prepare_model_for_kbit_training (`upcast_rest`; stacks that do not
    call it, torchtune and LitGPT, keep the rest in the compute dtype); GPTQ/AWQ keep the rest in
    fp16. `quantize_head`: the output head quantized too (LitGPT's QLoRA: --quantize bnb.nf4
    replaces every nn.Linear, lm_head included)."""
    total = 0
    for g in groups:
        if quantize_head and g.kind == LM_HEAD:
            total += fmt.quantized_tensor_bytes(g.rows, g.cols) * g.count
        elif method == "qlora" and fmt.name in _BNB_FORMATS and upcast_rest:
            total += fmt.group_bytes(g) if g.kind == LINEAR else 4 * g.numel
        else:
            total += fmt.group_bytes(g)
    return total
