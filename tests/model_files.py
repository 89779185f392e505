"""The tiny Llama checkpoint the source, hostile-input, fuzz and offline tests write: its config,
the tensors transformers saves for it, and safetensors files of those tensors (zero data)."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

TINY: dict[str, Any] = {
    "model_type": "llama",
    "vocab_size": 256,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
    "tie_word_embeddings": False,
}
# embed + lm_head 2×256×64 = 32768; per layer attention 2×64×64 + 2×32×64 = 12288, MLP 3×128×64
# = 24576, 2 norms 128 → 36992 × 2 = 73984; final norm 64 → 106816
TINY_PARAMS = 106816

DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2, "I32": 4, "U8": 1, "F8_E4M3": 1}


def llama_tensor_shapes(cfg: dict[str, Any]) -> dict[str, list[int]]:
    """Tensor name -> shape of the Llama checkpoint `cfg` describes (transformers' names)."""
    h, inter, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    kv = h // cfg["num_attention_heads"] * cfg["num_key_value_heads"]
    out = {"model.embed_tokens.weight": [v, h]}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out |= {
            p + "self_attn.q_proj.weight": [h, h],
            p + "self_attn.k_proj.weight": [kv, h],
            p + "self_attn.v_proj.weight": [kv, h],
            p + "self_attn.o_proj.weight": [h, h],
            p + "mlp.gate_proj.weight": [inter, h],
            p + "mlp.up_proj.weight": [inter, h],
            p + "mlp.down_proj.weight": [h, inter],
            p + "input_layernorm.weight": [h],
            p + "post_attention_layernorm.weight": [h],
        }
    out["model.norm.weight"] = [h]
    out["lm_head.weight"] = [v, h]
    return out


def llama_tensors(cfg: dict[str, Any], dtype: str = "BF16") -> dict[str, tuple[str, list[int]]]:
    """The same tensors, each with its safetensors dtype."""
    return {name: (dtype, shape) for name, shape in llama_tensor_shapes(cfg).items()}


def safetensors_header(tensors: dict[str, tuple[str, list[int]]]) -> tuple[bytes, int]:
    """The u64 length + JSON header of a file holding `tensors` back to back, and its data bytes."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = math.prod(shape) * DTYPE_BYTES[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw, offset


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> int:
    """A safetensors file of `tensors` with zero data (sparse); returns its data bytes."""
    head, data_bytes = safetensors_header(tensors)
    with path.open("wb") as f:
        f.write(head)
        f.truncate(len(head) + data_bytes)
    return data_bytes


def safetensors_for(shapes: dict[str, list[int]], dtype: str = "BF16") -> bytes:
    """A valid safetensors file, as bytes, holding zero tensors of the given shapes."""
    head, data_bytes = safetensors_header({n: (dtype, s) for n, s in shapes.items()})
    return head + b"\0" * data_bytes
