"""Framework profiles (vramcalc.sources.frameworks) and the `--framework` / convention flags of
`train`: the loader's rules on small files written here, the shipped profiles' key values, the
merge of profile and flags, and the CLI's output and errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from vramcalc.cli.app import app, main
from vramcalc.core.training import estimate_training
from vramcalc.errors import PresetError, VramcalcError
from vramcalc.sources import frameworks as fw
from vramcalc.spec.conventions import DEFAULT_CONVENTIONS, Conventions

runner = CliRunner()


@pytest.fixture
def presets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A frameworks folder of our own; caches cleared before and after."""
    monkeypatch.setattr(fw, "frameworks_dir", lambda: tmp_path)
    fw._raw.cache_clear()
    fw.get_framework.cache_clear()
    yield tmp_path
    fw._raw.cache_clear()
    fw.get_framework.cache_clear()


def write(folder: Path, name: str, text: str) -> None:
    (folder / f"{name}.toml").write_text(text, encoding="utf-8")


STACK = """
name = "stack"
display_name = "A stack"
adapter_dtype = "bf16"
fused_qkv_adapter = true
loss = "chunked"
loss_chunk_tokens = 128
checkpointing = "offloaded"
default_optimizer = "adamw"
qlora_optimizer = "paged-adamw-32bit"
default_lora_rank = 16
default_lora_alpha = 32
default_lora_targets = ["query", "value", "mlp"]
untie_embeddings = ["llama"]
fsdp_keeps = "bf16 shards"
unknown = ["quantized_lm_head"]

[[versions]]
since = "0.2.0"
loss = "standard"

[[versions]]
since = "0.5.0"
loss = "chunked"

[[versions]]
since = "peft-0.12.0"
adapter_dtype = "fp32"

[sources]
loss = {url = "https://example.org/loss", quote = "chunked"}
"""


def test_loader_maps_file_fields(presets: Path) -> None:
    write(presets, "stack", STACK)
    p = fw.get_framework("stack")
    assert p.conventions == Conventions(
        framework="stack",
        adapter_dtype="bf16",
        fused_qkv_adapter=True,
        loss="chunked",
        activation_offload=True,  # checkpointing "offloaded" = full + host activations
    )
    assert p.grad_checkpointing == "full"
    assert (p.optimizer, p.qlora_optimizer, p.lora_rank, p.lora_alpha) == (
        "adamw",
        "paged-adamw-32bit",
        16,
        32,
    )
    assert p.lora_targets == ("query", "value", "mlp")
    assert p.untie_embeddings == ("llama",)
    assert p.unknown == ("quantized_lm_head",)
    assert p.notes == {"fsdp_keeps": "bf16 shards"}  # read, kept, no memory effect
    assert p.sources["loss"].url == "https://example.org/loss"


def test_chunk_length_becomes_a_count(presets: Path) -> None:
    write(presets, "stack", STACK)
    p = fw.get_framework("stack")
    # ⌈512 / 128⌉ = 4 chunks; ⌈1000 / 128⌉ = 8; one token → 1
    assert p.conventions_for(512).loss_chunks == 4
    assert p.conventions_for(1000).loss_chunks == 8
    assert p.conventions_for(1).loss_chunks == 1


@pytest.mark.parametrize(
    ("version", "loss"),
    [("0.1.0", "chunked"), ("0.2.0", "standard"), ("0.4.9", "standard"), ("0.5.0", "chunked")],
)
def test_versions_take_the_newest_entry_at_or_before(
    presets: Path, version: str, loss: str
) -> None:
    # 0.1.0 predates every entry: the top-level (latest) value stands; the peft-0.12.0 entry
    # names another package and is never applied (adapter dtype stays bf16)
    write(presets, "stack", STACK)
    p = fw.parse_framework(f"stack@{version}")
    assert (p.version, p.conventions.loss, p.conventions.adapter_dtype) == (version, loss, "bf16")


