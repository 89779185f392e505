"""One cache model for every estimate: KV per token (GQA, MLA, windows, hybrids) + state."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import vramcalc
from vramcalc.core.cost import estimate_inference_cost
from vramcalc.core.inference import estimate_inference
from vramcalc.core.kv_cache import kv_cache_bytes, kv_elements_per_sequence, kv_elements_per_token
from vramcalc.sources.hf_config import spec_from_config
from vramcalc.spec.model import ModelSpec

# https://huggingface.co/deepseek-ai/DeepSeek-V3/blob/main/config.json (the fields that matter)
DEEPSEEK_V3: dict[str, Any] = {
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
}


def test_gqa_per_token_by_hand() -> None:
    # Llama-3.1-8B: 2 (K, V) × 32 layers × 8 kv heads × 128 = 65,536 elements per token
    spec = vramcalc.get_model("llama-3.1-8b")
    assert kv_elements_per_token(spec) == 65_536
    # 4 sequences × 8192 tokens × 65,536 × 2 bytes (bf16) = 4 GiB
    assert kv_cache_bytes(spec, 4, 8192, 2) == 4 * 8192 * 65_536 * 2 == 4 * 2**30


def test_sliding_window_by_hand() -> None:
    # Gemma-2-9B: 42 layers, 21 windowed at 4096; per layer 2 × 8 kv heads × 256 = 4096 elements.
    # At 8192 tokens: 21 × 8192 × 4096 + 21 × 4096 × 4096 = 1,056,964,608 elements
    spec = vramcalc.get_model("gemma-2-9b")
    assert kv_elements_per_sequence(spec, 8192) == 21 * 8192 * 4096 + 21 * 4096 * 4096
    # within the window nothing is capped: 42 × 1000 × 4096
    assert kv_elements_per_sequence(spec, 1000) == 42 * 1000 * 4096
    assert estimate_inference(spec, seq_len=8192).component("kv_cache") == 1_056_964_608 * 2


def test_mla_per_token_deepseek_v3() -> None:
    spec, _ = spec_from_config(DEEPSEEK_V3, "deepseek-v3")
    # MLA: 61 layers × (kv_lora_rank 512 + rope key 64) = 35,136 elements per token, instead of
    # 2 × 61 × 128 heads × 192 = 2,998,272 for the decompressed keys and values
    assert kv_elements_per_token(spec) == 61 * (512 + 64) == 35_136


def test_mla_in_cost_infer() -> None:
    """Decode reads the whole cache each step; two runs whose mean contexts differ by 1000
    tokens differ by exactly 1000 × 61 × 576 × 2 bytes (bf16) = 70,272,000 B per sequence (the
    weights read are the same). Before the shared cache model cost infer used 2 × 61 × kv_dim =
    2 × 61 × 128 × 192 = 2,998,272 elements per token, 85× the 35,136 of the MLA latent cache the
    serving engines keep."""
    spec, _ = spec_from_config(DEEPSEEK_V3, "deepseek-v3")
    short = estimate_inference_cost(spec, gpu="h100", num_gpus=8, prompt_tokens=1000)
    long = estimate_inference_cost(spec, gpu="h100", num_gpus=8, prompt_tokens=2000)
    assert short.output_tokens == long.output_tokens
    assert long.decode_bytes_per_step - short.decode_bytes_per_step == 1000 * 61 * 576 * 2


def test_window_in_cost_infer() -> None:
    # Mistral-7B (window 4096 on all 32 layers, 8 kv heads × 128): past the window a longer
    # prompt reads no more cache: 2 × 32 × 1024 × 4096 × 2 bytes at any context ≥ 4096
    spec = vramcalc.get_model("mistral-7b")
    a = estimate_inference_cost(spec, gpu="h100", prompt_tokens=6000)
    b = estimate_inference_cost(spec, gpu="h100", prompt_tokens=9000)
    assert a.decode_bytes_per_step == b.decode_bytes_per_step


def test_exact_route_overrides() -> None:
    base = vramcalc.get_model("llama-3.1-8b")
    spec = base.model_copy(update={"kv_elements_per_token": 1000, "state_elements_per_sequence": 7})
    assert kv_elements_per_token(spec) == 1000
    assert kv_cache_bytes(spec, 2, 10, 2) == 2 * (1000 * 10 + 7) * 2
    # with a window on 8 of the 32 layers (as the meta route sets it for uniform layers), those
    # layers hold 1000 × 8/32 = 250 elements per token for at most 100 tokens:
    # 750 × 500 + 250 × 100 = 400,000 at 500 tokens
    windowed = spec.model_copy(
        update={"sliding_window": 100, "sliding_window_layers": 8, "state_elements_per_sequence": 0}
    )
    assert kv_elements_per_sequence(windowed, 500) == 750 * 500 + 250 * 100 == 400_000


@given(
    layers=st.integers(1, 64),
    attention=st.integers(0, 64),
    windowed=st.integers(0, 64),
    window=st.integers(1, 4096),
    seq=st.integers(1, 20000),
    state=st.integers(0, 10**6),
)
def test_cache_bounds(
    layers: int, attention: int, windowed: int, window: int, seq: int, state: int
) -> None:
    attention, windowed = min(attention, layers), min(windowed, layers)
    spec = ModelSpec(
        name="p",
        architecture="llama",
        vocab_size=8,
        hidden_size=16,
        num_layers=layers,
        num_attention_heads=4,
        num_kv_heads=2,
        intermediate_size=8,
        max_position_embeddings=8,
        sliding_window=window,
        sliding_window_layers=windowed,
        attention_layers=attention,
        state_elements_per_sequence=state,
    )
    total = kv_elements_per_sequence(spec, seq)
    # never more than every attention layer holding every token, never less than the state
    assert state <= total <= kv_elements_per_token(spec) * seq + state
    assert kv_elements_per_sequence(spec, seq + 1) >= total
    assert kv_elements_per_token(spec) == attention * 2 * 2 * 4
