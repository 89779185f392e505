"""Read safetensors headers with the standard library (never the tensor data).

Format (https://huggingface.co/docs/safetensors, "Format"): 8 bytes little-endian u64 N, then N
bytes of JSON ``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``,
then the data. A sharded checkpoint lists its shards in ``model.safetensors.index.json``
(``weight_map``: tensor name → shard file).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from vramcalc.errors import VramcalcError

from .checkpoint import TensorRecord

# The safetensors reference implementation refuses headers above 100 MB.
MAX_HEADER_BYTES = 100_000_000

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


def read_header(path: Path) -> dict[str, Any]:
    """The JSON header of one .safetensors file."""
    try:
        with path.open("rb") as f:
            head = f.read(8)
            if len(head) != 8:
                raise VramcalcError(f"{path}: not a safetensors file (shorter than 8 bytes)")
            (size,) = struct.unpack("<Q", head)
            if size > MAX_HEADER_BYTES:
                raise VramcalcError(f"{path}: not a safetensors file (header of {size:,} bytes)")
            raw = f.read(size)
    except OSError as exc:
        raise VramcalcError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) != size:
        raise VramcalcError(f"{path}: truncated safetensors header")
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VramcalcError(f"{path}: safetensors header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise VramcalcError(f"{path}: safetensors header is not a JSON object")
    return header


def records_from_header(header: dict[str, Any], where: str) -> list[TensorRecord]:
    """TensorRecords from a parsed header; bytes are the span of each tensor's data_offsets."""
    out = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, end = entry["data_offsets"]
            out.append(
                TensorRecord(
                    name=name,
                    dtype=str(entry["dtype"]),
                    shape=tuple(int(d) for d in entry["shape"]),
                    nbytes=int(end) - int(begin),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise VramcalcError(f"{where}: malformed safetensors entry {name!r}: {exc}") from None
    return out


def read_json(path: Path) -> Any:
    """A JSON file (config.json, the shard index); one clear error when missing or malformed."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VramcalcError(f"{path}: no such file") from None
    except OSError as exc:
        raise VramcalcError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise VramcalcError(
            f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


def shard_names(index: Any, where: str) -> list[str]:
    """Shard files named by an index's weight_map, in order."""
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise VramcalcError(f"{where}: index has no weight_map")
    return sorted({str(v) for v in weight_map.values()})


def read_folder(folder: Path) -> tuple[list[TensorRecord], str] | None:
    """All tensors of a model folder's safetensors checkpoint (sharded or not), or None."""
    index_path = folder / INDEX_FILE
    if index_path.is_file():
        names = shard_names(read_json(index_path), str(index_path))
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise VramcalcError(f"{folder}: shard {missing[0]} named by {INDEX_FILE} is missing")
        records = [r for n in names for r in records_from_header(read_header(folder / n), n)]
        return records, f"{folder} ({len(names)} shards)"
    single = folder / SINGLE_FILE
    if single.is_file():
        return records_from_header(read_header(single), str(single)), str(single)
    return None