def test_inherits_and_unknown(presets: Path) -> None:
    write(presets, "stack", STACK)
    write(
        presets,
        "child",
        'name = "child"\ninherits = "stack"\nloss = "fused"\nunknown = ["adapter_dtype"]\n',
    )
    p = fw.get_framework("child")
    # loss from the child; fused_qkv from the parent; adapter_dtype unknown → baseline fp32
    assert (p.conventions.loss, p.conventions.fused_qkv_adapter) == ("fused", True)
    assert p.conventions.adapter_dtype == DEFAULT_CONVENTIONS.adapter_dtype
    assert p.unknown == ("adapter_dtype",)


def test_inherits_loop_and_bad_values_are_preset_errors(presets: Path) -> None:
    write(presets, "a", 'name = "a"\ninherits = "b"\n')
    write(presets, "b", 'name = "b"\ninherits = "a"\n')
    with pytest.raises(PresetError, match="inherits loop"):
        fw.get_framework("a")
    write(presets, "c", 'name = "c"\nloss = "sideways"\n')
    with pytest.raises(PresetError, match="framework c: field 'loss'"):
        fw.get_framework("c")
    write(presets, "d", 'name = "d"\ncheckpointing = "sometimes"\n')
    with pytest.raises(PresetError, match="checkpointing 'sometimes'"):
        fw.get_framework("d")
    write(presets, "e", 'name = "other"\n')
    with pytest.raises(PresetError, match="differs from the file name"):
        fw.get_framework("e")


def test_unknown_name_and_version(presets: Path) -> None:
    write(presets, "stack", STACK)
    with pytest.raises(VramcalcError, match=r"unknown framework 'nope'; valid: hf, stack"):
        fw.get_framework("nope")
    with pytest.raises(VramcalcError, match="release number"):
        fw.parse_framework("stack@latest")


def test_hf_is_the_baseline_whatever_its_file_says(presets: Path) -> None:
    write(presets, "hf", 'name = "hf"\nadapter_dtype = "bf16"\ndefault_lora_targets = ["q_proj"]\n')
    p = fw.get_framework("hf")
    assert p.conventions == DEFAULT_CONVENTIONS
    assert p.lora_targets is None and p.optimizer is None


# ---- the shipped profiles -------------------------------------------------------------------------
def test_shipped_profiles_load() -> None:
    names = fw.list_frameworks()
    assert {"hf", "trl", "litgpt", "torchtune", "unsloth", "axolotl"} <= set(names)
    for name in names:
        p = fw.get_framework(name)
        assert p.name == name and p.conventions.framework == name


def test_shipped_profiles_key_values() -> None:
    # each value is quoted from its source in presets/frameworks/<name>.toml
    lit = fw.get_framework("litgpt")
    assert lit.conventions.fused_qkv_adapter and lit.conventions.adapter_dtype == "bf16"
    assert lit.conventions.loss == "chunked" and lit.loss_chunk_tokens == 128
    assert lit.qlora_optimizer == "paged-adamw-32bit"
    tt = fw.get_framework("torchtune")
    assert (tt.conventions.loss, tt.conventions.loss_chunks, tt.grad_checkpointing) == (
        "chunked",
        8,
        "full",
    )
    un = fw.get_framework("unsloth")
    assert un.conventions.loss == "fused" and un.conventions.activation_offload
    assert fw.get_framework("trl").grad_checkpointing == "full"  # TRL >= 0.22 default


# ---- applying a profile ---------------------------------------------------------------------------
def test_lora_target_names() -> None:
    assert fw.lora_targets_of(("query", "value", "mlp")) == "q,v,gate,up,down"
    assert fw.lora_targets_of(("q_proj", "v_proj", "output_proj", "w1", "w2", "w3")) == (
        "q_proj,v_proj,o,gate,down,up"
    )
    assert fw.lora_targets_of(("q_proj", "lm_head")) == "q_proj"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("paged-adamw-32bit", ("adamw", True)),
        ("paged_adamw_8bit", ("adamw-8bit", True)),
        ("adamw-8bit", ("adamw-8bit", False)),
        ("adamw", ("adamw", False)),
    ],
)
def test_optimizer_names(name: str, expected: tuple[str, bool]) -> None:
    assert fw.optimizer_of(name) == expected


@pytest.mark.parametrize(
    ("version", "keeps"), [("0.43.1", True), ("0.41.0", True), ("0.43.2", False), ("1.0", False)]
)
def test_bnb_version(version: str, keeps: bool) -> None:
    assert fw.bnb_keeps_inputs(version) is keeps  # fixed in 0.43.2 (bitsandbytes PR #1270)


