"""`fit` and `plan` for training jobs with every train option, the "what would make it fit"
suggestions and `--check`: each figure is checked against estimate_training called directly."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from vramcalc.cli.app import app, main
from vramcalc.core.fit_advice import CHANGES, suggest
from vramcalc.core.fitting import fit, simple_placement
from vramcalc.core.training import estimate_training
from vramcalc.sources.presets import get_gpu, get_model
from vramcalc.spec.conventions import Conventions
from vramcalc.spec.model import GPUSpec

runner = CliRunner()
SPEC = get_model("llama-3.1-8b")


def fit_json(*args: str) -> dict:
    r = runner.invoke(app, ["fit", *args, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_issue_command_works_and_matches_the_estimator() -> None:
    # the command of issue 14, which used to fail with "No such option: --method"
    d = fit_json("llama-3.1-8b", "--gpu", "rtx-4090", "--task", "train", "--method", "qlora")
    mem = get_gpu("rtx-4090").memory_bytes
    assert d["memory_bytes"] == mem
    s = d["max_seq_len"]  # longest context at batch 1: fits, one more token does not
    assert 0 < s < 4096
    assert estimate_training(SPEC, method="qlora", seq_len=s).total_bytes <= mem
    assert estimate_training(SPEC, method="qlora", seq_len=s + 1).total_bytes > mem
    # the described job (batch 1 at the default 4,096 tokens) does not fit: so max batch is 0
    peak = estimate_training(SPEC, method="qlora", seq_len=4096).total_bytes
    assert (d["fits"], d["per_gpu_bytes"], d["max_batch_size"]) == (False, peak, 0)
    assert d["workload"]["method"] == "qlora"
    assert d["conventions"]["framework"] == "hf"


def test_largest_batch_with_lora_options() -> None:
    d = fit_json(
        "llama-3.1-8b", "--gpu", "a100-80gb", "--task", "train", "--method", "lora",
        "--lora-rank", "64", "--lora-targets", "q,v", "-s", "1024", "--grad-checkpointing", "full",
    )  # fmt: skip
    kw = dict(
        method="lora", lora_rank=64, lora_targets="q,v", seq_len=1024, grad_checkpointing="full"
    )
    mem = get_gpu("a100-80gb").memory_bytes
    b = d["max_batch_size"]
    assert b > 1
    assert estimate_training(SPEC, batch_size=b, **kw).total_bytes <= mem  # type: ignore[arg-type]
    assert estimate_training(SPEC, batch_size=b + 1, **kw).total_bytes > mem  # type: ignore[arg-type]


def test_gpu_mem_and_sharding_options() -> None:
    # --gpu-mem 40: a 40 × 1024 MiB GPU; ZeRO-3 over 4 GPUs as estimate_training computes it
    d = fit_json("llama-3.1-8b", "--gpu-mem", "40", "--task", "train", "-n", "4", "--zero", "3")
    assert d["memory_bytes"] == 40 * 2**30
    assert d["parallelism"] == "ZeRO-3 over 4 GPUs"
    s = d["max_seq_len"]
    one = estimate_training(SPEC, zero=3, num_gpus=4, seq_len=s).total_bytes
    over = estimate_training(SPEC, zero=3, num_gpus=4, seq_len=s + 1).total_bytes
    assert one <= 40 * 2**30 < over


def test_default_multi_gpu_is_fsdp_full() -> None:
    p = simple_placement(SPEC, "train", {"seq_len": 2048}, 8)
    est = estimate_training(SPEC, seq_len=2048, fsdp="full", num_gpus=8)
    assert (p.parallelism, p.per_gpu_bytes) == ("FSDP full over 8 GPUs", est.total_bytes)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--method", "qlora", "-s", "1024"], 0),  # QLoRA of 8B at 1k tokens fits 24 GB
        (["--method", "qlora"], 1),  # at 4k it does not (see above)
        (["-b", "64", "-s", "512", "--method", "qlora"], 1),  # the described batch is too big
    ],
)
def test_check_exit_code(args: list[str], code: int) -> None:
    r = runner.invoke(
        app, ["fit", "llama-3.1-8b", "--gpu", "rtx-4090", "--task", "train", *args, "--check"]
    )
    assert r.exit_code == code, r.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--gpu", "rtx-4090", "--method", "lora"], "--method: train options; add --task train"),
        (["--gpu", "rtx-4090", "--framework", "litgpt"], "--framework: train options"),
        (["--task", "train"], "give --gpu NAME"),
        (["--gpu", "rtx-4090", "--gpu-mem", "24", "--task", "train"], "give --gpu NAME"),
        (["--gpu", "rtx-4090", "--task", "train", "--framework", "megatron"], "unknown framework"),
        (["--gpu", "rtx-4090", "--task", "train", "--method", "dora"], "'dora' is not one of"),
    ],
)
def test_fit_bad_input(args: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["fit", "llama-3.1-8b", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err


# ---- suggestions ----------------------------------------------------------------------------------
def test_suggestions_are_the_estimates_of_the_changed_job() -> None:
    d = fit_json("llama-3.1-8b", "--gpu", "rtx-4090", "--task", "train", "--method", "qlora")
    assert d["suggestions"], "a QLoRA that does not fit at 4k has a cheaper fix"
    mem = get_gpu("rtx-4090").memory_bytes
    for s in d["suggestions"]:
        opts = dict(s["options"])
        n = opts.pop("num_gpus", 1)
        if "conventions" in opts:
            opts["conventions"] = Conventions(**opts["conventions"])
        est = estimate_training(SPEC, method="qlora", seq_len=4096, num_gpus=n, **opts)
        assert s["per_gpu_bytes"] == est.total_bytes
        assert s["fits"] == (est.total_bytes <= mem)
    labels = [s["change"] for s in d["suggestions"]]
    assert labels == ["--grad-checkpointing full", "--activation-offload"]


def test_suggestion_order_follows_the_cost_ranking() -> None:
    # a full fine-tune of 8B at batch 8 on one 80 GB GPU: every single fix is listed in the order
    # of CHANGES (smaller micro-batch first, more GPUs last)
    gpu = GPUSpec(name="big", memory_mib=200 * 1024)
    work = {"batch_size": 8, "seq_len": 2048}

    def peak(w: Mapping[str, Any], n: int) -> int:
        return simple_placement(SPEC, "train", w, n).per_gpu_bytes

    out = suggest(work, 1, gpu.memory_bytes, peak)
    order = [label for label, _c, _f in CHANGES]
    ranks = [order.index(s.change) for s in out if s.change in order]
    assert ranks == sorted(ranks)
    assert all(s.fits for s in out)
    if out[0].change.startswith("--batch-size"):
        b = out[0].options["batch_size"]
        assert peak({**work, "batch_size": b}, 1) <= gpu.memory_bytes
        assert peak({**work, "batch_size": b * 2}, 1) > gpu.memory_bytes  # the largest halving


def test_combined_suggestion_when_no_single_change_fits() -> None:
    d = fit_json("llama-3.1-8b", "--gpu", "rtx-4090", "--task", "train", "-b", "4")
    (s,) = d["suggestions"]
    assert s["fits"] and s["change"].startswith("--batch-size 1")
    opts = dict(s["options"])
    if "conventions" in opts:
        opts["conventions"] = Conventions(**opts["conventions"])
    est = estimate_training(SPEC, seq_len=4096, **opts)
    assert s["per_gpu_bytes"] == est.total_bytes <= get_gpu("rtx-4090").memory_bytes


def test_fits_has_no_suggestions() -> None:
    d = fit_json("llama-3.1-8b", "--gpu", "h100-sxm", "--task", "train", "--method", "qlora")
    assert d["fits"] and d["suggestions"] == []


@settings(max_examples=15, deadline=None)
@given(seq=st.integers(64, 8192), rank=st.sampled_from([4, 16, 64]))
def test_max_batch_is_the_boundary(seq: int, rank: int) -> None:
    r = fit(SPEC, "a100-80gb", task="train", seq_len=seq, method="lora", lora_rank=rank)
    mem = get_gpu("a100-80gb").memory_bytes

    def total(b: int) -> int:
        return estimate_training(
            SPEC, seq_len=seq, batch_size=b, method="lora", lora_rank=rank
        ).total_bytes

    if r.max_batch_size:
        assert total(r.max_batch_size) <= mem
    assert total(r.max_batch_size + 1) > mem


def test_plan_takes_train_options() -> None:
    r = runner.invoke(
        app,
        ["plan", "llama-3.1-8b", "--task", "train", "--tokens", "1B", "--method", "qlora",
         "-s", "1024", "--json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    p = json.loads(r.stdout)
    assert p["workload"]["method"] == "qlora"
    row = next(x for x in p["rows"] if x["gpu"] == "rtx-4090")
    est = estimate_training(SPEC, method="qlora", seq_len=1024)  # fits one 24 GB card
    assert (row["num_gpus"], row["per_gpu_bytes"]) == (1, est.total_bytes)


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_plan_prices_lora_with_frozen_weight_flops(method: str) -> None:
    # Llama-2-7B at 4,096 tokens: 6,607,343,616 matmul parameters N, attention 12 × 32 layers ×
    # 4096 × 4096 = 6,442,450,944 FLOPs per token. A LoRA/QLoRA job computes no weight
    # gradients: 4·N + attention = 26,429,374,464 + 6,442,450,944 = 32,871,825,408 FLOPs per
    # token (full: 46,086,512,640). 10^9 tokens at MFU 0.5 of the H100 SXM's 989.4 TFLOP/s
    # (dense BF16): 3.2871825408e19 / 4.947e14 = 66,448.0 s = 18.4578 GPU-hours
    args = ["plan", "llama-2-7b", "--task", "train", "--tokens", "1B", "--mfu", "0.5", "--json"]
    rows = {}
    for m in (method, "full"):
        r = runner.invoke(app, [*args, "--method", m])
        assert r.exit_code == 0, r.output
        rows[m] = next(x for x in json.loads(r.stdout)["rows"] if x["gpu"] == "h100-sxm")
    lora_hours = 32_871_825_408 * 1e9 / (0.5 * 989.4e12) / 3600
    assert rows[method]["gpu_hours"] == pytest.approx(lora_hours, rel=1e-12)
    assert rows[method]["gpu_hours"] == pytest.approx(18.4578, abs=1e-4)
    assert rows["full"]["gpu_hours"] == pytest.approx(25.87792412910181, rel=1e-12)
    assert rows[method]["price_usd"] == pytest.approx(
        rows[method]["gpu_hours"] * rows[method]["usd_per_gpu_hour"]
    )


def test_load_peak_decides_when_it_is_larger() -> None:
    # QLoRA of Llama 3.2 1B at 64 tokens: loading/quantizing the base (a 16-bit layer beside the
    # 4-bit ones, the head upcast to fp32) needs more than the step; a GPU between the two fails
    est = estimate_training("llama-3.2-1b", method="qlora", seq_len=64)
    assert est.load_peak_bytes > est.total_bytes
    between_gib = (est.total_bytes + est.load_peak_bytes) / 2 / 2**30
    d = fit_json(
        "llama-3.2-1b", "--gpu-mem", f"{between_gib:.3f}", "--task", "train",
        "--method", "qlora", "-s", "64",
    )  # fmt: skip
    assert (d["fits"], d["max_batch_size"], d["per_gpu_bytes"]) == (False, 0, est.load_peak_bytes)
