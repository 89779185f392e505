"""`infer --engine`, `fit/plan --engine` and `cost infer --engine` through the CLI: JSON fields,
the table, and bad input as one line with exit 2."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from vramcalc.cli.app import app, main

runner = CliRunner()


def run_json(*args: str) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def test_infer_vllm_json_has_the_serving_object() -> None:
    data = run_json("infer", "llama-3.1-8b", "--engine", "vllm", "--gpu-mem", "79.22",
                    "--engine-version", "v0", "--max-model-len", "8k")  # fmt: skip
    s = data["serving"]
    # the same run as tests/test_serving.py::test_vllm_v0_budget_by_hand
    assert (s["kv_pool_tokens"], s["num_blocks"], s["max_concurrency"]) == (448_640, 28_040, 54.77)
    assert s["kv_pool_bytes"] == 28_040 * 16 * 131_072
    assert data["total_bytes"] == sum(c["bytes"] for c in data["components"])
    assert data["inputs"]["engine"] == "vllm" and data["num_gpus"] == 1


def test_infer_hf_json_is_unchanged_apart_from_a_null_serving() -> None:
    data = run_json("infer", "llama-2-7b", "--dtype", "fp16", "--seq-len", "4096")
    assert data["serving"] is None and data["num_gpus"] == 1
    assert data["inputs"]["seq_len"] == 4096


def test_infer_tp_prints_per_gpu_and_cluster_total() -> None:
    result = runner.invoke(app, ["infer", "llama-3.1-70b", "--engine", "vllm", "--tp", "4",
                                 "--gpu", "a100-80gb", "--max-model-len", "32k"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "4 GPUs (TP 4 × PP 1)" in result.stdout
    assert "Maximum concurrency for 32,768 tokens per request" in result.stdout
    hf = run_json("infer", "llama-3.1-70b", "--tp", "4", "--seq-len", "4096")
    assert hf["num_gpus"] == 4 and hf["cluster_total_bytes"] == 4 * hf["total_bytes"]


def test_infer_llamacpp_reports_gpu_and_host() -> None:
    data = run_json("infer", "llama-3.1-8b", "--engine", "llama.cpp", "-ngl", "16", "-c", "8k")
    assert (
        data["serving"]["host_bytes"] > 0
        and data["cpu_bytes_per_node"] == data["serving"]["host_bytes"]
    )
    kv = next(c for c in data["components"] if c["name"] == "kv_cache")
    assert kv["bytes"] == 2**30 // 2  # 16 of 32 layers of a 1 GiB cache (8192 × 131,072 B)


def test_refusal_is_a_warning_and_check_exits_1() -> None:
    result = runner.invoke(app, ["infer", "llama-3.1-8b", "--engine", "vllm", "--gpu", "rtx-4090",
                                 "--max-model-len", "128k", "--check"])  # fmt: skip
    assert result.exit_code == 1
    assert "estimated maximum model length" in result.output


def test_fit_and_plan_with_an_engine() -> None:
    fit = run_json("fit", "llama-3.1-8b", "--gpu", "rtx-3090", "--engine", "vllm")
    assert 0 < fit["max_model_len"] < 131_072 and fit["max_concurrency"] == 0.0
    assert fit["kind"] == "engine_fit"
    plan = run_json("plan", "llama-3.1-70b", "--engine", "vllm", "--concurrency", "16",
                    "--max-model-len", "32k")  # fmt: skip
    a100 = next(r for r in plan["rows"] if "A100 80GB" in r["gpu"])
    # TP4 holds 14.7 requests of 32k (infer above), so 16 needs TP8
    assert (a100["num_gpus"], a100["split"]) == (8, "tp") and a100["max_concurrency"] >= 16


def test_cost_infer_uses_the_engine_batch() -> None:
    data = run_json("cost", "infer", "llama-3.1-8b", "--gpu", "h100-80gb", "--engine", "vllm")
    serve = run_json("infer", "llama-3.1-8b", "--engine", "vllm", "--gpu", "h100-80gb",
                     "--max-model-len", "1200")  # fmt: skip
    # 1000 prompt + 200 output tokens per request: whole requests the pool holds
    assert data["batch_size"] == serve["serving"]["kv_pool_tokens"] // 1200
    assert data["memory"]["fits"] is True


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["infer", "llama-3.1-8b", "--engine", "vllm", "--gpu-layers", "3", "--gpu", "l4"],
            "--gpu-layers",
        ),
        (
            ["infer", "llama-3.1-8b", "--engine", "hf", "--mem-fraction-static", "0.8"],
            "--mem-fraction-static",
        ),
        (["infer", "llama-3.1-8b", "--engine", "vllm"], "--gpu"),
        (["infer", "llama-3.1-8b", "--engine", "vllm", "--gpu", "l4", "--tp", "3"], "--tp 3"),
        (
            ["infer", "llama-3.1-8b", "--engine", "vllm", "--gpu", "l4", "--engine-version", "v9"],
            "v9",
        ),
        (
            [
                "infer",
                "llama-3.1-8b",
                "--engine",
                "vllm",
                "--gpu",
                "l4",
                "--gpu-memory-utilization",
                "1.5",
            ],
            "less than or equal to 1",
        ),
        (["infer", "llama-3.1-8b", "--engine", "trt"], "trt"),
        (["infer", "llama-3.1-8b", "--engine", "llama.cpp", "--gguf-type", "Q9_Z"], "Q9_Z"),
        (["infer", "llama-3.1-8b", "--engine", "llama.cpp", "-ctv", "q4_0"], "--flash-attn"),
        (["plan", "llama-3.1-8b", "--engine", "vllm"], "--concurrency"),
        (["infer", "llama-3.1-8b", "--engine", "vllm", "--gpu", "l4", "-s", "8k"], "--seq-len"),
        (
            ["fit", "llama-3.1-8b", "--gpu", "l4", "--engine", "sglang", "--num-gpus", "2"],
            "--num-gpus",
        ),
        (["cost", "infer", "llama-3.1-8b", "--gpu", "l4", "--engine", "llama.cpp"], "GGUF"),
    ],
)
def test_bad_engine_input_one_line_exit_2(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err
