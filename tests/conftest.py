import pytest

from vramcalc.spec.model import ModelSpec


@pytest.fixture
def tiny_llama() -> ModelSpec:
    """A 2-layer GQA Llama small enough to count by hand."""
    return ModelSpec(
        name="tiny-llama",
        architecture="llama",
        vocab_size=100,
        hidden_size=16,
        num_layers=2,
        num_attention_heads=4,
        num_kv_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
