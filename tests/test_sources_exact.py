"""A checkpoint folder's safetensors header gives every command the same exact tensors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

import vramcalc
from vramcalc.sources import resolve_model_source
from vramcalc.spec.params import active_param_count, param_count

np = pytest.importorskip("numpy")
st_numpy = pytest.importorskip("safetensors.numpy")

CONFIG = {  # a Llama config whose checkpoint also holds attention biases (attention_bias absent)
    "model_type": "llama",
    "vocab_size": 256,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
}


def llama_state(cfg: dict[str, Any], biases: bool) -> dict[str, Any]:
    h, inter, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    kv = cfg["num_key_value_heads"] * h // cfg["num_attention_heads"]
    zeros = lambda *shape: np.zeros(shape, dtype=np.float16)  # noqa: E731
    out = {"model.embed_tokens.weight": zeros(v, h), "model.norm.weight": zeros(h)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out |= {
            p + "self_attn.q_proj.weight": zeros(h, h),
            p + "self_attn.k_proj.weight": zeros(kv, h),
            p + "self_attn.v_proj.weight": zeros(kv, h),
            p + "self_attn.o_proj.weight": zeros(h, h),
            p + "mlp.gate_proj.weight": zeros(inter, h),
            p + "mlp.up_proj.weight": zeros(inter, h),
            p + "mlp.down_proj.weight": zeros(h, inter),
            p + "input_layernorm.weight": zeros(h),
            p + "post_attention_layernorm.weight": zeros(h),
        }
        if biases:
            out |= {
                p + f"self_attn.{n}_proj.bias": zeros(w)
                for n, w in zip("qkvo", (h, kv, kv, h), strict=True)
            }
    out["lm_head.weight"] = zeros(v, h)
    return out


def write_folder(tmp_path: Path, cfg: dict[str, Any], tensors: dict[str, Any]) -> Path:
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(cfg))
    st_numpy.save_file(tensors, str(folder / "model.safetensors"))
    return folder


def test_train_and_infer_use_the_same_header_tensors(tmp_path: Path) -> None:
    folder = write_folder(tmp_path, CONFIG, llama_state(CONFIG, biases=True))
    # the config formula: embed + lm_head 2×256×64 = 32768; per layer q, o 64×64, k, v 32×64 =
    # 12288, MLP 3×128×64 = 24576, norms 128 → 36992 × 2 = 73984; final norm 64 → 106816.
    # The header adds q, k, v, o biases: (64 + 32 + 32 + 64) × 2 layers = 384 → 107200
    assert param_count(resolve_model_source(str(folder)).spec) == 106816 + 384 == 107200
    infer = vramcalc.estimate_inference(str(folder), seq_len=64)
    train = vramcalc.estimate_training(str(folder), seq_len=64)
    assert infer.params == train.params == 107200
    weights = {c.name: c.bytes for c in train.components}["weights"]
    assert weights == 107200 * 4  # bf16-mixed keeps fp32 master weights
    assert {c.name: c.bytes for c in infer.components}["weights"] == 107200 * 2
    assert any("safetensors header" in a for a in train.assumptions)
    lora = vramcalc.estimate_training(str(folder), seq_len=64, method="lora", lora_rank=4)
    assert lora.params == 107200  # adapter sites found by module name in the header's tensors


def test_header_experts_stay_experts(tmp_path: Path) -> None:
    cfg = CONFIG | {"model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 2}
    tensors = llama_state(cfg, biases=False)
    h, inter = cfg["hidden_size"], cfg["intermediate_size"]
    for i in range(2):
        for n in ("gate", "up", "down"):
            del tensors[f"model.layers.{i}.mlp.{n}_proj.weight"]
        p = f"model.layers.{i}.block_sparse_moe."
        tensors[p + "gate.weight"] = np.zeros((4, h), dtype=np.float16)
        for e in range(4):
            tensors[p + f"experts.{e}.w1.weight"] = np.zeros((inter, h), dtype=np.float16)
            tensors[p + f"experts.{e}.w3.weight"] = np.zeros((inter, h), dtype=np.float16)
            tensors[p + f"experts.{e}.w2.weight"] = np.zeros((h, inter), dtype=np.float16)
    source = resolve_model_source(str(write_folder(tmp_path, cfg, tensors)))
    spec = source.spec
    # each expert 3×128×64 = 24576; 2 of 4 idle per token in each of the 2 layers
    assert param_count(spec) - active_param_count(spec) == 2 * 2 * 24576
    assert source.params - source.active_params == 2 * 2 * 24576
    train = vramcalc.estimate_training(source, seq_len=64)
    assert train.params - train.active_params == 2 * 2 * 24576


# ---- properties ---------------------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from vramcalc.sources.checkpoint import CheckpointInfo, TensorRecord, exact_tensors_of  # noqa: E402

_names = st.sampled_from(
    [
        "model.layers.{i}.self_attn.q_proj.weight",
        "model.layers.{i}.mlp.experts.{e}.w1.weight",
        "model.layers.{i}.mlp.shared_experts.gate_proj.weight",
        "model.layers.{i}.mlp.experts.gate_up_proj",
        "model.layers.{i}.input_layernorm.weight",
        "model.embed_tokens.weight",
        "lm_head.weight",
    ]
)
_records = st.lists(
    st.tuples(
        _names,
        st.integers(0, 3),
        st.integers(0, 7),
        st.lists(st.integers(1, 9), min_size=1, max_size=3),
    ),
    min_size=1,
    max_size=20,
)


@settings(max_examples=60, deadline=None)
@given(_records)
def test_header_inventory_keeps_every_value(rows: list[tuple[str, int, int, list[int]]]) -> None:
    tensors = {}
    for template, i, e, shape in rows:  # one record per name, as in a checkpoint
        tensors[template.format(i=i, e=e)] = tuple(shape)
    info = CheckpointInfo(
        format="safetensors",
        origin="x",
        tensors=tuple(
            TensorRecord(name=n, dtype="BF16", shape=s, nbytes=2 * math.prod(s))
            for n, s in tensors.items()
        ),
    )
    groups = exact_tensors_of(info)
    assert sum(g.rows * g.cols * g.count for g in groups) == info.numel
    routed = sum(
        math.prod(s)
        for n, s in tensors.items()
        if ".experts." in n and "shared" not in n and (len(s) >= 2 or ".experts.gate" not in n)
    )
    assert sum(g.rows * g.cols * g.count for g in groups if g.expert) == routed
