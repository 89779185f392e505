"""Serving-engine estimates against the engines' own start-up logs (validation/serving/*.toml).

Each usable record is re-run with its setup (tests/serving_evidence.py) and every reading the model
predicts must sit inside the band of its engine and quantity (serving_evidence.BANDS, reasons in
docs/serving.md). Readings the model is known to miss are listed in KNOWN_MISSES with the mechanism
that is not modelled; they are reported in docs/serving.md, not held to a band.
"""

from __future__ import annotations

import pytest

from tests.serving_evidence import BANDS, compare_all, summary

# (record, quantity) -> why the model does not hold it
KNOWN_MISSES = {
    ("llamacpp-mistral-7b-instruct-v0.2-q2k-ctx32000-b2961-issue7450", "weights_gpu_mib"): (
        "a Q2_K file of late 2023: the quantizer's Q2_K mix then differed from today's "
        "llama-quant.cpp rules (give the .gguf file for exact sizes)"
    ),
    (
        "vllm-deepseek-coder-6.7b-t4-tp2-issue5248",
        "kv_cache_tokens",
    ): "vLLM v0.4: the peak was the drop of free memory (everything on the GPU), before the v0.6.4/0.6.5 accounting modelled here",
    ("vllm-deepseek-coder-6.7b-t4-tp2-issue5248", "refused"): "same record: v0.4 accounting",
    (
        "vllm-r1-distill-qwen-14b-rtx4090-tp2-issue13061",
        "peak_activation_gib",
    ): "0.19 GiB paraphrased by the reporter for a V0 v0.7 profile whose sampler runs the top-k sorting path (256 rows × 152k vocabulary): not explained",
    (
        "vllm-llama31-8b-l40s-v1-pr17122",
        "kv_cache_tokens",
    ): "V1 v0.8.5: ~4.5 GiB of start-up memory not explained (said in the output)",
    ("vllm-llama31-8b-l40s-v1-pr17122", "max_concurrency"): "V1 v0.8.5: same",
    (
        "vllm-qwen3-235b-a22b-fp8-h100-tp4-issue21348",
        "kv_cache_gib",
    ): "V1 v0.9 MoE at TP4: ~5 GiB of start-up memory not explained",
    ("vllm-qwen3-235b-a22b-fp8-h100-tp4-issue21348", "kv_cache_tokens"): "V1 v0.9: same",
    (
        "vllm-llama31-405b-fp8-h100-tp8-issue6746",
        "weights_gib",
    ): "Meta's FP8 checkpoint keeps attention in bf16; --dtype fp8 quantizes every linear (read the checkpoint header for exact weights)",
    (
        "sglang-qwq-32b-l4-tp4-v0.4.3-llms-in-clouds",
        "kv_cache_tokens",
    ): "4×L4 over PCIe: NCCL buffers (0.37 GiB per rank here) are not sized, and QwQ's weights come out 1.8 % low",
    ("sglang-qwq-32b-l4-tp4-v0.4.3-llms-in-clouds", "kv_cache_gib"): "same record",
    (
        "llamacpp-llama3-70b-class-2gpu-78of81-ctx8192-pr8035",
        "output_buffer_mib",
    ): "the output buffer is grown on demand; 2 rows were reserved in that run",
    (
        "llamacpp-llama2-7b-q4km-rtx3090-ctx2048-llama-cpp-rs",
        "host_compute_buffer_mib",
    ): "that build keeps the KQ mask off the host buffer (8 MiB = the ubatch's input embeddings alone)",
    (
        "llamacpp-llama31-8b-q40-rtx4080-vulkan-ctx16384-fa-b5781-ik562",
        "compute_buffer_mib",
    ): "flash attention on a Vulkan build (ik_llama.cpp fork): its graph is not modelled; the output says so",
}
# quantized checkpoints: the layout (which tensors stay 16-bit) varies by checkpoint
QUANTIZED_WEIGHTS_BAND = 0.10

COMPARISONS, SKIPS = compare_all()


def test_enough_records_compared() -> None:
    records = {c.record for c in COMPARISONS}
    assert len(records) >= 15
    assert {c.engine for c in COMPARISONS} == {"vllm", "sglang", "llamacpp"}


@pytest.mark.parametrize(
    "c",
    [c for c in COMPARISONS if c.quantity != "refused"],
    ids=lambda c: f"{c.record}:{c.quantity}",
)
def test_reading_within_band(c) -> None:
    if (c.record, c.quantity) in KNOWN_MISSES:
        pytest.skip(KNOWN_MISSES[(c.record, c.quantity)])
    band = BANDS[(c.engine, c.quantity)]
    if c.quantity == "weights_gib" and c.quantized:
        band = QUANTIZED_WEIGHTS_BAND
    assert abs(c.error) <= band, f"{c.record} {c.quantity}: {c.estimate:.4g} vs {c.reading:.4g}"


@pytest.mark.parametrize(
    "c", [c for c in COMPARISONS if c.quantity == "refused"], ids=lambda c: c.record
)
def test_refusal_matches_the_engine(c) -> None:
    if (c.record, c.quantity) in KNOWN_MISSES:
        pytest.skip(KNOWN_MISSES[(c.record, c.quantity)])
    assert c.estimate == c.reading


def test_skipped_records_have_reasons() -> None:
    assert SKIPS and all(s.reason for s in SKIPS)


def test_summary_medians() -> None:
    """The medians docs/serving.md quotes: vLLM weights and llama.cpp KV buffers within 1 %."""
    table = summary(COMPARISONS)
    assert table[("vllm", "weights_gib")][1] < 0.01
    assert table[("llamacpp", "kv_buffer_mib")][2] < 0.001
