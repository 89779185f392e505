"""The serving-engine readings in validation/serving/*.toml against vramcalc.core.serving.

Each usable record is re-run with its own setup (model preset or the record's config, GPU memory as
the engine logged it, TP, dtype, engine options) and every reading that the model predicts is
compared: relative error = estimate / reading − 1. Records and readings that cannot be compared are
listed with the reason. `python tests/serving_evidence.py` prints the table used in
docs/serving.md.
"""

from __future__ import annotations

import statistics
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vramcalc.core.serving import LlamaCppOptions, SglangOptions, VllmOptions, estimate_serving
from vramcalc.errors import VramcalcError
from vramcalc.sources.hf_config import spec_from_config
from vramcalc.sources.presets import get_gpu, get_model
from vramcalc.spec.model import ModelSpec

ROOT = Path(__file__).resolve().parents[1] / "validation" / "serving"
GIB = 1024**3
MIB = 1024**2

# The band each quantity is held to, per engine (see docs/serving.md for why each is what it is).
BANDS: dict[tuple[str, str], float] = {
    ("vllm", "weights_gib"): 0.03,
    ("vllm", "kv_cache_gib"): 0.10,
    ("vllm", "kv_cache_tokens"): 0.10,
    ("vllm", "max_concurrency"): 0.10,
    ("vllm", "peak_activation_gib"): 0.05,
    ("sglang", "kv_cache_tokens"): 0.05,
    ("sglang", "kv_cache_gib"): 0.05,
    ("llamacpp", "kv_buffer_mib"): 0.01,
    ("llamacpp", "compute_buffer_mib"): 0.02,
    ("llamacpp", "host_compute_buffer_mib"): 0.01,
    ("llamacpp", "output_buffer_mib"): 0.05,
    ("llamacpp", "weights_gpu_mib"): 0.02,
    ("llamacpp", "weights_cpu_mib"): 0.01,
}
_DTYPES = {"bfloat16": ("bf16", None), "float16": ("fp16", None), "fp8": ("fp8", None)}
_DTYPES |= {"mxfp4": ("int4", "mxfp4"), "int8": ("int8", None)}


@dataclass
class Comparison:
    record: str
    engine: str
    quantity: str
    reading: float
    estimate: float
    quantized: bool = False

    @property
    def error(self) -> float:
        return self.estimate / self.reading - 1


@dataclass
class Skip:
    record: str
    reason: str


def _records() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(ROOT.glob("*.toml")):
        engine = "llamacpp" if path.stem == "ollama" else path.stem
        for rec in tomllib.loads(path.read_text(encoding="utf-8")).get("record", []):
            out.append((engine, rec))
    return out


def _model(rec: dict[str, Any]) -> ModelSpec | str:
    try:
        return get_model(rec["model"]).name
    except (VramcalcError, KeyError):
        pass
    cfg = rec.get("model_config")
    if not cfg:
        raise LookupError(f"model {rec.get('model')!r} not in the presets and no model_config")
    spec, _ = spec_from_config(dict(cfg), rec["id"])
    return spec


def _gpu(rec: dict[str, Any], tp: int = 1) -> dict[str, Any]:
    """How the record's GPU is given: the logged device total (--gpu-mem) when there is one, else
    the preset (--gpu, with its interconnect); for SGLang logs of an unnamed GPU, the device total
    that leaves the logged free memory before the weights after vramcalc's own non-torch term
    (the pool depends only on that free memory: presets/engines/sglang.toml)."""
    if rec.get("gpu_total_gib"):
        return {"gpu_mem_gib": float(rec["gpu_total_gib"])}
    try:
        return {"gpu": get_gpu(rec["gpu"]).name}
    except (VramcalcError, KeyError):
        pass
    r = rec.get("readings", {})
    if rec.get("engine") == "sglang" and "avail_after_weights_gib" in r:
        from vramcalc.core.inference import estimate_inference
        from vramcalc.core.serving.common import comm_buffers_bytes
        from vramcalc.sources.calibration import runtime

        non_torch = runtime().cuda_context_bytes + comm_buffers_bytes(tp, None)[0]
        # the weights as vramcalc sizes them (per rank), so that free-after-weights is the logged one
        weights = estimate_inference(_model(rec), dtype=_DTYPES[rec["dtype"]][0]).component(
            "weights"
        )
        free_before = r["avail_after_weights_gib"] * GIB + weights / tp
        return {"gpu_mem_gib": (free_before + non_torch) / GIB}
    raise LookupError(f"GPU {rec.get('gpu')!r} unknown and its total not logged")


