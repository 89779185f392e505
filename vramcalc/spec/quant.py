"""Storage cost of weights per dtype and quantization format, tensor by tensor.

A format quantizes the *linear* weights of the transformer blocks and leaves the rest (token and
position embeddings, lm_head, norms, biases, MoE routers) in its 16-bit compute dtype, as the
libraries that produce these checkpoints do (bitsandbytes via transformers skips lm_head; GPTQ/AWQ
quantize only the decoder blocks' nn.Linear). Each format adds its real metadata:

* ``llm.int8`` (bitsandbytes ``load_in_8bit``): int8 weight + one fp32 scale per output row (SCB).
* ``nf4`` / ``fp4`` (bitsandbytes 4-bit): two weights per byte + one absmax per block of 64 weights:
  fp32 without double quantization; with it (QLoRA's recipe, ``nf4``) the absmax is stored as uint8
  with one fp32 constant per 256 blocks, plus a fp32 offset and a 256-entry fp32 code table per tensor.
  Every 4-bit tensor also keeps its 16-entry fp32 code. (Dettmers et al. 2023, QLoRA, §3; bitsandbytes
  ``functional.quantize_4bit``.)
* ``gptq`` (AutoGPTQ/optimum, 4 bit, group 128): qweight in/8×out int32, qzeros in/g×out/8 int32,
  scales in/g×out fp16, g_idx in int32.  ``awq`` (AutoAWQ GEMM, 4 bit, group 128): the same without g_idx.
* ``fp8-e4m3`` / ``fp8-e5m2``: one byte per weight + one fp32 scale per tensor (per-tensor static
  scaling as in compressed-tensors FP8 checkpoints).
* ``mxfp4`` (gpt-oss): the mixture-of-experts weights only, as OCP Microscaling FP4: 4-bit E2M1
  values with one 8-bit E8M0 scale per block of 32 along the input dimension, 4.25 bits per
  parameter (OCP Microscaling Formats (MX) Specification v1.0, 2023, §5 and Table 1; Rouhani et al.
  arXiv 2310.10537); every other tensor (attention, embeddings, router, biases) stays bf16, as the
  gpt-oss checkpoints ship (gpt-oss model card, arXiv 2508.10925, §2.1 "Quantization": MoE weights
  in MXFP4 at 4.25 bits per parameter). A model without experts has nothing in this format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from vramcalc.errors import VramcalcError
from vramcalc.spec.params import LINEAR, TensorGroup


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True, slots=True)
class WeightFormat:
    name: str
    dtype: str  # the --dtype family it belongs to
    bits: float  # nominal bits of a quantized weight (what the classic table multiplies by)
    compute_bytes: int  # width of activations and of the tensors left unquantized
    description: str
    quantized_tensor_bytes: Callable[[int, int], int]  # (rows=out, cols=in) -> bytes of one tensor
    quantizes_linear_only: bool = True
    quantizes_experts_only: bool = False  # MXFP4 as gpt-oss ships it: expert weights only

    def group_bytes(self, group: TensorGroup) -> int:
        if self.quantizes_linear_only and group.kind != LINEAR:
            return group.numel * self.compute_bytes
        if self.quantizes_experts_only and not group.expert:
            return group.numel * self.compute_bytes
        return self.quantized_tensor_bytes(group.rows, group.cols) * group.count


def _dense(width: int) -> Callable[[int, int], int]:
    return lambda rows, cols: rows * cols * width


def _llm_int8(rows: int, cols: int) -> int:
    return rows * cols + 4 * rows  # int8 weight + fp32 per-row scale


def _bnb4(double_quant: bool) -> Callable[[int, int], int]:
    def size(rows: int, cols: int) -> int:
        numel = rows * cols
        blocks = _ceil_div(numel, 64)
        packed = _ceil_div(numel, 2)
        code = 16 * 4  # the 4-bit code table, fp32
        if double_quant:
            # uint8 absmax + fp32 absmax-of-absmax per 256 blocks + fp32 offset + 256-entry fp32 code
            return packed + code + blocks + 4 * _ceil_div(blocks, 256) + 4 + 256 * 4
        return packed + code + 4 * blocks

    return size


def _gptq(group_size: int, g_idx: bool) -> Callable[[int, int], int]:
    def size(rows: int, cols: int) -> int:
        groups = _ceil_div(cols, group_size)
        qweight = _ceil_div(cols, 8) * rows * 4
        qzeros = groups * _ceil_div(rows, 8) * 4
        scales = groups * rows * 2
        return qweight + qzeros + scales + (cols * 4 if g_idx else 0)

    return size


def _fp8(rows: int, cols: int) -> int:
    return rows * cols + 4  # e4m3/e5m2 weight + fp32 per-tensor scale


MX_BLOCK = 32  # elements sharing one E8M0 scale (OCP MX v1.0, Table 1)


def _mxfp4(rows: int, cols: int) -> int:
    """Per row, ceil(cols/32) blocks of 16 bytes (32 E2M1 values) + 1 scale byte: 17 bytes per
    32 weights = 4.25 bits (gpt-oss stores *_blocks (…, rows, cols/32, 16) and *_scales uint8)."""
    return rows * _ceil_div(cols, MX_BLOCK) * (MX_BLOCK // 2 + 1)


FORMATS: dict[str, WeightFormat] = {
    f.name: f
    for f in (
        WeightFormat("fp32", "fp32", 32, 4, "IEEE float32", _dense(4), quantizes_linear_only=False),
        WeightFormat("bf16", "bf16", 16, 2, "bfloat16", _dense(2), quantizes_linear_only=False),
        WeightFormat("fp16", "fp16", 16, 2, "float16", _dense(2), quantizes_linear_only=False),
        WeightFormat("fp8-e4m3", "fp8", 8, 2, "FP8 E4M3, per-tensor fp32 scale", _fp8),
        WeightFormat("fp8-e5m2", "fp8", 8, 2, "FP8 E5M2, per-tensor fp32 scale", _fp8),
        WeightFormat(
            "llm.int8", "int8", 8, 2, "bitsandbytes LLM.int8(), fp32 row scales", _llm_int8
        ),
        WeightFormat("nf4", "int4", 4, 2, "bitsandbytes NF4, block 64, double quant", _bnb4(True)),
        WeightFormat(
            "nf4-nodq", "int4", 4, 2, "bitsandbytes NF4, block 64, fp32 absmax", _bnb4(False)
        ),
        WeightFormat("fp4", "int4", 4, 2, "bitsandbytes FP4, block 64, fp32 absmax", _bnb4(False)),
        WeightFormat(
            "gptq",
            "int4",
            4,
            2,
            "GPTQ 4-bit, group 128, fp16 scales, act-order g_idx",
            _gptq(128, True),
        ),
        WeightFormat(
            "awq", "int4", 4, 2, "AWQ 4-bit GEMM, group 128, fp16 scales", _gptq(128, False)
        ),
        WeightFormat(
            "mxfp4",
            "int4",
            4.25,
            2,
            "MXFP4 experts (E2M1, E8M0 scale per 32), other tensors bf16",
            _mxfp4,
            quantizes_experts_only=True,
        ),
    )
}

# What each --dtype means when no --quant is given (documented in the README).
DEFAULT_FORMAT = {
    "fp32": "fp32",
    "bf16": "bf16",
    "fp16": "fp16",
    "fp8": "fp8-e4m3",
    "fp8-e4m3": "fp8-e4m3",
    "fp8-e5m2": "fp8-e5m2",
    "int8": "llm.int8",
    "int4": "awq",
}

# Nominal bytes per parameter of each --dtype: the classic "params × bytes" table.
NOMINAL_BYTES = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "fp8-e4m3": 1.0,
    "fp8-e5m2": 1.0,
    "int8": 1.0,
    "int4": 0.5,
}


def dtype_family(dtype: str) -> str:
    """'fp8-e4m3' → 'fp8'; the family a --quant format must match."""
    key = dtype.lower()
    if key not in DEFAULT_FORMAT:
        raise VramcalcError(f"unknown dtype {dtype!r}; valid: {', '.join(DEFAULT_FORMAT)}")
    return FORMATS[DEFAULT_FORMAT[key]].dtype


def resolve_format(dtype: str | None, quant: str | None) -> WeightFormat:
    """The weight format for a --dtype and an optional --quant (which must belong to that dtype)."""
    if quant is None:
        key = (dtype or "bf16").lower()
        dtype_family(key)  # raises on an unknown dtype
        return FORMATS[DEFAULT_FORMAT[key]]
    fmt = FORMATS.get(quant.lower())
    if fmt is None:
        raise VramcalcError(f"unknown --quant {quant!r}; valid: {', '.join(FORMATS)}")
    if dtype is not None and dtype_family(dtype) != fmt.dtype:
        raise VramcalcError(f"--quant {quant!r} is a {fmt.dtype} format, not {dtype}")
    return fmt


# KV cache element widths (--kv-dtype): the dtype widths, less int4 (no 4-bit KV cache here).
KV_BYTES = {name: width for name, width in NOMINAL_BYTES.items() if name != "int4"}


def kv_bytes_per_element(kv_dtype: str) -> float:
    width = KV_BYTES.get(kv_dtype.lower())
    if width is None:
        raise VramcalcError(f"unknown --kv-dtype {kv_dtype!r}; valid: {', '.join(KV_BYTES)}")
    return width


@lru_cache(maxsize=1024)
def weight_bytes(groups: tuple[TensorGroup, ...], fmt: WeightFormat) -> int:
    """Stored bytes of `groups` in `fmt` (cached: sweeps repeat the same model and format)."""
    return sum(fmt.group_bytes(g) for g in groups)
