"""What would make a training job fit: the cheap changes tried one at a time, each with its peak.

A change is "cheaper" when it costs less of what the user cares about besides memory; the order is
fixed and documented (docs/frameworks.md, "What would make it fit"), from the ones that change
nothing about the result or the speed to the ones that change the method or need more hardware:

1. a smaller micro-batch (same tokens per optimizer step with more gradient accumulation),
2. a fused linear + cross-entropy loss (a kernel swap: Liger, Unsloth, cut-CE; same math),
3. an 8-bit optimizer (bitsandbytes AdamW8bit: same update to within quantization noise),
4. gradient checkpointing (one more forward per step, ≈ +33 % compute: Chen et al. 2016),
5. activation offload to the host (with checkpointing; costs PCIe transfers),
6. ZeRO-3 / FSDP full sharding over the GPUs already in the job (communication per layer),
7. LoRA instead of full fine-tuning (trains an adapter, not the model),
8. QLoRA (a 4-bit base: slower matmuls, quantization error in the frozen weights),
9. the optimizer state offloaded to the CPU (ZeRO-Offload: the step runs on the host),
10. more GPUs (FSDP full shard over the next power of two that fits).

Each suggestion is computed by the same placement function as the search, so its peak is the
estimate of the changed job. When no single change fits, the changes are combined in this order
until the job fits, and that combination is the one suggestion.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vramcalc.errors import VramcalcError
from vramcalc.spec.conventions import Conventions

MAX_GPUS_SUGGESTED = 1024


class Suggestion(BaseModel):
    """One change to the job and the per-GPU peak it leads to."""

    model_config = ConfigDict(frozen=True)

    change: str = Field(description="what to change, as the flags that say it")
    cost: str = Field(description="what the change costs besides memory")
    options: dict[str, Any] = Field(description="the workload keys the change sets")
    num_gpus: int
    per_gpu_bytes: int
    fits: bool


def shown_workload(workload: Mapping[str, Any]) -> dict[str, Any]:
    """The workload as JSON can show it (Conventions as their fields)."""
    return {k: (v.model_dump() if isinstance(v, BaseModel) else v) for k, v in workload.items()}


# (label, cost, applies(workload, num_gpus) -> workload change or None)
Change = tuple[str, str, Callable[[Mapping[str, Any], int], dict[str, Any] | None]]


def _conv(workload: Mapping[str, Any]) -> Conventions:
    c = workload.get("conventions")
    return c if isinstance(c, Conventions) else Conventions()


def _with_conv(workload: Mapping[str, Any], **update: Any) -> dict[str, Any]:
    return {"conventions": _conv(workload).model_copy(update=update)}


def _fused(w: Mapping[str, Any], n: int) -> dict[str, Any] | None:
    return None if _conv(w).loss == "fused" else _with_conv(w, loss="fused")


def _eight_bit(w: Mapping[str, Any], n: int) -> dict[str, Any] | None:
    return {"optimizer": "adamw-8bit"} if w.get("optimizer", "adamw") == "adamw" else None


def _ckpt(w: Mapping[str, Any], n: int) -> dict[str, Any] | None:
    return None if w.get("grad_checkpointing", "none") == "full" else {"grad_checkpointing": "full"}


def _act_offload(w: Mapping[str, Any], n: int) -> dict[str, Any] | None:
    if _conv(w).activation_offload:
        return None
    return {"grad_checkpointing": "full"} | _with_conv(w, activation_offload=True)


def _shard(w: Mapping[str, Any], n: int) -> dict[str, Any] | None:
    if n < 2 or w.get("zero") == 3 or w.get("fsdp") == "full":
        return None
    return {"fsdp": "full", "zero": None}


def _lora(w: Mapping[str, Any], n: int) -> dict[str, Any] | None:
    return {"method": "lora"} if w.get("method", "full") == "full" else None


def _qlora(w: Mapping[str, Any], n: int) -> dict[str, Any] | None:
    return {"method": "qlora", "quant": None} if w.get("method", "full") != "qlora" else None


def _cpu_optimizer(w: Mapping[str, Any], n: int) -> dict[str, Any] | None:
    if w.get("offload") in ("optimizer", "params"):
        return None
    # ZeRO-Offload: DeepSpeed's optimizer offload needs a ZeRO stage; stage 2 on one GPU
    return {"offload": "optimizer", "zero": w.get("zero") or 2, "fsdp": None}


CHANGES: tuple[Change, ...] = (
    ("--loss fused", "no extra compute; needs a fused kernel (Liger, Unsloth, cut-CE)", _fused),
    ("--optimizer adamw-8bit", "8-bit optimizer state (bitsandbytes)", _eight_bit),
    ("--grad-checkpointing full", "≈ +33 % compute (one more forward)", _ckpt),
    ("--activation-offload", "checkpointing + host transfers of the activations", _act_offload),
    ("--fsdp full", "parameters, gradients and optimizer state sharded: more traffic", _shard),
    ("--method lora", "trains an adapter, not the whole model", _lora),
    ("--method qlora", "4-bit frozen base: slower, quantization error", _qlora),
    (
        "--offload optimizer",
        "optimizer step on the CPU (ZeRO-Offload): much slower",
        _cpu_optimizer,
    ),
)


def _clean(workload: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in workload.items() if v is not None}


def suggest(
    workload: Mapping[str, Any],
    num_gpus: int,
    memory_bytes: int,
    per_gpu: Callable[[Mapping[str, Any], int], int],
    factor: float = 1.0,
) -> list[Suggestion]:
    """The changes (CHANGES order, then a smaller micro-batch first and more GPUs last) that make
    the job fit `memory_bytes` per GPU; `per_gpu(workload, num_gpus)` is the placement's peak.
    Changes the estimator cannot compute for this job (e.g. LoRA of a model without linear
    targets) are left out."""

    def peak(w: Mapping[str, Any], n: int) -> int | None:
        try:
            return per_gpu(_clean(w), n)
        except VramcalcError:
            return None

    def make(label: str, cost: str, change: dict[str, Any], n: int) -> Suggestion | None:
        got = peak({**workload, **change}, n)
        if got is None:
            return None
        shown = {
            k: (v.model_dump() if isinstance(v, Conventions) else v) for k, v in change.items()
        }
        return Suggestion(
            change=label,
            cost=cost,
            options=shown,
            num_gpus=n,
            per_gpu_bytes=got,
            fits=got * factor <= memory_bytes,
        )

    out: list[Suggestion] = []
    batch = int(workload.get("batch_size") or 1)
    if batch > 1:
        smaller = next(
            (
                b
                for b in _halvings(batch)
                if (p := peak({**workload, "batch_size": b}, num_gpus)) is not None
                and p * factor <= memory_bytes
            ),
            None,
        )
        if smaller is not None:
            s = make(
                f"--batch-size {smaller} --grad-accum ×{-(-batch // smaller)}",
                "same tokens per optimizer step; lower GPU utilisation",
                {"batch_size": smaller},
                num_gpus,
            )
            out += [s] if s else []
    for label, cost, applies in CHANGES:
        change = applies(workload, num_gpus)
        if change is None:
            continue
        s = make(label, cost, change, num_gpus)
        if s is not None and s.fits:
            out.append(s)
    more = _more_gpus(workload, num_gpus, memory_bytes, peak, factor)
    if more is not None:
        out.append(more)
    if out:
        return out
    return _combined(workload, num_gpus, make)


def _halvings(batch: int) -> list[int]:
    out, b = [], batch // 2
    while b >= 1:
        out.append(b)
        b //= 2
    return out


def _more_gpus(
    workload: Mapping[str, Any],
    num_gpus: int,
    memory_bytes: int,
    peak: Callable[[Mapping[str, Any], int], int | None],
    factor: float,
) -> Suggestion | None:
    sharded = {"fsdp": "full", "zero": None} if not workload.get("zero") else {}
    n = 2
    while n <= MAX_GPUS_SUGGESTED:
        if n > num_gpus:
            got = peak({**workload, **sharded}, n)
            if got is not None and got * factor <= memory_bytes:
                return Suggestion(
                    change=f"--num-gpus {n}" + (" --fsdp full" if sharded else ""),
                    cost=f"{n} GPUs instead of {num_gpus}",
                    options={**sharded, "num_gpus": n},
                    num_gpus=n,
                    per_gpu_bytes=got,
                    fits=True,
                )
        n *= 2
    return None


def _combined(
    workload: Mapping[str, Any],
    num_gpus: int,
    make: Callable[[str, str, dict[str, Any], int], Suggestion | None],
) -> list[Suggestion]:
    """No single change fits: a micro-batch of 1, then the changes in order, then more GPUs,
    applied cumulatively until the job fits (a later --method replaces an earlier one); then each
    step the fit does not need is dropped again, the dearest first."""
    steps: list[tuple[str, Callable[[Mapping[str, Any], int], dict[str, Any] | None]]] = []
    if int(workload.get("batch_size") or 1) > 1:
        steps.append(("--batch-size 1", lambda w, n: {"batch_size": 1}))
    steps += [(label, applies) for label, _cost, applies in CHANGES]

    def attempt(chosen: list[str], n: int) -> Suggestion | None:
        current: dict[str, Any] = dict(workload)
        for label, applies in steps:
            if label in chosen and (change := applies(current, n)) is not None:
                current.update(change)
        labels = [x for x in chosen if not (x == "--method lora" and "--method qlora" in chosen)]
        labels += [f"--num-gpus {n}"] if n != num_gpus else []
        if n != num_gpus and not current.get("zero"):
            current["fsdp"] = "full"
        diff = {k: v for k, v in current.items() if workload.get(k) != v}
        return make(" ".join(labels), "all of these together", diff, n)

    chosen: list[str] = []
    found: Suggestion | None = None
    last: Suggestion | None = None
    for label, _applies in steps:
        trial = attempt([*chosen, label], num_gpus)
        if trial is None or trial.options == (last.options if last else None):
            continue  # not computable, or changes nothing
        chosen, last = [*chosen, label], trial
        if trial.fits:
            found = trial
            break
    n = num_gpus * 2
    while found is None and last is not None and n <= MAX_GPUS_SUGGESTED:
        trial = attempt(chosen, n)
        found = trial if trial is not None and trial.fits else None
        n = n if found else n * 2
    if found is None:
        return [last] if last is not None else []
    for label in reversed(chosen[:-1]):  # drop what the fit does not need, dearest first
        trial = attempt([x for x in chosen if x != label], found.num_gpus)
        if trial is not None and trial.fits:
            chosen, found = [x for x in chosen if x != label], trial
    return [found]
