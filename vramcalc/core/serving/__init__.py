"""Serving engines (issue 15): the memory vLLM, SGLang and llama.cpp lay out on each GPU, the KV
pool their start-up leaves, and how many requests of a context length it holds.

One entry point, :func:`estimate_serving`, returns the same :class:`Estimate` as
``estimate_inference`` (components per GPU, the cluster total) with a
:class:`~vramcalc.core.results.ServingSummary` beside the components. ``engine="hf"`` is not
here: it is ``estimate_inference`` itself.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from vramcalc.core.results import Component, Estimate, GPUFit, make_estimate
from vramcalc.core.serving.common import (
    ENGINES,
    check_parallel,
    refuse_state_models,
    weights_per_rank,
)
from vramcalc.core.serving.gguf_weights import from_file, from_file_type
from vramcalc.core.serving.llamacpp import LlamaCppOptions, estimate_llamacpp
from vramcalc.core.serving.sglang import SglangOptions, estimate_sglang
from vramcalc.core.serving.vllm import EngineMemory, VllmOptions, estimate_vllm
from vramcalc.core.workloads import resolve_gpu, resolve_source
from vramcalc.errors import VramcalcError
from vramcalc.spec.quant import kv_bytes_per_element

if TYPE_CHECKING:  # pragma: no cover
    from vramcalc.sources import ModelSource
    from vramcalc.spec.model import ModelSpec

EngineOptions = VllmOptions | SglangOptions | LlamaCppOptions

__all__ = [
    "ENGINES",
    "LlamaCppOptions",
    "SglangOptions",
    "VllmOptions",
    "estimate_serving",
]


def _weights(source: ModelSource, dtype: str, quant: str | None) -> tuple[Component, int]:
    """The whole model's weights component as `infer` computes it (the checkpoint's tensors when
    a header was read) and the compute width."""
    from vramcalc.core.inference import estimate_inference

    est = estimate_inference(source, dtype=dtype, quant=quant, seq_len=1)
    compute = 4 if est.inputs.get("dtype") == "fp32" else 2
    return next(c for c in est.components if c.name == "weights"), compute


def _with_weights_origin(mem: EngineMemory, whole: Component, ranks: int) -> EngineMemory:
    """The per-rank weights component, with the whole model's note and arithmetic (--explain)."""
    comps = [
        c.model_copy(update={
            "note": f"{whole.note}; 1/{ranks} per GPU" if ranks > 1 else whole.note,
            "formula": f"ceil(({whole.formula}) / {ranks})" if ranks > 1 else whole.formula,
        })
        if c.name == "weights"
        else c
        for c in mem.components
    ]  # fmt: skip
    return replace(mem, components=comps)


def estimate_serving(
    model: str | ModelSpec | ModelSource,
    engine: str,
    *,
    options: EngineOptions | None = None,
    dtype: str = "bf16",
    quant: str | None = None,
    kv_dtype: str | None = None,
    gguf_type: str | None = None,
    tp: int = 1,
    pp: int = 1,
    gpu: str | None = None,
    gpu_mem_gib: float | None = None,
    revision: str | None = None,
    assume_llama: bool = False,
) -> Estimate:
    """Per-GPU memory of `model` served by `engine` on tp × pp GPUs, and the KV pool it leaves."""
    if engine not in ENGINES or engine == "hf":
        raise VramcalcError(
            f"engine {engine!r}: use one of {', '.join(ENGINES[1:])} (hf: estimate_inference)"
        )
    source = resolve_source(model, revision, assume_llama=assume_llama)
    spec = source.spec
    fit = resolve_gpu(gpu, gpu_mem_gib)
    if engine == "llama.cpp":
        mem = _llamacpp(source, gguf_type, fit, tp, pp, options)
    else:
        check_parallel(spec, tp, pp)
        refuse_state_models(spec, engine)
        if fit is None:
            raise VramcalcError(
                f"--engine {engine} sizes its KV pool from the GPU's memory: give --gpu or --gpu-mem"
            )
        whole, compute = _weights(source, dtype, quant)
        per_rank = weights_per_rank(whole.bytes, tp, pp)
        kv_bytes = kv_bytes_per_element(kv_dtype) if kv_dtype else float(compute)
        if engine == "vllm":
            opts = replace(
                options if isinstance(options, VllmOptions) else VllmOptions(), kv_bytes=kv_bytes
            )
            mem = estimate_vllm(spec, per_rank, fit, tp, pp, opts, compute, _interconnect(gpu))
        else:
            sg = replace(
                options if isinstance(options, SglangOptions) else SglangOptions(),
                kv_bytes=kv_bytes,
            )
            mem = estimate_sglang(spec, per_rank, fit, tp, pp, sg, _interconnect(gpu))
        mem = _with_weights_origin(mem, whole, tp * pp)
    if engine == "llama.cpp":
        opts_l = options if isinstance(options, LlamaCppOptions) else LlamaCppOptions()
        ck = source.checkpoint
        weights_in: dict[str, object] = {
            "gguf": "tensor table of the file"
            if ck is not None and ck.format == "gguf"
            else (gguf_type or "Q4_K_M").upper(),
            "gpu_layers": "all" if opts_l.gpu_layers is None else opts_l.gpu_layers,
            "parallel": opts_l.parallel,
            "cache_type_k": opts_l.cache_type_k,
            "cache_type_v": opts_l.cache_type_v,
            "flash_attn": opts_l.flash_attn,
        }
    else:
        weights_in = {"dtype": dtype, "quant": quant, "kv_dtype": kv_dtype or "auto"}
    return _estimate(source, engine, mem, fit, tp * pp, weights_in)


