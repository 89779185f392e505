"""Build the demo inputs of docs/sources.md in a folder (needs torch + transformers):

* ``qwen2.5-0.5b-ft/``: Qwen2.5-0.5B's config.json and a header-exact bf16 model.safetensors whose
  tensor names and shapes come from the transformers model built on the meta device (the data is a
  sparse hole: no weights are downloaded or written);
* ``deepseek-v3/config.json``: DeepSeek-V3's published config fields (no checkpoint);
* ``tiny.Q4_K_M.gguf``: a small GGUF file in llama.cpp's Q4_K_M mix.

    python scripts/sources_demo.py /tmp/demo
"""

from __future__ import annotations

import json
import math
import struct
import sys
from pathlib import Path

QWEN = {
    "model_type": "qwen2",
    "architectures": ["Qwen2ForCausalLM"],
    "vocab_size": 151936,
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "tie_word_embeddings": True,
    "hidden_act": "silu",
    "torch_dtype": "bfloat16",
}
V3 = {
    "model_type": "deepseek_v3",
    "vocab_size": 129280,
    "hidden_size": 7168,
    "intermediate_size": 18432,
    "moe_intermediate_size": 2048,
    "num_hidden_layers": 61,
    "num_attention_heads": 128,
    "num_key_value_heads": 128,
    "n_shared_experts": 1,
    "n_routed_experts": 256,
    "num_experts_per_tok": 8,
    "first_k_dense_replace": 3,
    "q_lora_rank": 1536,
    "kv_lora_rank": 512,
    "qk_rope_head_dim": 64,
    "qk_nope_head_dim": 128,
    "v_head_dim": 128,
    "max_position_embeddings": 163840,
    "tie_word_embeddings": False,
}


def write_safetensors(path: Path, shapes: dict[str, list[int]], dtype: str = "BF16") -> None:
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in shapes.items():
        size = math.prod(shape) * 2
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)


def gguf(path: Path) -> None:
    def s(text: str) -> bytes:
        return struct.pack("<Q", len(text)) + text.encode()

    meta = {
        "general.architecture": "llama",
        "general.name": "tiny-llama-q4km",
        "llama.block_count": 4,
        "llama.embedding_length": 1024,
        "llama.feed_forward_length": 2816,
        "llama.attention.head_count": 16,
        "llama.attention.head_count_kv": 4,
        "llama.context_length": 8192,
        "llama.vocab_size": 32000,
    }
    q4k, q6k, f32 = 12, 14, 0
    tensors = [("token_embd.weight", [1024, 32000], q4k), ("output.weight", [1024, 32000], q6k)]
    tensors.append(("output_norm.weight", [1024], f32))
    for i in range(4):
        b = f"blk.{i}."
        tensors += [
            (b + "attn_q.weight", [1024, 1024], q4k),
            (b + "attn_k.weight", [1024, 256], q4k),
            (b + "attn_v.weight", [1024, 256], q6k),
            (b + "attn_output.weight", [1024, 1024], q4k),
            (b + "ffn_gate.weight", [1024, 2816], q4k),
            (b + "ffn_up.weight", [1024, 2816], q4k),
            (b + "ffn_down.weight", [2816, 1024], q6k),
            (b + "attn_norm.weight", [1024], f32),
            (b + "ffn_norm.weight", [1024], f32),
        ]
    sizes = {q4k: (256, 144), q6k: (256, 210), f32: (1, 4)}
    out = [b"GGUF", struct.pack("<IQQ", 3, len(tensors), len(meta))]
    for k, v in meta.items():
        out.append(
            s(k) + (struct.pack("<I", 8) + s(v) if isinstance(v, str) else struct.pack("<II", 4, v))
        )
    offset = 0
    for name, ne, t in tensors:
        out.append(s(name) + struct.pack("<I", len(ne)) + struct.pack(f"<{len(ne)}Q", *ne))
        out.append(struct.pack("<IQ", t, offset))
        block, size = sizes[t]
        offset += -(-math.prod(ne) // block * size // 32) * 32
    head = b"".join(out)
    with path.open("wb") as f:
        f.write(head + b"\0" * (-len(head) % 32))
        f.truncate(len(head) + (-len(head) % 32) + offset)


def main(root: Path) -> None:
    import torch  # noqa: TID251 (a script, not the package)
    import transformers  # noqa: TID251

    ft = root / "qwen2.5-0.5b-ft"
    ft.mkdir(parents=True, exist_ok=True)
    (ft / "config.json").write_text(json.dumps(QWEN, indent=2))
    cfg = dict(QWEN)
    config = transformers.AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    shapes = {n: list(p.shape) for n, p in model.named_parameters()}  # tied lm_head saved once
    write_safetensors(ft / "model.safetensors", shapes)
    (root / "deepseek-v3").mkdir(exist_ok=True)
    (root / "deepseek-v3" / "config.json").write_text(json.dumps(V3, indent=2))
    gguf(root / "tiny.Q4_K_M.gguf")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
