"""The command tree through typer's runner (success) and main() (errors: one line, exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from vramcalc.cli.app import app, main
from vramcalc.units import GIB

runner = CliRunner()


def run_json(*args: str) -> object:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_infer_json_schema() -> None:
    data = run_json("infer", "llama-2-7b", "--dtype", "fp16", "--seq-len", "4096")
    assert isinstance(data, dict)
    assert data["params"] == 6_738_415_616
    assert data["total_bytes"] == sum(c["bytes"] for c in data["components"])
    kv = next(c for c in data["components"] if c["name"] == "kv_cache")
    assert kv["bytes"] == 2 * GIB
    assert data["inputs"]["seq_len"] == 4096 and data["inputs"]["dtype"] == "fp16"


def test_infer_table_and_gpu() -> None:
    result = runner.invoke(app, ["infer", "llama-2-7b", "--dtype", "int8", "--gpu", "rtx-4090"])
    assert result.exit_code == 0
    assert "kv_cache" in result.stdout and "fits" in result.stdout


def test_compare_dtypes_params_only_reproduces_classic_table() -> None:
    doc = run_json("infer", "--params", "7B", "--compare-dtypes")
    assert isinstance(doc, dict) and doc["kind"] == "inference_comparison"
    rows = doc["rows"]
    gib = {r["inputs"]["dtype"]: round(r["total_bytes"] / GIB, 2) for r in rows}
    assert gib == {"fp32": 26.08, "bf16": 13.04, "int8": 6.52, "int4": 3.26}
    table = runner.invoke(app, ["infer", "--params", "7B", "--compare-dtypes"])
    assert "26.08" in table.stdout and "3.26" in table.stdout


def test_compare_dtypes_model() -> None:
    doc = run_json("infer", "llama-2-7b", "--compare-dtypes", "--gpu", "a100-40gb")
    assert isinstance(doc, dict) and doc["schema_version"] == 2
    rows = doc["rows"]
    totals = [r["total_bytes"] for r in rows]
    assert [r["inputs"]["dtype"] for r in rows] == ["fp32", "bf16", "fp8", "int8", "int4"]
    assert totals[0] > totals[1] > totals[3] > totals[4]


def test_train_json() -> None:
    data = run_json(
        "train", "gpt2", "--batch-size", "4", "--seq-len", "512", "--optimizer", "sgd-momentum"
    )
    assert isinstance(data, dict)
    assert data["kind"] == "training" and data["inputs"]["optimizer"] == "sgd-momentum"
    assert data["total_bytes"] == sum(c["bytes"] for c in data["components"])


def test_presets_list_and_show() -> None:
    doc = run_json("presets", "list")
    assert isinstance(doc, dict) and doc["kind"] == "model_list"
    assert len(doc["models"]) >= 22
    shown = run_json("presets", "show", "meta-llama/Llama-2-7b-hf")
    assert isinstance(shown, dict) and shown["params"] == 6_738_415_616 and shown["source"]
    assert runner.invoke(app, ["presets", "list"]).exit_code == 0
    assert runner.invoke(app, ["presets", "list", "--gpus"]).exit_code == 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["infer", "llama-2-7x"], "did you mean llama-2-7b"),
        (["infer", "llama-2-7b", "--dtype", "int3"], "int3"),
        (["infer", "llama-2-7b", "--batch-size", "0"], "--batch-size"),
        (["infer", "llama-2-7b", "--seq-len", "-5"], "--seq-len"),
        (["infer", "gpt2", "--seq-len", "4096"], "1024"),
        (["infer", "llama-2-7b", "--gpu", "h1000"], "h1000"),
        (["infer"], "--params"),
        (["infer", "--params", "seven"], "seven"),
        (["train", "llama-2-7b", "--optimizer", "adamw9"], "adamw9"),
        (["infer", "llama-2-7b", "--no-such-flag"], "--no-such-flag"),
    ],
)
def test_bad_input_one_line_exit_2(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err


LIGHT_COMMANDS = [
    ["infer", "llama-2-7b"],
    ["train", "llama-2-7b"],
    ["train", "llama-2-7b", "--method", "qlora", "--num-gpus", "8", "--zero", "3", "--explain"],
    ["rlhf", "instructgpt-6b", "--stage", "ppo", "--gpu", "h100"],
    ["cost", "train", "llama-2-7b", "--tokens", "1T", "--gpu", "h100"],
    ["cost", "infer", "llama-2-7b", "--gpu", "h100"],
    ["fit", "llama-2-7b", "--gpu", "rtx-4090"],
    ["plan", "llama-2-7b"],
    ["gpus"],
    ["inspect", "llama-2-7b"],
    ["presets", "list"],
    ["sweep", "llama-2-7b", "--seq-len", "1k..8k", "--gpu", "rtx-4090,h100"],
    ["compare", "llama-2-7b", "--config", "--dtype bf16", "--config", "--dtype int4"],
]


@pytest.mark.parametrize("args", LIGHT_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_commands_do_not_import_heavy_modules(args: list[str]) -> None:
    """Every command but trace/measure/validate runs without torch, numpy or transformers (and
    without matplotlib, which only `sweep --plot` loads)."""
    code = (
        "import sys; from vramcalc.cli.app import main\n"
        f"try:\n    main({args + ['--json']!r})\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "heavy = [m for m in ('torch', 'numpy', 'transformers', 'matplotlib') if m in sys.modules]\n"
        "sys.stderr.write(repr(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr == "[]"
    json.loads(out.stdout)  # the command ran and printed its result


def test_import_vramcalc_is_light() -> None:
    code = "import sys, vramcalc; print([m for m in ('torch','numpy','transformers','rich','matplotlib') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_broken_preset_file_is_one_line(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from vramcalc.sources import presets
    root = tmp_path / "presets"
    shutil.copytree(presets.presets_dir(), root)
    path = root / "models" / "llama-2-7b.toml"
    path.write_text(path.read_text().replace("vocab_size = 32000", 'vocab_size = "many"'))
    monkeypatch.setattr(presets, "presets_dir", lambda: root)
    presets._models.cache_clear()
    try:
        with pytest.raises(SystemExit) as exit_info:
            main(["infer", "tinyllama"])
    finally:
        presets._models.cache_clear()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "llama-2-7b.toml" in err and "vocab_size" in err
