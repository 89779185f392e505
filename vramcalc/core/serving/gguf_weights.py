"""GGUF weights per layer: exact from a file's tensor table, or from a file type's per-tensor rule.

Bytes of a tensor = elements / block size × block bytes, with ggml's (block, bytes) per type
(GGML_QUANT_SIZES, gguf-py/gguf/constants.py; vramcalc.sources.gguf.GGML_TYPES): Q4_K 144 B per
256 weights (4.5 bits), Q5_K 176/256 (5.5), Q6_K 210/256 (6.5625), Q8_0 34/32 (8.5), IQ4_XS
136/256 (4.25)... A file type (``llama-quantize``'s Q4_K_M, Q5_K_M...) mixes types: llama.cpp
src/llama-quant.cpp ``llama_tensor_get_type`` keeps 1-D tensors in F32, puts ``output.weight`` in
Q6_K, and for the _M mixes gives ``attn_v`` and ``ffn_down`` Q6_K in the layers where
``use_more_bits(i, n)``: i < n/8, i >= 7n/8, or (i − n/8) % 3 == 2.
"""

from __future__ import annotations

from dataclasses import dataclass

from vramcalc.errors import VramcalcError
from vramcalc.sources.checkpoint import CheckpointInfo
from vramcalc.sources.gguf import GGML_TYPES
from vramcalc.spec.model import ModelSpec
from vramcalc.spec.params import tensor_groups

_BY_NAME = {name: (block, size) for name, block, size in GGML_TYPES.values()}

# file type -> (base type, type of attn_v/ffn_down in use_more_bits layers, output type)
FILE_TYPES: dict[str, tuple[str, str, str]] = {
    "F16": ("F16", "F16", "F16"),
    "BF16": ("BF16", "BF16", "BF16"),
    "Q8_0": ("Q8_0", "Q8_0", "Q8_0"),
    "Q6_K": ("Q6_K", "Q6_K", "Q6_K"),
    "Q5_K_M": ("Q5_K", "Q6_K", "Q6_K"),
    "Q5_K_S": ("Q5_K", "Q5_K", "Q6_K"),
    "Q5_0": ("Q5_0", "Q5_0", "Q6_K"),
    "Q4_K_M": ("Q4_K", "Q6_K", "Q6_K"),
    "Q4_K_S": ("Q4_K", "Q4_K", "Q6_K"),
    "Q4_0": ("Q4_0", "Q4_0", "Q6_K"),
    "Q3_K_S": ("Q3_K", "Q3_K", "Q6_K"),
    "Q2_K": ("Q2_K", "Q2_K", "Q6_K"),
    "IQ4_XS": ("IQ4_XS", "IQ4_XS", "Q6_K"),
    "IQ4_NL": ("IQ4_NL", "IQ4_NL", "Q6_K"),
    "IQ3_XXS": ("IQ3_XXS", "IQ3_XXS", "Q6_K"),
    "IQ3_S": ("IQ3_S", "IQ3_S", "Q6_K"),
    "IQ2_XXS": ("IQ2_XXS", "IQ2_XXS", "Q6_K"),
    "IQ2_XS": ("IQ2_XS", "IQ2_XS", "Q6_K"),
    "IQ1_S": ("IQ1_S", "IQ1_S", "Q6_K"),
}
# The IQ1/IQ2/IQ3 and Q2_K/Q3_K rules also raise attn_v / ffn_down of some layers to higher
# types (llama-quant.cpp); that is not modelled: their figures are a lower bound.
LOWER_BOUND_TYPES = frozenset({"IQ3_XXS", "IQ3_S", "IQ2_XXS", "IQ2_XS", "IQ1_S", "Q2_K", "Q3_K_S"})


def bits_per_weight(type_name: str) -> float:
    block, size = _BY_NAME[type_name]
    return size * 8 / block


def use_more_bits(i: int, n: int) -> bool:
    """llama-quant.cpp: the first and last eighth of the layers and every third one between."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def tensor_bytes(type_name: str, rows: int, cols: int) -> int:
    """rows × cols in `type_name`; a row that is not a whole number of blocks falls back to Q8_0
    (32) or F16, as llama-quant.cpp does for K-quants on odd widths."""
    block, size = _BY_NAME[type_name]
    if cols % block:
        type_name = "Q8_0" if cols % 32 == 0 else "F16"
        block, size = _BY_NAME[type_name]
    return rows * cols // block * size


@dataclass(frozen=True, slots=True)
class LayerWeights:
    """Bytes of each repeating layer, the token embedding (kept on the host by llama.cpp) and the
    output layer (output norm and matrix), and where the figures came from."""

    layers: tuple[int, ...]
    embedding: int
    output: int
    how: str


def from_file(ck: CheckpointInfo, n_layers: int) -> LayerWeights:
    """Exact per-layer bytes from a .gguf tensor table (blk.<i>.* names)."""
    layers = [0] * n_layers
    embedding = output = 0
    for t in ck.tensors:
        if t.name.startswith("blk."):
            idx = t.name.split(".")[1]
            if idx.isdigit() and int(idx) < n_layers:
                layers[int(idx)] += t.nbytes
                continue
        if t.name.startswith("token_embd"):
            embedding += t.nbytes
        else:
            output += t.nbytes
    if embedding and output == 0:  # tied: llama.cpp duplicates token_embd as the output matrix
        output = embedding
    return LayerWeights(tuple(layers), embedding, output, f"read from {ck.origin} (tensor table)")


def from_file_type(spec: ModelSpec, file_type: str) -> LayerWeights:
    """Per-layer bytes of `spec` quantized as `file_type` (module docstring)."""
    ft = FILE_TYPES.get(file_type.upper())
    if ft is None:
        raise VramcalcError(f"--gguf-type {file_type!r}; valid: {', '.join(FILE_TYPES)}")
    base, more, out_type = ft
    n = spec.num_layers
    layers = [0] * n
    embedding = output = 0
    for g in tensor_groups(spec):
        if g.kind == "embedding":
            embedding += g.count * tensor_bytes(base, g.rows, g.cols)
            continue
        if g.kind == "lm_head":
            output += g.count * tensor_bytes(out_type, g.rows, g.cols)
            continue
        if not g.name.startswith("layers."):  # final norm, in F32
            output += g.count * g.rows * g.cols * 4
            continue
        per_layer, rest = divmod(g.count, n)
        bumped = g.kind == "linear" and ("v_proj" in g.name or "down_proj" in g.name)
        for i in range(n):
            count = per_layer + (1 if i < rest else 0)
            if g.cols == 1 or g.kind == "norm":
                layers[i] += count * g.rows * g.cols * 4
            else:
                t = more if bumped and use_more_bits(i, n) else base
                layers[i] += count * tensor_bytes(t, g.rows, g.cols)
    if spec.tie_word_embeddings:  # llama.cpp writes a tied output matrix as token_embd and
        output += tensor_bytes(out_type, spec.vocab_size, spec.hidden_size)  # copies it as output
    bpw = bits_per_weight(base)
    how = f"{file_type.upper()}: {base} ({bpw:g} bits per weight) with {more}/{out_type} tensors by llama-quant.cpp's rule"
    if file_type.upper() in LOWER_BOUND_TYPES:
        how += "; the per-layer upgrades of this low-bit type are not modelled: a lower bound"
    return LayerWeights(tuple(layers), embedding, output, how)
