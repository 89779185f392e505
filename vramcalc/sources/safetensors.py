"""Read safetensors headers with the standard library (never the tensor data).

Format (https://huggingface.co/docs/safetensors, "Format"): 8 bytes little-endian u64 N, then N
bytes of JSON ``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``,
then the data. A sharded checkpoint lists its shards in ``model.safetensors.index.json``
(``weight_map``: tensor name → shard file).
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

from vramcalc.errors import VramcalcError
from vramcalc.safe_io import (
    MAX_JSON_BYTES,
    clean_text,
    load_json,
    loads_json,
    open_regular,
    safe_relative,
)

from .checkpoint import TensorRecord

# The safetensors reference implementation refuses headers above 100 MB.
MAX_HEADER_BYTES = 100_000_000

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


# Bits per element of each safetensors dtype (safetensors src/tensor.rs, Dtype::bitsize).
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32,
    "I64": 64, "U64": 64, "F64": 64, "C64": 64, "F4": 4, "F6_E3M2": 6, "F6_E2M3": 6,
}  # fmt: skip
_MAX_DIMS = 8


def read_header(path: Path) -> dict[str, Any]:
    """The JSON header of one .safetensors file."""
    return _read_header(path)[0]


def read_tensors(path: Path, where: str) -> list[TensorRecord]:
    """The validated tensor records of one .safetensors file (offsets checked against its size)."""
    header, data_bytes = _read_header(path)
    return records_from_header(header, where, data_bytes)


def _read_header(path: Path) -> tuple[dict[str, Any], int]:
    """The header and the byte size of the data section after it."""
    f, file_size = open_regular(path, "safetensors file")
    try:
        with f:
            head = f.read(8)
            if len(head) != 8:
                raise VramcalcError(f"{path}: not a safetensors file (shorter than 8 bytes)")
            (size,) = struct.unpack("<Q", head)
            if size > MAX_HEADER_BYTES:
                # the size is not shown: for a file that is not safetensors it is 8 of its bytes
                raise VramcalcError(
                    f"{path}: not a safetensors file (header length over the "
                    f"{MAX_HEADER_BYTES:,}-byte limit)"
                )
            if size > file_size - 8:
                raise VramcalcError(f"{path}: truncated safetensors header")
            raw = f.read(size)
    except OSError as exc:
        raise VramcalcError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) != size:
        raise VramcalcError(f"{path}: truncated safetensors header")
    header = loads_json(raw, f"{path}: safetensors header")
    if not isinstance(header, dict):
        raise VramcalcError(f"{path}: safetensors header is not a JSON object")
    return header, file_size - 8 - size


def _nonneg_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _record(name: str, entry: Any, data_bytes: int | None) -> TensorRecord:
    """One header entry, validated as the safetensors library does: a known dtype, a shape of
    non-negative integers, offsets inside the data section spanning exactly numel × dtype size."""
    if not isinstance(entry, dict):
        raise ValueError("entry is not an object")
    dtype = entry.get("dtype")
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        raise ValueError(f"dtype {clean_text(dtype)!r} is not a safetensors dtype")
    shape = entry.get("shape")
    if not isinstance(shape, list) or len(shape) > _MAX_DIMS:
        raise ValueError(f"shape must be a list of at most {_MAX_DIMS} sizes")
    if not all(_nonneg_int(d) for d in shape):
        raise ValueError(f"shape {shape!r:.80} must hold non-negative integers")
    offsets = entry.get("data_offsets")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(map(_nonneg_int, offsets)):
        raise ValueError("data_offsets must be [begin, end], non-negative integers")
    begin, end = offsets
    if end < begin:
        raise ValueError(f"data_offsets {offsets} end before they begin")
    if data_bytes is not None and end > data_bytes:
        raise ValueError(f"data_offsets {offsets} lie outside the {data_bytes:,}-byte data")
    bits = math.prod(shape) * DTYPE_BITS[dtype]
    if bits != (end - begin) * 8:
        raise ValueError(f"{end - begin:,} bytes do not hold a {dtype} tensor of shape {shape}")
    return TensorRecord(name=name, dtype=dtype, shape=tuple(shape), nbytes=end - begin)


def records_from_header(
    header: dict[str, Any], where: str, data_bytes: int | None = None
) -> list[TensorRecord]:
    """TensorRecords from a parsed header; bytes are the span of each tensor's data_offsets
    (checked to lie inside the file's `data_bytes` when known)."""
    out = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            out.append(_record(name, entry, data_bytes))
        except ValueError as exc:
            raise VramcalcError(
                f"{where}: malformed safetensors entry {clean_text(name)[:80]!r}: {exc}"
            ) from None
    if not out:
        raise VramcalcError(f"{where}: the safetensors header lists no tensors")
    return out


def read_json(path: Path) -> Any:
    """A JSON file (config.json, the shard index): regular file, at most 10 MB, strictly parsed;
    one clear error when missing or malformed."""
    return load_json(path, MAX_JSON_BYTES, "JSON file")


def shard_names(index: Any, where: str) -> list[str]:
    """Shard files named by an index's weight_map, in order; names that leave the folder
    (absolute, ``..``) are refused before anything is opened."""
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise VramcalcError(f"{where}: index has no weight_map")
    if not all(isinstance(v, str) for v in weight_map.values()):
        raise VramcalcError(f"{where}: weight_map values must be shard file names")
    return sorted({safe_relative(v, where) for v in weight_map.values()})


def read_folder(folder: Path) -> tuple[list[TensorRecord], str] | None:
    """All tensors of a model folder's safetensors checkpoint (sharded or not), or None."""
    index_path = folder / INDEX_FILE
    if index_path.is_file():
        names = shard_names(read_json(index_path), str(index_path))
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise VramcalcError(f"{folder}: shard {missing[0]} named by {INDEX_FILE} is missing")
        records = [r for n in names for r in read_tensors(folder / n, n)]
        return records, f"{folder} ({len(names)} shards)"
    single = folder / SINGLE_FILE
    if single.is_file():
        return read_tensors(single, str(single)), str(single)
    return None
