"""Exact peak of live tensor bytes of the reference implementation, on fake tensors (no GPU).

The Hugging Face transformers model is built from the preset's config.json values under torch's
``FakeTensorMode`` (tensors with shapes, dtypes and storages but no data), and the workload the
estimate describes runs under a ``TorchDispatchMode`` that sees every storage the ops allocate and,
through a weak-reference finaliser, the moment each one is freed. The peak of the sum of live storage
bytes is what ``torch.cuda.max_memory_allocated`` would report before the caching allocator rounds
blocks up (512 B granularity).

Where the CPU would run different kernels from a GPU the trace follows the GPU, and says so:

* **Attention** (``--attention flash``): ``scaled_dot_product_attention`` is replaced by a stand-in
  that allocates what FlashAttention-2 / memory-efficient SDPA allocate on a GPU — the output and
  the fp32 log-sum-exp per query (b·heads·s·4 bytes), both saved for backward — and never the s×s
  score matrix; its backward allocates dq, dk, dv. ``--attention eager`` runs transformers' eager
  attention unchanged (it keeps the scores).
* **Masks**: transformers would build a b×s×s packed-sequence mask because it cannot read fake
  tensors' position ids; the trace tells it the rows are not packed, as a GPU run finds out.
* **Autocast** runs on the CPU (``torch.autocast("cpu")``), whose op lists differ from CUDA's: CUDA
  autocast runs ``pow``, ``rsqrt``, ``exp``, ``layer_norm`` on fp32 copies of 16-bit inputs and
  ``softmax`` / ``log_softmax`` with an fp32 output. A function mode applies those CUDA rules
  (torch/csrc/autograd/... ``autocast_mode.cpp``, the ``fp32`` and ``fp32_set_opt_dtype`` lists).

Categories of the bytes alive at the peak: parameters, gradients, optimizer_state,
autocast_weight_copies (16-bit weight copies autocast caches), kv_cache, logits (tensors whose last
dimension is the vocabulary), activations (tensors autograd saved for backward) and temporaries
(everything else: workspace of the op being run, optimizer temporaries).
"""

from __future__ import annotations

import itertools
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from vramcalc.errors import VramcalcError

from .workload import Workload, build_model, param_dtype_name, run_inference, run_training

CATEGORIES = (
    "parameters",
    "gradients",
    "optimizer_state",
    "autocast_weight_copies",
    "kv_cache",
    "logits",
    "activations",
    "temporaries",
)

GPU_KERNEL_NOTES = {
    "flash": "attention: scaled_dot_product_attention traced as the GPU's flash/memory-efficient "
    "kernel (output + fp32 log-sum-exp saved; no s×s scores)",
    "eager": "attention: transformers' eager attention as written (keeps the s×s scores)",
}
AUTOCAST_NOTE = (
    "autocast: CUDA's fp32 op list applied on the CPU (pow, rsqrt, exp, layer_norm on fp32 copies; "
    "softmax/log_softmax with fp32 output)"
)


@dataclass
class TraceResult:
    """Peak of live tensor bytes over the measured window, split by category at that moment."""

    peak_bytes: int
    by_category: dict[str, int]
    phase: str
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "peak_bytes": self.peak_bytes,
            "by_category": self.by_category,
            "phase": self.phase,
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
        }


class _Tracker:
    """Live storage bookkeeping: uid → bytes, freed by a finaliser on the untyped storage."""

    def __init__(self) -> None:
        from torch.utils.weak import WeakIdKeyDictionary

        self._uid_of: Any = WeakIdKeyDictionary()
        self._ids = itertools.count()
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0
        self.peak_live: dict[int, int] = {}
        self.peak_phase = ""
        self.phase = "setup"
        self.measuring = False
        self.sets: dict[str, set[int]] = {c: set() for c in CATEGORIES}
        self.vocab = -1
        self.op = ""  # the op being run (for debugging what allocated a storage)
        self.shapes: dict[int, tuple[tuple[int, ...], str, str]] = {}

    def uid(self, t: Any) -> int:
        st = t.untyped_storage()
        uid = self._uid_of.get(st)
        if uid is None:
            uid = next(self._ids)
            self._uid_of[st] = uid
            nbytes = int(st.nbytes())
            self.live[uid] = nbytes
            self.shapes[uid] = (tuple(t.shape), str(t.dtype).removeprefix("torch."), self.op)
            self.current += nbytes
            weakref.finalize(st, self._free, uid)
            if t.dim() >= 2 and t.shape[-1] == self.vocab:
                self.sets["logits"].add(uid)
            if self.measuring and self.current > self.peak:
                self.peak = self.current
                self.peak_live = dict(self.live)
                self.peak_phase = self.phase
        return uid

    def _free(self, uid: int) -> None:
        self.current -= self.live.pop(uid, 0)

    def start(self) -> None:
        self.measuring = True
        self.peak = self.current
        self.peak_live = dict(self.live)
        self.peak_phase = self.phase

    def mark(self, category: str, tensors: Any) -> None:
        import torch

        for t in tensors:
            if isinstance(t, torch.Tensor):
                self.sets[category].add(self.uid(t))

    def breakdown(self) -> dict[str, int]:
        out = dict.fromkeys(CATEGORIES, 0)
        for uid, nbytes in self.peak_live.items():
            cat = next((c for c in CATEGORIES if uid in self.sets[c]), "temporaries")
            out[cat] += nbytes
        return out


