"""Builders of well-formed and crafted model files (GGUF, safetensors, config.json, index json,
GPU TOML) for the hostile-input tests, the CLI fuzz and ``benchmarks/fuzz.py``.

GGUF values are written field by field from the format (ggml docs/gguf.md): a string is a u64
length and bytes; an array is a u32 element type, a u64 count and the elements.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

from model_files import TINY, llama_tensor_shapes, safetensors_for

# GGUF metadata value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?"}
_FMT |= {U64: "<Q", I64: "<q", F64: "<d"}



def gguf_string(s: str | bytes) -> bytes:
    raw = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(raw)) + raw


def gguf_value(vtype: int, value: Any) -> bytes:
    """The bytes of one typed value (without its type tag); arrays are (etype, [values])."""
    if vtype == STR:
        return gguf_string(value)
    if vtype == ARR:
        etype, items = value
        return struct.pack("<IQ", etype, len(items)) + b"".join(gguf_value(etype, v) for v in items)
    return struct.pack(_FMT[vtype], value)


def gguf_entry(key: str, vtype: int, value: Any) -> bytes:
    return gguf_string(key) + struct.pack("<I", vtype) + gguf_value(vtype, value)


def nested_array(depth: int) -> bytes:
    """A GGUF array value nested `depth` levels deep: array of array of ... of one u32."""
    out = struct.pack("<IQ", U32, 1) + struct.pack("<I", 7)
    for _ in range(depth - 1):
        out = struct.pack("<IQ", ARR, 1) + out
    return out


LLAMA_META: list[tuple[str, int, Any]] = [
    ("general.architecture", STR, "llama"),
    ("general.name", STR, "tiny-gguf"),
    ("llama.block_count", U32, 2),
    ("llama.embedding_length", U32, 64),
    ("llama.feed_forward_length", U32, 128),
    ("llama.attention.head_count", U32, 4),
    ("llama.attention.head_count_kv", U32, 2),
    ("llama.context_length", U32, 512),
    ("tokenizer.ggml.tokens", ARR, (STR, [f"t{i}" for i in range(256)])),
]

LLAMA_TENSORS: list[tuple[str, list[int], int]] = [
    ("token_embd.weight", [64, 256], 1),  # F16
    ("output.weight", [64, 256], 1),
    ("output_norm.weight", [64], 0),  # F32
    *[
        (f"blk.{i}.{name}", shape, 1 if len(shape) == 2 else 0)
        for i in range(2)
        for name, shape in (
            ("attn_q.weight", [64, 64]),
            ("attn_k.weight", [64, 32]),
            ("attn_v.weight", [64, 32]),
            ("attn_output.weight", [64, 64]),
            ("ffn_gate.weight", [64, 128]),
            ("ffn_up.weight", [64, 128]),
            ("ffn_down.weight", [128, 64]),
            ("attn_norm.weight", [64]),
            ("ffn_norm.weight", [64]),
        )
    ],
]


def gguf_bytes(
    entries: list[bytes] | None = None,
    tensors: list[tuple[str, list[int], int]] | None = None,
    n_kv: int | None = None,
    n_tensors: int | None = None,
    data: bool = True,
) -> bytes:
    """A GGUF v3 file: raw metadata entries (default: a tiny Llama), tensor infos, zero data
    (left out with ``data=False``)."""
    entries = entries if entries is not None else [gguf_entry(*e) for e in LLAMA_META]
    tensors = tensors if tensors is not None else LLAMA_TENSORS
    head = [b"GGUF", struct.pack("<IQQ", 3, n_tensors or len(tensors), n_kv or len(entries))]
    head += entries
    offset = 0
    for name, ne, type_id in tensors:
        nbytes = math.prod(ne) * (4 if type_id == 0 else 2)
        head.append(gguf_string(name) + struct.pack("<I", len(ne)))
        head.append(struct.pack(f"<{len(ne)}Q", *ne) + struct.pack("<IQ", type_id, offset))
        offset += -(-nbytes // 32) * 32
    raw = b"".join(head)
    raw += b"\0" * (-len(raw) % 32)
    return raw + b"\0" * offset if data else raw


def llama_meta_with(key: str, vtype: int, value: Any) -> list[bytes]:
    """The tiny Llama's metadata with `key` replaced (or added) by a crafted value."""
    out = [gguf_entry(k, t, v) for k, t, v in LLAMA_META if k != key]
    return [*out, gguf_entry(key, vtype, value)]




def safetensors_bytes(header: dict[str, Any] | bytes, data_bytes: int = 0) -> bytes:
    """A safetensors file: u64 header length, the header (a dict or raw bytes), zero data."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + b"\0" * data_bytes




def model_folder(root: Path, cfg: dict[str, Any] | None = None, weights: bool = True) -> Path:
    """A model folder: config.json and (by default) a matching model.safetensors."""
    cfg = cfg or TINY
    folder = root / "model"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    if weights:
        (folder / "model.safetensors").write_bytes(safetensors_for(llama_tensor_shapes(cfg)))
    return folder


def run_main(argv: list[str]) -> tuple[int, str, str]:
    """`vramcalc ARGV` in this process through the console entry point (the one-line error
    handler included): exit code, stdout, stderr."""
    import contextlib
    import io

    from vramcalc.cli.app import main

    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code
    return (
        (code if isinstance(code, int) else 0 if code is None else 1),
        out.getvalue(),
        err.getvalue(),
    )


def strict_json(text: str) -> Any:
    """Parse `text` as strict JSON: NaN, Infinity and -Infinity are errors."""

    def refuse(name: str) -> Any:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    """Exit 2 with exactly one `vramcalc: error:` line on stderr containing every fragment."""
    assert code == 2, err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("vramcalc: error: "), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