def test_apply_profile_defaults_and_explicit_flags(presets: Path) -> None:
    write(presets, "stack", STACK)
    p = fw.get_framework("stack")
    a = fw.apply_framework(p, {"method": "qlora", "seq_len": 256}, {}, seq_len=256)
    assert a.train_options["optimizer"] == "adamw"  # paged-adamw-32bit → adamw, paged
    assert a.conventions.paged_optimizer and a.conventions.loss_chunks == 2  # ⌈256/128⌉
    assert a.train_options["lora_targets"] == "q,v,gate,up,down"
    assert (a.train_options["lora_rank"], a.train_options["grad_checkpointing"]) == (16, "full")
    assert "lora_rank" in a.from_profile and a.from_flags == ()
    # explicit values win over the profile: flags and train options alike
    b = fw.apply_framework(
        p,
        {"method": "lora", "lora_rank": 4, "grad_checkpointing": "none"},
        {"loss": "fused", "activation_offload": False, "bnb_version": "0.42.0"},
        seq_len=256,
    )
    assert (b.train_options["lora_rank"], b.train_options["grad_checkpointing"]) == (4, "none")
    assert (b.conventions.loss, b.conventions.activation_offload) == ("fused", False)
    assert b.conventions.bnb_keeps_4bit_inputs and not b.conventions.paged_optimizer
    assert set(b.from_flags) >= {"lora_rank", "loss", "activation_offload", "bnb_keeps_4bit_inputs"}


def test_baseline_passes_no_conventions() -> None:
    a = fw.apply_framework(fw.get_framework("hf"), {"method": "lora"}, {}, seq_len=4096)
    assert "conventions" not in a.estimator_kwargs
    assert a.train_options == {
        "method": "lora",
        "optimizer": "adamw",
        "grad_checkpointing": "none",
        "lora_rank": 8,
        "lora_alpha": 8.0,
        "lora_targets": "all-linear",
        "lora_dropout": 0.0,  # PEFT's default: the estimate_training default, unchanged
        "precision": "bf16-mixed",
    }


@given(
    loss=st.sampled_from(["standard", "chunked", "fused", None]),
    offload=st.sampled_from([True, False, None]),
    compile_=st.sampled_from([True, False, None]),
)
def test_flags_always_override(
    loss: str | None, offload: bool | None, compile_: bool | None
) -> None:
    p = fw.get_framework("unsloth")
    a = fw.apply_framework(
        p, {}, {"loss": loss, "activation_offload": offload, "compile": compile_}, seq_len=1024
    )
    assert a.conventions.loss == (loss if loss is not None else p.conventions.loss)
    assert a.conventions.activation_offload == (
        offload if offload is not None else p.conventions.activation_offload
    )
    assert a.conventions.compile == (compile_ if compile_ is not None else p.conventions.compile)


def test_untie_for_litgpt_only() -> None:
    from vramcalc.sources.presets import get_model

    spec = get_model("llama-3.2-1b")
    assert spec.tie_word_embeddings
    assert not fw.untied(fw.get_framework("litgpt"), spec).tie_word_embeddings
    assert fw.untied(fw.get_framework("hf"), spec) is spec


# ---- CLI ------------------------------------------------------------------------------------------
def _json(args: list[str]) -> dict:
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