def _vllm(rec: dict[str, Any], r: dict[str, float]) -> list[tuple[str, float, float]]:
    dtype, quant = _DTYPES.get(rec["dtype"], (None, None))
    if dtype is None:
        raise LookupError(f"dtype {rec['dtype']!r} ({rec.get('quantization')}) not mapped")
    model = _model(rec)
    opts = VllmOptions(
        version="v1" if rec.get("v1_engine") else "v0",
        gpu_memory_utilization=rec.get("gpu_memory_utilization") or None,
        max_model_len=rec.get("max_model_len") or None,
        max_num_seqs=rec.get("max_num_seqs") or None,
        max_num_batched_tokens=rec.get("max_num_batched_tokens") or None,
    )
    out: list[tuple[str, float, float]] = []
    try:
        gpu = _gpu(rec)
    except LookupError:
        gpu = {"gpu_mem_gib": 80.0}  # weights only: the budget is not checkable
        budget_ok = False
    else:
        # the A100-40GB record's reporter raised max_num_seqs to an unstated value (record notes)
        budget_ok = "recorded as 0 = unknown" not in rec.get("notes", "")
    est = estimate_serving(model, "vllm", options=opts, dtype=dtype, quant=quant,
                           tp=rec.get("tp", 1), **gpu)  # fmt: skip
    s = est.serving
    assert s is not None
    if "weights_gib" in r:
        out.append(("weights_gib", r["weights_gib"], est.component("weights") / GIB))
    if not budget_ok:
        return out
    if "kv_cache_gib" in r and not r.get("refused"):
        out.append(("kv_cache_gib", r["kv_cache_gib"], s.kv_pool_bytes / GIB))
    if "kv_cache_tokens" in r:
        out.append(("kv_cache_tokens", r["kv_cache_tokens"], s.kv_pool_tokens))
    elif "gpu_blocks" in r:
        out.append(("kv_cache_tokens", r["gpu_blocks"] * s.block_size, s.kv_pool_tokens))
    if "max_concurrency" in r:
        out.append(("max_concurrency", r["max_concurrency"], s.max_concurrency))
    if "peak_activation_gib" in r:
        out.append(
            ("peak_activation_gib", r["peak_activation_gib"], est.component("activations") / GIB)
        )
    if "refused" in r or s.refused:
        out.append(("refused", float(bool(r.get("refused"))), float(s.refused is not None)))
    return out


def _sglang(rec: dict[str, Any], r: dict[str, float]) -> list[tuple[str, float, float]]:
    dtype, quant = _DTYPES.get(rec["dtype"], (None, None))
    if dtype is None:
        raise LookupError(f"dtype {rec['dtype']!r} not mapped")
    if "PR branch" in rec.get("notes", "") or "not upstream" in rec.get("notes", ""):
        raise LookupError("log from a PR branch that changes the KV budget (record notes)")
    inferred = str(rec.get("engine_version") or rec.get("engine_version_inferred", ""))
    opts = SglangOptions(
        version="0.4" if "0.4" in inferred or "2025-0" in inferred else "0.5",
        mem_fraction_static=rec.get("gpu_memory_utilization") or None,
        context_length=rec.get("max_model_len") or None,
    )
    est = estimate_serving(_model(rec), "sglang", options=opts, dtype=dtype, quant=quant,
                           tp=rec.get("tp", 1), **_gpu(rec, rec.get("tp", 1)))  # fmt: skip
    s = est.serving
    assert s is not None
    out = [("kv_cache_tokens", r["kv_cache_tokens"], float(s.kv_pool_tokens))]
    if "kv_cache_gib" in r:
        out.append(("kv_cache_gib", r["kv_cache_gib"], s.kv_pool_bytes / GIB))
    return out


