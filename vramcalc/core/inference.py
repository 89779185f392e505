"""Memory to serve a model: weights + KV cache + peak forward activations + runtime overhead."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from vramcalc.core.inference_terms import (
    SpecTerms,
    inference_activation_bytes,
    inference_activation_terms,
    remember,
    spec_terms,
    weights_formula,
)
from vramcalc.core.kv_cache import kv_cache_bytes
from vramcalc.core.results import Component, Estimate, make_estimate
from vramcalc.core.workloads import (
    Common,
    context_warnings,
    resolve_gpu,
    resolve_seq_len,
    resolve_source,
    validate,
)
from vramcalc.errors import checked_keywords
from vramcalc.sources.calibration import Runtime, runtime
from vramcalc.spec.model import ModelSpec
from vramcalc.spec.quant import FORMATS, NOMINAL_BYTES, WeightFormat, resolve_format
from vramcalc.units import parse_param_count

if TYPE_CHECKING:  # pragma: no cover
    from vramcalc.sources import ModelSource


class InferenceRequest(Common):
    dtype: str = "bf16"
    quant: str | None = None
    kv_dtype: str | None = None
    logits: Literal["last", "all"] = Field(
        "last",
        description="last: generation (logits of the last position); all: scoring a sequence",
    )


# The CUDA context component and the slack note of the calibration in use, built once (runtime()
# is cached; a test that swaps the calibration gets a new object, hence new ones).
_CONTEXT: list[tuple[Runtime, Component, str]] = []


def _runtime_terms(rt: Runtime) -> tuple[Component, str]:
    if _CONTEXT and _CONTEXT[0][0] is rt:
        return _CONTEXT[0][1], _CONTEXT[0][2]
    component = Component(
        name="cuda_context",
        bytes=rt.cuda_context_bytes,
        note=f"CUDA context and library workspaces, {rt.cuda_context_mib} MiB ({rt.cuda_context_source})",
        formula=f"{rt.cuda_context_mib} MiB × 1,048,576",
    )
    slack_note = f"{rt.allocator_slack_fraction:.0%} of activations/KV/gradients held as reserved-but-free blocks"
    _CONTEXT[:] = [(rt, component, slack_note)]
    _SLACK.clear()
    return component, slack_note


def runtime_overhead_components(dynamic_bytes: int) -> list[Component]:
    """CUDA context (fixed) + caching-allocator slack (a fraction of what is allocated and freed)."""
    rt = runtime()
    context, slack_note = _runtime_terms(rt)
    # memoised for int bytes (a float prints differently); emptied when the calibration changes
    exact = type(dynamic_bytes) is int
    slack = _SLACK.get(dynamic_bytes) if exact else None
    if slack is None:
        fraction = rt.allocator_slack_fraction
        slack = Component(
            name="allocator_slack",
            bytes=int(fraction * dynamic_bytes),
            note=slack_note,
            formula=f"{fraction:g} × {dynamic_bytes:,}",
        )
        if exact:
            remember(_SLACK, dynamic_bytes, slack)
    return [context, slack]


# allocator slack components by dynamic bytes, of the calibration in _CONTEXT (sweeps repeat them)
_SLACK: dict[int, Component] = {}


@lru_cache(maxsize=256, typed=True)  # typed: 1 and True validate differently
def _checked_request(
    dtype: str,
    quant: str | None,
    kv_dtype: str | None,
    batch_size: int,
    seq_len: int | None,
    logits: str,
    attention: str,
    gpu: str | None,
    gpu_mem_gib: float | None,
) -> tuple[InferenceRequest, WeightFormat]:
    """The validated request and its weight format (frozen, so shared between estimates)."""
    req = validate(
        InferenceRequest,
        dtype=dtype,
        quant=quant,
        kv_dtype=kv_dtype,
        batch_size=batch_size,
        seq_len=seq_len,
        logits=logits,
        attention=attention,
        gpu=gpu,
        gpu_mem_gib=gpu_mem_gib,
    )
    assert isinstance(req, InferenceRequest)
    return req, resolve_format(req.dtype, req.quant)


@checked_keywords
def estimate_inference(
    model: str | ModelSpec | ModelSource | None = None,
    *,
    params: str | int | None = None,
    dtype: str = "bf16",
    quant: str | None = None,
    kv_dtype: str | None = None,
    batch_size: int = 1,
    seq_len: int | None = None,
    logits: str = "last",
    attention: str = "flash",
    gpu: str | None = None,
    gpu_mem_gib: float | None = None,
    revision: str | None = None,
    assume_llama: bool = False,
    tp: int = 1,
    pp: int = 1,
    prefill_chunk: int | None = None,
) -> Estimate:
    """GPU memory to serve `model` at the peak of a prefill of `seq_len` tokens for `batch_size`
    sequences, with the KV cache for all of them.

    `tp` / `pp`: per-GPU components (:func:`parallel_components`); `prefill_chunk`: the
    activations of one chunk (:func:`chunked_prefill_tokens`).

    `model` is a preset name or alias, a ModelSpec, a config.json / model folder / .gguf path, a
    Hugging Face Hub id (at `revision`), or a resolved ModelSource. When a checkpoint header was
    read, the weights are its exact tensors (as stored if pre-quantized). Given only `params`
    (e.g. "7B"), the estimate is weights only and says so.
    """
    try:  # one validation per distinct argument tuple (sweeps and services repeat them)
        req, fmt = _checked_request(
            dtype, quant, kv_dtype, batch_size, seq_len, logits, attention, gpu, gpu_mem_gib
        )
    except TypeError:  # an unhashable argument: validated uncached, pydantic names it
        req, fmt = _checked_request.__wrapped__(
            dtype, quant, kv_dtype, batch_size, seq_len, logits, attention, gpu, gpu_mem_gib
        )
    fit = resolve_gpu(req.gpu, req.gpu_mem_gib)
    if model is None:
        if params is None:
            from vramcalc.errors import VramcalcError

            raise VramcalcError("give a model name or --params (e.g. --params 7B)")
        return weights_only_estimate(parse_param_count(params), fmt, req.dtype, fit)
    source = resolve_source(model, revision, assume_llama=assume_llama)
    spec = source.spec
    terms = spec_terms(spec)  # the spec's one hash in this estimate
    seq = resolve_seq_len(spec, req.seq_len)
    compute_dtype = "fp32" if fmt.compute_bytes == 4 else "bf16"
    dtype_used, quant_used, warnings = req.dtype, fmt.name, context_warnings(spec, seq)
    if source.checkpoint is None:
        weights_component = terms.weights(fmt)
    else:
        from vramcalc.sources import checkpoint_weight_bytes
        from vramcalc.sources.checkpoint import tensor_groups_of

        weights, weights_note = checkpoint_weight_bytes(source.checkpoint, fmt)
        stored = source.checkpoint.quantization
        w_formula = (
            " + ".join(f"{b:,} {dt}" for dt, b in source.checkpoint.bytes_by_dtype().items())
            if stored
            else weights_formula(tensor_groups_of(source.checkpoint), fmt)
        )
        weights_component = Component(
            name="weights", bytes=weights, note=weights_note, formula=w_formula
        )
        if stored:  # pre-quantized weights are used as stored: report what was used
            dtype_used, quant_used = compute_dtype, stored
            if req.quant is not None or req.dtype not in ("bf16", "fp16", "fp32"):
                asked = f"--quant {req.quant}" if req.quant else f"--dtype {req.dtype}"
                warnings.append(
                    f"{asked} ignored for the weights: {source.checkpoint.format} weights are "
                    f"used as stored ({stored}); compute dtype {compute_dtype}"
                )
    kv_dtype_name = req.kv_dtype or compute_dtype
    kv_component = terms.kv_cache(req.batch_size, seq, kv_dtype_name)
    act_seq = chunked_prefill_tokens(seq, prefill_chunk, req.attention, req.logits)
    act_component = terms.activations(
        req.batch_size, act_seq, fmt.compute_bytes, req.logits, req.attention
    )
    components = [
        weights_component,
        kv_component,
        act_component,
        *runtime_overhead_components(kv_component.bytes + act_component.bytes),
    ]
    parallel: dict[str, int] = {}
    if tp * pp > 1:
        components = parallel_components(components, spec, tp, pp)
        parallel = {"tp": tp, "pp": pp}
    inputs = {
        "model": spec.name,
        "dtype": dtype_used,
        "quant": quant_used,
        "kv_dtype": kv_dtype_name,
        "batch_size": req.batch_size,
        "seq_len": seq,
        "logits": req.logits,
        "attention": req.attention,
    }
    if prefill_chunk is not None:
        inputs["prefill_chunk"] = act_seq
    if source.kind not in ("preset", "spec"):  # a file or Hub id: say which, and how weights came
        inputs["model_source"] = source.kind
        inputs["weights_from"] = (
            "checkpoint header"
            if source.checkpoint
            # no checkpoint, but the meta-device route read the tensors off transformers' model
            else "meta-device tensors"
            if spec.exact_tensors
            else "config formula"
        )
    est = make_estimate(
        components,
        fit,
        kind="inference",
        model=spec.name,
        assumed_architecture=spec.assumed_architecture,
        params=terms.params if source.checkpoint is None else source.params,
        active_params=terms.active_params if source.checkpoint is None else source.active_params,
        phase="prefill",
        num_gpus=tp * pp,
        parallel=parallel,
        inputs=inputs,
        assumptions=[
            f"prefill in chunks of {act_seq} tokens"
            if prefill_chunk is not None
            else f"prefill of the whole {seq}-token context at once (the worst case; generation after it needs less workspace)",
            "KV cache sized for every token of every sequence (as a contiguous or paged cache full to the brim)",
            *terms.approximations,
            *source.notes,
        ],
        warnings=warnings,
    )
    if tp * pp > 1:
        est = est.model_copy(update={"cluster_total_bytes": est.total_bytes * tp * pp})
    return est


def chunked_prefill_tokens(
    seq_len: int, prefill_chunk: int | None, attention: str, logits: str
) -> int:
    """Tokens one prefill pass holds: the whole context, or one chunk of `prefill_chunk` (flash
    attention and last-position logits only: eager scores and all-position logits span the
    whole context)."""
    if prefill_chunk is None:
        return seq_len
    if attention == "eager" or logits == "all":
        from vramcalc.errors import VramcalcError

        raise VramcalcError(
            f"--prefill-chunk {prefill_chunk}: needs --attention flash and --logits last "
            "(eager scores and all-position logits span the whole context)"
        )
    return min(seq_len, prefill_chunk)


def parallel_components(
    components: list[Component], spec: ModelSpec, tp: int, pp: int
) -> list[Component]:
    """Per-GPU components over `tp` tensor-parallel ranks and `pp` pipeline stages: weights
    1/(tp·pp); the KV cache by the rank's share of KV heads (a head is replicated when there are
    fewer than ranks; an MLA latent is whole on every rank) and 1/pp of the layers; activations
    1/tp (the sharded projections; the residual stream is whole on every rank, so 1/tp
    understates it); slack re-taken on what is left; the CUDA context on every GPU."""
    from vramcalc.core.serving.common import check_parallel, kv_heads_per_rank

    check_parallel(spec, tp, pp)
    heads = 1.0 if spec.is_mla or not spec.kv_heads else kv_heads_per_rank(spec, tp) / spec.kv_heads
    share = {"weights": 1 / (tp * pp), "kv_cache": heads / pp, "activations": 1 / tp}
    out = [
        Component(
            name=c.name,
            bytes=math.ceil(c.bytes * share[c.name]),
            note=f"{c.note} (per GPU: TP {tp}, PP {pp})",
            formula=f"({c.formula}) × {share[c.name]:g}" if c.formula else "",
            cluster_bytes=round(c.bytes * (heads * tp if c.name == "kv_cache" else 1)),
        )
        if c.name in share
        else c
        for c in components
        if c.name != "allocator_slack"
    ]
    dynamic = sum(c.bytes for c in out if c.name in ("kv_cache", "activations"))
    return [*out, runtime_overhead_components(dynamic)[1]]


# Effective bytes per parameter of a format on a reference 4096×4096 linear weight: what the
# quantization metadata adds when only the parameter count is known.
_REFERENCE_SHAPE = (4096, 4096)


def format_bytes_per_param(fmt: WeightFormat) -> float:
    rows, cols = _REFERENCE_SHAPE
    return fmt.quantized_tensor_bytes(rows, cols) / (rows * cols)


def weights_only_estimate(
    n_params: int, fmt: WeightFormat, dtype: str, fit: tuple[str, int] | None
) -> Estimate:
    """params × nominal bytes of the dtype: the classic table (no KV cache, activations or overhead)."""
    nominal = NOMINAL_BYTES[dtype.lower()]
    weights = int(n_params * nominal)
    return make_estimate(
        [
            Component(
                name="weights",
                bytes=weights,
                note=f"{n_params:,} params × {nominal:g} byte{'' if nominal == 1 else 's'} ({dtype})",
                formula=f"{n_params:,} × {nominal:g} B",
            )
        ],
        fit,
        kind="inference",
        model=f"{n_params:,} parameters",
        params=n_params,
        active_params=n_params,
        weights_only=True,
        phase="weights only",
        inputs={
            "params": n_params,
            "dtype": dtype,
            "quant": fmt.name,
            "format_bytes_per_param": format_bytes_per_param(fmt),
        },
        assumptions=[
            "model given only by size: weights only, no KV cache, activations or runtime overhead"
        ],
    )


__all__ = [
    "FORMATS",
    "InferenceRequest",
    "SpecTerms",
    "estimate_inference",
    "inference_activation_bytes",
    "inference_activation_terms",
    "kv_cache_bytes",
    "spec_terms",
]
