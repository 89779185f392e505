"""The exact meta-device route: tensors and cache read from transformers' own model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vramcalc.cli.app import app
from vramcalc.errors import VramcalcError
from vramcalc.sources import resolve_model_source
from vramcalc.spec.params import BIAS, EMBEDDING, LM_HEAD, OTHER, POSITION, ROUTER, param_count
from vramcalc.spec.params import active_param_count as active

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from vramcalc.measure.meta import inspect_config, spec_from_meta  # noqa: E402

runner = CliRunner()


def transformers_count(cfg: dict[str, Any]) -> int:
    """Independent reference: the model built the way test_params builds presets."""
    cfg = dict(cfg)
    config = transformers.AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


BIGCODE = {  # StarCoder layout: multi-query attention (one K/V head), learned positions, tied head
    "model_type": "gpt_bigcode",
    "n_embd": 64,
    "n_layer": 2,
    "n_head": 4,
    "n_positions": 32,
    "vocab_size": 100,
    "multi_query": True,
}


def test_gpt_bigcode_multi_query_exact() -> None:
    spec, notes = spec_from_meta(BIGCODE, "tiny-bigcode")
    # wte 100×64 = 6400; wpe 32×64 = 2048; per layer: ln_1 2×64 = 128, c_attn (64 + 2·16)×64 + 96
    # = 6240, attn c_proj 64×64 + 64 = 4160, ln_2 128, c_fc 256×64 + 256 = 16640, mlp c_proj
    # 64×256 + 64 = 16448 → 43744 ×2 = 87488; ln_f 128; lm_head tied to wte
    assert param_count(spec) == 6400 + 2048 + 87488 + 128 == 96064
    assert param_count(spec) == transformers_count(BIGCODE)
    # multi-query: K and V of one 16-wide head per layer: 2 layers × 2 × 16 = 64 (not 4 heads' 256)
    assert spec.kv_elements_per_token == 64
    assert spec.state_elements_per_sequence == 0
    assert spec.tie_word_embeddings and spec.position_embedding == "learned"
    kinds = {t.kind for t in spec.exact_tensors}
    assert {EMBEDDING, POSITION, BIAS} <= kinds and LM_HEAD not in kinds
    assert any(n.startswith("exact via transformers") for n in notes)
    assert any("activations follow the generic decoder" in n for n in notes)


def test_hybrid_state_and_kv() -> None:
    cfg = {
        "model_type": "jamba",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 128,
        "vocab_size": 100,
        "num_experts": 4,
        "num_experts_per_tok": 2,
        "attn_layer_period": 2,
        "attn_layer_offset": 1,
        "expert_layer_period": 2,
        "expert_layer_offset": 1,
        "mamba_d_state": 16,
        "mamba_d_conv": 4,
        "mamba_expand": 2,
    }
    spec, _ = spec_from_meta(cfg, "tiny-jamba")
    assert param_count(spec) == transformers_count(cfg)
    # layer 1 attends: K and V of 2 heads × 16 = 64 per token; layer 0 is Mamba: a fixed state of
    # conv (2·64 channels × 4) + SSM (128 × 16) = 512 + 2048 elements per sequence
    assert spec.kv_elements_per_token == 64
    assert spec.state_elements_per_sequence == 2560
    # one MoE layer of 4 experts (gate_up 256×64 + down 64×128 = 24576 each), 2 routed per token
    assert spec.num_experts == 4 and spec.experts_per_token == 2 and spec.first_dense_layers == 1
    assert param_count(spec) - active(spec) == 2 * 24576
    assert any(t.kind == OTHER and t.name.endswith("A_log") for t in spec.exact_tensors)
    assert any(t.kind == ROUTER for t in spec.exact_tensors)


def test_sliding_window_layers_read_from_the_cache() -> None:
    cfg = {
        "model_type": "gpt_oss",
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "intermediate_size": 32,
        "vocab_size": 100,
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
        "sliding_window": 64,
        "layer_types": ["sliding_attention", "full_attention"],
    }
    spec, _ = spec_from_meta(cfg, "tiny-gpt-oss")
    assert param_count(spec) == transformers_count(cfg)
    # 2 layers × K, V × 2 heads × 16; the first layer's cache stops at the 64-token window
    assert spec.kv_elements_per_token == 2 * 2 * 2 * 16
    assert (spec.sliding_window, spec.sliding_window_layers) == (64, 1)
    # experts: gate_up 64×64 + 64 bias, down 32×64 + 64 bias = 6272 each, 2 of 4 idle, 2 layers
    assert param_count(spec) - active(spec) == 2 * 2 * 6272


def test_inventory_adds_up_and_groups_layers() -> None:
    cfg = {
        "model_type": "llama",
        "hidden_size": 32,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "vocab_size": 50,
        "tie_word_embeddings": True,
    }
    inv = inspect_config(cfg)
    assert inv.param_count == transformers_count(cfg)
    q = next(t for t in inv.tensors if t.name == "model.layers.*.self_attn.q_proj")
    assert (q.rows, q.cols, q.count) == (32, 32, 3)
    assert not any(t.kind == LM_HEAD for t in inv.tensors)  # tied: the embedding, counted once


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"model_type": "not-a-model", "hidden_size": 8}, "not an architecture transformers"),
        ({"model_type": "t5"}, "no causal-LM class"),
        ({"model_type": "bert"}, "forward could not run"),
        ({"model_type": "mamba", "hidden_size": 64, "num_hidden_layers": 2}, "has no"),
    ],
)
def test_refusals(cfg: dict[str, Any], message: str) -> None:
    with pytest.raises(VramcalcError, match=message):
        spec_from_meta(cfg, "x")


# ---- wiring: an architecture no builder maps, through sources and the CLI ----------------------

TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
TINY |= {"num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 100}
TINY |= {"max_position_embeddings": 256}
# embed 100×64 = 6400; per layer q 64×64 + k, v 32×64 each + o 64×64 = 12288, up 128×64 + down
# 64×128 = 16384 (no gate: ReLU² / xIELU MLPs), 2 norms 128 → 28800 × 2 = 57600; final norm 64;
# lm_head 6400 → 70464. Apertus adds per layer q_norm and k_norm (2 × 16) and xIELU's two learned
# scalars (alpha_p, alpha_n): (32 + 2) × 2 = 68 → 70532.
UNMAPPED = {"apertus": 70532, "arcee": 70464}


@pytest.fixture(params=sorted(UNMAPPED))
def unmapped_folder(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, int]:
    from vramcalc.sources import hf_config

    model_type = request.param
    # Both are mapped by now: take the builder away so hf_config refuses the type, as it refuses
    # every architecture no builder maps, and the exact route must answer.
    if model_type in hf_config._BUILDERS:
        monkeypatch.delitem(hf_config._BUILDERS, model_type)
    folder = tmp_path / f"tiny-{model_type}"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": model_type} | TINY))
    return folder, UNMAPPED[model_type]


def test_unmapped_architecture_is_exact_via_the_meta_device(
    unmapped_folder: tuple[Path, int],
) -> None:
    folder, params = unmapped_folder
    source = resolve_model_source(str(folder))
    assert (
        source.params
        == params
        == transformers_count(json.loads((folder / "config.json").read_text()))
    )
    # K and V of 2 heads × 16 per layer, 2 layers
    assert source.spec.kv_elements_per_token == 2 * 2 * 2 * 16
    assert source.spec.kv_heads == 2 and source.spec.mlp_kind == "plain"
    version = transformers.__version__
    assert f"exact via transformers {version} on the meta device" in " ".join(source.notes)
    assert "weights from the meta-device tensors" in " ".join(source.notes)


def test_cli_infer_and_train_on_an_unmapped_architecture(unmapped_folder: tuple[Path, int]) -> None:
    folder, params = unmapped_folder
    for command in ("infer", "train"):
        result = runner.invoke(app, [command, str(folder), "--json", "--seq-len", "64"])
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["params"] == params
        assert any("meta device" in a for a in data["assumptions"])


def test_the_refusal_is_what_sends_a_config_to_the_meta_device(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever builders exist: hf_config's UnmappedArchitectureError is the trigger."""
    import vramcalc.sources.hf_config as hf_config
    from vramcalc.errors import UnmappedArchitectureError
    from vramcalc.sources import spec_for_config

    def refuse(cfg: dict[str, Any], name: str, source: str = "", **kw: Any) -> Any:
        raise UnmappedArchitectureError(cfg["model_type"], f"{source}: unmapped")

    monkeypatch.setattr(hf_config, "spec_from_config", refuse)
    cfg = {"model_type": "llama", "tie_word_embeddings": True} | TINY
    spec, notes = spec_for_config(cfg, "x", "x/config.json")
    # the tiny Llama: 6400 + (12288 + 3 × 8192 MLP + 128) × 2 + 64, the head tied = 80448
    assert param_count(spec) == 6400 + (12288 + 3 * 8192 + 128) * 2 + 64 == 80448
    assert param_count(spec) == transformers_count(cfg)
    assert spec.kv_elements_per_token == 128 and notes[0].startswith("exact via transformers")