def _llamacpp(rec: dict[str, Any], r: dict[str, float]) -> list[tuple[str, float, float]]:
    ngl = rec.get("n_gpu_layers", -1)
    opts = LlamaCppOptions(
        gpu_layers=None if ngl < 0 else ngl,
        ctx_size=rec["n_ctx"],
        parallel=rec.get("n_parallel", 1),
        cache_type_k=rec.get("type_k", "f16"),
        cache_type_v=rec.get("type_v", "f16"),
        flash_attn=bool(rec.get("flash_attn")),
        ubatch_size=rec.get("n_ubatch", 512),
    )
    est = estimate_serving(_model(rec), "llama.cpp", options=opts,
                           gguf_type=rec.get("gguf_type") or None)  # fmt: skip
    s = est.serving
    assert s is not None
    out = []
    if "weights_gpu_mib" in r:  # llama.cpp's load buffers: GPU and host (CPU_Mapped) model buffers
        weights = _layer_weights(rec)
        out.append(("weights_gpu_mib", r["weights_gpu_mib"], est.component("weights") / MIB))
        out.append(("weights_cpu_mib", r["weights_cpu_mib"], weights.embedding / MIB))
    kv_all = est.component("kv_cache") + _host_kv(est, r)
    if "kv_buffer_mib" in r:
        out.append(("kv_buffer_mib", r["kv_buffer_mib"], kv_all / MIB))
    if "compute_buffer_mib" in r:
        out.append(
            ("compute_buffer_mib", r["compute_buffer_mib"], est.component("activations") / MIB)
        )
    if "host_compute_buffer_mib" in r:
        from vramcalc.core.serving.llamacpp import host_compute_bytes

        spec = get_model(rec["model"]) if isinstance(_model(rec), str) else _model(rec)
        assert isinstance(spec, ModelSpec)
        est_host = host_compute_bytes(spec, rec["n_ctx"], rec.get("n_ubatch", 512))
        out.append(("host_compute_buffer_mib", r["host_compute_buffer_mib"], est_host / MIB))
    if "output_buffer_mib" in r:
        spec = _model(rec)
        spec = get_model(spec) if isinstance(spec, str) else spec
        out.append(("output_buffer_mib", r["output_buffer_mib"],
                    spec.output_width * rec.get("n_parallel", 1) * 4 / MIB))  # fmt: skip
    return out


def _layer_weights(rec: dict[str, Any]) -> Any:
    from vramcalc.core.serving.gguf_weights import from_file_type

    spec = _model(rec)
    return from_file_type(get_model(spec) if isinstance(spec, str) else spec, rec["gguf_type"])


def _host_kv(est: Any, r: dict[str, float]) -> int:
    """KV bytes left on the host (all KV = GPU share + host share)."""
    spec_layers = est.serving
    del spec_layers
    return int(r.get("kv_buffer_host_mib", 0) * MIB) if "kv_buffer_host_mib" in r else 0


def compare_all() -> tuple[list[Comparison], list[Skip]]:
    comps: list[Comparison] = []
    skips: list[Skip] = []
    for _, rec in _records():
        engine = rec.get("engine", "")
        if rec.get("status") != "usable":
            skips.append(Skip(rec["id"], str(rec.get("skip_reason") or rec.get("status"))))
            continue
        r = rec.get("readings", {})
        try:
            if engine == "vllm":
                rows = _vllm(rec, r)
            elif engine == "sglang":
                rows = _sglang(rec, r)
            elif engine == "llamacpp" or rec.get("readings_kind") == "llamacpp_alloc":
                rows = _llamacpp(rec, r)  # Ollama's runner is llama.cpp: its own allocations
            else:
                raise LookupError(
                    "Ollama's own pre-load estimate (msg=offload), not llama.cpp's allocation"
                )
        except (LookupError, VramcalcError) as exc:
            skips.append(Skip(rec["id"], str(exc)))
            continue
        key = "llamacpp" if engine in ("llamacpp", "ollama") else engine
        quantized = rec.get("dtype") not in ("bfloat16", "float16", "gguf")
        comps += [Comparison(rec["id"], key, q, float(a), float(b), quantized) for q, a, b in rows]
    return comps, skips


def summary(comps: list[Comparison]) -> dict[tuple[str, str], tuple[int, float, float]]:
    """(engine, quantity) -> (n, median |error|, worst |error|)."""
    out = {}
    keys = sorted({(c.engine, c.quantity) for c in comps if c.quantity != "refused"})
    for key in keys:
        errs = [abs(c.error) for c in comps if (c.engine, c.quantity) == key]
        out[key] = (len(errs), statistics.median(errs), max(errs))
    return out


if __name__ == "__main__":  # pragma: no cover
    comps, skips = compare_all()
    for c in comps:
        print(
            f"{c.record:65} {c.quantity:22} {c.reading:>12.4g} {c.estimate:>12.4g} {c.error:+.1%}"
        )
    print()
    for (engine, q), (n, med, worst) in summary(comps).items():
        print(f"| {engine} | {q} | {n} | {med:.1%} | {worst:.1%} |")
    print()
    for s in skips:
        print(f"- {s.record}: {s.reason}")