def _interconnect(gpu: str | None) -> str | None:
    """The GPU preset's interconnect (nvlink, pcie, infinity-fabric); None for --gpu-mem."""
    if gpu is None:
        return None
    from vramcalc.sources.presets import get_gpu

    return get_gpu(gpu).interconnect


def _llamacpp(
    source: ModelSource,
    gguf_type: str | None,
    fit: tuple[str, int] | None,
    tp: int,
    pp: int,
    options: EngineOptions | None,
) -> EngineMemory:
    spec = source.spec
    opts = options if isinstance(options, LlamaCppOptions) else LlamaCppOptions()
    ck = source.checkpoint
    if ck is not None and ck.format == "gguf":
        if gguf_type is not None:
            raise VramcalcError("--gguf-type: the .gguf file's own tensor types are used; drop it")
        weights = from_file(ck, spec.num_layers)
    else:
        weights = from_file_type(spec, gguf_type or "Q4_K_M")
    mem = estimate_llamacpp(spec, weights, fit, opts)
    return mem if tp * pp == 1 else _llamacpp_split(mem, tp, pp)


def _llamacpp_split(mem: EngineMemory, tp: int, pp: int) -> EngineMemory:
    """llama.cpp over several GPUs. --pp N: the default layer split (-sm layer), each GPU about
    1/N of the offloaded layers and their KV, a compute buffer on every device. --tp N: the row
    split (-sm row), each GPU 1/N of every matrix's rows; the KV cache and the intermediate
    results stay on the main GPU ("-mg: the GPU ... for intermediate results and KV (with
    split-mode = row)", common/arg.cpp). Components are the most loaded GPU's."""
    if tp > 1 and pp > 1:
        raise VramcalcError("llama.cpp splits by layer (--pp) or by row (--tp), not both")
    n = tp * pp
    split = {"weights"} if tp > 1 else {"weights", "kv_cache"}
    how = f"row split (-sm row) over {n} GPUs" if tp > 1 else f"layer split over {n} GPUs"
    comps = [
        Component(name=c.name, bytes=-(-c.bytes // n), note=f"{c.note}; 1/{n} per GPU ({how})")
        if c.name in split
        else c
        for c in mem.components
    ]
    whole = {c.name: c.bytes for c in mem.components}
    per_gpu = whole["cuda_context"] + (0 if tp > 1 else whole["activations"])
    cluster = sum(whole.values()) - per_gpu + n * per_gpu
    summary = mem.summary.model_copy(update={"tp": tp, "pp": pp})
    return EngineMemory(comps, summary, [*mem.assumptions, how], cluster_bytes=cluster)


def _estimate(
    source: ModelSource,
    engine: str,
    mem: EngineMemory,
    fit: tuple[str, int] | None,
    num_gpus: int,
    engine_inputs: dict[str, object],
) -> Estimate:
    spec = source.spec
    s = mem.summary
    est = make_estimate(
        mem.components,
        None,
        kind="inference",
        model=spec.name,
        assumed_architecture=spec.assumed_architecture,
        params=source.params,
        active_params=source.active_params,
        phase=f"{engine} after start-up (KV pool allocated)",
        inputs={
            "model": spec.name,
            "engine": engine,
            "engine_version": s.engine_version,
            "tp": s.tp,
            "pp": s.pp,
            **engine_inputs,
            "max_model_len": s.max_model_len,
        },
        assumptions=[*mem.assumptions, *s.not_sized, *source.notes],
        num_gpus=num_gpus,
        cpu_bytes_per_node=s.host_bytes,
        parallel={"tp": s.tp, "pp": s.pp},
        serving=s,
    )
    total = est.total_bytes
    # the engine's layout is its own: no trace band (docs/serving.md gives the evidence bands)
    rough = spec.assumed_architecture is not None  # --assume-llama: keep the ×2 band
    update: dict[str, object] = {"cluster_total_bytes": mem.cluster_bytes or total * num_gpus}
    if not rough:
        update |= {"low_bytes": total, "high_bytes": total}
    if fit is not None:
        name, memory = fit
        fits = s.refused is None and total <= memory
        update["gpu"] = GPUFit(
            gpu=name,
            memory_bytes=memory,
            fits=fits,
            headroom_bytes=memory - total,
            verdict=("may fit" if rough else "fits") if fits else "does not fit",
        )
    if s.refused:
        update["warnings"] = [*est.warnings, f"{engine} refuses to start: {s.refused}"]
    return est.model_copy(update=update)