def test_without_torch_the_refusal_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    import vramcalc.sources as sources

    cfg = {"model_type": "made-up-arch", "hidden_size": 64}  # no builder, no generic fields
    monkeypatch.setattr(sources, "exact_route_available", lambda: False)
    with pytest.raises(VramcalcError, match="made-up-arch") as refused:
        sources.spec_for_config(cfg, "x", "x/config.json")
    assert "meta-device route" not in str(refused.value)
    monkeypatch.undo()
    with pytest.raises(VramcalcError, match="not an architecture transformers .* ships"):
        sources.spec_for_config(cfg, "x", "x/config.json")


def test_an_encoder_decoder_family_as_a_causal_lm() -> None:
    """BartForCausalLM: the decoder alone; its self-attention cache grows, the cross-attention
    cache stays empty without an encoder."""
    cfg = {
        "model_type": "bart",
        "d_model": 64,
        "decoder_layers": 2,
        "decoder_attention_heads": 4,
        "decoder_ffn_dim": 128,
        "encoder_layers": 2,
        "encoder_attention_heads": 4,
        "encoder_ffn_dim": 128,
        "vocab_size": 100,
        "max_position_embeddings": 64,
    }
    spec, _ = spec_from_meta(cfg, "tiny-bart-decoder")
    # embed 100×64 = 6400; learned positions (64 + 2 offset)×64 = 4224; per layer self-attn and
    # cross-attn 2 × 4 × (64×64 + 64) = 33280, 3 LayerNorms 3 × 128 = 384, fc1 128×64 + 128 =
    # 8320, fc2 64×128 + 64 = 8256 → 50240 × 2 = 100480; layernorm_embedding 128; lm_head tied
    assert param_count(spec) == 6400 + 4224 + 100480 + 128 == 111232
    assert param_count(spec) == transformers_count(cfg)
    assert spec.kv_elements_per_token == 2 * 2 * 64  # K and V, 64 wide, 2 layers
    assert (spec.num_layers, spec.num_attention_heads, spec.intermediate_size) == (2, 4, 128)


