"""Estimate vs truth over a suite of workloads: the analytic model measured against the trace.

The trace sees tensors only, so the comparison is between the estimate's *tensor bytes* (its
components minus the runtime terms ``cuda_context`` and ``allocator_slack``, which a CPU trace cannot
see) and the traced peak of live tensor bytes. Live GPU records (``vramcalc measure --record``)
compare the full estimate with ``max_memory_reserved`` + context.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from vramcalc.core.results import RUNTIME
from vramcalc.spec.model import ModelSpec

from .workload import Workload


def tensor_bytes(est: Any) -> int:
    """The estimate without the runtime terms: what the trace measures."""
    return sum(c.bytes for c in est.components if c.name not in RUNTIME)


def tiny_spec(name: str, arch: str, **kw: Any) -> ModelSpec:
    """A model of a few MB (2 layers, 128 wide, 4 heads): the reference grids' and the
    distributed grid's base; `kw` overrides any field."""
    base: dict[str, Any] = dict(
        name=name,
        architecture=arch,
        vocab_size=2048,
        hidden_size=128,
        num_layers=2,
        num_attention_heads=4,
        intermediate_size=352,
        max_position_embeddings=4096,
    )
    base.update(kw)
    return ModelSpec(**base)


# Small models that keep the structure of the families the presets hold (same config keys, same
# transformers classes), sized so that the whole grid traces in seconds on two CPU cores.
TINY_MODELS = {
    "tiny-llama": tiny_spec("tiny-llama", "llama"),
    "tiny-llama-gqa": tiny_spec("tiny-llama-gqa", "llama", num_kv_heads=2, vocab_size=8192),
    "tiny-mistral": tiny_spec(
        "tiny-mistral", "mistral", num_kv_heads=1, hidden_size=192, num_attention_heads=6
    ),
    "tiny-qwen2": tiny_spec(
        "tiny-qwen2",
        "qwen2",
        num_kv_heads=2,
        attention_qkv_bias=True,
        tie_word_embeddings=True,
        vocab_size=16384,
    ),
    "tiny-mixtral": tiny_spec(
        "tiny-mixtral", "mixtral", num_kv_heads=2, num_experts=4, experts_per_token=2
    ),
    "tiny-gemma2": tiny_spec(
        "tiny-gemma2",
        "gemma2",
        num_kv_heads=2,
        head_dim=64,
        activation="gelu_pytorch_tanh",
        norms_per_layer=4,
        tie_word_embeddings=True,
        sliding_window=128,
        sliding_window_layers=1,
    ),
    "tiny-gpt2": tiny_spec(
        "tiny-gpt2",
        "gpt2",
        intermediate_size=512,
        mlp_kind="plain",
        activation="gelu_new",
        attention_qkv_bias=True,
        attention_out_bias=True,
        mlp_bias=True,
        norm_kind="layernorm",
        tie_word_embeddings=True,
        position_embedding="learned",
        max_position_embeddings=1024,
    ),
}


