"""Time the exact meta-device route on full-size configs (run by hand; needs vramcalc[torch]).

PYTHONPATH=. python benchmarks/meta_route.py          # one line per model
PYTHONPATH=. python benchmarks/meta_route.py --json   # machine-readable rows

Each config is the model's own config.json values (sources below); the route builds the model on
the meta device (no weights) and runs three short meta-device prefills to read its cache. Import of
torch and transformers is reported separately; each model's first run includes importing its
transformers module, "again" is a second run in the same process.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from typing import Any

warnings.filterwarnings("ignore")

# https://huggingface.co/meta-llama/Llama-3.3-70B-Instruct/blob/main/config.json
LLAMA_3_3_70B: dict[str, Any] = {
    "model_type": "llama",
    "hidden_size": 8192,
    "intermediate_size": 28672,
    "num_hidden_layers": 80,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "rope_theta": 500000.0,
    "rope_scaling": {
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
}
# https://huggingface.co/meta-llama/Llama-4-Maverick-17B-128E-Instruct/blob/main/config.json
# (text_config: 48 layers, 128 routed experts + a shared one on every other layer, ~400B)
LLAMA_4_MAVERICK_TEXT: dict[str, Any] = {
    "model_type": "llama4_text",
    "hidden_size": 5120,
    "intermediate_size": 8192,
    "intermediate_size_mlp": 16384,
    "num_hidden_layers": 48,
    "num_attention_heads": 40,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 202048,
    "max_position_embeddings": 1048576,
    "num_local_experts": 128,
    "num_experts_per_tok": 1,
    "interleave_moe_layer_step": 2,
    "attention_chunk_size": 8192,
    "use_qk_norm": False,
    "rope_theta": 500000.0,
    "rope_scaling": None,
    "tie_word_embeddings": False,
}
# https://huggingface.co/deepseek-ai/DeepSeek-V3/blob/main/config.json (671B)
DEEPSEEK_V3: dict[str, Any] = {
    "model_type": "deepseek_v3",
    "hidden_size": 7168,
    "intermediate_size": 18432,
    "moe_intermediate_size": 2048,
    "num_hidden_layers": 61,
    "num_attention_heads": 128,
    "num_key_value_heads": 128,
    "n_routed_experts": 256,
    "n_shared_experts": 1,
    "num_experts_per_tok": 8,
    "first_k_dense_replace": 3,
    "n_group": 8,
    "topk_group": 4,
    "q_lora_rank": 1536,
    "kv_lora_rank": 512,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "v_head_dim": 128,
    "vocab_size": 129280,
    "max_position_embeddings": 163840,
    "tie_word_embeddings": False,
}
MODELS = {
    "Llama-3.3-70B": LLAMA_3_3_70B,
    "Llama-4-Maverick (text)": LLAMA_4_MAVERICK_TEXT,
    "DeepSeek-V3": DEEPSEEK_V3,
}


def main() -> None:
    t0 = time.perf_counter()
    import torch  # noqa: F401
    import transformers

    from vramcalc.measure.meta import inspect_config

    import_seconds = time.perf_counter() - t0
    rows = []
    for label, cfg in MODELS.items():
        start = time.perf_counter()
        inv = inspect_config(cfg)  # cold: includes importing the model's transformers module
        total = time.perf_counter() - start
        start = time.perf_counter()
        inspect_config(cfg)
        again = time.perf_counter() - start
        cache = inv.cache
        rows.append(
            {
                "model": label,
                "params": inv.param_count,
                "build_seconds": round(inv.build_seconds, 2),
                "cache_seconds": round(inv.cache_seconds, 2),
                "total_seconds": round(total, 2),
                "repeat_seconds": round(again, 2),
                "kv_elements_per_token": cache.kv_elements_per_token if cache else None,
                "cache_error": inv.cache_error,
            }
        )
    if "--json" in sys.argv:
        print(json.dumps({"import_seconds": round(import_seconds, 2), "rows": rows}, indent=2))
        return
    print(
        f"transformers {transformers.__version__}; import torch+transformers {import_seconds:.1f} s"
    )
    for r in rows:
        print(
            f"{r['model']:26s} {r['params'] / 1e9:8.2f}B params  build {r['build_seconds']:6.2f} s  "
            f"cache {r['cache_seconds']:6.2f} s  total {r['total_seconds']:6.2f} s  "
            f"(again {r['repeat_seconds']:5.2f} s)  "
            f"KV/token {r['kv_elements_per_token']} {r['cache_error']}"
        )


if __name__ == "__main__":
    main()
