"""Issue 17, friction: sizes, names, flags and help the way a new user types and reads them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from vramcalc.cli.app import app, main
from vramcalc.errors import VramcalcError
from vramcalc.units import GIB, parse_count, parse_param_count

runner = CliRunner()


def run_json(*args: str) -> object:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def fail(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """main() on bad input: exit 2 and exactly one stderr line, returned."""
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


# ---- sizes as people write them ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "binary", "expected"),
    [
        ("4k", True, 4096),  # Llama 2's "4k context" = max_position_embeddings 4096
        ("32K", True, 32768),
        ("128k", True, 131072),  # Llama 3.1's 128k = 131072
        ("1M", True, 1048576),
        ("1.5k", True, 1536),
        ("4k", False, 4000),
        ("1.5B", False, 1_500_000_000),
        ("2T", False, 2_000_000_000_000),
        ("4096", True, 4096),
    ],
)
def test_parse_count_units(text: str, binary: bool, expected: int) -> None:
    assert parse_count(text, binary=binary) == expected


@pytest.mark.parametrize("text", ["0.4", "2.5", "0", "-3", "4q", "", "nan"])
def test_parse_count_refuses(text: str) -> None:
    with pytest.raises(VramcalcError):
        parse_count(text)


@given(st.integers(min_value=1, max_value=10**6))
def test_parse_count_binary_k_is_1024(n: int) -> None:
    assert parse_count(f"{n}k", binary=True) == n * 1024
    assert parse_count(f"{n}k") == n * 1000
    assert parse_count(str(n), binary=True) == n


def test_seq_len_and_batch_accept_sizes() -> None:
    data = run_json("infer", "llama-2-7b", "--seq-len", "4k", "-b", "2", "--dtype", "INT8")
    assert isinstance(data, dict)
    assert data["inputs"]["seq_len"] == 4096 and data["inputs"]["dtype"] == "int8"
    kv = next(c for c in data["components"] if c["name"] == "kv_cache")
    # 2 (K,V) × 32 layers × 2 seqs × 4096 tokens × 4096 hidden × 2 bytes = 4 GiB
    assert kv["bytes"] == 4 * GIB
    data = run_json("train", "gpt2", "-s", "1k", "-b", "1K")
    assert isinstance(data, dict)
    assert data["inputs"]["seq_len"] == 1024 and data["inputs"]["batch_size"] == 1000


def test_cost_infer_prompt_output_sizes() -> None:
    data = run_json(
        "cost", "infer", "llama-2-7b", "--gpu", "H100-SXM", "--prompt", "2k", "--output", "1K"
    )
    assert isinstance(data, dict)
    assert data["prompt_tokens"] == 2048 and data["output_tokens"] == 1024


def test_rlhf_lengths() -> None:
    data = run_json(
        "rlhf", "gpt2", "--stage", "PPO", "--prompt-len", "512", "--response-len", "0.5k"
    )
    assert isinstance(data, dict) and data["kind"] == "rlhf"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("infer", "gpt2", "-s", "4q"), "'--seq-len'"),
        (("infer", "gpt2", "-s", "0.5"), "whole number"),
        (("infer", "gpt2", "-s", "32M"), "range"),
        (("infer", "gpt2", "-b", "0"), "--batch-size"),
    ],
)
def test_bad_sizes_one_line(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], needle: str
) -> None:
    assert needle in fail(capsys, *args)


# ---- --params ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["7", "0.4", "70", "999"])
def test_params_without_unit_refused(capsys: pytest.CaptureFixture[str], text: str) -> None:
    err = fail(capsys, "infer", "--params", text)
    assert f"'{text}' has no unit" in err and f"{text}B" in err
    with pytest.raises(VramcalcError):
        parse_param_count(text)


def test_params_with_unit_and_large_bare_number() -> None:
    assert parse_param_count("0.4B") == 400_000_000
    assert parse_param_count("7000000000") == 7_000_000_000
    assert parse_param_count(1000) == 1000


def test_weights_only_verdict_says_so() -> None:
    result = runner.invoke(app, ["infer", "--params", "7B", "--gpu", "rtx-4090", "--dtype", "int8"])
    assert result.exit_code == 0
    assert "weights only: fits on NVIDIA GeForce RTX 4090" in result.stdout
    assert "× 1 byte (int8)" in result.stdout  # 7e9 params × 1 byte, singular
    data = run_json("infer", "--params", "7B", "--gpu", "rtx-4090", "--dtype", "int8")
    assert isinstance(data, dict)
    assert data["gpu"]["weights_only"] is True and data["total_bytes"] == 7_000_000_000
    full = run_json("infer", "llama-2-7b", "--gpu", "rtx-4090")
    assert isinstance(full, dict) and full["gpu"]["weights_only"] is False


# ---- names and messages -----------------------------------------------------------------------
def test_model_typo_suggests_user_spelling(capsys: pytest.CaptureFixture[str]) -> None:
    err = fail(capsys, "infer", "lama-2-7b")
    assert "did you mean llama-2-7b" in err and "llama27b" not in err
    assert "`vramcalc presets list`" in err


def test_gpu_typo_suggests_user_spelling_and_gpu_list(capsys: pytest.CaptureFixture[str]) -> None:
    err = fail(capsys, "infer", "gpt2", "--gpu", "h100-80")
    assert "h100-80gb (h100-sxm)" in err and "h10080gb" not in err
    assert "`vramcalc gpus`" in err and "presets list" not in err
    # suggestions never show a normalised key (lower case with no separators)
    for name in re.findall(r"did you mean ([^?]*)\?", err)[0].split(", "):
        assert "-" in name


def test_no_pydantic_prefix_and_choices_comma_separated(capsys: pytest.CaptureFixture[str]) -> None:
    err = fail(capsys, "infer", "gpt2", "--dtype", "int3")
    assert "Value error" not in err and "'int3'" in err
    err = fail(capsys, "rlhf", "gpt2")
    assert "Choose from: sft, rm, ppo, dpo, grpo" in err and "\t" not in err


# ---- help -------------------------------------------------------------------------------------
def help_text(*args: str) -> str:
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize(
    "command",
    [(), ("infer",), ("train",), ("fit",), ("plan",), ("gpus",), ("cost", "infer"), ("rlhf",)],
)
def test_help_has_no_type_placeholders(command: tuple[str, ...]) -> None:
    text = help_text(*command)
    assert "<bool>" not in text and "<str>" not in text


def test_help_contents() -> None:
    assert "TOML file of [[gpu]] tables" in help_text("gpus")
    assert "--gpus-file" in help_text("infer") and "--gpus-file" in help_text("train")
    train = help_text("train")
    assert "(prompt + generated)" not in train and "4k = 4,096" in train
    assert "(prompt + generated)" in help_text("infer")
    assert re.search(r"--nodes\s+INTEGER\s+\S*\s*machines", train) or "machines in the job" in train
    assert "GPUs per machine" in train
    for command in (("fit",), ("plan",), ("cost", "train"), ("cost", "infer"), ("rlhf",)):
        assert "preset name, config.json, model folder, .gguf or Hub id" in help_text(*command)


def test_version_and_completion() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and re.fullmatch(r"vramcalc \S+\n", result.stdout)
    assert "--install-completion" in help_text()


def test_console_entry_point_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "vramcalc", "--version"],
        capture_output=True,
        text=True,
        env={**os.environ},
        check=True,
    )
    assert out.stdout.startswith("vramcalc ")


# ---- exit codes -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "code"),
    [
        # llama-2-7b bf16: 12.55 GiB weights + 2 GiB KV at 4096 + ~0.5 GiB runtime < 24 GiB
        (("infer", "llama-2-7b", "--gpu", "rtx-4090"), 0),
        # llama-2-70b bf16 weights alone are 128 GiB
        (("infer", "llama-2-70b", "--gpu", "rtx-4090"), 1),
        (("infer", "--params", "70B", "--gpu", "rtx-4090"), 1),
        # full AdamW training of 7B: 16 bytes per parameter > 100 GiB
        (("train", "llama-2-7b", "--gpu", "rtx-4090"), 1),
        (("train", "gpt2", "--gpu", "rtx-4090", "-s", "512"), 0),
        (("train", "llama-2-7b", "--method", "qlora", "-s", "512", "--gpu", "a100-80gb"), 0),
        (("fit", "llama-2-70b", "--gpu", "rtx-4090"), 1),
        (("fit", "gpt2", "--gpu", "rtx-4090"), 0),
        (("cost", "infer", "llama-2-70b", "--gpu", "rtx-4090"), 1),
        (("cost", "infer", "llama-2-7b", "--gpu", "h100"), 0),
        (("plan", "llama-2-7b"), 0),
        # full training of 70B: ≥ 16 bytes per parameter ≈ 1 TB, no single catalog GPU holds it
        (("plan", "llama-2-70b", "--task", "train", "--tokens", "1B", "--max-gpus", "1"), 1),
        (("rlhf", "llama-2-7b", "--stage", "ppo", "--gpu", "rtx-4090"), 1),
        (("rlhf", "gpt2", "--stage", "dpo", "-s", "512", "--gpu", "h100"), 0),
    ],
)
def test_check_exit_codes(args: tuple[str, ...], code: int) -> None:
    result = runner.invoke(app, [*args, "--check", "--json"])
    assert result.exit_code == code, result.output
    json.loads(result.stdout)  # the answer is still printed
    assert runner.invoke(app, list(args)).exit_code == 0  # without --check: exit 0


def test_check_needs_a_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--gpu" in fail(capsys, "infer", "gpt2", "--check")
    assert "--gpu" in fail(capsys, "train", "gpt2", "--check")


# ---- without torch ----------------------------------------------------------------------------
@pytest.mark.parametrize("args", [["validate"], ["trace", "gpt2"], ["measure", "gpt2"]])
def test_torch_commands_without_torch(args: list[str]) -> None:
    code = (
        "import sys; sys.modules['torch'] = None; from vramcalc.cli.app import main; main(sys.argv[1:])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env={**os.environ}
    )
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert 'pip install "vramcalc[torch]"' in out.stderr


# ---- JSON: schema_version and kind everywhere, fit's dtype ------------------------------------
@pytest.mark.parametrize(
    ("args", "kind"),
    [
        (("infer", "gpt2"), "inference"),
        (("infer", "gpt2", "--compare-dtypes"), "inference_comparison"),
        (("train", "gpt2", "-s", "256"), "training"),
        (("train", "gpt2", "-s", "256", "--method", "lora"), "training"),
        (("fit", "gpt2", "--gpu", "h100"), "fit"),
        (("plan", "gpt2", "--prompt", "512", "--output", "128"), "plan"),
        (
            ("cost", "infer", "gpt2", "--gpu", "h100", "--prompt", "512", "--output", "128"),
            "inference_cost",
        ),
        (("cost", "train", "gpt2", "--gpu", "h100", "--tokens", "1B"), "training_cost"),
        (("gpus",), "gpu_list"),
        (("presets", "list"), "model_list"),
        (("presets", "list", "--gpus"), "gpu_list"),
        (("presets", "show", "gpt2"), "model_preset"),
        (("inspect", "gpt2"), "model_source"),
        (("rlhf", "gpt2", "--stage", "sft", "-s", "256"), "rlhf"),
    ],
)
def test_every_json_has_schema_version_and_kind(args: tuple[str, ...], kind: str) -> None:
    data = run_json(*args)
    assert isinstance(data, dict)
    assert list(data)[:2] == ["schema_version", "kind"]
    assert data["schema_version"] == 2 and data["kind"] == kind


def test_fit_json_has_dtype() -> None:
    data = run_json("fit", "gpt2", "--gpu", "h100", "--dtype", "fp8")
    assert isinstance(data, dict) and data["workload"]["dtype"] == "fp8"
    data = run_json("fit", "gpt2", "--gpu", "h100", "--task", "train")
    assert isinstance(data, dict) and data["workload"]["precision"] == "bf16-mixed"


# ---- warnings: beyond the trained context, GGUF --dtype ignored -------------------------------
def test_seq_len_beyond_trained_context_warns(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["infer", "llama-2-7b", "-s", "8192", "--json"])
    assert exc.value.code == 0
    out = capsys.readouterr()
    assert out.err.count("\n") == 1 and "trained context of 4,096" in out.err
    assert json.loads(out.out)["inputs"]["seq_len"] == 8192
    with pytest.raises(SystemExit):
        main(["infer", "llama-2-7b", "-s", "4k", "--json"])
    assert capsys.readouterr().err == ""  # 4096 is within llama-2's context


def test_gguf_dtype_reports_what_was_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from test_sources import tiny_gguf

    path = tmp_path / "tiny.gguf"
    data_bytes = tiny_gguf(path)
    with pytest.raises(SystemExit):
        main(["infer", str(path), "--dtype", "int4", "--json"])
    out = capsys.readouterr()
    data = json.loads(out.out)
    assert data["inputs"]["dtype"] == "bf16" and data["inputs"]["quant"].startswith("GGUF Q4_K")
    assert data["components"][0]["bytes"] == data_bytes == 907392  # as stored (test_sources)
    assert "--dtype int4 ignored" in out.err and out.err.count("\n") == 1
    assert data["warnings"] and "awq" not in json.dumps(data["inputs"])
    with pytest.raises(SystemExit):
        main(["infer", str(path), "--json"])
    assert capsys.readouterr().err == ""  # the default dtype asks nothing of the weights


# ---- --explain on infer: every formula evaluates to its component's bytes ---------------------
def evaluate(formula: str) -> float:
    """The arithmetic of a formula with its labels (words, dotted names, units) removed."""
    expr = re.sub(r"[A-Za-z_][\w.]*", "", formula.replace(",", "")).replace("×", "*")
    assert re.fullmatch(r"[\d.\s*+()]+", expr), expr
    return float(eval(expr))  # only digits and + * ( ) remain (checked above)


@pytest.mark.parametrize(
    "args",
    [
        ("llama-2-7b",),
        ("llama-2-7b", "--dtype", "int4", "-b", "4"),
        ("mistral-7b", "--attention", "eager", "-s", "1k"),
        ("gpt2", "--attention", "eager", "--logits", "all", "-s", "512"),
        ("mixtral-8x7b", "--dtype", "fp8", "-s", "2k"),
        ("--params", "7B", "--dtype", "int4"),
    ],
)
def test_infer_formulas_evaluate_to_bytes(args: tuple[str, ...]) -> None:
    data = run_json("infer", *args)
    assert isinstance(data, dict)
    for c in data["components"]:
        assert c["formula"], c["name"]
        assert int(evaluate(c["formula"])) == c["bytes"], (c["name"], c["formula"])


def test_infer_explain_table() -> None:
    result = runner.invoke(app, ["infer", "llama-2-7b", "--explain"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    # 2 (K,V) × 32 layers × 4096 tokens × 4096 hidden × 2 bytes = 2 GiB
    assert "kv_cache = 1 seqs × 32 layers × 4096 tokens × 8192 values × 2 B = 2,147,483,648" in (
        result.stdout
    )
    assert "total = " in result.stdout


# ---- the likely range on every estimate -------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ("--method", "lora"),
        ("--method", "qlora"),
        ("--num-gpus", "8", "--zero", "3"),
        ("--method", "lora", "--num-gpus", "2"),
    ],
)
def test_band_for_lora_qlora_multi_gpu(args: tuple[str, ...]) -> None:
    data = run_json("train", "llama-2-7b", "-s", "1k", *args)
    assert isinstance(data, dict)
    assert data["low_bytes"] < data["total_bytes"] < data["high_bytes"]
    assert any("full-training trace residual" in a for a in data["assumptions"])
    table = runner.invoke(app, ["train", "llama-2-7b", "-s", "1k", *args], env={"COLUMNS": "200"})
    assert re.search(r"GiB, likely [\d.]+–[\d.]+ GiB", table.stdout)


def test_full_single_gpu_band_has_no_extrapolation_note() -> None:
    data = run_json("train", "gpt2", "-s", "256")
    assert isinstance(data, dict) and data["low_bytes"] < data["total_bytes"]
    assert not any("trace residual" in a for a in data["assumptions"])


# ---- narrow terminals -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ("infer", "llama-2-7b"),
        ("infer", "llama-2-7b", "--compare-dtypes"),
        ("train", "llama-2-7b", "--num-gpus", "8", "--zero", "3"),
        ("train", "gpt2", "-s", "256"),
        ("gpus",),
        ("plan", "llama-2-7b"),
        ("fit", "gpt2", "--gpu", "h100"),
        ("cost", "infer", "llama-2-7b", "--gpu", "h100"),
        ("cost", "train", "llama-2-7b", "--gpu", "h100", "--tokens", "2T", "-n", "1024"),
        ("rlhf", "gpt2", "--stage", "ppo"),
        ("presets", "list"),
    ],
)
def test_no_ellipsis_at_40_columns(args: tuple[str, ...]) -> None:
    result = runner.invoke(app, list(args), env={"COLUMNS": "40"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout
    wide = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    # every number of the wide table is still printed whole
    for number in re.findall(r"\d[\d,]*\.\d+", wide.stdout):
        assert number in result.stdout, number


def test_narrow_infer_drops_the_bar_first() -> None:
    narrow = runner.invoke(app, ["infer", "llama-2-7b"], env={"COLUMNS": "40"}).stdout
    assert "█" not in narrow and "12.55" in narrow and "80.8%" in narrow
    assert "█" in runner.invoke(app, ["infer", "llama-2-7b"], env={"COLUMNS": "80"}).stdout


def test_presets_list_full_names_at_80_columns() -> None:
    from vramcalc.sources.presets import list_models

    out = runner.invoke(app, ["presets", "list"], env={"COLUMNS": "80"}).stdout
    assert "…" not in out
    for spec in list_models():
        assert re.search(rf"│ {re.escape(spec.name)}\s+│", out), spec.name


def test_trace_takes_sizes() -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    data = run_json("trace", "gpt2", "-s", "0.25k", "-b", "2")
    assert isinstance(data, dict) and data["kind"] == "trace"
    assert data["config"]["seq_len"] == 256 and data["config"]["batch_size"] == 2  # 0.25 × 1,024
