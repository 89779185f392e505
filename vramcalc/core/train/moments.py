"""The moments of a training step whose largest is the peak (PyTorch's eager autograd)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class Moment:
    """What is alive at one moment of the backward pass (bytes), besides the static model states."""

    phase: str
    copies: float
    activations: float
    logits: float
    gradients: float
    temporaries: float
    # the largest activations + logits of any backward moment, not only this one: the caching
    # allocator keeps the blocks it reserved there (CUDACachingAllocator releases cached blocks only
    # on empty_cache() or an allocation failure), so the allocator slack is sized on it
    working_set: float = 0.0

    @property
    def dynamic(self) -> float:
        return self.copies + self.activations + self.logits + self.gradients + self.temporaries


@lru_cache(maxsize=1024, typed=True)  # pure in its arguments; returns a frozen Moment
def backward_peak_moment(
    *,
    copies: float,
    copies_end: float,
    acts_start: float,
    recompute: float,
    layer_ws: float,
    logits: float,
    grads_persist: float,
    grads_head: float,
    grads_all: float,
    tied_grad: float,
    late: float = 0.0,
) -> Moment:
    """The largest of three candidate moments of the backward pass.

    * start (the loss): every saved activation and the logits buffers;
    * the last layer: the logits are gone, lm_head's gradient has arrived, the top layer is
      recomputed when checkpointing (its input is the checkpointed tensor: not counted twice);
    * the end (first layer): all gradients and one layer's activations; with tied embeddings the
      embedding's dense V×h gradient is alive beside the lm_head's before AccumulateGrad adds them
      (traced: gemma-2-9b and tiny-qwen2, sgd, short sequences).

    With gradient accumulation the gradients of earlier micro-batches are alive throughout.
    `late`: bytes allocated at the first gradient and freed when backward ends (DeepSpeed ZeRO-1/2's
    reduce bucket), alive at the last two moments only; the caller adds them to the chosen one.
    """
    moments = (
        Moment("backward start (loss)", copies, acts_start, logits, grads_persist, 0),
        Moment(
            "backward (last layer)",
            copies,
            acts_start + recompute,
            0,
            grads_persist or grads_head,
            0,
        ),
        Moment("backward end (first layer)", copies_end, layer_ws, 0, grads_all, tied_grad),
    )
    peak = max(moments, key=lambda m: m.dynamic + (late if m is not moments[0] else 0))
    return replace(peak, working_set=max(m.activations + m.logits for m in moments))
