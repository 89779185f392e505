"""FLOPs of a model per token: one convention for `cost` and `rlhf`.

**Model FLOPs** follow PaLM (Chowdhery et al. 2022, arXiv 2204.02311, Appendix B), the count MFU
is defined on:

* ``N`` = the parameters a token multiplies: the active parameters minus the input lookups (token
  embeddings when untied, learned positions); the output head counts, tied or not; a mixture of
  experts counts only the experts a token is routed to.
* a matmul with ``N`` weights costs ``2·N`` FLOPs per token forward and ``4·N`` backward (the
  gradients of its input and of its weights): ``6·N`` per trained token (Kaplan et al. 2020,
  arXiv 2001.08361, §2.1);
* attention's score and value products add ``4·L·H·Q·T`` forward and ``12·L·H·Q·T`` trained, with
  ``H·Q`` = query heads × head dim and ``T`` the context each token attends to (the sequence, or
  the window of a sliding-window layer). PaLM counts the whole T×T square, masked half included.

Variants, each written once here:

* frozen weights (LoRA, QLoRA): no weight gradients, ``4·N`` per trained token; attention has no
  weights, so its backward (gradients of Q, K and V) stays ``8·L·H·Q·T``. Adapter FLOPs are left out.
* **hardware FLOPs** with full activation recomputation: the forward runs twice, one more
  ``2·N + 4·L·H·Q·T`` per token (Narayanan et al. 2021, arXiv 2104.04473, §5.1: 96·B·s·l·h² vs
  72·B·s·l·h² without recomputation, i.e. 8·N against 6·N); MFU counts model FLOPs only.
* serving (``prefill_flops``, ``decode_step_flops``): what a causal kernel executes, half of the
  P×P square in prefill and the whole cached context in each decode step; these time a request
  and are not MFU's model FLOPs.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from vramcalc.spec.model import ModelSpec
from vramcalc.spec.params import EMBEDDING, POSITION, active_param_count, tensor_groups

PFLOP_S_DAY = 1e15 * 86400  # one petaflop/s-day, the unit of Brown et al. 2020, Table D.1


def matmul_params(spec: ModelSpec) -> int:
    """Parameters a token multiplies: active parameters minus the input embedding lookups (token
    embeddings when untied, learned positions). The tied output head still counts."""
    lookups = 0
    for g in tensor_groups(spec):
        if g.kind == POSITION or (g.kind == EMBEDDING and not spec.tie_word_embeddings):
            lookups += g.numel
    return active_param_count(spec) - lookups


def attention_context_sum(spec: ModelSpec, seq_len: int) -> int:
    """Σ over layers of the context each token attends to (T, or the sliding window)."""
    windowed = min(spec.windowed_layers, spec.kv_layers)  # a hybrid's state layers attend to none
    window = min(seq_len, spec.sliding_window or seq_len)
    return (spec.kv_layers - windowed) * seq_len + windowed * window


@dataclass(frozen=True, slots=True)
class PerToken:
    """FLOPs per token: the weights' matmuls and attention's, with the arithmetic behind them."""

    dense: float
    attention: float
    formula: str

    @property
    def total(self) -> float:
        return self.dense + self.attention


def forward_flops_per_token(spec: ModelSpec, seq_len: int) -> PerToken:
    """One forward pass: 2·N + 4·L·H·Q·T per token (a third of PaLM Appendix B's training count)."""
    n, ctx = matmul_params(spec), attention_context_sum(spec, seq_len)
    return PerToken(
        dense=2.0 * n,
        attention=4.0 * spec.q_dim * ctx,
        formula=f"(2 × {n:,} + 4 × {spec.q_dim:,} × {ctx:,})",
    )


def training_flops_per_token(
    spec: ModelSpec, seq_len: int, *, frozen_weights: bool = False, recompute: bool = False
) -> PerToken:
    """One trained token: 6·N + 12·L·H·Q·T model FLOPs (PaLM Appendix B), 4·N + 12·L·H·Q·T with
    frozen weights (LoRA: no weight gradients); ``recompute`` (full activation checkpointing)
    adds a forward, 2·N + 4·L·H·Q·T, giving hardware FLOPs (Narayanan et al. 2021, §5.1)."""
    n, ctx = matmul_params(spec), attention_context_sum(spec, seq_len)
    dense = (4 if frozen_weights else 6) + (2 if recompute else 0)
    attention = 12 + (4 if recompute else 0)
    return PerToken(
        dense=float(dense * n),
        attention=float(attention * spec.q_dim * ctx),
        formula=f"({dense} × {n:,} + {attention} × {spec.q_dim:,} × {ctx:,})",
    )


class TrainingFlops(BaseModel):
    model_config = ConfigDict(frozen=True)

    tokens: int
    seq_len: int
    matmul_params: int
    dense_flops: float = Field(description="6·N·D (4·N·D with frozen weights)")
    attention_flops: float = Field(description="12·L·H·Q·T·D")
    model_flops: float = Field(description="dense + attention: what MFU counts")
    hardware_flops: float = Field(description="model FLOPs × 4/3 with full recomputation")

    @property
    def petaflop_s_days(self) -> float:
        return self.model_flops / PFLOP_S_DAY


def training_flops(
    spec: ModelSpec,
    tokens: int,
    seq_len: int,
    grad_checkpointing: str = "none",
    *,
    frozen_weights: bool = False,
) -> TrainingFlops:
    """FLOPs of training every weight on `tokens` tokens of `seq_len`-token sequences (PaLM
    Appendix B); full recomputation re-runs the forward: 8·N + 16·L·H·Q·T, i.e. ×4/3.
    `frozen_weights` (LoRA, QLoRA): no weight gradients, 4·N + 12·L·H·Q·T (as rlhf counts it)."""
    model = training_flops_per_token(spec, seq_len, frozen_weights=frozen_weights)
    hardware = training_flops_per_token(
        spec, seq_len, frozen_weights=frozen_weights, recompute=grad_checkpointing == "full"
    )
    return TrainingFlops(
        tokens=tokens,
        seq_len=seq_len,
        matmul_params=matmul_params(spec),
        dense_flops=model.dense * tokens,
        attention_flops=model.attention * tokens,
        model_flops=model.total * tokens,
        hardware_flops=hardware.total * tokens,
    )


def prefill_flops(spec: ModelSpec, batch: int, prompt_tokens: int) -> float:
    """Prefill of `batch` prompts: B·(2·N·P + 2·L·H·Q·P·P) for full attention (a causal kernel does
    QKᵀ and AV over half the P×P square; a window caps each row's context)."""
    ctx = attention_context_sum(spec, prompt_tokens)
    return batch * (
        2.0 * matmul_params(spec) * prompt_tokens + 2.0 * spec.q_dim * ctx * prompt_tokens
    )


def decode_step_flops(spec: ModelSpec, batch: int, context: int) -> float:
    """One decode step of `batch` sequences at `context` cached tokens: B·(2·N + 4·L·H·Q·c)."""
    return batch * (
        2.0 * matmul_params(spec) + 4.0 * spec.q_dim * attention_context_sum(spec, context)
    )
