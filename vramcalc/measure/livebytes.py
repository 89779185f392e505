"""Peak of live tensor bytes of one process running real tensors (a rank of a distributed job).

The CPU has no caching allocator to ask, so the rank counts storages itself, the way the fake-tensor
trace does (trace.py): a ``TorchDispatchMode`` sees every tensor an op returns, keeps a weak
reference to its untyped storage, and after every op sums the current size of the storages still
alive. Summing sizes at each op (rather than adding a storage's size once when it appears) is what
makes the count right for engines that free memory without freeing the storage: FSDP2 releases an
unsharded parameter with ``untyped_storage().resize_(0)`` and grows it again before the next
all-gather (torch/distributed/fsdp/_fully_shard/_fsdp_common.py ``free_storage`` /
``alloc_storage``), which no op reports.

What it counts: every storage created while the mode is active and still referenced — parameters
(the local shard of a DTensor), gradients, optimizer state, DeepSpeed's flat fp32 partitions and
buckets, saved activations, logits, the all-gather and reduce-scatter buffers the engines allocate
with torch ops, and op temporaries. A ``DTensor`` output is counted through its local tensor.
What it does not count: memory the communication library allocates outside torch (NCCL/gloo
internal buffers), the allocator's rounding and fragmentation (on a GPU ``max_memory_reserved`` −
``max_memory_allocated``), the CUDA context, and temporaries an op allocates and frees inside one
kernel (including the inner ops of a DTensor op, which run below the mode; only their results are
seen).
"""

from __future__ import annotations

import weakref
from typing import Any

CATEGORIES = (
    "parameters",
    "gradients",
    "master_weights",
    "optimizer_state",
    "activations",
    "other",
)


def local(t: Any) -> Any:
    """The tensor whose storage holds `t`'s bytes on this rank (a DTensor's local shard)."""
    inner = getattr(t, "_local_tensor", None)
    return inner if inner is not None else t


class LiveBytes:
    """Live storage bookkeeping for one measured run; `peak_bytes` is the largest sum seen."""

    def __init__(self) -> None:
        self._refs: dict[int, weakref.ref[Any]] = {}
        self._seen: dict[int, int] = {}  # id(storage) -> uid, pruned when the storage dies
        self._next = 0
        self.measuring = False
        self.peak_bytes = 0
        self.peak_sizes: dict[int, int] = {}
        self.phase = "setup"
        self.peak_phase = ""
        self.sets: dict[str, set[int]] = {c: set() for c in CATEGORIES}

    def add(self, t: Any) -> int | None:
        import torch

        t = local(t)
        if not isinstance(t, torch.Tensor) or t.device.type == "meta":
            return None
        try:
            st = t.untyped_storage()
        except (RuntimeError, NotImplementedError):  # a subclass without storage
            return None
        key = id(st)
        uid = self._seen.get(key)
        if uid is not None and self._refs.get(uid) is not None and self._refs[uid]() is st:
            return uid
        uid = self._next
        self._next += 1
        self._seen[key] = uid
        self._refs[uid] = weakref.ref(st, self._dropper(uid, key))
        return uid

    def _dropper(self, uid: int, key: int) -> Any:
        return lambda _ref: self._drop(uid, key)

    def _drop(self, uid: int, key: int) -> None:
        self._refs.pop(uid, None)
        if self._seen.get(key) == uid:
            del self._seen[key]

    def sizes(self) -> dict[int, int]:
        out = {}
        for uid, ref in list(self._refs.items()):
            st = ref()
            if st is not None:
                out[uid] = int(st.nbytes())
        return out

    def sample(self) -> None:
        if not self.measuring:
            return
        sizes = self.sizes()
        current = sum(sizes.values())
        if current > self.peak_bytes:
            self.peak_bytes = current
            self.peak_sizes = sizes
            self.peak_phase = self.phase

    def start(self) -> None:
        self.measuring = True
        self.peak_bytes = 0
        self.sample()

    def mark(self, category: str, tensors: Any) -> None:
        for t in tensors:
            uid = self.add(t)
            if uid is not None:
                self.sets[category].add(uid)

    def breakdown(self) -> dict[str, int]:
        out = dict.fromkeys(CATEGORIES, 0)
        for uid, nbytes in self.peak_sizes.items():
            cat = next((c for c in CATEGORIES[:-1] if uid in self.sets[c]), "other")
            out[cat] += nbytes
        return out

    def mode(self) -> Any:
        """The dispatch mode that registers every op's outputs and samples the live sum."""
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_leaves

        tracker = self

        class Allocations(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
                out = func(*args, **(kwargs or {}))
                for t in tree_leaves(out):
                    if isinstance(t, torch.Tensor):
                        tracker.add(t)
                tracker.sample()
                return out

        return Allocations()
