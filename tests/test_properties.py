"""Invariants over random models and workloads (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vramcalc.inference import estimate_inference
from vramcalc.params import param_count
from vramcalc.specs import ModelSpec
from vramcalc.training import estimate_training


@st.composite
def models(draw: st.DrawFn) -> ModelSpec:
    kv = draw(st.sampled_from([1, 2, 4]))
    heads = kv * draw(st.integers(1, 4))
    head_dim = draw(st.sampled_from([8, 16, 32]))
    moe = draw(st.booleans())
    experts = draw(st.integers(2, 8)) if moe else 0
    return ModelSpec(
        name="random",
        architecture=draw(st.sampled_from(["llama", "qwen2", "mistral"])),
        vocab_size=draw(st.integers(10, 50_000)),
        hidden_size=heads * head_dim,
        num_layers=draw(st.integers(1, 8)),
        num_attention_heads=heads,
        num_kv_heads=kv,
        intermediate_size=draw(st.integers(8, 512)),
        max_position_embeddings=1 << 20,
        tie_word_embeddings=draw(st.booleans()),
        attention_qkv_bias=draw(st.booleans()),
        num_experts=experts,
        experts_per_token=draw(st.integers(1, experts)) if moe else 0,
    )


sizes = st.integers(1, 64)
seqs = st.integers(1, 8192)


@settings(max_examples=150, deadline=None)
@given(models(), sizes, seqs)
def test_inference_total_is_sum_of_parts(spec: ModelSpec, batch: int, seq: int) -> None:
    est = estimate_inference(spec, batch_size=batch, seq_len=seq)
    assert est.total_bytes == sum(c.bytes for c in est.components)
    assert all(c.bytes >= 0 for c in est.components)


@settings(max_examples=150, deadline=None)
@given(models(), sizes, seqs, st.sampled_from(["fp32", "bf16", "int8", "int4"]))
def test_inference_monotonic_in_batch_and_seq(
    spec: ModelSpec, batch: int, seq: int, dtype: str
) -> None:
    base = estimate_inference(spec, dtype=dtype, batch_size=batch, seq_len=seq).total_bytes
    assert (
        estimate_inference(spec, dtype=dtype, batch_size=batch + 1, seq_len=seq).total_bytes >= base
    )
    assert (
        estimate_inference(spec, dtype=dtype, batch_size=batch, seq_len=seq + 1).total_bytes >= base
    )


@settings(max_examples=100, deadline=None)
@given(models())
def test_dtype_order_of_weights(spec: ModelSpec) -> None:
    w = {
        d: estimate_inference(spec, dtype=d, seq_len=16).component("weights")
        for d in ("int4", "int8", "fp16", "fp32")
    }
    assert w["int4"] <= w["int8"] <= w["fp16"] < w["fp32"]
    assert w["fp32"] == 4 * param_count(spec) and w["fp16"] == 2 * param_count(spec)


@settings(max_examples=100, deadline=None)
@given(
    models(),
    sizes,
    st.integers(1, 4096),
    st.sampled_from(["fp32", "bf16-mixed", "bf16"]),
    st.sampled_from(["adamw", "sgd", "adafactor", "adamw-8bit"]),
    st.sampled_from(["none", "full"]),
)
def test_training_invariants(
    spec: ModelSpec, batch: int, seq: int, precision: str, optimizer: str, ckpt: str
) -> None:
    est = estimate_training(
        spec,
        batch_size=batch,
        seq_len=seq,
        precision=precision,
        optimizer=optimizer,
        grad_checkpointing=ckpt,
    )
    assert est.total_bytes == sum(c.bytes for c in est.components)
    bigger = estimate_training(
        spec,
        batch_size=batch + 1,
        seq_len=seq,
        precision=precision,
        optimizer=optimizer,
        grad_checkpointing=ckpt,
    )
    assert bigger.total_bytes >= est.total_bytes
    if ckpt == "none":
        with_ckpt = estimate_training(
            spec,
            batch_size=batch,
            seq_len=seq,
            precision=precision,
            optimizer=optimizer,
            grad_checkpointing="full",
        )
        assert with_ckpt.total_bytes <= est.total_bytes