def ci_grid() -> list[Workload]:
    """At least 30 small workloads: architectures (GQA, MoE, tied, biased, GELU), dtypes, batch,
    sequence, inference and training, optimizers, checkpointing, gradient accumulation."""
    m = TINY_MODELS
    inf = [
        Workload("inference", m["tiny-llama"], 1, 256),
        Workload("inference", m["tiny-llama"], 4, 512, dtype="fp16"),
        Workload("inference", m["tiny-llama"], 2, 128, dtype="fp32", logits="all"),
        Workload("inference", m["tiny-llama-gqa"], 2, 512),
        Workload("inference", m["tiny-llama-gqa"], 1, 256, logits="all"),
        Workload("inference", m["tiny-mistral"], 2, 384),
        Workload("inference", m["tiny-qwen2"], 1, 512),
        Workload("inference", m["tiny-qwen2"], 2, 128, logits="all"),
        Workload("inference", m["tiny-mixtral"], 2, 256),
        Workload("inference", m["tiny-gemma2"], 2, 256),
        Workload("inference", m["tiny-gpt2"], 2, 256),
        Workload("inference", m["tiny-gpt2"], 1, 512, dtype="fp32"),
        Workload("inference", m["tiny-llama"], 1, 128, attention="eager"),
        Workload("inference", m["tiny-gpt2"], 2, 256, dtype="fp32", attention="eager"),
    ]
    tr = [
        Workload("training", m["tiny-llama"], 2, 256),
        Workload("training", m["tiny-llama"], 1, 512, precision="fp32"),
        Workload("training", m["tiny-llama"], 2, 256, precision="bf16"),
        Workload("training", m["tiny-llama"], 2, 256, grad_checkpointing="full"),
        Workload("training", m["tiny-llama"], 1, 256, optimizer="sgd"),
        Workload("training", m["tiny-llama"], 1, 256, optimizer="sgd-momentum"),
        Workload("training", m["tiny-llama"], 1, 256, optimizer="adamw-fused"),
        Workload("training", m["tiny-llama"], 1, 256, optimizer="adafactor"),
        Workload("training", m["tiny-llama"], 2, 128, grad_accum=2),
        Workload("training", m["tiny-llama"], 1, 128, attention="eager"),
        Workload("training", m["tiny-llama-gqa"], 2, 256, optimizer="sgd", attention="eager"),
        Workload("training", m["tiny-gpt2"], 2, 256, optimizer="sgd", attention="eager"),
        Workload("training", m["tiny-llama-gqa"], 2, 256),
        Workload("training", m["tiny-llama-gqa"], 1, 512, precision="fp16-mixed"),
        Workload("training", m["tiny-mistral"], 2, 256, grad_checkpointing="full"),
        Workload("training", m["tiny-qwen2"], 1, 256),
        Workload("training", m["tiny-qwen2"], 2, 128, precision="fp32"),
        Workload("training", m["tiny-mixtral"], 2, 256, precision="bf16"),
        Workload(
            "training", m["tiny-mixtral"], 1, 256, precision="bf16", grad_checkpointing="full"
        ),
        Workload("training", m["tiny-gemma2"], 2, 256),
        Workload("training", m["tiny-gemma2"], 1, 256, optimizer="sgd", grad_checkpointing="full"),
        Workload("training", m["tiny-gpt2"], 2, 256),
        Workload("training", m["tiny-gpt2"], 1, 256, precision="fp32"),
        Workload("training", m["tiny-gpt2"], 1, 256, grad_checkpointing="full"),
    ]
    return inf + tr


def seven_b_grid() -> list[Workload]:
    """7B-class presets (benchmarks/accuracy.py): serving and training shapes people run."""
    from vramcalc.sources.presets import get_model

    rows: list[Workload] = []
    for name in ("llama-2-7b", "mistral-7b", "qwen2.5-7b"):
        spec = get_model(name)
        rows += [
            Workload("inference", spec, 1, 4096),
            Workload("inference", spec, 8, 2048),
            Workload("inference", spec, 1, 2048, logits="all"),
            Workload("training", spec, 1, 2048),
            Workload("training", spec, 8, 2048, grad_checkpointing="full"),
            Workload("training", spec, 4, 2048, optimizer="sgd"),
        ]
    return rows


@dataclass
class Row:
    """One workload: the estimate's tensor bytes against the traced peak."""

    workload: Workload
    estimate_bytes: int
    trace_bytes: int
    trace_phase: str
    estimate_phase: str
    by_category: dict[str, int]
    seconds: float

    @property
    def error(self) -> float:
        """Relative error of the estimate against the trace (+: over-estimate)."""
        return self.estimate_bytes / self.trace_bytes - 1

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.workload.describe(),
            "label": self.workload.label,
            "estimate_tensor_bytes": self.estimate_bytes,
            "trace_peak_bytes": self.trace_bytes,
            "error": round(self.error, 5),
            "trace_phase": self.trace_phase,
            "estimate_phase": self.estimate_phase,
            "trace_by_category": self.by_category,
            "trace_seconds": round(self.seconds, 3),
        }


def compare(wl: Workload) -> Row:
    """Trace one workload and set it beside its estimate."""
    from .trace import trace

    est = wl.estimate()
    tr = trace(wl)
    return Row(
        wl, tensor_bytes(est), tr.peak_bytes, tr.phase, est.phase, tr.by_category, tr.seconds
    )


def summary(rows: list[Row]) -> dict[str, dict[str, float]]:
    """Median and worst absolute relative error, by task and overall."""
    out: dict[str, dict[str, float]] = {}
    groups: dict[str, list[float]] = {"all": []}
    for r in rows:
        groups.setdefault(r.workload.kind, []).append(abs(r.error))
        groups["all"].append(abs(r.error))
    for name, errs in groups.items():
        if errs:
            out[name] = {
                "n": len(errs),
                "median_abs_error": statistics.median(errs),
                "worst_abs_error": max(errs),
            }
    return out
