"""measure / validate / trace CLI, JSONL records, NVML fallbacks and error bands (no GPU here:
the CUDA calls are faked; `vramcalc measure` itself was not run on a GPU)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vramcalc import nvml as gpu
from vramcalc.cli.app import app, main
from vramcalc.core.inference import estimate_inference
from vramcalc.units import GIB

runner = CliRunner()


# ---- gpu.py -------------------------------------------------------------------------------------


def _fake_pynvml(monkeypatch: pytest.MonkeyPatch, fail_init: bool = False) -> None:
    import sys
    import types

    class Proc:
        pid, usedGpuMemory = 42, 3 * GIB

    def init() -> None:
        if fail_init:
            raise RuntimeError("NVML Shared Library Not Found")

    nv = types.SimpleNamespace(
        nvmlInit=init,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetComputeRunningProcesses=lambda h: [Proc],
    )
    monkeypatch.setitem(sys.modules, "pynvml", nv)


def test_process_used_bytes_without_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_pynvml(monkeypatch, fail_init=True)
    assert gpu.process_used_bytes(42) is None


def test_process_used_bytes_reads_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_pynvml(monkeypatch)
    assert gpu.process_used_bytes(42) == 3 * GIB
    assert gpu.process_used_bytes(7) is None  # not listed: unknown, not zero


# ---- records ------------------------------------------------------------------------------------


def test_append_record_never_damages_existing_lines(tmp_path: Path) -> None:
    live = pytest.importorskip("vramcalc.measure.live")
    path = tmp_path / "runs.jsonl"
    # an earlier run was interrupted mid-line: its bytes stay, the new record starts on a new line
    path.write_bytes(b'{"a": 1}\n{"torn": ')
    before = path.read_bytes()
    live.append_record(path, {"b": 2})
    live.append_record(path, {"c": 3})
    data = path.read_bytes()
    assert data.startswith(before)
    assert data.endswith(b'{"b":2}\n{"c":3}\n')
    assert live.read_records(path) == [{"a": 1}, {"b": 2}, {"c": 3}]


def test_append_record_creates_file(tmp_path: Path) -> None:
    live = pytest.importorskip("vramcalc.measure.live")
    path = tmp_path / "sub" / "runs.jsonl"
    live.append_record(path, {"x": 1})
    assert path.read_text() == '{"x":1}\n'


def _fake_cuda(monkeypatch: pytest.MonkeyPatch, live: Any, *, oom: bool) -> None:
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for name in ("set_device", "synchronize", "reset_peak_memory_stats", "empty_cache"):
        monkeypatch.setattr(torch.cuda, name, lambda *a, **k: None)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda *a: 1000)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a: 5000)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda *a: 6144)
    monkeypatch.setattr(live.gpu, "process_used_bytes", lambda pid, i=0: 7000)
    monkeypatch.setattr(
        live,
        "environment",
        lambda i=0: {"gpu": "Fake GPU", "driver": "0", "torch": torch.__version__},
    )

    def build(wl: Any, device: str) -> Any:
        if oom:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return object()

    monkeypatch.setattr(live, "build_model", build)
    monkeypatch.setattr(live, "run_inference", lambda *a: (None, None))


def test_measure_records_oom_as_result(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    live = pytest.importorskip("vramcalc.measure.live")
    _fake_cuda(monkeypatch, live, oom=True)
    path = tmp_path / "runs.jsonl"
    result = runner.invoke(
        app, ["measure", "llama-2-7b", "-s", "128", "--record", str(path), "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["readings"]["oom"] is True
    assert out["readings"]["error"].startswith("CUDA out of memory")
    assert out["readings"]["max_memory_reserved_bytes"] == 6144
    (rec,) = live.read_records(path)
    assert rec["config"]["model"] == "llama-2-7b" and rec["config"]["seq_len"] == 128
    assert rec["environment"]["gpu"] == "Fake GPU"
    assert (
        rec["estimate"]["total_bytes"] == estimate_inference("llama-2-7b", seq_len=128).total_bytes
    )


def test_measure_success_readings(monkeypatch: pytest.MonkeyPatch) -> None:
    live = pytest.importorskip("vramcalc.measure.live")
    _fake_cuda(monkeypatch, live, oom=False)
    result = runner.invoke(app, ["measure", "gpt2", "-s", "64", "--json"])
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)["readings"]
    assert (r["oom"], r["weights_allocated_bytes"], r["max_memory_allocated_bytes"]) == (
        False,
        1000,
        5000,
    )
    assert r["nvml_process_bytes_before"] == r["nvml_process_bytes_after"] == 7000


def test_measure_without_cuda_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SystemExit) as exc:
        main(["measure", "gpt2", "-s", "64"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CUDA" in err[0]


# ---- trace / validate CLI -----------------------------------------------------------------------


def test_trace_cli_json() -> None:
    pytest.importorskip("torch")
    result = runner.invoke(app, ["trace", "gpt2", "-s", "128", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout[result.stdout.index("{") :])
    tr = out["trace"]
    assert tr["peak_bytes"] == sum(tr["by_category"].values())
    # bf16 weights of GPT-2: 124,439,808 params × 2 B (+ no buffers under 5.x: bias masks are gone)
    assert tr["by_category"]["parameters"] == 124_439_808 * 2
    assert abs(out["estimate_tensor_bytes"] / tr["peak_bytes"] - 1) < 0.03


@pytest.mark.parametrize(
    "argv",
    [
        ["trace", "gpt2", "--task", "serve"],
        ["trace", "gpt2", "--dtype", "int4"],
        ["trace", "gpt2", "--task", "training", "--optimizer", "lion"],
        ["validate", "--suite", "70b"],
    ],
)
def test_bad_input_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


# ---- error bands --------------------------------------------------------------------------------


def test_band_brackets_total_and_verdicts() -> None:
    est = estimate_inference("llama-2-7b", seq_len=4096)
    assert est.low_bytes < est.total_bytes < est.high_bytes
    # the memory inside the band is "tight"; above its top "fits"; below its bottom "does not fit"
    mid = (est.total_bytes + est.high_bytes) / 2 / GIB
    assert estimate_inference("llama-2-7b", seq_len=4096, gpu_mem_gib=mid).gpu.verdict == "tight"  # type: ignore[union-attr]
    hi = estimate_inference("llama-2-7b", seq_len=4096, gpu_mem_gib=est.high_bytes / GIB + 1)
    assert hi.gpu is not None and hi.gpu.verdict == "fits" and hi.gpu.fits
    lo = estimate_inference("llama-2-7b", seq_len=4096, gpu_mem_gib=est.low_bytes / GIB - 1)
    assert lo.gpu is not None and lo.gpu.verdict == "does not fit" and not lo.gpu.fits


def test_band_in_json_and_weights_only_exact() -> None:
    result = runner.invoke(app, ["infer", "llama-2-7b", "--json"])
    out = json.loads(result.stdout)
    assert out["low_bytes"] <= out["total_bytes"] <= out["high_bytes"]
    w = json.loads(runner.invoke(app, ["infer", "--params", "7B", "--json"]).stdout)
    assert w["low_bytes"] == w["total_bytes"] == w["high_bytes"]


def test_band_shown_in_table() -> None:
    result = runner.invoke(app, ["infer", "llama-2-7b", "--gpu-mem", "24"])
    assert result.exit_code == 0
    assert "likely" in result.stdout


def test_validate_cli_json(monkeypatch: pytest.MonkeyPatch) -> None:
    v = pytest.importorskip("vramcalc.measure.validate")
    grid = v.ci_grid()
    few = [grid[0], grid[-1]]  # one inference and one training row keep the test fast
    monkeypatch.setattr(v, "ci_grid", lambda: few)
    result = runner.invoke(app, ["validate", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout[result.stdout.index("{") :])
    assert [r["config"]["kind"] for r in out["rows"]] == ["inference", "training"]
    for row in out["rows"]:
        assert row["error"] == pytest.approx(
            row["estimate_tensor_bytes"] / row["trace_peak_bytes"] - 1, abs=1e-5
        )
        assert "measured" not in row  # no GPU here
    assert out["summary"]["all"]["n"] == 2
    assert set(out["summary"]) == {"all", "inference", "training"}


def test_trace_restores_patched_functions() -> None:
    torch = pytest.importorskip("torch")
    from vramcalc.measure.trace import trace
    from vramcalc.measure.validate import TINY_MODELS
    from vramcalc.measure.workload import Workload

    before = (torch.nn.functional.scaled_dot_product_attention, torch.pow, torch.exp)
    trace(Workload("inference", TINY_MODELS["tiny-llama"], 1, 64))
    assert (torch.nn.functional.scaled_dot_product_attention, torch.pow, torch.exp) == before


def test_trace_failure_in_transformers_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    trace_mod = pytest.importorskip("vramcalc.measure.trace")

    def boom(wl: Any) -> Any:
        raise ValueError("SomeModel does not support this attention\nsecond line")

    monkeypatch.setattr(trace_mod, "trace", boom)
    with pytest.raises(SystemExit) as exc:
        main(["trace", "gpt2", "-s", "64"])
    assert exc.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "ValueError: SomeModel does not support this attention" in line


def test_compare_table_shows_tight() -> None:
    est = estimate_inference("llama-2-7b", seq_len=4096)
    mid = (est.total_bytes + est.high_bytes) / 2 / GIB
    result = runner.invoke(
        app, ["infer", "llama-2-7b", "-s", "4096", "--gpu-mem", f"{mid}", "--compare-dtypes"]
    )
    assert result.exit_code == 0, result.output
    assert "tight" in result.stdout


def test_measured_error() -> None:
    live = pytest.importorskip("vramcalc.measure.live")
    # 10 GiB estimated, nvidia-smi showed 8 GiB: +25 %
    readings = {"oom": False, "nvml_process_bytes_after": 8 * GIB, "max_memory_reserved_bytes": 1}
    assert live.measured_error(10 * GIB, readings) == pytest.approx(0.25)
    # no per-process NVML figure: compare with the allocator's reserved peak
    readings = {
        "oom": False,
        "nvml_process_bytes_after": None,
        "max_memory_reserved_bytes": 5 * GIB,
    }
    assert live.measured_error(10 * GIB, readings) == pytest.approx(1.0)
    assert live.measured_error(10 * GIB, {"oom": True}) is None
