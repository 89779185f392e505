"""vramcalc sweep / compare: value grammar, rows equal to the single-command estimates, output
formats, refusals, charts and the library API."""

from __future__ import annotations

import csv
import io
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import vramcalc
from vramcalc.cli.app import app, main
from vramcalc.core.cost import estimate_inference_cost, estimate_training_cost
from vramcalc.core.fitting import fit
from vramcalc.core.inference import estimate_inference
from vramcalc.core.sweep_options import OPTIONS, parse_values
from vramcalc.core.sweeps import compare, sweep
from vramcalc.core.training import estimate_training
from vramcalc.errors import VramcalcError
from vramcalc.units import GIB

runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def fails(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


# ---- the value grammar ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("flag", "text", "expected"),
    [
        ("batch-size", "1..64", [1, 2, 4, 8, 16, 32, 64]),  # doubling
        ("batch-size", "3..64", [3, 6, 12, 24, 48]),  # doubling stops at the last point <= 64
        ("batch-size", "1..8:1", [1, 2, 3, 4, 5, 6, 7, 8]),  # linear
        ("seq-len", "512..2048:512", [512, 1024, 1536, 2048]),
        ("seq-len", "2k,8k,128k", [2048, 8192, 131072]),  # a length: k = 1024, as --seq-len
        ("seq-len", "1k..8k:1k", [1024 * i for i in range(1, 9)]),
        ("seq-len", "4096,1k..4k,4096", [4096, 1024, 2048]),  # in order, no duplicates
        ("zero", "0..3:1", [0, 1, 2, 3]),
        ("dtype", "bf16,int4", ["bf16", "int4"]),
        ("gpu-mem", "24,40.5", [24.0, 40.5]),
        ("sp", "true,false", [True, False]),
    ],
)
def test_parse_values(flag: str, text: str, expected: list[object]) -> None:
    assert parse_values(OPTIONS[flag], text) == expected


@pytest.mark.parametrize(
    ("flag", "text", "needle"),
    [
        ("batch-size", "64..1", "ends below"),
        ("zero", "0..3", "0..3:1"),  # doubling from 0 never moves: say how to write it
        ("batch-size", "1..100k:1", "at most 10,000"),
        ("dtype", "int3", "int3"),
        ("dtype", "bf16..int4", "names"),
        ("batch-size", "1,,2", "empty"),
        ("seq-len", "eight", "eight"),
    ],
)
def test_parse_values_refuses(flag: str, text: str, needle: str) -> None:
    with pytest.raises(VramcalcError, match=needle):
        parse_values(OPTIONS[flag], text)


