"""Memory terms: each returns its bytes together with the formula (numbers substituted) that made them.

A formula is arithmetic a reader (and tests/test_explain.py) can evaluate: numbers with thousands
separators, ``×``, ``÷`` (rounded up), ``+``, ``−``, ``max(...)``; words are labels and ``[...]`` holds
remarks. The test parses every formula and checks it gives its component's bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from vramcalc.core.results import Component, ComponentName
from vramcalc.spec.model import ModelSpec
from vramcalc.spec.params import LINEAR, TensorGroup, tensor_groups
from vramcalc.spec.quant import WeightFormat


@dataclass(frozen=True, slots=True)
class Term:
    """Bytes of one memory term with the arithmetic that produced them and what they hold."""

    bytes: int
    formula: str = ""
    note: str = ""

    def noted(self, note: str) -> Term:
        return Term(self.bytes, self.formula, note)

    def component(self, name: ComponentName, cluster_bytes: int | None = None) -> Component:
        return Component(
            name=name,
            bytes=self.bytes,
            note=self.note,
            formula=self.formula,
            cluster_bytes=cluster_bytes,
        )


ZERO = Term(0, "0")


def ceil_div(n: float, d: int) -> int:
    return math.ceil(n / d)


def n(x: float) -> str:
    """A number as formulas print it: thousands separators, no trailing .0."""
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
    from vramcalc.spec.params import EMBEDDING, LM_HEAD, ROUTER

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


def logits_term(
    spec: ModelSpec, tokens: int, act_bytes: int, tp: int, loss_rows: float = 1.0
) -> Term:
    """Logits around the loss at the start of backward: the fp32 log-softmax output kept by
    cross_entropy, the gradient nll_loss hands back and the gradient of log_softmax, each
    tokens × vocab × 4 bytes (transformers upcasts logits to fp32 before the loss); Gemma-2's final
    logit soft-capping (cap · tanh(logits / cap)) also keeps the tanh output in the activation width
    (traced: tiny-gemma2, bf16-mixed). `loss_rows` < 1: only that share of the rows is alive at once
    (chunked or fused cross-entropy, conventions.loss_rows)."""
    from vramcalc.core.activations import LOGIT_SOFTCAP

    per_value = 12 + (act_bytes if spec.architecture in LOGIT_SOFTCAP else 0)
    rows = tokens if loss_rows >= 1 else math.ceil(tokens * loss_rows)
    text = f"{n(rows)} tok × {per_value} B × {n(spec.output_width)} outputs"
    if per_value != 12:
        text += " [fp32 log-softmax and two fp32 gradients: 12 B, soft-capping's tanh output: "
        text += f"{act_bytes} B]"
    note = "fp32 log-softmax output and two vocab-sized gradients at the loss"
    return sharded(rows * per_value * spec.output_width, tp, text).noted(note)


def dequant_term(spec: ModelSpec, compute_width: int, tp: int) -> Term:
    """The largest linear weight dequantized to the compute dtype for one matmul (QLoRA)."""
    largest = max((g.per_tensor_numel for g in tensor_groups(spec) if g.kind == LINEAR), default=0)
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
    from vramcalc.core.inference import runtime_overhead_components
    from vramcalc.sources.calibration import runtime

    fraction = runtime().allocator_slack_fraction
    slack = Term(
        int(fraction * dynamic),
        f"{fraction:g} × max({n(acts_logits)} largest activations + logits of backward, "
        f"{n(grads_all)} all gradients)",
        f"{fraction:.0%} of activations/KV/gradients held as reserved-but-free blocks",
    )
    context = runtime_overhead_components(0)[0]  # inference's component: one source for both
    return [context, slack.component(ComponentName.allocator_slack)]
