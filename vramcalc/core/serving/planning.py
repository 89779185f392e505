"""fit and plan for serving engines: the longest max_model_len and the most concurrent requests a
GPU set holds, and the fewest GPUs (TP degree) for a model and a target concurrency.

Both call :func:`vramcalc.core.serving.estimate_serving` and read its ServingSummary: a context
"fits" when the engine starts (no refusal) and, for llama.cpp, when the GPU holds the total.
vLLM V0 is not monotone in max_model_len (above 32K it profiles a small chunked batch, so a longer
context can leave more KV room: validation/serving/vllm.toml, the 20k/29k/35k runs), so each
regime is searched on its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from vramcalc.core.results import Estimate
from vramcalc.core.serving import (
    EngineOptions,
    LlamaCppOptions,
    SglangOptions,
    VllmOptions,
    estimate_serving,
)
from vramcalc.core.serving.vllm import V0_AUTO_CHUNK_ABOVE
from vramcalc.core.workloads import resolve_source
from vramcalc.errors import VramcalcError

if TYPE_CHECKING:  # pragma: no cover
    from vramcalc.sources import ModelSource
    from vramcalc.spec.model import ModelSpec

TP_DEGREES = (1, 2, 4, 8, 16)


class EngineFit(BaseModel):
    """What one GPU set holds under an engine."""

    model_config = ConfigDict(frozen=True)

    model: str
    engine: str
    gpu: str
    tp: int
    pp: int
    max_model_len: int = Field(description="longest context the engine starts with (0: none)")
    model_max_len: int = Field(description="the model's own maximum (the search's ceiling)")
    at_max_model_len: int = Field(description="the context the concurrency is given for")
    max_concurrency: float = Field(description="requests of at_max_model_len tokens the pool holds")
    kv_pool_tokens: int
    refused: str | None = None


class EnginePlanRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    gpu: str
    num_gpus: int | None = Field(
        description="fewest GPUs reaching the target (None: none up to 16)"
    )
    split: str = Field("tp", description="tp: tensor parallel; pp: llama.cpp's layer split")
    max_concurrency: float = 0.0
    kv_pool_tokens: int = 0
    note: str = ""


class EnginePlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: str
    engine: str
    max_model_len: int
    target_concurrency: float
    rows: list[EnginePlanRow]


def _with_len(engine: str, options: EngineOptions | None, length: int) -> EngineOptions:
    """The engine's options with its context length set to `length`."""
    if engine == "vllm":
        return replace(
            options if isinstance(options, VllmOptions) else VllmOptions(), max_model_len=length
        )
    if engine == "sglang":
        return replace(
            options if isinstance(options, SglangOptions) else SglangOptions(),
            context_length=length,
        )
    return replace(options if isinstance(options, LlamaCppOptions) else LlamaCppOptions(), ctx_size=length)  # fmt: skip


def _starts(est: Estimate) -> bool:
    s = est.serving
    return s is not None and s.refused is None and (est.gpu is None or est.gpu.fits)