# ---- library --------------------------------------------------------------------------------------
def test_sweep_rows_are_the_single_estimates() -> None:
    result = sweep("llama-2-7b", seq_len="1024..4096", dtype="bf16,int8", gpu="rtx-4090")
    assert [(r.values["seq_len"], r.values["dtype"]) for r in result.rows] == [
        (1024, "bf16"), (1024, "int8"), (2048, "bf16"), (2048, "int8"), (4096, "bf16"), (4096, "int8"),
    ]  # fmt: skip
    for row in result.rows:
        single = estimate_inference("llama-2-7b", **row.values)
        assert row.estimate == single
    kv = {r.values["seq_len"]: r.estimate.component("kv_cache") for r in result.rows}  # type: ignore[union-attr]
    # 2 (K,V) × 32 layers × s tokens × 4096 hidden × 2 bytes (bf16 KV for both weight dtypes)
    assert kv == {1024: GIB // 2, 2048: GIB, 4096: 2 * GIB}
    assert result.swept == ["seq_len", "dtype"]


def test_to_dicts_same_keys_and_values() -> None:
    result = sweep(["gpt2", "llama-2-7b"], seq_len=[512, 2048], gpu="rtx-4090")
    rows = result.to_dicts()
    assert len(rows) == 4 and len({tuple(r) for r in rows}) == 1  # one key set
    # models outermost: gpt2 512, gpt2 2048 (past its 1024 learned positions), llama 512, 2048
    assert rows[0]["model"] == "gpt2" and rows[1]["error"] and "1024" in rows[1]["error"]
    assert rows[1]["total_bytes"] is None
    ok = rows[2]
    single = estimate_inference("llama-2-7b", seq_len=512, gpu="rtx-4090")
    assert ok["total_bytes"] == single.total_bytes
    assert ok["weights_bytes"] == single.component("weights")
    assert ok["verdict"] == single.gpu.verdict == "fits"  # type: ignore[union-attr]
    assert ok["headroom_bytes"] == single.gpu.headroom_bytes  # type: ignore[union-attr]
    assert result.errors == 1


def test_sweep_train_matches_estimate_training() -> None:
    # GPUs only change the fit: the sweep reuses one estimate per point and must still equal the
    # single call with that GPU
    result = sweep(
        "llama-2-7b", "train", method="full,qlora", lora_rank="8..16", seq_len=1024,
        gpu="rtx-4090,h100", num_gpus="1,4", zero=3,
    )  # fmt: skip
    assert len(result.rows) == 16
    for row in result.rows:
        assert row.estimate == estimate_training("llama-2-7b", **row.values)
    verdicts = {(r.values["method"], r.values["num_gpus"], r.values["gpu"]): r.verdict
                for r in result.rows if r.values["lora_rank"] == 8}  # fmt: skip
    assert verdicts[("full", 1, "rtx-4090")] == "does not fit"
    assert verdicts[("qlora", 1, "h100")] == "fits"


def test_sweep_gpu_memory_values() -> None:
    result = sweep("llama-2-7b", gpu_mem_gib="16,24", dtype="int8")
    for row in result.rows:
        assert row.estimate == estimate_inference("llama-2-7b", **row.values)
    assert [r.estimate.gpu.memory_bytes for r in result.rows] == [16 * GIB, 24 * GIB]  # type: ignore[union-attr]
    with pytest.raises(VramcalcError, match="h1000"):
        sweep("llama-2-7b", gpu="h100,h1000")  # a typo is the user's, not a refused row


def test_misspelt_keyword_is_a_vramcalc_error_everywhere() -> None:
    calls = [
        lambda: estimate_inference("gpt2", dtyp="int8"),
        lambda: estimate_training("gpt2", optimiser="sgd"),
        lambda: estimate_training_cost("gpt2", tokens="1B", gpu="h100", num_gpu=2),
        lambda: estimate_inference_cost("gpt2", gpu="h100", batch=2),
        lambda: fit("gpt2", gpus="h100"),
        lambda: vramcalc.estimate_rlhf("gpt2", stag="sft"),
        lambda: sweep("gpt2", seqlen="1k"),
        lambda: compare([{}, {}], model="gpt2", label=["a", "b"]),
    ]
    for call in calls:
        with pytest.raises(VramcalcError, match="did you mean"):
            call()  # type: ignore[no-untyped-call]


def test_option_of_the_other_task_is_refused() -> None:
    with pytest.raises(VramcalcError, match="--task train"):
        sweep("gpt2", method="lora")
    with pytest.raises(VramcalcError, match="--task infer"):
        sweep("gpt2", "train", dtype="int8")


def test_estimate_accessors() -> None:
    est = estimate_inference("llama-2-7b", dtype="fp16", seq_len=4096, gpu="a100-80gb")
    assert est.total_gib == est.total_bytes / GIB
    row = est.to_row()
    assert row["kv_cache_bytes"] == 2 * GIB  # 2 × 32 × 4096 × 4096 × 2 bytes
    assert row["total_bytes"] == est.total_bytes and row["seq_len"] == 4096
    assert row["verdict"] == "fits" and row["gpu_memory_bytes"] == 80 * GIB


def test_result_types_exported() -> None:
    for name in (
        "sweep",
        "compare",
        "SweepResult",
        "SweepRow",
        "Comparison",
        "TrainingCost",
        "InferenceCost",
        "FitResult",
        "Plan",
        "Saving",
        "RlhfEstimate",
    ):
        assert name in vramcalc.__all__ and getattr(vramcalc, name) is not None
    assert callable(vramcalc.sweep)


@settings(max_examples=25, deadline=None)
@given(
    batches=st.lists(st.integers(1, 256), min_size=1, max_size=4, unique=True),
    seqs=st.lists(st.integers(16, 4096), min_size=1, max_size=3, unique=True),
)
def test_sweep_is_the_product_and_grows_with_batch(batches: list[int], seqs: list[int]) -> None:
    result = sweep("llama-2-7b", batch_size=batches, seq_len=seqs)
    assert len(result.rows) == len(batches) * len(seqs)
    for s in seqs:
        totals = sorted(
            (r.values["batch_size"], r.total_bytes) for r in result.rows if r.values["seq_len"] == s
        )
        assert [t for _, t in totals] == sorted(t for _, t in totals)  # type: ignore[type-var]


# ---- cost columns ---------------------------------------------------------------------------------
def test_training_cost_columns() -> None:
    result = sweep(
        "llama-2-7b", "train", method="full,lora", gpu="h100", num_gpus=8, zero=3,
        seq_len=2048, tokens="1B", usd_per_gpu_hour=2.0,
    )  # fmt: skip
    full, lora = result.rows
    expected = estimate_training_cost(
        "llama-2-7b", tokens="1B", gpu="h100", num_gpus=8, seq_len=2048, usd_per_gpu_hour=2.0
    )
    assert full.cost == expected
    assert full.to_dict()["price_usd"] == expected.price_usd == expected.gpu_hours * 2.0
    assert lora.cost is None and "full fine-tuning only" in (lora.cost_error or "")


def test_serving_cost_columns() -> None:
    result = sweep("llama-2-7b", seq_len=1200, batch_size="1,8", gpu="h100", output_tokens=200)
    for row in result.rows:
        expected = estimate_inference_cost(
            "llama-2-7b", gpu="h100", batch_size=row.values["batch_size"],
            prompt_tokens=1000, output_tokens=200,  # the prompt is the rest of the 1200 tokens
            memory=False,  # the row's own estimate is its memory
        )  # fmt: skip
        assert row.cost == expected


def test_no_price_for_a_row_that_does_not_fit() -> None:
    (row,) = sweep("llama-2-70b", "train", gpu="rtx-4090", tokens="1B").rows
    assert row.verdict == "does not fit" and row.cost is None
    assert "does not fit" in (row.cost_error or "")


def test_price_without_a_cost_question_is_refused() -> None:
    with pytest.raises(VramcalcError, match="--tokens"):
        sweep("gpt2", gpu="h100", usd_per_gpu_hour=2.0)


# ---- CLI ------------------------------------------------------------------------------------------
SWEEP = ["sweep", "llama-2-7b", "--seq-len", "1k..4k", "--dtype", "bf16,int4", "--gpu", "rtx-4090"]


def test_cli_json_equals_single_commands() -> None:
    rows = json.loads(invoke(*SWEEP, "--json"))
    assert len(rows) == 6
    for row in rows:
        single = json.loads(
            invoke("infer", "llama-2-7b", "--seq-len", str(row["seq_len"]), "--dtype", row["dtype"],
                   "--gpu", "rtx-4090", "--json")
        )  # fmt: skip
        assert row["total_bytes"] == single["total_bytes"]
        assert row["low_bytes"] == single["low_bytes"] and row["high_bytes"] == single["high_bytes"]
        for c in single["components"]:
            assert row[f"{c['name']}_bytes"] == c["bytes"]
        assert row["verdict"] == single["gpu"]["verdict"]
        assert row["headroom_bytes"] == single["gpu"]["headroom_bytes"]


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_cli_csv_tsv(fmt: str) -> None:
    text = invoke(*SWEEP, "--format", fmt)
    rows = list(csv.DictReader(io.StringIO(text), delimiter="," if fmt == "csv" else "\t"))
    data = json.loads(invoke(*SWEEP, "--format", "json"))
    assert len(rows) == len(data) == 6
    for got, want in zip(rows, data, strict=True):
        assert int(got["total_bytes"]) == want["total_bytes"] and got["verdict"] == want["verdict"]
        assert got["error"] == ""


def test_cli_jsonl_and_md() -> None:
    lines = invoke(*SWEEP, "--format", "jsonl").splitlines()
    assert [json.loads(line) for line in lines] == json.loads(invoke(*SWEEP, "--json"))
    md = invoke(*SWEEP, "--format", "md").splitlines()
    assert md[0].startswith("| seq-len | dtype | weights") and len(md) == 2 + 6
    assert "| fits |" in md[2]


def test_cli_table_has_verdicts_and_terminal_chart() -> None:
    out = invoke("sweep", "llama-2-7b", "--seq-len", "1k..32k", "--gpu", "rtx-4090,a100-80gb")
    assert "does not fit" in out and "tight" in out
    # the chart: rtx-4090 is first over at 32,000 tokens (total 32.54 GiB > 23.99 GiB)
    assert "first does not fit at seq-len=32,768" in out and "fits at every point" in out


def test_cli_error_rows_are_reported(tmp_path: Path) -> None:
    out = invoke("sweep", "gpt2", "--seq-len", "512..2048")
    assert "refused by the estimator" in out and "1024 learned positions" in out
    result = runner.invoke(app, ["sweep", "gpt2", "--seq-len", "512..2048", "--json"])
    rows = json.loads(result.stdout)
    assert [r["error"] is None for r in rows] == [True, True, False]


def test_cli_output_file_and_overwrite_refusal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "rows.csv"
    target.write_text("mine\n")
    err = fails([*SWEEP, "--output", str(target)], capsys)
    assert "exists" in err and "--force" in err
    assert target.read_text() == "mine\n"  # untouched
    with pytest.raises(SystemExit) as exit_info:
        main([*SWEEP, "--output", str(target), "--force"])
    assert exit_info.value.code == 0
    assert len(list(csv.DictReader(target.open()))) == 6  # format from the suffix


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["sweep", "llama-2-7b", "--dtype", "int3"], "int3"),
        (["sweep", "llama-2-7b", "--method", "lora"], "--task train"),
        (["sweep", "llama-2-7b", "--batch-size", "8..1"], "ends below"),
        (["sweep", "llama-2-7x"], "did you mean"),
        (["sweep", "llama-2-7b", "--output", "rows.xlsx"], "--format"),
        (["sweep", "llama-2-7b", "--plot", "chart.pdf"], ".svg"),
        (["sweep", "llama-2-7b", "--price", "2"], "--tokens"),
        (["compare", "llama-2-7b", "--config", "--dtype int8"], "2 to 6"),
        (
            ["compare", "llama-2-7b", "-c", "--dtyp int8", "-c", "--dtype int4"],
            "did you mean --dtype",
        ),
    ],
)
def test_cli_bad_input(args: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert needle in fails(args, capsys)


def test_cli_compare_json() -> None:
    data = json.loads(
        invoke("compare", "llama-2-7b", "--task", "train", "--gpu", "rtx-4090", "--seq-len", "1024",
               "--config", "--method lora", "--config", "--method qlora", "--json")
    )  # fmt: skip
    lora, qlora = (estimate_training("llama-2-7b", gpu="rtx-4090", seq_len=1024, method=m)
                   for m in ("lora", "qlora"))  # fmt: skip
    a, b = data["configurations"]
    assert a["estimate"]["total_bytes"] == lora.total_bytes
    assert b["estimate"]["total_bytes"] == qlora.total_bytes
    diff = data["differences_bytes"]
    assert diff["total"] == [0, qlora.total_bytes - lora.total_bytes]
    assert diff["weights"][1] == qlora.component("weights") - lora.component("weights") < 0


def test_cli_compare_table() -> None:
    out = invoke("compare", "llama-2-7b", "-c", "--dtype bf16", "-c", "--dtype int4 --seq-len 32k",
                 "-c", "--model mistral-7b")  # fmt: skip
    assert "B − A" in out and "C − A" in out and "mistral-7b" in out and "kv_cache" in out


# ---- charts -------------------------------------------------------------------------------------
def test_plot_needs_matplotlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as if not installed
    err = fails([*SWEEP[:4], "--plot", str(tmp_path / "c.svg")], capsys)
    assert "vramcalc[plot]" in err and not (tmp_path / "c.svg").exists()


def test_plot_needs_one_or_two_axes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    args = [*SWEEP, "--batch-size", "1,2", "--plot", str(tmp_path / "c.svg")]
    assert "one swept axis" in fails(args, capsys)


@pytest.mark.parametrize("suffix", [".svg", ".html", ".png"])
def test_plot_files(tmp_path: Path, suffix: str) -> None:
    pytest.importorskip("matplotlib")
    curve = tmp_path / f"curve{suffix}"
    heat = tmp_path / f"heat{suffix}"
    invoke("sweep", "llama-2-7b", "--seq-len", "1k..32k", "--gpu", "rtx-4090,a100-80gb",
           "--plot", str(curve), "--json")  # fmt: skip
    invoke("sweep", "llama-2-7b", "--seq-len", "1k..8k", "--batch-size", "1..8", "--gpu", "l4",
           "--plot", str(heat), "--json")  # fmt: skip
    for path in (curve, heat):
        data = path.read_bytes()
        if suffix == ".png":
            assert data.startswith(b"\x89PNG\r\n\x1a\n")
        elif suffix == ".svg":
            root = ET.fromstring(data)
            assert root.tag.endswith("svg")
        else:
            text = data.decode()
            assert text.startswith("<!DOCTYPE html>") and "<svg" in text
            assert "<script" not in text and "<link" not in text  # opens offline
            assert "does not fit" in text  # the table travels with the chart
    if suffix == ".svg":
        text = curve.read_text()
        assert "over NVIDIA GeForce RTX 4090" in text and "kv_cache" in text


def test_sweep_a_config_file(tmp_path: Path) -> None:
    """A config.json sweeps like a preset; rows equal the single command on the same file."""
    cfg = {
        "model_type": "llama", "vocab_size": 256, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 512, "tie_word_embeddings": False,
    }  # fmt: skip
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    rows = json.loads(invoke("sweep", str(path), "--seq-len", "128..1024", "--offline", "--json"))
    assert [r["seq_len"] for r in rows] == [128, 256, 512, 1024]
    assert rows[3]["error"] is None  # rope positions: no learned limit
    for row in rows:
        single = estimate_inference(str(path), seq_len=row["seq_len"])
        assert row["total_bytes"] == single.total_bytes
        # 2 (K,V) × 2 layers × s tokens × 2 kv heads × 16 head_dim × 2 bytes (bf16)
        assert row["kv_cache_bytes"] == 2 * 2 * row["seq_len"] * 2 * 16 * 2


def test_csv_keys_when_the_first_row_is_refused() -> None:
    # gpt2 has 12 heads: tensor parallel 5 is refused, 1 is fine; no --seq-len given
    text = invoke("sweep", "gpt2", "--task", "train", "--tp", "5,1", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["error"] and rows[0]["seq_len"] == "" and rows[0]["total_bytes"] == ""
    assert rows[1]["error"] == "" and rows[1]["seq_len"] == "1024"  # gpt2's default: its max
    assert int(rows[1]["total_bytes"]) == estimate_training("gpt2", tp=1).total_bytes


def test_docstring_examples() -> None:
    import doctest

    from vramcalc.core import sweep_options, sweeps

    for module in (sweep_options, sweeps):
        outcome = doctest.testmod(module)
        assert outcome.attempted > 0 and outcome.failed == 0, module.__name__


def test_cli_rows_follow_the_command_line_order() -> None:
    first = json.loads(invoke("sweep", "gpt2", "--seq-len", "256,512", "-b", "1,2", "--json"))
    assert [(r["seq_len"], r["batch_size"]) for r in first] == [
        (256, 1),
        (256, 2),
        (512, 1),
        (512, 2),
    ]
    second = json.loads(
        invoke("sweep", "gpt2", "--batch-size", "1,2", "--seq-len", "256,512", "--json")
    )
    assert [(r["batch_size"], r["seq_len"]) for r in second] == [
        (1, 256),
        (1, 512),
        (2, 256),
        (2, 512),
    ]


@settings(max_examples=60, deadline=None)
@given(start=st.integers(1, 5000), span=st.integers(0, 200_000), step=st.integers(1, 5000))
def test_range_grammar(start: int, span: int, step: int) -> None:
    end = start + span
    doubling = parse_values(OPTIONS["seq-len"], f"{start}..{end}")
    assert doubling[0] == start and doubling[-1] <= end < doubling[-1] * 2
    assert all(b == 2 * a for a, b in zip(doubling, doubling[1:], strict=False))
    if span // step < 10_000:
        linear = parse_values(OPTIONS["seq-len"], f"{start}..{end}:{step}")
        assert len(linear) == span // step + 1 and linear[-1] <= end < linear[-1] + step
        assert all(b - a == step for a, b in zip(linear, linear[1:], strict=False))
