"""Which GGML type llama.cpp's quantizer gives each tensor of a file type (Q4_K_M, IQ2_XS, ...).

A restatement of src/llama-quant.cpp (``llama_ftype_get_default_type``,
``llama_tensor_get_type_impl``, ``tensor_type_fallback``), for the tensors vramcalc's model
description has: token embedding, output, and per layer attn_q/k/v/output (or attn_kv_b for MLA)
and ffn_gate/up/down (dense, shared or expert). 1-D tensors, norms and the MoE router are never
quantized (``tensor_allows_quantization``): F32. Falcon's own rules and the IQ3_XS gate/up rule
are followed; an importance matrix is assumed for the IQ1/IQ2/IQ3_XXS types (the quantizer
refuses them without one) and not for the others.
"""

from __future__ import annotations

from dataclasses import dataclass

from vramcalc.errors import VramcalcError

# file type -> default tensor type (llama_ftype_get_default_type)
DEFAULT_TYPE = {
    "F16": "F16", "BF16": "BF16", "Q8_0": "Q8_0", "Q4_0": "Q4_0", "Q4_1": "Q4_1",
    "Q5_0": "Q5_0", "Q5_1": "Q5_1", "Q2_K": "Q2_K", "Q2_K_S": "Q2_K", "Q3_K_S": "Q3_K",
    "Q3_K_M": "Q3_K", "Q3_K_L": "Q3_K", "Q4_K_S": "Q4_K", "Q4_K_M": "Q4_K", "Q5_K_S": "Q5_K",
    "Q5_K_M": "Q5_K", "Q6_K": "Q6_K", "IQ1_S": "IQ1_S", "IQ1_M": "IQ1_M", "IQ2_XXS": "IQ2_XXS",
    "IQ2_XS": "IQ2_XS", "IQ2_S": "IQ2_XS", "IQ2_M": "IQ2_S", "IQ3_XXS": "IQ3_XXS",
    "IQ3_XS": "IQ3_S", "IQ3_S": "IQ3_S", "IQ3_M": "IQ3_S", "IQ4_NL": "IQ4_NL", "IQ4_XS": "IQ4_XS",
}  # fmt: skip
_UNQUANTIZED = ("F16", "BF16")
_IQ_LOW = ("IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M")
_NEEDS_IMATRIX = (*_IQ_LOW, "IQ3_XXS")
# tensor_type_fallback: a row that is no whole number of the type's blocks
_FALLBACK = {
    "IQ1_S": "IQ4_NL", "IQ1_M": "IQ4_NL", "IQ2_XXS": "IQ4_NL", "IQ2_XS": "IQ4_NL",
    "IQ2_S": "IQ4_NL", "IQ3_XXS": "IQ4_NL", "IQ3_S": "IQ4_NL", "IQ4_XS": "IQ4_NL",
    "Q2_K": "Q4_0", "Q3_K": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class ModelShape:
    """What the rules look at: layer count, GQA ratio, expert count, the 70B-class flag
    (llama.cpp's LLM_TYPE_70B: 80 layers with grouped KV heads) and Falcon."""

    n_layer: int
    n_gqa: int
    n_expert: int
    is_70b: bool
    falcon: bool = False


def use_more_bits(i: int, n: int) -> bool:
    """The first and last eighth of the layers and every third one between."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def check_file_type(ftype: str) -> str:
    key = ftype.upper()
    if key not in DEFAULT_TYPE:
        raise VramcalcError(f"--gguf-type {ftype!r}; valid: {', '.join(DEFAULT_TYPE)}")
    return key


def output_type(ftype: str, cols: int, block: int, falcon: bool = False) -> str:
    """output.weight (and a tied token_embd): Q8_0 when the row is no whole block (or Falcon),
    Q5_K for the IQ1/IQ2 (and IQ3_XXS) mixes, else Q6_K unless the default is Q8_0."""
    base = DEFAULT_TYPE[ftype]
    if base in _UNQUANTIZED:
        return base
    if falcon or cols % block:
        return "Q8_0"
    if ftype in (*_IQ_LOW, "IQ3_XXS"):
        return "Q5_K"
    return base if base == "Q8_0" else "Q6_K"


def embedding_type(ftype: str) -> str:
    """token_embd of a model with its own output matrix."""
    if ftype in ("IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M"):
        return "Q2_K"
    if ftype in ("IQ2_S", "IQ2_M", "IQ3_XXS"):
        return "IQ3_S"
    return DEFAULT_TYPE[ftype]


def layer_type(ftype: str, category: str, i: int, m: ModelShape) -> str:
    """The type of a layer tensor of `category` (q, k, v, kv_b, o, gate, up, down, other) in
    layer `i` (llama_tensor_get_type_impl)."""
    t = DEFAULT_TYPE[ftype]
    if t in _UNQUANTIZED:
        return t
    imatrix = ftype in _NEEDS_IMATRIX
    n = m.n_layer
    attn_v = category in ("v", "kv_b")
    if ftype in _IQ_LOW:
        if attn_v:
            if m.n_gqa >= 4 or m.n_expert >= 4:
                return "Q4_K"
            return "IQ3_S" if ftype in ("IQ2_S", "IQ2_M") else "Q2_K"
        if m.n_expert == 8 and category == "k":
            return "Q4_K"
        if category == "down" and i < n // 8:
            return "IQ3_S" if ftype in ("IQ2_S", "IQ2_M") else "Q2_K"
        if category == "o":
            if m.n_expert == 8:
                return "Q5_K"
            if ftype in ("IQ1_S", "IQ1_M"):
                return "IQ2_XXS"
            if ftype in ("IQ2_S", "IQ2_M"):
                return "IQ3_S"
        return t
    if attn_v:
        return _attn_v_type(ftype, t, i, m, imatrix)
    if category in ("k", "q"):
        if category == "k" and m.n_expert == 8:
            return "Q8_0"
        if ftype == "IQ3_XS":
            return "IQ3_XXS"
        return "IQ2_S" if ftype == "IQ3_XXS" else t
    if category == "down":
        return _ffn_down_type(ftype, t, i, m, imatrix)
    if category == "o":
        return _attn_output_type(ftype, t, m)
    if category in ("gate", "up") and ftype == "IQ3_XS" and n // 8 <= i < 7 * n // 8:
        return "IQ3_XXS"
    return t


def _attn_v_type(ftype: str, t: str, i: int, m: ModelShape, imatrix: bool) -> str:
    gqa4 = m.n_gqa >= 4
    if ftype == "Q2_K":
        t = "Q4_K" if gqa4 else "Q3_K"
    elif ftype == "Q2_K_S" and gqa4:
        t = "Q4_K"
    elif ftype == "IQ3_XXS":
        t = "Q4_K" if gqa4 else ("IQ3_XXS" if imatrix else "IQ3_S")
    elif ftype in ("IQ3_XS", "IQ3_S") and gqa4 or ftype == "IQ3_M":
        t = "Q4_K"
    elif ftype == "Q3_K_M":
        t = "Q5_K" if i < 2 else "Q4_K"
    elif ftype == "Q3_K_L":
        t = "Q5_K"
    elif ftype in ("IQ4_NL", "IQ4_XS") and gqa4:
        t = "Q5_K"
    elif ftype in ("Q4_K_M", "Q5_K_M") and use_more_bits(i, m.n_layer):
        t = "Q6_K"
    elif ftype == "Q4_K_S" and i < 4:
        t = "Q5_K"
    if m.is_70b and t in ("Q3_K", "Q4_K"):
        t = "Q5_K"
    return "Q8_0" if m.n_expert == 8 else t


def _ffn_down_type(ftype: str, t: str, i: int, m: ModelShape, imatrix: bool) -> str:
    n = m.n_layer
    if ftype == "Q2_K":
        return "Q3_K"
    if ftype == "Q2_K_S":
        return "Q4_K" if i < n // 8 else t
    if ftype == "IQ3_XXS" and not imatrix:
        return "Q4_K" if i < n // 8 else "Q3_K"
    if ftype == "Q3_K_M":
        if i < n // 16:
            return "Q5_K"
        return "Q4_K" if not m.falcon or use_more_bits(i, n) else "Q3_K"
    if ftype == "IQ3_M" and (i < n // 8 or m.n_expert == 8 and use_more_bits(i, n)):
        return "Q4_K"
    if ftype == "Q3_K_L":
        return "Q4_K" if m.falcon else "Q5_K"
    if ftype == "Q4_K_M":
        if m.falcon:
            return "Q6_K" if i < n // 16 else "Q5_K" if use_more_bits(i, n) else "Q4_K"
        return "Q6_K" if use_more_bits(i, n) else t
    if i < n // 8 and ftype in ("IQ4_NL", "IQ4_XS") and not imatrix:
        return "Q5_K"
    if ftype == "Q5_K_M" and use_more_bits(i, n):
        return "Q6_K"
    if ftype == "Q4_K_S" and not m.falcon and i < n // 8:
        return "Q5_K"
    return t


def _attn_output_type(ftype: str, t: str, m: ModelShape) -> str:
    if m.falcon:
        return "Q4_K" if ftype == "Q3_K_L" else t
    if m.n_expert == 8:
        bumped = ("Q2_K", "IQ3_XS", "IQ3_XXS", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S", "Q4_K_M",
                  "IQ3_S", "IQ3_M", "IQ4_XS")  # fmt: skip
        return "Q5_K" if ftype in bumped else t
    return {"Q2_K": "Q3_K", "IQ3_XXS": "IQ3_S", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K",
            "IQ3_M": "Q4_K"}.get(ftype, t)  # fmt: skip


def fallback(type_name: str, cols: int, block_of: dict[str, int]) -> str:
    """tensor_type_fallback: a compatible type when `cols` is no whole number of blocks."""
    if cols % block_of[type_name] == 0:
        return type_name
    alt = _FALLBACK.get(type_name)
    if alt is None or cols % block_of[alt]:
        return "F16"
    return alt
