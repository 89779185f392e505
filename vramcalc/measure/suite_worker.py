"""One workload of the standard suite in a fresh process: ``python -m vramcalc.measure.suite_worker
ITEM_JSON DEVICE`` prints one JSON line (environment, readings, estimate) and exits.

Everything is built from the preset's config with random weights on the GPU (no download). Kernels
the suite cannot assume are installed on a lent machine (bitsandbytes, AutoAWQ, PEFT) are replaced by
stand-ins that hold the same stored bytes and say so in the record:

* ``int8`` — LLM.int8() storage: int8 weights + one fp32 scale per output row;
* ``int4`` — AWQ storage: 4-bit weights packed two per byte + fp16 scale and zero per 128 inputs;
* QLoRA's base — NF4 storage with double quantization: 4-bit packed + one uint8 absmax per 64
  weights + one fp32 scale per 256 absmax values;
* LoRA — A (r × in) and B (out × r) in fp32 beside each frozen linear of the decoder layers,
  ``y = base(x) + B(A(x)) · alpha / r`` (PEFT's Linear with dropout 0).

A quantized linear dequantizes its weight to bf16 for its matmul and frees it (the base's frozen
weight is re-dequantized in backward, as bitsandbytes' MatMul4Bit does; its input is not saved).
lm_head, embeddings and norms stay bf16, as bitsandbytes and AutoAWQ leave them.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from .suite import DECODE_TOKENS, SuiteItem

QUANT_NOTE = "weight-only stand-in: packed storage, dequantized to bf16 per matmul"


def _quant_linear_class() -> Any:
    import torch
    from torch import nn

    class Dequant(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, layer):  # type: ignore[no-untyped-def]
            ctx.layer = layer
            return x @ layer.weight_bf16().t()

        @staticmethod
        def backward(ctx, grad):  # type: ignore[no-untyped-def]
            return grad @ ctx.layer.weight_bf16(), None

    class QuantLinear(nn.Module):
        """A frozen linear kept in a packed format (int8, int4 AWQ-style or NF4-style)."""

        def __init__(self, linear: Any, fmt: str) -> None:
            super().__init__()
            out_f, in_f = linear.weight.shape
            dev = linear.weight.device
            self.shape, self.fmt = (out_f, in_f), fmt
            self.bias = linear.bias
            u8 = dict(dtype=torch.uint8, device=dev)
            if fmt == "int8":
                self.register_buffer(
                    "q", torch.randint(-127, 128, (out_f, in_f), dtype=torch.int8, device=dev)
                )
                self.register_buffer("scale", torch.rand(out_f, 1, device=dev) / 127)
            elif fmt == "int4":
                self.register_buffer("q", torch.randint(0, 256, (out_f, in_f // 2), **u8))
                self.group = 128 if in_f % 128 == 0 else in_f  # AWQ's group; whole rows otherwise
                groups = (out_f, in_f // self.group, 1)
                self.register_buffer(
                    "scale", torch.rand(groups, dtype=torch.float16, device=dev) / 8
                )
                self.register_buffer(
                    "zero", torch.full(groups, 8.0, dtype=torch.float16, device=dev)
                )
            else:  # nf4 with double quantization
                n = out_f * in_f
                self.register_buffer("q", torch.randint(0, 256, (n // 2,), **u8))
                self.register_buffer("absmax", torch.randint(0, 256, (n // 64,), **u8))
                self.register_buffer("absmax_scale", torch.rand(max(1, n // 64 // 256), device=dev))

        def weight_bf16(self) -> Any:
            out_f, in_f = self.shape
            b: Any = self._buffers
            if self.fmt == "int8":
                return b["q"].to(torch.bfloat16).mul_(b["scale"])
            nib = torch.stack((b["q"] >> 4, b["q"] & 15), dim=-1)
            if self.fmt == "int4":
                w = nib.view(out_f, in_f // self.group, self.group).to(torch.bfloat16)
                return w.sub_(b["zero"]).mul_(b["scale"]).view(out_f, in_f)
            w = nib.view(-1, 64).to(torch.bfloat16).sub_(7.5)
            scale = b["absmax"].to(torch.bfloat16).mul_(b["absmax_scale"][0].to(torch.bfloat16))
            return w.mul_(scale[:, None]).view(out_f, in_f)

        def forward(self, x: Any) -> Any:
            y = Dequant.apply(x.to(torch.bfloat16), self)
            return y if self.bias is None else y + self.bias

    return QuantLinear


def _lora_class() -> Any:
    import torch
    from torch import nn

    class LoraLinear(nn.Module):
        def __init__(self, base: Any, r: int, alpha: float, shape: tuple[int, int]) -> None:
            super().__init__()
            out_f, in_f = shape
            dev = next(iter(base.buffers()), None)
            dev = dev.device if dev is not None else base.weight.device
            self.base = base
            self.lora_A = nn.Linear(in_f, r, bias=False, device=dev, dtype=torch.float32)
            self.lora_B = nn.Linear(r, out_f, bias=False, device=dev, dtype=torch.float32)
            nn.init.zeros_(self.lora_B.weight)
            self.scaling = alpha / r

        def forward(self, x: Any) -> Any:
            return self.base(x) + self.lora_B(self.lora_A(x)) * self.scaling

    return LoraLinear


def _decoder_linears(model: Any) -> list[tuple[Any, str, Any]]:
    """(parent module, attribute, nn.Linear) of every linear inside the decoder layers."""
    from torch import nn

    out = []
    for parent in model.model.layers.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Linear):
                out.append((parent, name, child))
    return out


def build(item: SuiteItem, device: str) -> tuple[Any, Any]:
    """(model, Workload) of the item on `device`, random weights."""
    from vramcalc.core.workloads import resolve_model

    from .workload import Workload, build_model

    spec = resolve_model(item.model)
    if item.kind == "inference":
        dt = "bf16" if item.dtype in ("int8", "int4") else item.dtype
        wl = Workload("inference", spec, item.batch_size, item.seq_len, dtype=dt)
        model = build_model(wl, device)
        if item.dtype in ("int8", "int4"):
            ql = _quant_linear_class()
            for parent, name, lin in _decoder_linears(model):
                setattr(parent, name, ql(lin, item.dtype))
        return model, wl
    wl = Workload(
        "training",
        spec,
        item.batch_size,
        item.seq_len,
        precision=item.precision,
        optimizer=item.optimizer,
        grad_checkpointing=item.grad_checkpointing,
    )
    if item.method == "full":
        return build_model(wl, device), wl
    base_wl = Workload("training", spec, item.batch_size, item.seq_len, precision="bf16")
    model = build_model(base_wl, device)
    model.requires_grad_(False)
    ql, lora = _quant_linear_class(), _lora_class()
    for parent, name, lin in _decoder_linears(model):
        shape = tuple(lin.weight.shape)
        base = ql(lin, "nf4") if item.method == "qlora" else lin
        setattr(parent, name, lora(base, item.lora_rank, 2.0 * item.lora_rank, shape))
    return model, wl


def run_decode(model: Any, item: SuiteItem, device: str, reset: Any) -> None:
    """A prefill of seq_len − 32 tokens, then 32 greedy decode steps on the KV cache."""
    import torch

    vocab = model.config.vocab_size
    prompt = max(1, item.seq_len - DECODE_TOKENS)
    ids = torch.randint(0, vocab, (item.batch_size, prompt), device=device)
    model.eval()
    reset()
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        nxt = out.logits[:, -1:].argmax(-1)
        del out
        for _ in range(item.seq_len - prompt):
            step = model(input_ids=nxt, past_key_values=cache, use_cache=True, logits_to_keep=1)
            nxt = step.logits[:, -1:].argmax(-1)
            del step


def run_item(item: SuiteItem, device: str) -> dict[str, Any]:
    """Build, run and read one workload; an out-of-memory error is a result."""
    import torch

    from vramcalc import nvml as gpu

    from .workload import run_inference, run_training

    cuda = device.startswith("cuda")
    index = torch.device(device).index or 0
    readings: dict[str, Any] = {"oom": False, "error": None}
    if cuda:
        torch.cuda.set_device(index)
        readings["nvml_process_bytes_before"] = gpu.process_used_bytes(os.getpid(), index)

    def reset() -> None:
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    # after set_device, "cuda" names this GPU; torch.autocast takes a device type, not "cuda:N"
    device = "cuda" if cuda else device
    t0 = time.perf_counter()
    try:
        model, wl = build(item, device)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()  # the bf16 copies quantization replaced
            readings["weights_allocated_bytes"] = int(torch.cuda.memory_allocated())
        if item.kind == "inference" and item.phase == "decode":
            run_decode(model, item, device, reset)
        elif item.kind == "inference":
            run_inference(model, wl, device, lambda name: reset())
        else:

            def phase(name: str) -> None:
                if name == "step 1: forward":
                    reset()

            run_training(model, wl, device, phase, steps=2)
        if cuda:
            torch.cuda.synchronize()
    except (torch.cuda.OutOfMemoryError, RuntimeError) as exc:
        # cuBLAS / kernel launches report an exhausted GPU as a RuntimeError naming it
        text = str(exc)
        if not isinstance(exc, torch.cuda.OutOfMemoryError) and not (
            "out of memory" in text.lower() or "ALLOC_FAILED" in text
        ):
            raise
        readings["oom"] = True
        readings["error"] = (text.splitlines() or [""])[0][:300]
    if cuda:
        readings["max_memory_allocated_bytes"] = int(torch.cuda.max_memory_allocated())
        readings["max_memory_reserved_bytes"] = int(torch.cuda.max_memory_reserved())
        readings["nvml_process_bytes_after"] = gpu.process_used_bytes(os.getpid(), index)
    readings["seconds"] = round(time.perf_counter() - t0, 3)
    est = item.estimate()
    notes = []
    if item.dtype in ("int8", "int4") and item.kind == "inference":
        notes.append(f"{item.dtype}: {QUANT_NOTE}")
    if item.method == "qlora":
        notes.append(f"qlora base: NF4-style {QUANT_NOTE}")
    if item.method != "full":
        notes.append("LoRA: vramcalc's adapter module (PEFT Linear, dropout 0), fp32 adapters")
    return {
        "time_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": _environment(index) if cuda else {"device": device},
        "readings": readings,
        "estimate": {
            "total_bytes": est.total_bytes,
            "phase": est.phase,
            "components": {c.name: c.bytes for c in est.components},
        },
        "notes": notes,
    }


def _environment(index: int) -> dict[str, Any]:
    from .live import environment

    return environment(index)


def main(argv: list[str]) -> int:
    item = SuiteItem(**json.loads(argv[0]))
    device = f"cuda:{int(argv[1]) if len(argv) > 1 else 0}"
    rec = run_item(item, device)
    rec["config"] = asdict(item)
    sys.stdout.write(json.dumps(rec) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover - started by suite.run_one_process
    sys.exit(main(sys.argv[1:]))