@pytest.mark.parametrize(
    "args",
    [
        ["llama-3.1-8b", "--method", "qlora"],
        ["llama-3.1-8b", "--method", "lora", "--lora-rank", "16", "-s", "2048", "-b", "4"],
        ["llama-2-7b", "--grad-checkpointing", "full"],
    ],
)
def test_default_framework_is_todays_estimate(args: list[str]) -> None:
    # hf (the default) = the library call with vramcalc's defaults, byte for byte
    d = _json(["train", *args])
    opts = dict(zip(args[1::2], args[2::2], strict=True))
    est = estimate_training(
        args[0],
        method=opts.get("--method", "full"),
        lora_rank=int(opts.get("--lora-rank", 8)),
        seq_len=int(opts["-s"]) if "-s" in opts else None,
        batch_size=int(opts.get("-b", 1)),
        grad_checkpointing=opts.get("--grad-checkpointing", "none"),
    )
    assert d["total_bytes"] == est.total_bytes
    assert d["conventions"]["framework"] == "hf"
    assert d["conventions"]["values"] == DEFAULT_CONVENTIONS.model_dump()
    assert _json(["train", *args, "--framework", "hf"])["total_bytes"] == est.total_bytes


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--framework", "pytorch-lightning"], "unknown framework 'pytorch-lightning'; valid: "),
        (["--framework", "litgpt@new"], "framework version 'new'"),
        (["--bnb-version", "old"], "--bnb-version 'old'"),
        (["--loss", "sparse"], "'sparse' is not one of"),
        (["--adapter-dtype", "int8"], "'int8' is not one of"),
    ],
)
def test_bad_input_one_line_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "llama-3.1-8b", "--method", "qlora", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


# ---- the estimator reads what the flags say ---------------------------------------------------------
def test_profile_and_flags_reach_the_estimator() -> None:
    d = _json(["train", "llama-3.1-8b", "--method", "qlora", "--framework", "litgpt@0.4.0"])
    conv = d["conventions"]
    assert (conv["framework"], conv["version"]) == ("litgpt", "0.4.0")
    values = conv["values"]
    assert values["fused_qkv_adapter"] and values["adapter_dtype"] == "bf16"
    assert values["bnb_keeps_4bit_inputs"] and values["paged_optimizer"]  # pin; QLoRA optimizer
    # ⌈4096 / 128⌉ = 32 chunks of LitGPT's 128-token chunked cross-entropy
    assert values["loss"] == "chunked" and values["loss_chunks"] == 32
    assert {"optimizer", "lora_rank", "lora_alpha", "lora_targets", "lora_dropout"} <= set(
        conv["from_profile"]
    )
    assert conv["defaults"]["lora_dropout"] == 0.05  # finetune/lora.py's default
    est = estimate_training(
        "llama-3.1-8b",
        method="qlora",
        optimizer="adamw",
        lora_rank=8,
        lora_alpha=16.0,
        lora_targets="q,v",
        lora_dropout=0.05,
        conventions=Conventions(**values),
    )
    assert d["total_bytes"] == est.total_bytes


def test_explicit_flag_beats_the_profile() -> None:
    base = ["train", "llama-3.1-8b", "--method", "lora", "--framework", "torchtune"]
    chunked = _json(base)
    fused = _json([*base, "--loss", "fused", "--no-activation-offload"])
    assert chunked["conventions"]["values"]["loss"] == "chunked"
    assert fused["conventions"]["values"]["loss"] == "fused"
    assert "loss" in fused["conventions"]["from_flags"]
    assert "loss" not in fused["conventions"]["from_profile"]
    # the fused loss never holds the logits whole: the estimate drops
    assert fused["total_bytes"] < chunked["total_bytes"]


def test_table_names_the_profile() -> None:
    r = runner.invoke(app, ["train", "llama-3.1-8b", "--framework", "unsloth", "--method", "lora"])
    assert r.exit_code == 0, r.output
    assert "framework unsloth: " in r.stdout and "loss=fused" in r.stdout
    plain = runner.invoke(app, ["train", "llama-3.1-8b", "--method", "lora"])
    assert "framework " not in plain.stdout  # the baseline prints what it printed before


def test_rlhf_takes_the_framework() -> None:
    base = ["rlhf", "llama-3.1-8b", "--stage", "sft", "--method", "lora", "--json"]
    r0 = runner.invoke(app, base)
    r1 = runner.invoke(app, [*base, "--framework", "hf"])
    r2 = runner.invoke(app, [*base, "--loss", "fused"])
    assert r0.exit_code == r1.exit_code == r2.exit_code == 0, r2.output
    peak = [json.loads(r.stdout)["total_bytes"] for r in (r0, r1, r2)]
    assert peak[0] == peak[1] > peak[2]  # hf is today's figure; the fused loss is forwarded