def _modes(tracker: _Tracker, wl: Workload) -> list[Any]:
    """The dispatch mode that sees allocations and the function mode applying the GPU's rules."""
    import torch
    import torch.nn.functional as F
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    params = tracker.sets["parameters"]
    copies = tracker.sets["autocast_weight_copies"]
    to_copy = torch.ops.aten._to_copy.default

    class Allocations(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            out = func(*args, **(kwargs or {}))
            tracker.op = str(func)
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor):
                    uid = tracker.uid(t)
                    if (
                        func is to_copy
                        and isinstance(args[0], torch.Tensor)
                        and tracker.uid(args[0]) in params
                    ):
                        copies.add(uid)
            return out

    class FlashSDPA(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v):  # type: ignore[no-untyped-def]
            out = q.new_empty((*q.shape[:-1], v.shape[-1]))
            lse = q.new_empty(q.shape[:-1], dtype=torch.float32)
            ctx.save_for_backward(q, k, v, out, lse)
            return out

        @staticmethod
        def backward(ctx, grad):  # type: ignore[no-untyped-def]
            q, k, v, _out, _lse = ctx.saved_tensors
            return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)

    low = (torch.bfloat16, torch.float16)

    def sdpa(query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        if torch.is_autocast_enabled("cpu"):
            dt = torch.get_autocast_dtype("cpu")
            query, key, value = (x.to(dt) for x in (query, key, value))
        with torch.autocast("cpu", enabled=False):
            return FlashSDPA.apply(query, key, value)

    def fp32_inputs(fn: Any) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if torch.is_autocast_enabled("cpu"):
                args = tuple(
                    a.float() if isinstance(a, torch.Tensor) and a.dtype in low else a for a in args
                )
            return fn(*args, **kwargs)

        return wrapped

    def fp32_output(fn: Any) -> Any:
        def wrapped(x: Any, *args: Any, **kwargs: Any) -> Any:
            if torch.is_autocast_enabled("cpu") and x.dtype in low and kwargs.get("dtype") is None:
                kwargs["dtype"] = torch.float32
            return fn(x, *args, **kwargs)

        return wrapped

    patches: list[tuple[Any, str, Any]] = [
        (torch, name, fp32_inputs(getattr(torch, name))) for name in ("pow", "rsqrt", "exp")
    ]
    patches.append((F, "layer_norm", fp32_inputs(F.layer_norm)))
    patches += [(F, name, fp32_output(getattr(F, name))) for name in ("softmax", "log_softmax")]
    if wl.attention == "flash":
        patches.append((F, "scaled_dot_product_attention", sdpa))
    # transformers looks for packed sequences in position_ids and, when it cannot read the values
    # (it treats fake tensors as a trace being compiled), builds a b×s×s boolean mask; on a GPU the
    # values are read, no packing is found and SDPA runs causal without a mask. The trace runs one
    # sequence per row, as the estimate does.
    import transformers.masking_utils as masking

    patches.append((masking, "find_packed_sequence_indices", lambda *a, **k: None))
    return [Allocations(), _Patched(patches)]


class _Patched:
    """Swap module attributes for the duration of a block (transformers looks them up per call,
    so this reaches the forward pass and the recomputation under gradient checkpointing alike)."""

    def __init__(self, patches: list[tuple[Any, str, Any]]) -> None:
        self.patches = patches
        self.saved: list[tuple[Any, str, Any]] = []

    def __enter__(self) -> _Patched:
        for owner, name, value in self.patches:
            self.saved.append((owner, name, getattr(owner, name)))
            setattr(owner, name, value)
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, value in reversed(self.saved):
            setattr(owner, name, value)
        self.saved.clear()


def trace(wl: Workload) -> TraceResult:
    """Run `wl` on fake tensors and return the exact peak of live tensor bytes."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    if wl.spec.is_moe and wl.kind == "training" and wl.precision != "bf16":
        raise VramcalcError(
            f"trace: training the MoE model {wl.spec.name} needs --precision bf16 (torch's "
            "grouped_mm, which transformers' experts use, has no CPU rule for fp32 inputs)"
        )
    t0 = time.perf_counter()
    tracker = _Tracker()
    tracker.vocab = wl.spec.vocab_size
    notes = [GPU_KERNEL_NOTES[wl.attention]]
    if wl.kind == "training" and wl.precision.endswith("-mixed"):
        notes.append(AUTOCAST_NOTE)
    fake = FakeTensorMode(allow_non_fake_inputs=False)
    allocations, rules = _modes(tracker, wl)
    saved = tracker.sets["activations"]

    def pack(t: Any) -> Any:
        saved.add(tracker.uid(t))
        return t

    def phase(name: str) -> None:
        tracker.phase = name
        if name == "step 1: forward" or (wl.kind == "inference" and name == "prefill"):
            tracker.start()

    with fake, allocations, rules:
        model = build_model(wl, "cpu")
        tracker.mark("parameters", list(model.parameters()) + list(model.buffers()))
        if wl.kind == "inference":
            out, scores = run_inference(model, wl, "cpu", phase)
            cache = out.past_key_values
            tracker.mark(
                "kv_cache",
                [t for layer in cache.layers for t in (layer.keys, layer.values)],
            )
            del out, cache, scores
        else:

            def on_step_end(opt: Any, params: list[Any]) -> None:
                tracker.mark("gradients", [p.grad for p in params if p.grad is not None])
                tracker.mark(
                    "optimizer_state",
                    [t for state in opt.state.values() for t in state.values()],
                )

            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                run_training(model, wl, "cpu", phase, steps=2, on_step_end=on_step_end)
    by_category = tracker.breakdown()
    notes.append(f"weights in {param_dtype_name(wl)}; peak during {tracker.peak_phase}")
    return TraceResult(
        peak_bytes=tracker.peak,
        by_category=by_category,
        phase=tracker.peak_phase,
        seconds=time.perf_counter() - t0,
        notes=notes,
    )