def _longest(lo: int, hi: int, ok: Callable[[int], bool]) -> int:
    """Largest x in [lo, hi] with ok(x), ok monotone (True then False); lo − 1 when none."""
    if hi < lo or not ok(lo):
        return lo - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def engine_fit(
    model: str | ModelSpec | ModelSource,
    engine: str,
    gpu: str,
    *,
    options: EngineOptions | None = None,
    tp: int = 1,
    pp: int = 1,
    **kw: object,
) -> EngineFit:
    """The longest max_model_len `engine` starts with on `tp`×`pp` GPUs of `gpu`, and the
    concurrency at the requested (or the model's) context."""
    source = resolve_source(model, None)
    spec = source.spec
    ceiling = spec.max_position_embeddings

    def est(length: int) -> Estimate:
        return estimate_serving(source, engine, options=_with_len(engine, options, length),
                                tp=tp, pp=pp, gpu=gpu, **kw)  # type: ignore[arg-type]  # fmt: skip

    def ok(length: int) -> bool:  # starts, and one request of `length` fits the pool
        e = est(length)
        return _starts(e) and e.serving is not None and e.serving.kv_pool_tokens >= length

    v0 = engine == "vllm" and isinstance(options, VllmOptions) and options.version == "v0"
    if v0 and ceiling > V0_AUTO_CHUNK_ABOVE:  # two regimes (module docstring)
        longest = max(
            _longest(V0_AUTO_CHUNK_ABOVE + 1, ceiling, ok), _longest(1, V0_AUTO_CHUNK_ABOVE, ok)
        )
    else:
        longest = _longest(1, ceiling, ok)
    longest = max(longest, 0)
    asked = _asked_len(engine, options) or ceiling
    at = est(asked)
    s = at.serving
    assert s is not None
    return EngineFit(
        model=spec.name,
        engine=engine,
        gpu=at.gpu.gpu if at.gpu else gpu,
        tp=tp,
        pp=pp,
        max_model_len=longest,
        model_max_len=ceiling,
        at_max_model_len=s.max_model_len,
        max_concurrency=s.max_concurrency if _starts(at) else 0.0,
        kv_pool_tokens=s.kv_pool_tokens,
        refused=s.refused,
    )


def _asked_len(engine: str, options: EngineOptions | None) -> int | None:
    if isinstance(options, VllmOptions):
        return options.max_model_len
    if isinstance(options, SglangOptions):
        return options.context_length
    if isinstance(options, LlamaCppOptions):
        return options.ctx_size
    return None


def engine_plan(
    model: str | ModelSpec | ModelSource,
    engine: str,
    gpus: list[str],
    target_concurrency: float,
    *,
    options: EngineOptions | None = None,
    **kw: object,
) -> EnginePlan:
    """For each GPU: the fewest GPUs whose pool holds `target_concurrency` requests of
    max_model_len tokens (the options' or the model's): tensor parallel for vLLM and SGLang;
    for llama.cpp, that many --parallel slots of that length, all layers offloaded, split by
    layer (--pp) until every GPU holds its share."""
    if target_concurrency <= 0:
        raise VramcalcError(f"--concurrency {target_concurrency}: give a positive number")
    source = resolve_source(model, None)
    spec = source.spec
    length = _asked_len(engine, options) or spec.max_position_embeddings
    if engine == "llama.cpp":
        slots = math.ceil(target_concurrency)
        base = options if isinstance(options, LlamaCppOptions) else LlamaCppOptions()
        options = replace(base, ctx_size=length * slots, parallel=slots, gpu_layers=None)
    rows = [_plan_row(source, engine, gpu, target_concurrency, options, kw) for gpu in gpus]
    rows.sort(key=lambda r: (r.num_gpus is None, r.num_gpus or 0))
    return EnginePlan(model=spec.name, engine=engine, max_model_len=length,
                      target_concurrency=target_concurrency, rows=rows)  # fmt: skip


def _plan_row(
    source: ModelSource,
    engine: str,
    gpu: str,
    target: float,
    options: EngineOptions | None,
    kw: dict[str, object],
) -> EnginePlanRow:
    """The fewest GPUs of `gpu` for the target (degrees 1 … 16 dividing the attention heads)."""
    split = "pp" if engine == "llama.cpp" else "tp"
    for n in TP_DEGREES:
        if split == "tp" and source.spec.num_attention_heads % n:
            continue
        est = estimate_serving(source, engine, options=options, gpu=gpu, **{split: n}, **kw)  # type: ignore[arg-type]
        s = est.serving
        assert s is not None
        if _starts(est) and s.max_concurrency >= target:
            return EnginePlanRow(gpu=est.gpu.gpu if est.gpu else gpu, num_gpus=n, split=split,
                                 max_concurrency=s.max_concurrency,
                                 kv_pool_tokens=s.kv_pool_tokens)  # fmt: skip
    return EnginePlanRow(gpu=gpu, num_gpus=None, split=split,
                         note=f"not reached with up to {TP_DEGREES[-1]} GPUs")  # fmt: skip