def test_docs_profile_table_matches_the_loader() -> None:
    # docs/frameworks.md's profile table: adapter dtype, fused q/k/v, loss and checkpointing columns
    doc = (Path(__file__).resolve().parents[1] / "docs" / "frameworks.md").read_text("utf-8")
    rows = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in doc.splitlines()
        if line.startswith("| ")
        and line.split("|")[1].strip().split(" ")[0] in fw.list_frameworks()
    ]
    rows = [r for r in rows if len(r) == 8]  # the profile table (the evidence table has 10 columns)
    assert {r[0].split(" ")[0] for r in rows} == set(fw.list_frameworks())
    for name, dtype, fused, loss, ckpt, *_ in rows:
        p = fw.get_framework(name.split(" ")[0])
        assert dtype == p.conventions.adapter_dtype, name
        assert fused == ("yes" if p.conventions.fused_qkv_adapter else "no"), name
        assert loss.split(" ")[0] == p.conventions.loss, name
        assert ckpt.split(" ")[0] == p.grad_checkpointing, name
        assert ("offload" in ckpt) == p.conventions.activation_offload, name


def test_rlhf_json_names_the_conventions() -> None:
    base = ["rlhf", "llama-3.1-8b", "--stage", "sft", "--method", "lora", "--json"]
    plain = json.loads(runner.invoke(app, base).stdout)
    assert "conventions" not in plain  # the baseline's JSON is what it was
    d = json.loads(runner.invoke(app, [*base, "--framework", "torchtune"]).stdout)
    assert d["conventions"]["framework"] == "torchtune"
    assert d["conventions"]["values"]["loss"] == "chunked"


def test_litgpt_unties_the_head_on_the_cli() -> None:
    # Llama 3.2 1B ties its head; LitGPT's conversion copies it into a separate lm_head, so the
    # estimate is that of the untied model with LitGPT's conventions
    from vramcalc.sources.presets import get_model

    d = _json(["train", "llama-3.2-1b", "--method", "lora", "--framework", "litgpt", "-s", "1024"])
    spec = get_model("llama-3.2-1b").model_copy(update={"tie_word_embeddings": False})
    est = estimate_training(
        spec,
        method="lora",
        seq_len=1024,
        optimizer="adamw",
        lora_rank=8,
        lora_alpha=16.0,
        lora_targets="q,v",
        lora_dropout=0.05,
        conventions=Conventions(**d["conventions"]["values"]),
    )
    assert d["total_bytes"] == est.total_bytes
    tied = estimate_training(
        "llama-3.2-1b",
        method="lora",
        seq_len=1024,
        optimizer="adamw",
        lora_rank=8,
        lora_alpha=16.0,
        lora_targets="q,v",
        conventions=Conventions(**d["conventions"]["values"]),
    )
    # the second V × h matrix: 128,256 × 2,048 bf16 weights at least
    assert d["total_bytes"] - tied.total_bytes >= 128_256 * 2_048 * 2


def _component(d: dict, name: str) -> int:
    return next(c["bytes"] for c in d["components"] if c["name"] == name)


def test_kbit_upcast_flag_overrides_the_profile() -> None:
    # Llama-2-7B QLoRA: the non-quantized values (embedding + lm_head 2 × 32,000 × 4096 and 65
    # RMSNorm weights × 4096) = 262,410,240; PEFT's fp32 upcast keeps them at 4 B, torchtune at
    # 2 B → 262,410,240 × 2 B = 524,820,480 B more weights with --kbit-fp32-upcast
    base = ["train", "llama-2-7b", "--method", "qlora", "-s", "512", "--framework", "torchtune"]
    tt = _json(base)
    up = _json([*base, "--kbit-fp32-upcast"])
    assert _component(up, "weights") - _component(tt, "weights") == 524_820_480
    assert tt["conventions"]["values"]["kbit_prep_upcasts_to_fp32"] is False
    assert up["conventions"]["values"]["kbit_prep_upcasts_to_fp32"] is True
    assert "kbit_prep_upcasts_to_fp32" in up["conventions"]["from_flags"]
    # and the other way round on the hf baseline
    hf = ["train", "llama-2-7b", "--method", "qlora", "-s", "512"]
    down = _json([*hf, "--no-kbit-fp32-upcast"])
    assert _component(_json(hf), "weights") - _component(down, "weights") == 524_820_480
    assert down["conventions"]["values"]["kbit_prep_upcasts_to_fp32"] is False


