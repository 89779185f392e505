"""Activation memory of the Hugging Face implementations, per token and per layer.

Training: the tensors autograd saves for backward, counted op by op for the transformers decoder
layer (the analogue of Korthikanti et al. 2022, arXiv 2205.05198, Table 2, whose s·b·h·(34 + 5·a·s/h)
assumes Megatron's fused GPT layer with dropout; the layers people run with transformers differ:
RMSNorm upcasts to fp32, a gated MLP keeps four intermediates, autocast keeps one bf16 copy of the
input per projection, flash/memory-efficient attention keeps no s×s score matrix). Every count names
the op that saves it. ``a`` is the activation width (2 for 16-bit and mixed precision, 4 for fp32),
``r`` the width of the residual stream (fp32 under autocast because the weights are fp32).

Inference: the largest set of tensors alive at once inside a no-grad forward (prefill), the
residual stream beside the largest of attention workspace, MLP intermediates and logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from vramcalc.spec.model import ModelSpec

# Architectures whose projections are fused in transformers (one input cast instead of three/two).
_FUSED_QKV = {"gpt2", "phi3", "falcon", "gpt_neox"}
_FUSED_GATE_UP = {"phi3"}
# Architectures whose config enables dropout during training (GPT-2: resid/embd/attn pdrop 0.1).
_DROPOUT = {"gpt2"}
# Models whose final logits are soft-capped (Gemma-2: final_logit_softcapping = 30).
LOGIT_SOFTCAP = {"gemma2"}
# Decoder blocks whose forward keeps the attention output referenced through the MLP.
KEEPS_ATTN_OUTPUT = {"gpt2"}


@dataclass(frozen=True, slots=True)
class Widths:
    """Element widths in bytes: activations (a), residual stream (r); autocast = mixed precision."""

    a: int
    r: int
    autocast: bool


def widths(precision: str) -> Widths:
    if precision == "fp32":
        return Widths(4, 4, False)
    if precision in ("bf16-mixed", "fp16-mixed"):
        return Widths(2, 4, True)
    return Widths(2, 2, False)  # pure bf16 / fp16


def _norm_saved(spec: ModelSpec, w: Widths) -> int:
    """Bytes per token one norm saves. transformers' RMSNorm computes
    ``weight * (x.float() * rsqrt(mean(x.float()²) + eps)).to(dtype)``: pow and mul save the fp32
    input (4h) and the fp32 rsqrt (4 B); the weight multiply saves the normalised value, fp32 (4h)
    when the stream is fp32, or its 16-bit cast (a·h) when the stream is 16-bit — the fp32
    normalised value itself is then not kept (its only consumer is the cast). LayerNorm keeps its
    input (mean and rstd are per token). Traced: tiny-llama, pure bf16 and bf16-mixed."""
    h = spec.hidden_size
    if spec.norm_kind == "layernorm":
        return w.r * h
    return 4 * h + 4 + (w.a * h if w.r == 2 else 4 * h)


def _inputs_saved(n_projections: int, fused: bool, spec: ModelSpec, w: Widths) -> int:
    """Input of the projections reading one normalised stream: saved once, or once per projection
    under autocast (its casts are not cached for non-leaf tensors)."""
    copies = (1 if fused else n_projections) if w.autocast else 1
    return copies * w.a * spec.hidden_size


def attention_scores_per_token(spec: ModelSpec, seq_len: int, w: Widths) -> int:
    """Eager attention keeps the fp32 softmax output and its cast (heads × s per token)."""
    extra = 0 if w.a == 4 else w.a
    dropout = (1 + w.a) if spec.architecture in _DROPOUT else 0  # mask + output
    return spec.num_attention_heads * seq_len * (4 + extra + dropout)


def layer_saved_bytes_per_token(
    spec: ModelSpec, precision: str, seq_len: int, attention: str
) -> dict[str, int]:
    """Bytes per token that one decoder layer saves for backward, split attention / mlp / norms.

    For an MoE layer the routed tokens (experts_per_token copies) go through expert MLPs of width
    expert_intermediate_size, plus the fp32 router probabilities.
    """
    w = widths(precision)
    h, q, kv = spec.hidden_size, spec.q_dim, spec.kv_dim
    arch = spec.architecture
    # GQA: eager attention saves the repeat_kv-expanded k and v; SDPA without a mask (no padding,
    # transformers >= 5 with torch >= 2.5) runs with enable_gqa and saves them unexpanded.
    gqa = spec.kv_heads != spec.num_attention_heads
    kv_saved = q if gqa and attention == "eager" else kv
    attn = _inputs_saved(3, arch in _FUSED_QKV, spec, w)
    attn += w.a * (q + 2 * kv_saved)  # SDPA saves q, k, v
    attn += w.a * q * 2 + 4 * spec.num_attention_heads  # SDPA output + contiguous copy + logsumexp
    if attention == "eager":
        attn += attention_scores_per_token(spec, seq_len, w)
    mlp = _mlp_saved(spec, spec.intermediate_size, w)
    # Parallel blocks (spec.parallel_block: GPT-J, Phi-2, Cohere) feed one normed input to both
    # branches; counting them as sequential branches here is approximate (not traced), within the
    # few hidden-width vectors per token that the shared input saves.
    if arch in _DROPOUT:
        attn += h  # residual dropout masks (bool), after attention and after the MLP
        mlp += h
    return {"attention": attn, "mlp": mlp, "norms": spec.norms_per_layer * _norm_saved(spec, w)}


def _mlp_saved(spec: ModelSpec, inter: int, w: Widths) -> int:
    if spec.mlp_kind == "gated":
        # input(s); act saves gate output; mul saves act output and up output; down saves product
        return _inputs_saved(2, spec.architecture in _FUSED_GATE_UP, spec, w) + 4 * w.a * inter
    # plain: fc input; tanh-GELU written out (gelu_new) keeps x, tanh(x'), 0.5·x, 1+tanh; fc_out input.
    # Under autocast, pow runs in fp32, so x, tanh and 1+tanh are fp32.
    gelu = (4 + 4 + 2 + 4 + 2) * inter if w.autocast else 5 * w.a * inter
    if spec.activation not in ("gelu_new",):
        gelu = 2 * w.a * inter  # fused GELU: saves its input, fc_out saves the output
    return _inputs_saved(1, True, spec, w) + gelu


def moe_mlp_saved_per_token(spec: ModelSpec, precision: str) -> int:
    """Routed MLP of an MoE layer: k gathered copies of the token through gated experts + router."""
    w = widths(precision)
    k, inter, h = spec.experts_per_token, spec.expert_intermediate_size, spec.hidden_size
    routed = k * (w.a * h + 4 * w.a * inter)  # gathered input + expert intermediates per copy
    router = w.a * h + 4 * spec.num_experts * 2  # router input, fp32 logits and softmax
    return routed + router


@lru_cache(maxsize=1024)  # sweeps ask the same layer again and again
def layer_bytes_per_token(
    spec: ModelSpec, precision: str, seq_len: int, attention: str, moe: bool
) -> int:
    parts = layer_saved_bytes_per_token(spec, precision, seq_len, attention)
    if moe:
        parts["mlp"] = moe_mlp_saved_per_token(spec, precision)
        if spec.num_shared_experts or spec.shared_expert_intermediate_size:
            shared = (
                spec.shared_expert_intermediate_size
                or spec.num_shared_experts * spec.expert_intermediate_size
            )
            parts["mlp"] += _mlp_saved(spec, shared, widths(precision))
    return sum(parts.values())


def head_saved_bytes_per_token(spec: ModelSpec, precision: str) -> int:
    """Final norm and lm_head input (+ the embedding dropout mask for GPT-2)."""
    w = widths(precision)
    extra = spec.hidden_size if spec.architecture in _DROPOUT else 0
    return _norm_saved(spec, w) + _inputs_saved(1, True, spec, w) + extra


def training_logits_peak_bytes_per_token(spec: ModelSpec, act_bytes: int = 2) -> int:
    """Logits around the loss, at the start of backward: the fp32 log-softmax output kept by
    cross_entropy, the gradient nll_loss hands back and the gradient of log_softmax, each
    tokens × vocab × 4 bytes (transformers upcasts logits to fp32 before the loss). Gemma-2's final
    logit soft-capping (cap · tanh(logits / cap)) also keeps the tanh output in the activation
    width (traced: tiny-gemma2, bf16-mixed)."""
    softcap = act_bytes * spec.output_width if spec.architecture in LOGIT_SOFTCAP else 0
    return 12 * spec.output_width + softcap


# ---- inference (no grad) -----------------------------------------------------------------------


def inference_layer_workspace_per_token(spec: ModelSpec, act_bytes: int) -> dict[str, float]:
    """Peak transient bytes per token inside one layer of a no-grad prefill.

    attention: before RoPE returns, q,k and their rotated copies and v (2q + 3kv); later q, the
    GQA-expanded k and v, SDPA's output and its contiguous copy (q·(3 + 2·gqa)).
    mlp, gated: act(gate), up and their product alive at once (3·I). Plain with the written-out
    tanh-GELU (``gelu_new``): the fc output and three temporaries of
    0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (4·I); a fused GELU: input and output (2·I).
    MoE (transformers 5 ``grouped_mm`` experts): every routed copy at once — the gathered input (h),
    the fused gate-up output (2·I), act(gate) and the product (I each): k·(h + 4·I), plus the fp32
    router logits and probabilities. Counts from ``vramcalc trace`` of tiny-llama, tiny-gpt2 and
    tiny-mixtral (vramcalc.measure.validate.TINY_MODELS).
    """
    q, kv = spec.q_dim, spec.kv_dim
    gqa = spec.kv_heads != spec.num_attention_heads
    attn = act_bytes * max(2 * q + 3 * kv, q * (3 + (2 if gqa else 0)))
    if spec.mlp_kind == "gated":
        mlp: float = act_bytes * 3 * spec.intermediate_size
    elif spec.activation == "gelu_new":
        mlp = act_bytes * 4 * spec.intermediate_size
    else:
        mlp = act_bytes * 2 * spec.intermediate_size
    if spec.is_moe:
        k = spec.experts_per_token
        moe = act_bytes * k * (spec.hidden_size + 4 * spec.expert_intermediate_size)
        moe += 8 * spec.num_experts
        mlp = max(mlp if spec.dense_layers else 0, moe)
    return {"attention": attn, "mlp": mlp}


def inference_residual_per_token(spec: ModelSpec, act_bytes: int) -> int:
    """Hidden states alive beside a layer's workspace: the embedding output (the model's forward
    keeps ``inputs_embeds`` referenced through the layer loop), the layer's input (held by the
    caller), the residual sum after attention and its normalised copy: 4·h (traced). GPT-2's block
    also keeps its ``attn_output`` referenced while the MLP runs: 5·h."""
    return (5 if spec.architecture in KEEPS_ATTN_OUTPUT else 4) * act_bytes * spec.hidden_size


# ---- Issue 13 part C: where the activation model is approximate ------------------------------
def approximation_notes(spec: ModelSpec) -> list[str]:
    """What the per-layer activation counts above do not model exactly for `spec`, to print with
    every estimate that uses them (empty for the transformer layers they were checked on)."""
    if not spec.ssm_layers:
        return []
    return [
        f"approximate activations: the {spec.ssm_layers} state-space (Mamba) layers are sized as "
        "transformer layers of the same width; their selective-scan / SSD workspaces (the "
        "per-step states of the PyTorch path, the chunked scan of the fused kernels) are not "
        "modelled exactly"
    ]
