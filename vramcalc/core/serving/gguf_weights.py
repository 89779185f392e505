"""GGUF weights per layer: exact from a file's tensor table, or from a file type's rules.

Bytes of a tensor = elements / block size × block bytes, with ggml's (block, bytes) per type
(GGML_QUANT_SIZES, gguf-py/gguf/constants.py; vramcalc.sources.gguf.GGML_TYPES): Q4_K 144 B per
256 weights (4.5 bits), Q5_K 176/256 (5.5), Q6_K 210/256 (6.5625), Q8_0 34/32 (8.5), IQ4_XS
136/256 (4.25)... A file type (``llama-quantize``'s Q4_K_M, IQ2_XS...) mixes types by tensor and
layer: :mod:`vramcalc.core.serving.gguf_mix` restates llama.cpp's rules. Checked against the
model buffers llama.cpp printed for Llama-2-7B Q4_K_M, Llama-3.1-8B Q4_0 and Llama-3.2-3B Q4_K_M
(to the MiB; validation/serving/).
"""

from __future__ import annotations

from dataclasses import dataclass

from vramcalc.core.serving.gguf_mix import (
    DEFAULT_TYPE,
    ModelShape,
    check_file_type,
    embedding_type,
    fallback,
    layer_type,
    output_type,
)
from vramcalc.sources.checkpoint import CheckpointInfo
from vramcalc.sources.gguf import GGML_TYPES
from vramcalc.spec.model import ModelSpec
from vramcalc.spec.params import TensorGroup, tensor_groups

_BY_NAME = {name: (block, size) for name, block, size in GGML_TYPES.values()}
_BLOCK = {name: block for name, (block, _) in _BY_NAME.items()}
# vramcalc tensor-group names -> llama-quant.cpp categories (q_a/q_b/kv_a of MLA are "other")
_CATEGORY = {"q_proj": "q", "k_proj": "k", "v_proj": "v", "kv_b_proj": "kv_b", "o_proj": "o",
             "gate_proj": "gate", "up_proj": "up", "down_proj": "down"}  # fmt: skip


def bits_per_weight(type_name: str) -> float:
    block, size = _BY_NAME[type_name]
    return size * 8 / block


def tensor_bytes(type_name: str, rows: int, cols: int) -> int:
    """rows × cols in `type_name`, after llama.cpp's fallback for a row of no whole block."""
    type_name = fallback(type_name, cols, _BLOCK)
    block, size = _BY_NAME[type_name]
    return rows * cols // block * size


def _category(group: TensorGroup) -> str:
    return _CATEGORY.get(group.name.rsplit(".", 1)[-1], "other")


def _layers_of(group: TensorGroup, spec: ModelSpec) -> list[tuple[int, int]]:
    """(layer, tensors of the group in it): every layer, the first ones (dense layers before the
    MoE ones) or the last ones (MoE layers)."""
    n = spec.num_layers
    if group.count % n == 0:
        return [(i, group.count // n) for i in range(n)]
    if group.count < n:
        return [(i, 1) for i in range(group.count)]
    moe = max(1, spec.moe_layers)
    return [(i, group.count // moe) for i in range(n - moe, n)]


@dataclass(frozen=True, slots=True)
class LayerWeights:
    """Bytes of each repeating layer, the token embedding (kept on the host by llama.cpp) and the
    output layer (output norm and matrix), and where the figures came from."""

    layers: tuple[int, ...]
    embedding: int
    output: int
    how: str


def from_file(ck: CheckpointInfo, n_layers: int) -> LayerWeights:
    """Exact per-layer bytes from a .gguf tensor table (blk.<i>.* names); the input embeddings
    (token, position, token type) are the host part; the rest is the output layer. Without an
    output.weight llama.cpp loads token_embd a second time as the output matrix."""
    layers = [0] * n_layers
    embedding = output = token_embd = 0
    for t in ck.tensors:
        if t.name.startswith("blk."):
            idx = t.name.split(".")[1]
            if idx.isdigit() and int(idx) < n_layers:
                layers[int(idx)] += t.nbytes
                continue
        if t.name.startswith(("token_embd", "position_embd", "token_types")):
            embedding += t.nbytes
            token_embd += t.nbytes if t.name == "token_embd.weight" else 0
        else:
            output += t.nbytes
    if not any(t.name == "output.weight" for t in ck.tensors):  # tied
        output += token_embd
    return LayerWeights(tuple(layers), embedding, output, f"read from {ck.origin} (tensor table)")


def from_file_type(spec: ModelSpec, file_type: str) -> LayerWeights:
    """Per-layer bytes of `spec` quantized as `file_type` (:mod:`.gguf_mix`)."""
    ftype = check_file_type(file_type)
    shape = ModelShape(
        n_layer=spec.num_layers,
        n_gqa=spec.num_attention_heads // max(1, spec.kv_heads),
        n_expert=spec.num_experts or 0,
        is_70b=spec.num_layers == 80 and spec.kv_heads < spec.num_attention_heads,
        falcon=spec.architecture == "falcon",
    )
    out_t = output_type(ftype, spec.hidden_size, _BLOCK[DEFAULT_TYPE[ftype]], shape.falcon)
    layers = [0] * spec.num_layers
    embedding = output = 0
    for g in tensor_groups(spec):
        if g.kind == "embedding":  # a tied one is the output matrix too: it takes the output type
            kind = out_t if spec.tie_word_embeddings else embedding_type(ftype)
            embedding += g.count * tensor_bytes(kind, g.rows, g.cols)
        elif g.kind == "lm_head":
            output += g.count * tensor_bytes(out_t, g.rows, g.cols)
        elif not g.name.startswith("layers."):  # final norm, F32
            output += g.count * g.rows * g.cols * 4
        else:
            quantized = g.kind == "linear" and g.cols > 1
            for i, count in _layers_of(g, spec):
                t = layer_type(ftype, _category(g), i, shape) if quantized else "F32"
                layers[i] += count * tensor_bytes(t, g.rows, g.cols)
    if spec.tie_word_embeddings:  # llama.cpp loads a tied token_embd a second time as the output
        output += tensor_bytes(out_t, spec.vocab_size, spec.hidden_size)
    base = (
        embedding_type(ftype) if ftype in ("F16", "BF16") else layer_type(ftype, "gate", 0, shape)
    )
    how = (
        f"{ftype}: mostly {base} ({bits_per_weight(base):g} bits per weight), other tensors by "
        "llama.cpp's llama-quant.cpp rules"
    )
    return LayerWeights(tuple(layers), embedding, output, how)