def test_full_state_dict_load_flag_overrides_the_profile() -> None:
    # Llama-2-7B LoRA q,v r = 8, bf16 adapters, FSDP full on 2 GPUs: a full-state-dict load
    # gathers 6,738,415,616 × 2 B + 4,194,304 × 2 B = 13,485,219,840 B beside the own shard
    # 6,742,609,920 B → 20,227,829,760 B + the 500 MiB CUDA context
    args = ["train", "llama-2-7b", "--method", "lora", "--lora-targets", "q,v", "--lora-rank",
            "8", "--precision", "bf16", "--adapter-dtype", "model", "--num-gpus", "2", "--fsdp", "full",
            "-s", "512"]  # fmt: skip
    assert _json(args)["load_peak_bytes"] == 0
    on = _json([*args, "--full-state-dict-load"])
    assert on["load_peak_bytes"] == 20_227_829_760 + 500 * 2**20
    assert on["conventions"]["values"]["full_state_dict_load"] is True
    assert "full_state_dict_load" in on["conventions"]["from_flags"]
    # rlhf, fit and plan take the flags too, and name them in their JSON
    qlora = ["--method", "qlora", "--no-kbit-fp32-upcast"]
    for args in (
        ["rlhf", "llama-2-7b", "--stage", "sft", *qlora],
        ["fit", "llama-2-7b", "--gpu-mem", "80", "--task", "train", *qlora],
        ["plan", "llama-2-7b", "--tokens", "1B", "--task", "train", *qlora],
    ):
        d = _json(args)
        assert d["conventions"]["values"]["kbit_prep_upcasts_to_fp32"] is False, args[0]


def test_lora_dropout_from_profile_and_flag() -> None:
    # LitGPT's lora_dropout 0.05 (finetune/lora.py), Llama 3.2 1B (h = 2048, 16 layers) at 1,024
    # tokens: its one fused qkv adapter (bf16, adapter_dtype model) then saves its dropout's bf16
    # output 2048 × 2 B and the bool mask 2048 × 1 B instead of the shared normalised input
    # 2048 × 2 B: 2048 B per token per layer more, × 16 × 1024 = 33,554,432 B of activations
    base = ["train", "llama-3.2-1b", "--method", "lora", "--framework", "litgpt", "-s", "1024"]
    d = _json(base)
    off = _json([*base, "--lora-dropout", "0"])
    assert d["inputs"]["lora_dropout"] == 0.05 and off["inputs"]["lora_dropout"] == 0.0
    assert _component(d, "activations") - _component(off, "activations") == 33_554_432
    assert "lora_dropout" in off["conventions"]["from_flags"]
    # the baseline keeps PEFT's 0.0; the flag reaches fit and plan too
    assert _json(["train", "llama-3.2-1b", "--method", "lora"])["inputs"]["lora_dropout"] == 0.0
    fit = ["fit", "llama-3.2-1b", "--gpu-mem", "24", "--task", "train", "--method", "lora"]
    assert _json([*fit, "--lora-dropout", "0.1"])["workload"]["lora_dropout"] == 0.1
    plan = ["plan", "llama-3.2-1b", "--tokens", "1B", "--task", "train", "--method", "lora"]
    assert _json([*plan, "--lora-dropout", "0.1"])["workload"]["lora_dropout"] == 0.1


def test_rlhf_takes_lora_dropout() -> None:
    # Llama-2-7B SFT, LoRA q,v with PEFT's fp32 adapters at 512 tokens: dropout adds a 1-byte mask
    # per input element of each adapter (the cast copy lora_A saves is there either way):
    # 2 adapters × 4096 × 1 B × 32 layers × 512 tokens = 134,217,728 B of activations
    base = ["rlhf", "llama-2-7b", "--stage", "sft", "--method", "lora", "--lora-targets", "q,v",
            "--seq-len", "512"]  # fmt: skip

    def acts(d: dict) -> int:
        return next(c["bytes"] for c in d["phases"][0]["components"] if c["name"] == "activations")

    on, off = _json([*base, "--lora-dropout", "0.1"]), _json(base)
    assert acts(on) - acts(off) == 134_217_728
    assert on["inputs"]["training_options"]["lora_dropout"] == 0.1
