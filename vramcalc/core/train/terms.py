"""Memory terms: each returns its bytes together with the formula (numbers substituted) that made them.

A formula is arithmetic a reader (and tests/test_explain.py) can evaluate: numbers with thousands
separators, ``×``, ``÷`` (rounded up), ``+``, ``−``, ``max(...)``; words are labels and ``[...]`` holds
remarks. The test parses every formula and checks it gives its component's bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from vramcalc.core.activations import LOGIT_SOFTCAP
from vramcalc.core.results import Component, ComponentName
from vramcalc.sources.calibration import runtime
from vramcalc.spec.model import ModelSpec
from vramcalc.spec.params import EMBEDDING, LINEAR, LM_HEAD, ROUTER, TensorGroup, tensor_groups
from vramcalc.spec.quant import WeightFormat


class Term(NamedTuple):
    """Bytes of one memory term with the arithmetic that produced them and what they hold.
    (A NamedTuple: built several times per estimate, and a tuple is the cheapest to build.)"""

    bytes: int
    formula: str = ""
    note: str = ""

    def noted(self, note: str) -> Term:
        return Term(self[0], self[1], note)

    def component(self, name: ComponentName, cluster_bytes: int | None = None) -> Component:
        if cluster_bytes is None:
            return Component(name=name, bytes=self[0], note=self[2], formula=self[1])
        return Component(
            name=name, bytes=self[0], note=self[2], formula=self[1], cluster_bytes=cluster_bytes
        )


ZERO = Term(0, "0")


def ceil_div(n: float, d: int) -> int:
    return math.ceil(n / d)


def n(x: float) -> str:
    """A number as formulas print it: thousands separators, no trailing .0."""
    if type(x) is int:
        return f"{x:,}"
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,}"


def sharded(total: float, degree: int, text: str) -> Term:
    """`total` bytes divided over `degree` ranks (rounded up), or whole when degree is 1."""
    if degree > 1:
        return Term(ceil_div(total, degree), f"{text} ÷ {degree}")
    return Term(math.ceil(total), text)


@dataclass(frozen=True, slots=True)
class Finetune:
    """What is trained: everything, or LoRA adapters over a (possibly quantized) frozen base."""

    method: str = "full"
    rank: int = 16
    alpha: float = 32.0
    targets: frozenset[str] = frozenset()
    dropout: float = 0.0
    base_format: WeightFormat | None = None

    @property
    def full(self) -> bool:
        return self.method == "full"


@lru_cache(maxsize=512)
def autocast_copy_bytes(spec: ModelSpec) -> int:
    """16-bit copies autocast caches of the weights that matmuls read (linear layers, routers and the
    output projection, which is the embedding matrix when tied); embeddings and norms run uncast."""

    total = 0
    for g in tensor_groups(spec):
        if g.kind in (LINEAR, LM_HEAD, ROUTER) or (
            g.kind == EMBEDDING and spec.tie_word_embeddings
        ):
            total += 2 * g.numel
    return total


@lru_cache(maxsize=512)
def autocast_copies(spec: ModelSpec, checkpointing: bool) -> tuple[Term, Term]:
    """Autocast weight copies alive (during the forward and start of backward; at its end).

    Under full checkpointing the layers' copies are not saved: autocast's cache is cleared when the
    forward leaves autocast, so only the output projection's copy (saved by the lm_head matmul
    outside the checkpointed layers) reaches backward; each recomputed layer recasts its own
    weights. By the end of backward the copies saved by the other layers have been released with
    their graph nodes: one layer's remain (traced: tiny-llama, tiny-mistral, tiny-gpt2).
    """
    every = autocast_copy_bytes(spec)
    head = 2 * spec.head_numel
    one_layer = max(every - head, 0) // spec.num_layers
    note = "16-bit copies of matmul weights kept by autocast for backward"
    if checkpointing:
        start = Term(
            head,
            f"2 B × {n(spec.head_numel)} lm_head values [checkpointed layers recast theirs]",
            note,
        )
    else:
        start = Term(every, f"2 B × {n(every // 2)} matmul weights [linear, router, lm_head]", note)
    end = Term(
        one_layer,
        f"(2 B × {n(every // 2)} matmul weights − {n(head)} lm_head) ÷ {spec.num_layers} layers "
        "[one layer's copies left at the end of backward]",
        note,
    )
    return start, end


_LOGITS_NOTE = "fp32 log-softmax output and two vocab-sized gradients at the loss"


def logits_term(spec: ModelSpec, tokens: int, act_bytes: int, tp: int) -> Term:
    """Logits around the loss at the start of backward: the fp32 log-softmax output kept by
    cross_entropy, the gradient nll_loss hands back and the gradient of log_softmax, each
    tokens × vocab × 4 bytes (transformers upcasts logits to fp32 before the loss); Gemma-2's final
    logit soft-capping (cap · tanh(logits / cap)) also keeps the tanh output in the activation width
    (traced: tiny-gemma2, bf16-mixed)."""
    per_token, text = _logits_per_token(spec, act_bytes, tp)
    total = tokens * per_token
    if tp > 1:
        return Term(ceil_div(total, tp), f"{tokens:,} tok{text}", _LOGITS_NOTE)
    return Term(total, f"{tokens:,} tok{text}", _LOGITS_NOTE)


@lru_cache(maxsize=512)
def _logits_per_token(spec: ModelSpec, act_bytes: int, tp: int) -> tuple[int, str]:
    """Bytes per token of the logits buffers (before ÷ tp) and the formula after the token count."""
    softcap = spec.architecture in LOGIT_SOFTCAP
    per_value = 12 + act_bytes if softcap else 12
    text = f" × {per_value} B × {spec.output_width:,} outputs"
    if softcap:
        text += f" [fp32 log-softmax and two fp32 gradients: 12 B, soft-capping's tanh output: {act_bytes} B]"
    return per_value * spec.output_width, text + (f" ÷ {tp}" if tp > 1 else "")


def dequant_term(spec: ModelSpec, compute_width: int, tp: int, head: bool = False) -> Term:
    """The largest linear weight dequantized to the compute dtype for one matmul (QLoRA); with a
    quantized output head (`head`) that matrix too."""
    kinds = (LINEAR, LM_HEAD) if head else (LINEAR,)
    largest = max((g.per_tensor_numel for g in tensor_groups(spec) if g.kind in kinds), default=0)
    t = sharded(
        largest * compute_width, tp, f"largest linear {n(largest)} values × {compute_width} B"
    )
    return t.noted("one quantized linear dequantized to bf16 for its matmul")


def group_numel(groups: tuple[TensorGroup, ...], expert: bool | None = None) -> int:
    return sum(g.numel for g in groups if expert is None or g.expert == expert)


def runtime_terms(dynamic: int, acts_logits: int, grads_all: int) -> list[Component]:
    """CUDA context (fixed, as inference counts it) and caching-allocator slack: a fraction of the
    largest dynamic bytes, since the allocator keeps the blocks it reserved at the largest backward
    moment (CUDACachingAllocator frees cached blocks only on empty_cache() or an allocation failure)."""
    rt = runtime()
    if not _CONTEXT or _CONTEXT[0] is not rt:
        from vramcalc.core.inference import runtime_overhead_components

        fraction = rt.allocator_slack_fraction
        note = f"{fraction:.0%} of activations/KV/gradients held as reserved-but-free blocks"
        _CONTEXT[:] = [rt, runtime_overhead_components(0)[0], fraction, f"{fraction:g}", note]
    _, context, fraction, text, note = _CONTEXT
    slack = Component(
        name=ComponentName.allocator_slack,
        bytes=int(fraction * dynamic),
        note=note,
        formula=f"{text} × max({acts_logits:,} [largest activations and logits of backward], "
        f"{grads_all:,} [all gradients])",
    )
    return [context, slack]


# (calibration, inference's CUDA-context component, slack fraction, its text, its note): built
# once per calibration (runtime() returns a new object when the calibration file changes)
_CONTEXT: list[Any] = []
