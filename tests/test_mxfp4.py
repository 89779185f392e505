"""MXFP4 (OCP Microscaling FP4), the format gpt-oss ships its expert weights in."""

from __future__ import annotations

import vramcalc
from vramcalc.core.inference import estimate_inference
from vramcalc.spec.params import LINEAR, TensorGroup, tensor_groups
from vramcalc.spec.quant import FORMATS, resolve_format, weight_bytes

MX = FORMATS["mxfp4"]


def test_expert_weights_take_4_25_bits() -> None:
    # 2880 × 2880 expert weight: 2880 rows × 90 blocks of 32 × (16 bytes of E2M1 + 1 E8M0 scale)
    # = 4,406,400 bytes = 2880² × 4.25 / 8
    expert = TensorGroup("e", LINEAR, 2880, 2880, 1, expert=True)
    assert MX.group_bytes(expert) == 2880 * 90 * 17 == 2880 * 2880 * 17 // 32
    # a partial last block still stores 16 + 1 bytes: 33 columns are two blocks per row
    assert MX.group_bytes(TensorGroup("e", LINEAR, 1, 33, 1, expert=True)) == 2 * 17
    # attention and other non-expert linears stay bf16
    assert MX.group_bytes(TensorGroup("q", LINEAR, 4096, 2880, 1)) == 4096 * 2880 * 2


def test_gpt_oss_20b_checkpoint_size() -> None:
    # openai/gpt-oss-20b model.safetensors.index.json: "total_size": 13761264768 bytes (experts
    # as *_blocks + *_scales uint8, every other tensor bf16)
    spec = vramcalc.get_model("gpt-oss-20b")
    assert weight_bytes(tensor_groups(spec), MX) == 13_761_264_768
    est = estimate_inference("gpt-oss-20b", dtype="int4", quant="mxfp4", seq_len=4096)
    assert est.component("weights") == 13_761_264_768


def test_mxfp4_is_a_4bit_format() -> None:
    assert resolve_format("int4", "mxfp4") is MX
    # a dense model has no experts: nothing is stored in MXFP4
    dense = vramcalc.get_model("llama-2-7b")
    assert weight_bytes(tensor_groups(dense), MX) == weight_bytes(
        tensor_groups(dense), FORMATS["bf16"]
    )


def test_config_json_of_an_mxfp4_checkpoint_says_so() -> None:
    from test_hf_config_moe import MOE_CONFIGS

    from vramcalc.sources.hf_config import spec_from_config

    cfg = MOE_CONFIGS["gpt_oss"] | {"quantization_config": {"quant_method": "mxfp4"}}
    _, notes = spec_from_config(cfg, "gpt-oss")
    assert any("--quant mxfp4" in n for n in notes)
    _, plain = spec_from_config(MOE_CONFIGS["gpt_oss"], "gpt-oss")
    assert not any("mxfp4" in n for n in plain)