# ---- trace/measure rebuild the model the spec was read from -----------------------------------

# DiffLlama with biased q/k/v/o: hf_config_dict's generic fields drop attention_bias, so a model
# rebuilt from the spec alone has 86,976 parameters, not the config's 87,360 (4 × 64 biases × 2
# layers = 512, less the 128 of k/v narrowed to 2 heads: 2 × (64 + 32 + 32 + 64) = 384).
DIFFLLAMA = {"model_type": "diffllama", "attention_bias": True} | TINY


def test_trace_rebuilds_the_config_json_not_a_generic_spec(tmp_path: Path) -> None:
    from vramcalc.measure.workload import Workload, make_workload, reference_config

    (tmp_path / "config.json").write_text(json.dumps(DIFFLLAMA))
    wl = make_workload("inference", str(tmp_path), seq_len=16, dtype="fp32")
    assert wl.hf_config == DIFFLLAMA and wl.spec.exact_tensors
    config = reference_config(wl)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    built = sum(p.numel() for p in model.parameters())
    assert built == param_count(wl.spec) == transformers_count(DIFFLLAMA) == 87360
    result = runner.invoke(app, ["trace", str(tmp_path), "-s", "16", "--dtype", "fp32", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout[result.stdout.index("{") :])
    # fp32 weights, plus the rotary buffers (inv_freq and original_inv_freq, 8 fp32 each)
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    assert buffers == 2 * 8 * 4
    assert out["trace"]["by_category"]["parameters"] == 87360 * 4 + buffers
    # the same spec without its config.json: refused, not built as the wrong model
    with pytest.raises(VramcalcError, match="does not carry") as refused:
        reference_config(Workload("inference", wl.spec, 1, 16, dtype="fp32"))
    assert "\n" not in str(refused.value)


def test_labels_say_the_weights_are_meta_device_tensors(tmp_path: Path) -> None:
    """An unmapped config without a checkpoint: its weights are the tensors of transformers'
    model on the meta device, not a config formula, in every command's JSON."""
    (tmp_path / "config.json").write_text(json.dumps(DIFFLLAMA))
    texts = {}
    for argv in (["infer"], ["train"], ["rlhf", "--stage", "dpo"]):
        result = runner.invoke(app, [argv[0], str(tmp_path), *argv[1:], "--json", "-s", "64"])
        assert result.exit_code == 0, result.output
        texts[argv[0]] = result.stdout
        assert "formula" not in result.stdout.replace('"formula":', "")
        assert "meta-device tensors" in result.stdout
    assert json.loads(texts["infer"])["inputs"]["weights_from"] == "meta-device tensors"
