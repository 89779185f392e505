"""Validated inputs of an estimate (pydantic), shared by the library API and the CLI."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vramcalc.errors import VramcalcError, format_validation_error
from vramcalc.sources import ModelSource, resolve_model_source
from vramcalc.sources.presets import get_gpu
from vramcalc.spec.model import ModelSpec
from vramcalc.units import GIB

MAX_TOKENS = 1 << 24  # 16M tokens of context: beyond any model today, catches typos like 4096000000


class Common(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    batch_size: int = Field(1, gt=0, le=1_000_000, description="sequences per forward pass")
    seq_len: int | None = Field(None, gt=0, le=MAX_TOKENS, description="tokens per sequence")
    gpu: str | None = Field(None, description="GPU preset name; the estimate says if it fits")
    gpu_mem_gib: float | None = Field(None, gt=0, le=1 << 20, description="GPU memory in GiB")
    attention: Literal["flash", "eager"] = "flash"


def validate(model: type[BaseModel], **kwargs: object) -> BaseModel:
    """Validate inputs; a bad one raises VramcalcError with one 'field: message' line."""
    try:
        return model(**kwargs)
    except ValidationError as exc:
        raise VramcalcError(format_validation_error(exc)) from None


def resolve_source(
    model: str | ModelSpec | ModelSource,
    revision: str | None = None,
    *,
    assume_llama: bool = False,
) -> ModelSource:
    """Any model argument as a ModelSource: preset, ModelSpec, path, .gguf file or Hub id;
    ``assume_llama`` reads an unmapped architecture as Llama (labelled rough) instead of refusing."""
    if isinstance(model, ModelSpec):
        source = _spec_source(model)  # sweeps pass the same spec again and again
        return source if source.spec is model else _spec_source.__wrapped__(model)
    if isinstance(model, ModelSource):
        return model
    return resolve_model_source(model, revision=revision, assume_llama=assume_llama)


@lru_cache(maxsize=64)
def _spec_source(spec: ModelSpec) -> ModelSource:
    """A ModelSpec as a ModelSource. It is already validated: constructed without re-running
    ModelSpec's validators. (The cache matches equal specs; resolve_source wants this one.)"""
    return ModelSource.model_construct(spec=spec, kind="spec", origin=spec.source or spec.name)


def resolve_model(
    model: str | ModelSpec | ModelSource,
    revision: str | None = None,
    *,
    assume_llama: bool = False,
) -> ModelSpec:
    if isinstance(model, ModelSpec):
        return model
    return resolve_source(model, revision, assume_llama=assume_llama).spec


def resolve_seq_len(spec: ModelSpec, seq_len: int | None) -> int:
    """Default context: 4096 tokens, or the model's maximum when it is shorter."""
    if seq_len is None:
        return min(4096, spec.max_position_embeddings)
    if spec.position_embedding == "learned" and seq_len > spec.max_position_embeddings:
        raise VramcalcError(
            f"--seq-len {seq_len} exceeds {spec.name}'s {spec.max_position_embeddings} learned "
            f"positions; use at most {spec.max_position_embeddings}"
        )
    return seq_len


def context_warnings(spec: ModelSpec, seq_len: int) -> list[str]:
    """A context longer than the model was trained on (rotary or ALiBi positions accept it, but
    quality past max_position_embeddings needs RoPE scaling): the memory is still computed."""
    if seq_len <= spec.max_position_embeddings:
        return []
    return [
        f"--seq-len {seq_len:,} is beyond {spec.name}'s trained context of "
        f"{spec.max_position_embeddings:,} tokens (max_position_embeddings); memory is computed "
        "for it, but the model needs RoPE scaling to use it"
    ]


def resolve_gpu(gpu: str | None, gpu_mem_gib: float | None) -> tuple[str, int] | None:
    if gpu is not None and gpu_mem_gib is not None:
        raise VramcalcError("give --gpu or --gpu-mem, not both")
    if gpu is not None:
        found = get_gpu(gpu)
        return found.title, found.memory_bytes
    if gpu_mem_gib is not None:
        return f"{gpu_mem_gib:g} GiB GPU", int(gpu_mem_gib * GIB)
    return None
