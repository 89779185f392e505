"""Read a GGUF file's header with ``struct``: metadata and tensor infos, never the tensor data.

Layout (ggml docs/gguf.md, versions 2 and 3; little-endian): magic ``GGUF``, u32 version, u64
tensor count, u64 metadata count, then metadata ``(string key, u32 type, value)``, then per tensor
``(string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset)``. A string is a u64 length
and UTF-8 bytes; an array is a u32 element type, a u64 count and the elements.

Bytes per tensor: ne / block_size × type_size with the (block size, type size) of each GGML type
from llama.cpp ``gguf-py/gguf/constants.py`` (GGML_QUANT_SIZES), e.g. Q4_0 18 B per 32 weights,
Q8_0 34 B / 32, Q4_K 144 B / 256, Q5_K 176 B / 256, Q6_K 210 B / 256.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import ValidationError

from vramcalc.errors import VramcalcError, format_validation_error
from vramcalc.safe_io import clean_text, open_regular
from vramcalc.spec.model import ModelSpec

from .checkpoint import TensorRecord
from .gguf_cache import mla_fields, per_layer_kv, refuse_recurrent, window_fields

QK_K = 256
# ggml type id -> (name, block size in weights, bytes per block)  (GGML_QUANT_SIZES, ggml.h ids)
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 2 + 16),
    3: ("Q4_1", 32, 2 + 2 + 16),
    6: ("Q5_0", 32, 2 + 4 + 16),
    7: ("Q5_1", 32, 2 + 2 + 4 + 16),
    8: ("Q8_0", 32, 2 + 32),
    9: ("Q8_1", 32, 4 + 4 + 32),
    10: ("Q2_K", QK_K, 2 + 2 + QK_K // 16 + QK_K // 4),
    11: ("Q3_K", QK_K, 2 + QK_K // 4 + QK_K // 8 + 12),
    12: ("Q4_K", QK_K, 2 + 2 + QK_K // 2 + 12),
    13: ("Q5_K", QK_K, 2 + 2 + QK_K // 2 + QK_K // 8 + 12),
    14: ("Q6_K", QK_K, 2 + QK_K // 2 + QK_K // 4 + QK_K // 16),
    15: ("Q8_K", QK_K, 4 + QK_K + QK_K // 8),
    16: ("IQ2_XXS", QK_K, 2 + QK_K // 4),
    17: ("IQ2_XS", QK_K, 2 + QK_K // 4 + QK_K // 32),
    18: ("IQ3_XXS", QK_K, 2 + QK_K // 4 + QK_K // 8),
    19: ("IQ1_S", QK_K, 2 + QK_K // 8 + QK_K // 16),
    20: ("IQ4_NL", 32, 2 + 16),
    21: ("IQ3_S", QK_K, 2 + QK_K // 4 + QK_K // 8 + QK_K // 32 + 4),
    22: ("IQ2_S", QK_K, 2 + QK_K // 4 + QK_K // 16),
    23: ("IQ4_XS", QK_K, 2 + 2 + QK_K // 2 + QK_K // 64),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", QK_K, QK_K // 8 + QK_K // 16 + QK_K // 32),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", QK_K, 2 + 4 * 13),
    35: ("TQ2_0", QK_K, 2 + 64),
    39: ("MXFP4", 32, 1 + 16),
}

# GGUF metadata value types: id -> struct format (8 string, 9 array handled apart)
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q"}
_SCALARS |= {11: "<q", 12: "<d"}
_MAX_STRING = 1 << 26
_MAX_ARRAY = 1 << 28
_MAX_TENSORS = 1 << 22
_MAX_DIMS = 8
_MAX_DEPTH = 3  # arrays of arrays of arrays: more than any writer produces
_KEEP_ARRAY = 4096  # per-layer arrays (head counts, FFN widths) are one entry per layer
_KEEP_TOTAL = 1 << 20  # all kept array entries of one file together


class Skipped:
    """A metadata value read past, not kept: a long array, an array of strings or arrays."""

    def __init__(self, count: int) -> None:
        self.count = count

    def __repr__(self) -> str:
        return f"<array of {self.count:,}>"


class _Reader:
    def __init__(self, f: BinaryIO, path: Path, size: int) -> None:
        self.f, self.path, self.size = f, path, size
        self.kept = 0

    def bad(self, what: str) -> VramcalcError:
        return VramcalcError(f"{self.path}: malformed GGUF header: {what}")

    def left(self) -> int:
        return self.size - self.f.tell()

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        raw = self.f.read(size)
        if len(raw) != size:
            raise self.bad("file ends inside the header")
        return struct.unpack(fmt, raw)[0]

    def skip(self, n: int, what: str) -> None:
        if n > self.left():
            raise self.bad(f"file ends inside {what}")
        self.f.seek(n, 1)

    def string(self, keep: bool = True) -> str:
        n = self.take("<Q")
        if n > _MAX_STRING or n > self.left():
            raise self.bad(f"string of {n:,} bytes in a file of {self.size:,}")
        if not keep:
            self.skip(n, "a string")
            return ""
        raw = self.f.read(n)
        if len(raw) != n:
            raise self.bad("file ends inside a string")
        return raw.decode("utf-8", errors="replace")

    def value(self, vtype: int, keep: bool = True, depth: int = 0) -> Any:
        """A metadata value; arrays are kept only when short and numeric (per-layer values),
        otherwise read past (seek) with their element count bounded by the bytes left."""
        if vtype in _SCALARS:
            return self.take(_SCALARS[vtype])
        if vtype == 8:
            return self.string(keep)
        if vtype != 9:
            raise self.bad(f"unknown metadata value type {vtype}")
        if depth >= _MAX_DEPTH:
            raise self.bad(f"arrays nested more than {_MAX_DEPTH} deep")
        etype, count = self.take("<I"), self.take("<Q")
        least = struct.calcsize(_SCALARS[etype]) if etype in _SCALARS else 8 if etype == 8 else 12
        if count > _MAX_ARRAY or count * least > self.left():
            raise self.bad(f"array of {count:,} items in a file of {self.size:,} bytes")
        if etype in _SCALARS and keep and count <= _KEEP_ARRAY and self.kept + count <= _KEEP_TOTAL:
            self.kept += count
            fmt = _SCALARS[etype]
            return list(struct.unpack(f"<{count}{fmt[1]}", self.f.read(count * least)))
        if etype in _SCALARS:
            self.skip(count * least, "an array")
        else:
            for _ in range(count):  # strings or nested arrays: read past, never kept
                self.value(etype, False, depth + 1)
        # tokenizer lists (keep=False) are wanted for their length; others are not numbers
        return count if not keep else Skipped(count)


def read_gguf(path: Path) -> tuple[dict[str, Any], list[TensorRecord]]:
    """Metadata (long arrays such as the vocabulary reduced to their length) and tensors."""
    f, size = open_regular(path, "GGUF file")
    with f:
        r = _Reader(f, path, size)
        if f.read(4) != b"GGUF":
            raise VramcalcError(f"{path}: not a GGUF file (no GGUF magic)")
        version = r.take("<I")
        if version not in (2, 3):
            raise VramcalcError(f"{path}: GGUF version {version} is not supported (2 and 3 are)")
        n_tensors, n_kv = r.take("<Q"), r.take("<Q")
        # each metadata entry takes >= 13 bytes (key length, type, a 1-byte value); a tensor >= 24
        if n_tensors > _MAX_TENSORS or n_kv > _MAX_TENSORS or 13 * n_kv + 24 * n_tensors > size:
            raise r.bad(f"{n_tensors:,} tensors, {n_kv:,} metadata entries in {size:,} bytes")
        meta: dict[str, Any] = {}
        for _ in range(n_kv):
            key = r.string()
            vtype = r.take("<I")
            # token lists and merges are long and not needed: keep only their length
            keep = not key.startswith("tokenizer.ggml.") or key == "tokenizer.ggml.model"
            meta[key] = r.value(vtype, keep)
        tensors = []
        for _ in range(n_tensors):
            name = r.string()
            n_dims = r.take("<I")
            if n_dims > _MAX_DIMS:
                raise r.bad(f"tensor {clean_text(name)[:80]!r} has {n_dims} dimensions")
            ne = [r.take("<Q") for _ in range(n_dims)]
            type_id = r.take("<I")
            r.take("<Q")  # data offset
            tensors.append(_record(path, name, ne, type_id))
    stored = sum(t.nbytes for t in tensors)
    if stored > size:
        raise r.bad(f"tensors of {stored:,} bytes in a file of {size:,}")
    return meta, tensors


def _record(path: Path, name: str, ne: list[int], type_id: int) -> TensorRecord:
    info = GGML_TYPES.get(type_id)
    if info is None:
        raise VramcalcError(
            f"{path}: tensor {clean_text(name)[:80]!r} has GGML type {type_id}, unknown to vramcalc"
        )
    type_name, block, size = info
    numel = math.prod(ne) if ne else 1
    if ne and ne[0] % block:
        raise VramcalcError(
            f"{path}: tensor {clean_text(name)[:80]!r} row of {ne[0]} is not a multiple of "
            f"{type_name}'s {block}"
        )
    # ggml's ne[0] is the contiguous (innermost) dimension: reversed, it is the row-major shape
    return TensorRecord(
        name=name, dtype=type_name, shape=tuple(reversed(ne)), nbytes=numel // block * size
    )


# llama.cpp architecture names -> Hugging Face model_type (what activations.py keys on)
_ARCH_NAMES = {
    "gptneox": "gpt_neox",
    "qwen2moe": "qwen2_moe",
    "qwen3moe": "qwen3_moe",
    "gemma3": "gemma3_text",
    "deepseek2": "deepseek_v2",
}
_LAYER_NORMS = ("attn_norm", "attn_norm_2", "ffn_norm", "post_attention_norm", "post_ffw_norm")


_MAX_COUNT = 1 << 32  # GGUF writes counts and widths as u32


def gguf_count(value: Any, where: str) -> int | None:
    """A count or width from metadata, validated before any arithmetic: an integer (not a bool,
    not a float) from 0 to 2^32; a per-layer array (head counts, FFN widths of some models)
    gives its largest entry; None when absent."""
    if isinstance(value, list):
        value = max(value, key=lambda v: v if isinstance(v, int) else -1) if value else None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_COUNT:
        shown = clean_text(repr(value))[:60]
        raise VramcalcError(f"{where} = {shown}: expected a whole number from 0 to 2^32")
    return value


def spec_from_gguf(
    meta: dict[str, Any], tensors: list[TensorRecord], name: str, source: str
) -> tuple[ModelSpec, list[str]]:
    """The ModelSpec for KV cache and activations, from GGUF metadata and tensor names, and the
    notes on how its cache was read (:mod:`vramcalc.sources.gguf_cache`)."""
    arch = meta.get("general.architecture", "")
    if not isinstance(arch, str) or not arch:
        raise VramcalcError(f"{source}: GGUF metadata has no general.architecture string")
    arch = clean_text(arch)[:64]

    def key(k: str) -> int | None:
        return gguf_count(meta.get(f"{arch}.{k}"), f"{source}: GGUF {arch}.{k}")

    names = {t.name for t in tensors}
    by_name = {t.name: t for t in tensors}
    missing: list[str] = []
    refuse_recurrent(meta, names, arch, source)
    notes: list[str] = []

    def need(k: str) -> int:
        v = key(k)
        if v is None:
            missing.append(f"{arch}.{k}")
            return 1
        return v

    hidden = need("embedding_length")
    layers = need("block_count")
    heads = need("attention.head_count")
    ff = key("feed_forward_length") or key("expert_feed_forward_length")
    if ff is None:
        missing.append(f"{arch}.feed_forward_length")
    context = need("context_length")
    tokens = gguf_count(meta.get("tokenizer.ggml.tokens"), f"{source}: GGUF tokenizer.ggml.tokens")
    vocab = key("vocab_size") or tokens
    if vocab is None and "token_embd.weight" in by_name:
        vocab = gguf_count(by_name["token_embd.weight"].shape[0], f"{source}: token_embd rows")
    if vocab is None:
        missing.append(f"{arch}.vocab_size")
    if missing:
        raise VramcalcError(
            f"{source}: GGUF architecture {arch!r}: could not map {', '.join(missing)}"
        )
    fields: dict[str, Any] = {
        "architecture": _ARCH_NAMES.get(arch, arch),
        "vocab_size": int(vocab or 1),
        "hidden_size": hidden,
        "num_layers": layers,
        "num_attention_heads": heads,
        "num_kv_heads": int(key("attention.head_count_kv") or heads),
        "intermediate_size": int(ff or 1),
        "max_position_embeddings": context,
        "mlp_kind": "gated"
        if any(".ffn_gate." in n or ".ffn_gate_exps." in n for n in names)
        else "plain",
        "norm_kind": "layernorm" if "blk.0.attn_norm.bias" in names else "rmsnorm",
        "norms_per_layer": max(1, sum(f"blk.0.{n}.weight" in names for n in _LAYER_NORMS)),
        "tie_word_embeddings": "output.weight" not in names,
        "position_embedding": "learned" if "position_embd.weight" in names else "rotary",
        "qk_norm": "blk.0.attn_q_norm.weight" in names,
        "attention_qkv_bias": "blk.0.attn_q.bias" in names or "blk.0.attn_qkv.bias" in names,
        "attention_out_bias": "blk.0.attn_output.bias" in names,
        "mlp_bias": "blk.0.ffn_up.bias" in names,
    }
    head_dim = key("attention.key_length")
    if head_dim and head_dim * heads != hidden:
        fields["head_dim"] = int(head_dim)
    window = key("attention.sliding_window")
    if window:
        more, said = window_fields(meta, arch, layers, int(window), source)
        fields |= more
        notes += said
    experts = int(key("expert_count") or 0)
    if experts:
        fields |= {
            "num_experts": experts,
            "experts_per_token": int(key("expert_used_count") or 1),
            "moe_intermediate_size": key("expert_feed_forward_length"),
            "num_shared_experts": int(key("expert_shared_count") or 0),
            "first_dense_layers": int(key("leading_dense_block_count") or 0),
        }
    kv_lora = key("attention.kv_lora_rank")
    if kv_lora:  # DeepSeek MLA: key_length_mla/value_length_mla in newer files
        fields.pop("head_dim", None)
        more, said = mla_fields(key, layers, heads, int(kv_lora), source)
        fields |= more
        notes += said
    else:
        head_k = int(head_dim or hidden // max(heads, 1))
        per_layer = per_layer_kv(
            meta, arch, layers, head_k, int(key("attention.value_length") or head_k)
        )
        if per_layer is not None:
            if window:
                raise VramcalcError(
                    f"{source}: GGUF {arch!r} varies its K/V heads by layer and has a sliding "
                    "window: which layers hold which cache is not in the metadata"
                )
            fields["kv_elements_per_token"] = per_layer
            notes.append("K/V heads per layer from the file's head_count_kv array, summed")
    fields = {k: v for k, v in fields.items() if v is not None}
    try:
        return ModelSpec(name=name, source=source, **fields), notes
    except ValidationError as exc:
        raise VramcalcError(f"{source}: {format_validation_error(exc)}") from None


def gguf_quantization(meta: dict[str, Any], tensors: list[TensorRecord]) -> str:
    """'GGUF Q4_K 210 tensors, Q6_K 1, F32 65' — the types, most bytes first."""
    by_type: dict[str, list[int]] = {}
    for t in tensors:
        entry = by_type.setdefault(t.dtype, [0, 0])
        entry[0] += 1
        entry[1] += t.nbytes
    parts = sorted(by_type.items(), key=lambda kv: -kv[1][1])
    return "GGUF " + ", ".join(f"{name} ×{count}" for name, (count, _) in parts)
