"""Planners: largest batch / longest context that fit, and the ranked multi-GPU plan."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from vramcalc.cli.app import app, main
from vramcalc.core.fitting import Placement, _largest, fit, plan, simple_placement
from vramcalc.core.inference import estimate_inference
from vramcalc.core.training import estimate_training
from vramcalc.errors import VramcalcError
from vramcalc.sources import presets
from vramcalc.sources.presets import get_gpu, get_model, list_gpus, use_gpus_file
from vramcalc.spec.model import ModelSpec

runner = CliRunner()


@pytest.fixture(autouse=True)
def _shipped_catalog(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.delenv(presets.GPUS_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))
    use_gpus_file(None)
    yield
    use_gpus_file(None)


@given(threshold=st.integers(0, 5000), hi=st.integers(1, 5000))
@settings(max_examples=200, deadline=None)
def test_largest_finds_the_boundary(threshold: int, hi: int) -> None:
    calls: list[int] = []

    def fits(x: int) -> bool:
        calls.append(x)
        return x <= threshold

    assert _largest(1, hi, fits) == min(threshold, hi)
    assert len(calls) <= 2 * hi.bit_length() + 2  # logarithmic


@pytest.mark.parametrize(
    ("model", "gpu", "kwargs"),
    [
        ("llama-2-7b", "rtx-4090", {}),
        ("llama-2-7b", "a100-80gb", {"dtype": "int4"}),
        ("mistral-7b", "l4", {"kv_dtype": "fp8"}),
    ],
)
def test_fit_inference_is_the_true_maximum(model: str, gpu: str, kwargs: dict[str, Any]) -> None:
    """Independent check through estimate_inference's own GPUFit: the batch found fits, one more
    does not; likewise for the context."""
    r = fit(model, gpu, **kwargs)
    assert r.max_batch_size >= 1

    def fits(batch: int, seq: int) -> bool:
        est = estimate_inference(model, gpu=gpu, batch_size=batch, seq_len=seq, **kwargs)
        assert est.gpu is not None
        return est.gpu.fits

    assert fits(r.max_batch_size, r.seq_len) and not fits(r.max_batch_size + 1, r.seq_len)
    assert fits(1, r.max_seq_len)
    assert r.max_seq_len == r.seq_len_cap or not fits(1, r.max_seq_len + 1)


def test_fit_training_with_checkpointing() -> None:
    r = fit("qwen2.5-0.5b", "rtx-4090", task="train", grad_checkpointing="full", seq_len=2048)
    est = estimate_training(
        "qwen2.5-0.5b", gpu="rtx-4090", grad_checkpointing="full", seq_len=2048,
        batch_size=r.max_batch_size + 1,
    )  # fmt: skip
    assert r.max_batch_size > 1 and est.gpu is not None and not est.gpu.fits


def test_fit_reports_zero_when_nothing_fits() -> None:
    r = fit("llama-2-70b", "rtx-4090")
    assert r.max_batch_size == 0 and r.max_seq_len == 0


def test_fit_over_several_gpus_fits_more() -> None:
    one = fit("llama-2-13b", "a100-40gb")
    four = fit("llama-2-13b", "a100-40gb", num_gpus=4)
    assert four.max_batch_size > 4 * max(one.max_batch_size, 1) - 4
    assert four.parallelism == "TP=4"


def test_fit_rejects_unknown_option() -> None:
    with pytest.raises(VramcalcError, match="unknown workload option"):
        fit("gpt2", "t4", precision="bf16")


# ---- placement ----------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_inference_placement_splits_weights_and_kv(n: int) -> None:
    spec = get_model("llama-2-13b")
    est = estimate_inference(spec, batch_size=4, seq_len=2048)
    p = simple_placement(spec, "infer", {"batch_size": 4, "seq_len": 2048}, n)
    parts = {c.name: c.bytes for c in p.components}
    assert parts["weights"] == -(-est.component("weights") // n)
    assert parts["kv_cache"] == -(-est.component("kv_cache") // n)
    assert parts["cuda_context"] == est.component("cuda_context")
    assert p.per_gpu_bytes == sum(parts.values())
    if n == 1:
        assert p.per_gpu_bytes == est.total_bytes


def test_training_placement_shards_states_not_activations() -> None:
    # FSDP full shard over 64 GPUs (vramcalc.core.distributed): Llama-2-7B's fp32 weights and Adam
    # states are split 64 ways, each GPU runs a whole micro-batch.
    spec = get_model("llama-2-7b")
    single = estimate_training(spec, batch_size=1, seq_len=4096, grad_accum=2)
    p = simple_placement(spec, "train", {"batch_size": 1, "seq_len": 4096}, 64)
    parts = {c.name: c.bytes for c in p.components}
    assert p.parallelism.startswith("FSDP")
    assert parts["weights"] == 4 * 6_738_415_616 // 64  # 421,150,976
    assert parts["optimizer_state"] == 8 * 6_738_415_616 // 64  # 842,301,952
    # two units (the running and the prefetched layer) of 16-bit weights: 2 × 202,383,360 × 2 B
    assert parts["gathered_parameters"] == 2 * 202_383_360 * 2
    # activations are not sharded (each GPU saves its own micro-batch; FSDP's bf16 parameters
    # make the residual stream 16-bit where autocast on one GPU keeps it fp32)
    assert parts["activations"] > single.component("activations") / 2 > 0
    assert p.per_gpu_bytes < single.total_bytes


# ---- plan ---------------------------------------------------------------------------------------
def test_plan_infer_ranked_and_minimal() -> None:
    p = plan("llama-2-70b", task="infer", batch_size=8)
    priced = [r for r in p.rows if r.usd_per_million_output_tokens is not None]
    costs = [r.usd_per_million_output_tokens for r in priced]
    assert costs == sorted(costs)  # type: ignore[type-var]
    assert {r.gpu for r in p.rows} == {g.name for g in list_gpus()}
    spec = get_model("llama-2-70b")
    workload = {"batch_size": 8, "seq_len": 1200}
    for r in priced:
        gpu = get_gpu(r.gpu)
        assert r.num_gpus is not None and r.per_gpu_bytes is not None
        assert r.per_gpu_bytes <= gpu.memory_bytes
        if r.num_gpus > 1:  # one step fewer does not fit
            smaller = simple_placement(spec, "infer", workload, r.num_gpus // 2)
            assert smaller.per_gpu_bytes > gpu.memory_bytes
    # 70B in bf16 (≈129 GiB of weights) cannot fit 8 × 16 GB T4s
    assert not next(r for r in p.rows if r.gpu == "t4").fits


def test_plan_budget_marks_and_ranks() -> None:
    p = plan("llama-2-7b", task="infer", budget_usd=1.0)
    flags = [r.within_budget for r in p.rows if r.usd_per_hour is not None]
    assert True in flags and False in flags
    first_over = flags.index(False)
    assert all(f is False for f in flags[first_over:])  # within budget first


def test_plan_train_max_hours_adds_gpus() -> None:
    slow = plan("llama-2-7b", task="train", tokens="100B", batch_size=1,
                grad_checkpointing="full", gpus=[get_gpu("h100")])  # fmt: skip
    fast = plan("llama-2-7b", task="train", tokens="100B", batch_size=1,
                grad_checkpointing="full", gpus=[get_gpu("h100")], max_hours=24)  # fmt: skip
    (s,), (f,) = slow.rows, fast.rows
    assert s.wall_hours is not None and s.wall_hours > 24
    assert f.wall_hours is not None and f.wall_hours <= 24 and f.num_gpus > s.num_gpus  # type: ignore[operator]
    assert f.price_usd == pytest.approx(s.price_usd)  # same GPU-hours, perfect scaling


def test_plan_memory_fn_is_pluggable() -> None:
    seen: list[int] = []

    def tiny(spec: ModelSpec, task: str, workload: Mapping[str, Any], n: int) -> Placement:
        seen.append(n)
        return Placement(num_gpus=n, parallelism=f"custom×{n}", per_gpu_bytes=1, components=[])

    p = plan("llama-2-70b", task="infer", memory_fn=tiny)  # type: ignore[arg-type]
    assert seen == [1]  # the placement is reused across GPUs
    assert all(r.num_gpus == 1 and r.parallelism == "custom×1" for r in p.rows)


def test_plan_train_needs_tokens() -> None:
    with pytest.raises(VramcalcError, match="--tokens"):
        plan("gpt2", task="train")


# ---- CLI --------------------------------------------------------------------------------------
def test_cli_fit_json() -> None:
    result = runner.invoke(app, ["fit", "llama-2-7b", "--gpu", "rtx-4090", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["max_batch_size"] == fit("llama-2-7b", "rtx-4090").max_batch_size


def test_cli_fit_train_table() -> None:
    result = runner.invoke(
        app, ["fit", "gpt2", "--gpu", "t4", "--task", "train", "--seq-len", "1024"]
    )
    assert result.exit_code == 0, result.output
    assert "largest batch" in result.output


def test_cli_plan_json_and_table() -> None:
    result = runner.invoke(app, ["plan", "llama-2-7b", "--task", "infer", "-b", "4", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["task"] == "infer" and len(data["rows"]) == len(list_gpus())
    table = runner.invoke(
        app, ["plan", "llama-2-7b", "--task", "train", "--tokens", "10B", "--budget", "5000"]
    )
    assert table.exit_code == 0, table.output
    assert "cheapest first" in table.output


@pytest.mark.parametrize(
    "argv",
    [
        ["plan", "llama-2-7b", "--task", "train"],
        ["plan", "llama-2-7b", "--task", "bake"],
        ["fit", "llama-2-7b", "--gpu", "nope"],
    ],
)
def test_cli_planner_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


# ---- the lazy exports stay callable whatever is imported first ----------------------------------


def test_no_lazy_export_shares_a_name_with_a_submodule() -> None:
    """Importing a submodule binds it on the package: a submodule named like an export (the old
    vramcalc/fit.py) would turn `vramcalc.fit(...)` into "'module' object is not callable"."""
    import pkgutil

    import vramcalc

    modules = {m.name for m in pkgutil.iter_modules(vramcalc.__path__)}
    assert "core" in modules and "cli" in modules
    assert not set(vramcalc.__all__) & modules
    import vramcalc.api

    assert set(vramcalc.__all__) <= set(vramcalc.api.__all__)


def test_exports_are_callable_after_their_modules_are_imported() -> None:
    """In a fresh interpreter: import every submodule that defines an export first, then call."""
    import subprocess
    import sys

    code = (
        "import vramcalc.core.fitting, vramcalc.core.sweeps, vramcalc.core.cost, vramcalc.core.rlhf\n"
        "import vramcalc\n"
        "r = vramcalc.fit('gpt2', 'h100', seq_len=1024)\n"
        "s = vramcalc.sweep('gpt2', gpu='h100')\n"
        "print(type(r).__name__, type(s).__name__, callable(vramcalc.plan))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["FitResult", "SweepResult", "True"]
