"""The KV cache of a GGUF model whose architecture caches something other than one K and V per
head and layer: exact from the metadata, or refused in one line (vramcalc/sources/gguf_cache.py).
Each test writes a small GGUF file (header only; the tensor data is zeros)."""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import pytest

import vramcalc
from vramcalc.errors import VramcalcError
from vramcalc.sources import resolve_model_source

F32 = 0
_SCALAR = {bool: (7, "<?"), int: (4, "<I")}


def _string(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("<Q", len(raw)) + raw


def _value(value: Any) -> bytes:
    """GGUF metadata value: u32 ints, bools, strings and arrays of them (ids of ggml's gguf.md)."""
    if isinstance(value, str):
        return struct.pack("<I", 8) + _string(value)
    if isinstance(value, list):
        if value and isinstance(value[0], str):
            return struct.pack("<IIQ", 9, 8, len(value)) + b"".join(_string(v) for v in value)
        vtype, fmt = _SCALAR[type(value[0])]
        body = b"".join(struct.pack(fmt, v) for v in value)
        return struct.pack("<IIQ", 9, vtype, len(value)) + body
    vtype, fmt = _SCALAR[type(value)]
    return struct.pack("<I", vtype) + struct.pack(fmt, value)


def gguf(tmp_path: Path, arch: str, layers: int = 2, **extra: Any) -> Path:
    """A tiny model of `arch`: hidden 256, 4 heads of 64, 2 K/V heads, vocab 320; `extra` adds
    metadata under the architecture's prefix (`attention__sliding_window` → `.attention.sliding
    _window`) or, with a `tensor_` prefix, tensors of one 16-value F32 row."""
    meta: dict[str, Any] = {
        "general.architecture": arch,
        "general.name": f"tiny-{arch}",
        f"{arch}.block_count": layers,
        f"{arch}.embedding_length": 256,
        f"{arch}.feed_forward_length": 512,
        f"{arch}.attention.head_count": 4,
        f"{arch}.attention.head_count_kv": 2,
        f"{arch}.context_length": 4096,
        "tokenizer.ggml.tokens": [f"t{i}" for i in range(320)],
    }
    tensors = [("token_embd.weight", [256, 320], F32), ("output_norm.weight", [256], F32)]
    for k, v in extra.items():
        if k.startswith("tensor_"):
            tensors.append((k.removeprefix("tensor_").replace("__", "."), [16], F32))
        else:
            meta[f"{arch}.{k.replace('__', '.')}"] = v
    path = tmp_path / f"{arch}.gguf"
    write(path, meta, tensors)
    return path


def write(path: Path, meta: dict[str, Any], tensors: list[tuple[str, list[int], int]]) -> None:
    """Header (version 3, little-endian, ggml docs/gguf.md), tensor infos, F32 data 32-aligned."""
    out = [b"GGUF", struct.pack("<IQQ", 3, len(tensors), len(meta))]
    out += [_string(k) + _value(v) for k, v in meta.items()]
    offset = 0
    for name, ne, type_id in tensors:
        assert type_id == F32
        out.append(_string(name) + struct.pack("<I", len(ne)))
        out.append(struct.pack(f"<{len(ne)}Q", *ne) + struct.pack("<IQ", type_id, offset))
        offset += -(-4 * math.prod(ne) // 32) * 32
    head = b"".join(out)
    with path.open("wb") as f:
        f.write(head + b"\0" * (-len(head) % 32))
        f.truncate(len(head) + (-len(head) % 32) + offset)


def kv_bytes(path: Path, seq_len: int) -> int:
    est = vramcalc.estimate_inference(resolve_model_source(str(path)), seq_len=seq_len)
    return est.component("kv_cache")


# ---- recurrent state: refused ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arch", "extra", "named"),
    [
        ("mamba", {"ssm__state_size": 16}, "mamba.ssm.state_size"),
        ("jamba", {"ssm__conv_kernel": 4}, "jamba.ssm.conv_kernel"),
        ("rwkv6", {"tensor_blk__0__time_mix_w1__weight": 0}, "blk.0.time_mix_w1.weight"),
        ("lfm2", {"shortconv__l_cache": 3}, "lfm2.shortconv.l_cache"),
    ],
)
def test_recurrent_state_is_refused_in_one_line(
    tmp_path: Path, arch: str, extra: dict[str, Any], named: str
) -> None:
    path = gguf(tmp_path, arch, **extra)
    with pytest.raises(VramcalcError, match="recurrent state") as refused:
        resolve_model_source(str(path))
    assert named in str(refused.value) and "\n" not in str(refused.value)


def test_shared_kv_layers_are_refused(tmp_path: Path) -> None:
    path = gguf(tmp_path, "gemma3n", attention__shared_kv_layers=1)
    with pytest.raises(VramcalcError, match="shares KV caches between layers"):
        resolve_model_source(str(path))


# ---- sliding windows: llama.cpp's pattern, the file's, or refused -------------------------------

# per layer and token: K and V of 2 heads × 64 = 256 values; bf16 cache 2 B → 512 B per layer-token
LAYER_TOKEN_BYTES = 2 * 2 * 64 * 2


@pytest.mark.parametrize(
    ("arch", "layers", "windowed"),
    [
        ("gemma3", 6, 5),  # il % 6 < 5: layers 0-4 windowed, layer 5 full
        ("gemma3", 12, 10),
        ("gemma2", 3, 2),  # il % 2 < 1: layers 0 and 2
        ("gpt-oss", 4, 2),
        ("cohere2", 4, 3),  # il % 4 < 3
    ],
)
def test_window_layers_follow_llama_cpp_patterns(
    tmp_path: Path, arch: str, layers: int, windowed: int
) -> None:
    path = gguf(tmp_path, arch, layers=layers, attention__sliding_window=512)
    src = resolve_model_source(str(path))
    assert (src.spec.sliding_window, src.spec.sliding_window_layers) == (512, windowed)
    assert any("n_ubatch" in n for n in src.notes)
    # 2048 tokens: the windowed layers hold 512, the others all 2048
    expected = ((layers - windowed) * 2048 + windowed * 512) * LAYER_TOKEN_BYTES
    assert kv_bytes(path, 2048) == expected


def test_window_of_an_architecture_without_a_known_pattern_is_refused(tmp_path: Path) -> None:
    path = gguf(tmp_path, "exaone4", layers=4, attention__sliding_window=512)
    with pytest.raises(VramcalcError, match="does not say which layers use it"):
        resolve_model_source(str(path))
    # the per-layer pattern in the file says it: layers 0-2 windowed
    path = gguf(
        tmp_path,
        "exaone4",
        layers=4,
        attention__sliding_window=512,
        attention__sliding_window_pattern=[True, True, True, False],
    )
    assert resolve_model_source(str(path)).spec.sliding_window_layers == 3
    assert kv_bytes(path, 2048) == (1 * 2048 + 3 * 512) * LAYER_TOKEN_BYTES


# ---- MLA: llama.cpp's latent cache, or the decompressed K/V of an older conversion -------------

MLA = {
    "attention__kv_lora_rank": 128,
    "rope__dimension_count": 16,
    "attention__q_lora_rank": 96,
}


def test_mla_file_with_key_length_mla_caches_the_latent(tmp_path: Path) -> None:
    path = gguf(
        tmp_path,
        "deepseek2",
        **MLA,
        attention__key_length=144,  # kv_lora_rank 128 + rope 16: llama.cpp's cache row
        attention__value_length=128,
        attention__key_length_mla=64,  # decompressed head widths: nope 48 + rope 16, V 64
        attention__value_length_mla=64,
        attention__head_count_kv=1,
    )
    src = resolve_model_source(str(path))
    assert src.spec.is_mla and src.spec.qk_nope_head_dim == 48
    # 2 layers × 1000 tokens × (128 + 16) × 2 B
    assert kv_bytes(path, 1000) == 2 * 1000 * 144 * 2
    assert any("caches the latent" in n for n in src.notes)


def test_mla_file_converted_without_key_length_mla_caches_every_head(tmp_path: Path) -> None:
    path = gguf(
        tmp_path,
        "deepseek2",
        **MLA,
        attention__key_length=64,  # per head: nope 48 + rope 16
        attention__value_length=64,
        attention__head_count_kv=4,
    )
    src = resolve_model_source(str(path))
    # llama.cpp's plain attention path: 2 layers × 4 heads × (K 64 + V 64) per token, × 1000 × 2 B
    assert src.spec.kv_elements_per_token == 2 * 4 * 128 == 1024
    assert kv_bytes(path, 1000) == 1024 * 1000 * 2
    assert any("without attention.key_length_mla" in n for n in src.notes)


# ---- K/V heads per layer ------------------------------------------------------------------------


def test_head_count_kv_per_layer_is_summed(tmp_path: Path) -> None:
    path = gguf(tmp_path, "llama", layers=3)
    assert kv_bytes(path, 100) == 3 * 100 * LAYER_TOKEN_BYTES  # uniform: 2 heads everywhere
    path = gguf(tmp_path, "llama", layers=3, attention__head_count_kv=[2, 1, 4])
    # (2 + 1 + 4) heads × (K 64 + V 64) = 896 per token (the max, 4, would give 1536)
    assert resolve_model_source(str(path)).spec.kv_elements_per_token == 7 * 128
    assert kv_bytes(path, 100) == 896 * 100 * 2
