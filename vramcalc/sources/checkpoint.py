"""What a checkpoint file says about its tensors: names, dtypes, shapes and exact stored bytes.

Both readers (safetensors and GGUF headers) produce :class:`TensorRecord` rows. The weights of an
estimate then come from these rows instead of the ModelSpec formula: stored bytes as they are for a
pre-quantized checkpoint (GPTQ, AWQ, bitsandbytes, FP8, GGUF), or each real tensor re-costed in the
requested format for a 16/32-bit one (the checkpoint's shapes are exact; its storage dtype is not
necessarily the one the model is loaded in).
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from vramcalc.spec.model import ExactTensor
from vramcalc.spec.params import (
    BIAS,
    EMBEDDING,
    LINEAR,
    LM_HEAD,
    NORM,
    POSITION,
    ROUTER,
    TensorGroup,
)
from vramcalc.spec.quant import WeightFormat, weight_bytes


class TensorRecord(BaseModel):
    """One tensor of a checkpoint as its header describes it."""

    model_config = ConfigDict(frozen=True)

    name: str
    dtype: str = Field(description="safetensors dtype (BF16, I32, ...) or GGML type (Q4_K, ...)")
    shape: tuple[int, ...] = Field(description="logical shape (GGUF: ne reversed to row-major)")
    nbytes: int = Field(ge=0, description="bytes the tensor occupies in the file")

    @property
    def numel(self) -> int:
        return math.prod(self.shape) if self.shape else 1


class CheckpointInfo(BaseModel):
    """The tensors of a checkpoint (all shards) and what kind of quantization they carry."""

    model_config = ConfigDict(frozen=True)

    format: Literal["safetensors", "gguf"]
    origin: str = Field(description="file, folder or Hub id the headers were read from")
    tensors: tuple[TensorRecord, ...]
    quantization: str | None = Field(
        None, description="pre-quantized checkpoint: what quantization (weights used as stored)"
    )

    @property
    def stored_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)

    @property
    def numel(self) -> int:
        return sum(t.numel for t in self.tensors)

    def bytes_by_dtype(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tensors:
            out[t.dtype] = out.get(t.dtype, 0) + t.nbytes
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))


_EMBED_NAMES = ("embed_tokens", "wte", "word_embeddings", "embed_in", "token_embd")
_POSITION_NAMES = ("wpe", "embed_positions", "position_embd")
_HEAD_NAMES = ("lm_head", "embed_out", "output.weight")
_ROUTER_SUFFIXES = (".gate.weight", "shared_expert_gate.weight", "ffn_gate_inp.weight")


def tensor_kind(name: str, ndim: int) -> str:
    """Role of a checkpoint tensor from its name: what quantization formats leave in 16-bit
    (embeddings, lm_head, norms, biases, routers) and what they quantize (other matrices)."""
    if any(part in name for part in _POSITION_NAMES):
        return POSITION
    if any(part in name for part in _EMBED_NAMES):
        return EMBEDDING
    if any(name == h or name.startswith(h) or f".{h}" in name for h in _HEAD_NAMES):
        return LM_HEAD
    if ndim <= 1:
        return BIAS if name.endswith(".bias") else NORM
    if name.endswith(_ROUTER_SUFFIXES):
        return ROUTER
    return LINEAR


def tensor_groups_of(info: CheckpointInfo) -> tuple[TensorGroup, ...]:
    """One TensorGroup per checkpoint tensor; a 3-D tensor (fused experts) is `count` matrices."""
    groups = []
    for t in info.tensors:
        shape = t.shape or (1,)
        kind = tensor_kind(t.name, len(shape))
        if len(shape) == 1:
            rows, cols, count = shape[0], 1, 1
        elif len(shape) == 2:
            rows, cols, count = shape[0], shape[1], 1
        else:
            count, rows, cols = math.prod(shape[:-2]), shape[-2], shape[-1]
        groups.append(TensorGroup(t.name, kind, rows, cols, count))
    return tuple(groups)


_LAYER_INDEX = re.compile(r"\.(\d+)\.")
# One nn.Module per expert ("mlp.experts.7.w1.weight"; not "shared_experts.0") or the fused
# tensors of an experts module ("mlp.experts.gate_up_proj", experts × rows × cols).
_EXPERT_INDEX = re.compile(r"(?<![A-Za-z_])experts\.\d+\.")
_FUSED_EXPERTS = re.compile(r"(?<![A-Za-z_])experts\.[^.\d][^.]*$")


def exact_tensors_of(info: CheckpointInfo) -> tuple[ExactTensor, ...]:
    """The checkpoint's tensors as a ModelSpec inventory: one row per (name with layer and expert
    indices as ``*``, kind, shape), routed-expert tensors flagged, so that every estimate (infer,
    train, LoRA, parallel plans) counts the tensors the checkpoint really holds."""
    groups: dict[tuple[str, str, int, int, bool], int] = {}
    for t in info.tensors:
        shape = t.shape or (1,)
        if 0 in shape:
            continue
        kind = tensor_kind(t.name, len(shape))
        fused = bool(_FUSED_EXPERTS.search(t.name)) and len(shape) >= 2
        expert = fused or bool(_EXPERT_INDEX.search(t.name))
        if fused and len(shape) == 2:  # per-expert bias vectors: experts × width
            count, rows, cols = shape[0], shape[1], 1
        elif len(shape) == 1:
            rows, cols, count = shape[0], 1, 1
        elif len(shape) == 2:
            rows, cols, count = shape[0], shape[1], 1
        else:
            count, rows, cols = math.prod(shape[:-2]), shape[-2], shape[-1]
        name = _LAYER_INDEX.sub(".*.", _LAYER_INDEX.sub(".*.", f".{t.name}."))[1:-1]
        if kind in (LINEAR, ROUTER):  # 'layers.*.self_attn.q_proj': the module, as LoRA names it
            name = name.removesuffix(".weight")
        key = (name, kind, rows, cols, expert)
        groups[key] = groups.get(key, 0) + count
    return tuple(
        ExactTensor(name=name, kind=kind, rows=rows, cols=cols, count=count, expert=expert)
        for (name, kind, rows, cols, expert), count in groups.items()
    )


def checkpoint_weight_bytes(info: CheckpointInfo, fmt: WeightFormat) -> tuple[int, str]:
    """Weights from the checkpoint's own tensors, and the note that says how."""
    n = len(info.tensors)
    if info.quantization:
        return (
            info.stored_bytes,
            f"as stored: {info.quantization}; {n:,} tensors from the {info.format} header "
            f"of {info.origin}",
        )
    return (
        weight_bytes(tensor_groups_of(info), fmt),
        f"{fmt.name}: {fmt.description}; {n:,} tensors ({info.numel:,} values) from the "
        f"{info.format} header of {info.origin}",
    )
