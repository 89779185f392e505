"""Weight bytes per format, derived by hand from each library's storage layout."""

from __future__ import annotations

import pytest

import vramcalc
from vramcalc.errors import VramcalcError
from vramcalc.spec.params import TensorGroup, tensor_groups
from vramcalc.spec.quant import FORMATS, resolve_format, weight_bytes

W = TensorGroup("w", "linear", 4096, 4096, 1)  # one 4096×4096 linear weight
N = 4096 * 4096


def test_dense() -> None:
    assert FORMATS["fp32"].group_bytes(W) == 4 * N
    assert FORMATS["bf16"].group_bytes(W) == 2 * N


def test_llm_int8_row_scales() -> None:
    assert FORMATS["llm.int8"].group_bytes(W) == N + 4 * 4096


def test_nf4_double_quant() -> None:
    blocks = N // 64  # 262,144 absmax values
    # packed 4-bit + 16-entry fp32 code + uint8 absmax + fp32 per 256 blocks + offset + 256 fp32 code
    assert FORMATS["nf4"].group_bytes(W) == N // 2 + 64 + blocks + 4 * (blocks // 256) + 4 + 1024
    # without double quantization the absmax is fp32: 0.5 bit per weight more
    assert FORMATS["nf4-nodq"].group_bytes(W) == N // 2 + 64 + 4 * blocks


def test_gptq_awq_group_128() -> None:
    groups = 4096 // 128
    qweight = N // 2
    qzeros = groups * 4096 // 2
    scales = groups * 4096 * 2
    assert FORMATS["awq"].group_bytes(W) == qweight + qzeros + scales
    assert FORMATS["gptq"].group_bytes(W) == qweight + qzeros + scales + 4 * 4096  # + g_idx


def test_unquantized_tensors_stay_16bit() -> None:
    emb = TensorGroup("e", "embedding", 32000, 4096, 1)
    assert FORMATS["awq"].group_bytes(emb) == 2 * 32000 * 4096
    assert FORMATS["llm.int8"].group_bytes(TensorGroup("n", "norm", 4096, 1, 65)) == 2 * 4096 * 65


def test_llama_int4_weights() -> None:
    spec = vramcalc.get_model("llama-2-7b")
    groups = tensor_groups(spec)
    linear = sum(g.numel for g in groups if g.kind == "linear")
    other = sum(g.numel for g in groups if g.kind != "linear")
    # embeddings + lm_head + norms: 2×32000×4096 + 65×4096 in bf16
    assert other == 2 * 32000 * 4096 + 65 * 4096
    awq = weight_bytes(groups, FORMATS["awq"])
    assert awq > linear // 2 + 2 * other  # metadata on top of 4 bits
    assert awq < linear * 0.53 + 2 * other  # AWQ g128 adds 2.5/128 B per weight ≈ 0.52 B


@pytest.mark.parametrize(
    ("dtype", "quant", "expected"),
    [
        ("int4", None, "awq"),
        ("int8", None, "llm.int8"),
        ("fp8", None, "fp8-e4m3"),
        (None, "nf4", "nf4"),
        ("int4", "gptq", "gptq"),
        ("bf16", None, "bf16"),
    ],
)
def test_resolve_format(dtype: str | None, quant: str | None, expected: str) -> None:
    assert resolve_format(dtype, quant).name == expected


def test_resolve_format_rejects_mismatch() -> None:
    with pytest.raises(VramcalcError, match="int4 format, not int8"):
        resolve_format("int8", "nf4")
    with pytest.raises(VramcalcError, match="valid"):
        resolve_format("int3", None)
