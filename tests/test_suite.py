"""`vramcalc measure --suite standard`: the list, the dry run, the record plumbing, and every code
path of the GPU worker up to its CUDA calls, run on the CPU with a tiny model."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from vramcalc.cli.app import app, main
from vramcalc.errors import VramcalcError
from vramcalc.measure import suite as su
from vramcalc.sources.presets import get_model
from vramcalc.spec.params import param_count

runner = CliRunner()
GB80 = 80 * 10**9


def test_suite_covers_what_the_issue_lists() -> None:
    items = su.load_suite()
    assert len(items) >= 40
    inf = [i for i in items if i.kind == "inference"]
    tr = [i for i in items if i.kind == "training"]
    assert {i.dtype for i in inf} == {"fp32", "bf16", "fp16", "int8", "int4"}
    assert {i.phase for i in inf} == {"prefill", "decode"}
    assert len({i.batch_size for i in inf}) >= 4 and len({i.seq_len for i in inf}) >= 4
    # inference on 1B–8B models (plus one 0.5B decode at batch 64)
    sizes = {i.model: param_count(get_model(i.model)) for i in inf}
    assert sum(1e9 <= n <= 8.1e9 for n in sizes.values()) >= 5
    full = [i for i in tr if i.method == "full" and i.expect == "fits"]
    assert {i.precision for i in full} >= {"bf16-mixed", "fp32"}
    assert {i.optimizer for i in full} >= {"adamw", "sgd"}
    assert {i.grad_checkpointing for i in full} == {"none", "full"}
    assert all(0.4e9 <= param_count(get_model(i.model)) <= 4e9 for i in full)
    lora = [i for i in tr if i.method == "lora"]
    assert lora and all(param_count(get_model(i.model)) >= 7e9 for i in lora)
    assert any(i.method == "qlora" for i in tr)


def test_oom_workloads_exceed_80_gb_and_the_rest_fit() -> None:
    # the estimate agrees with the design: every "oom" workload needs more than 80 GB, every
    # other one less (so an OOM on the GPU, or a fit of an "oom" row, is news)
    items = su.load_suite()
    ooms = [i for i in items if i.expect == "oom"]
    assert len(ooms) >= 3 and {i.kind for i in ooms} == {"inference", "training"}
    for item in items:
        total = item.estimate().total_bytes
        assert (total > GB80) == (item.expect == "oom"), item.label


def test_time_budget_and_halves() -> None:
    items = su.load_suite()
    total = sum(i.budget_s() for i in items)
    assert total <= su.TOTAL_BUDGET_S
    infer, train = su.load_suite("infer"), su.load_suite("train")
    assert len(infer) + len(train) == len(items)
    assert {i.kind for i in infer} == {"inference"} and {i.kind for i in train} == {"training"}
    # each half fits a 15-minute lease with room for starting the machine
    assert sum(i.budget_s() for i in infer) < 420 and sum(i.budget_s() for i in train) < 420


def test_budget_formula_by_hand() -> None:
    # qwen2.5-0.5b training, b4 × s1024, bf16-mixed: 6 s start + 0.5 s/B params × 0.494 B
    # + 2 steps × 6 × 494,032,768 × 4,096 tokens / 2e14 FLOP/s
    item = su.SuiteItem("qwen2.5-0.5b", "training", 4, 1024)
    n = 494_032_768
    assert param_count(get_model("qwen2.5-0.5b")) == n
    assert item.budget_s() == pytest.approx(6 + 0.5 * n / 1e9 + 2 * 6 * n * 4096 / 2e14)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            'model = "gpt2"\nkind = "inference"\nbatch_size = 1\nseq_len = 8\ndtype = "int3"',
            "dtype",
        ),
        ('model = "gpt2"\nkind = "serving"\nbatch_size = 1\nseq_len = 8', "kind"),
        ('model = "gpt2"\nkind = "inference"\nbatch_size = 1\nseq_len = 8\nbatch = 2', "batch"),
    ],
)
def test_bad_suite_entries_are_refused(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "suite.toml"
    path.write_text("[[workload]]\n" + entry + "\n")
    with pytest.raises(VramcalcError, match=message):
        su.load_suite(path=path)


def test_dry_run_json_without_gpu() -> None:
    res = runner.invoke(app, ["measure", "--suite", "standard", "--dry-run", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert len(out["workloads"]) == len(su.load_suite())
    assert out["budget_s"] == pytest.approx(sum(w["budget_s"] for w in out["workloads"]))
    first = out["workloads"][0]
    assert first["estimate_total_bytes"] == su.load_suite()[0].estimate().total_bytes
    half = runner.invoke(app, ["measure", "--suite", "standard", "--dry-run", "--only", "train"])
    assert half.exit_code == 0 and "train" in half.stdout and "infer b" not in half.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--suite", "huge", "--dry-run"], "--suite huge"),
        (["--suite", "standard", "--only", "eval", "--dry-run"], "--only eval"),
        (["--suite", "standard"], "--record FILE"),
        (["gpt2", "--suite", "standard"], "not both"),
        ([], "needs a MODEL"),
    ],
)
def test_suite_options_refused_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["measure", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_run_suite_appends_one_record_per_workload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = su.load_suite("infer")[:3]
    outcomes = [
        {"readings": {"oom": False, "error": None, "max_memory_allocated_bytes": 2**30}},
        {"readings": {"oom": True, "error": "CUDA out of memory"}},
        {"readings": {"oom": False, "error": "exit 1: boom"}},
    ]
    calls = iter(outcomes)
    monkeypatch.setattr(
        su, "run_one_process", lambda item, device=0: {"label": item.label} | next(calls)
    )
    path = tmp_path / "suite.jsonl"
    path.write_text('{"kept": true}\n')  # what was there stays
    summary = su.run_suite(items, path)
    assert (summary["ran"], summary["oom"], summary["failed"]) == (3, 1, 1)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[0] == {"kept": True}
    assert [x["label"] for x in lines[1:]] == [i.label for i in items]


def test_worker_crash_becomes_a_record() -> None:
    # the real worker in a fresh process on a machine without CUDA fails at set_device: the
    # parent still returns a record naming the exit, not a traceback
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA present: the worker would run")
    item = su.SuiteItem("gpt2", "inference", 1, 8)
    rec = su.run_one_process(item, python=sys.executable)
    assert rec["label"] == item.label and rec["config"]["model"] == "gpt2"
    assert rec["readings"]["oom"] is False and rec["readings"]["error"].startswith("exit 1")


# ---- the GPU worker's code paths on the CPU ---------------------------------------------------


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    d = tmp_path_factory.mktemp("tiny")
    cfg = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": 512,
        "hidden_size": 256,
        "intermediate_size": 512,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 1024,
        "tie_word_embeddings": False,
    }
    (d / "config.json").write_text(json.dumps(cfg))
    return str(d)


def _buffer_bytes(module: Any) -> int:
    return sum(b.numel() * b.element_size() for b in module.buffers())


def test_quantized_storage_by_hand() -> None:
    torch = pytest.importorskip("torch")
    from vramcalc.measure.suite_worker import _quant_linear_class

    ql = _quant_linear_class()
    lin = torch.nn.Linear(512, 256, bias=False)  # out 256 × in 512 = 131,072 weights
    n = 256 * 512
    # LLM.int8: 1 B per weight + fp32 scale per output row
    assert _buffer_bytes(ql(lin, "int8")) == n + 4 * 256
    # AWQ: 0.5 B per weight + fp16 scale and zero per (row, 128 inputs)
    assert _buffer_bytes(ql(lin, "int4")) == n // 2 + 2 * 2 * 256 * (512 // 128)
    # NF4 + double quant: 0.5 B + 1 B absmax per 64 + fp32 per 256 absmax values
    assert _buffer_bytes(ql(lin, "nf4")) == n // 2 + n // 64 + 4 * (n // 64 // 256)
    # each dequantizes to a bf16 weight of the linear's shape
    for fmt in ("int8", "int4", "nf4"):
        w = ql(lin, fmt).weight_bf16()
        assert w.shape == (256, 512) and w.dtype == torch.bfloat16


@pytest.mark.parametrize(
    "kw",
    [
        {"kind": "inference", "dtype": "int8"},
        {"kind": "inference", "dtype": "int4", "phase": "decode", "seq_len": 48},
        {"kind": "inference", "dtype": "fp32"},
        {"kind": "training", "method": "lora", "grad_checkpointing": "full"},
        {"kind": "training", "method": "qlora"},
        {"kind": "training", "precision": "fp32", "optimizer": "sgd"},
    ],
)
def test_worker_paths_run_on_cpu(tiny_dir: str, kw: dict[str, Any]) -> None:
    torch = pytest.importorskip("torch")
    from vramcalc.measure.suite_worker import build, run_item

    args = {"batch_size": 2, "seq_len": 64} | kw
    item = su.SuiteItem(tiny_dir, **args)
    rec = run_item(item, "cpu")
    assert rec["readings"]["error"] is None and rec["readings"]["oom"] is False
    assert rec["estimate"]["total_bytes"] == item.estimate().total_bytes
    if item.kind == "training" and item.method != "full":
        model, _ = build(item, "cpu")
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        # 2 layers × 7 linears × (A, B); nothing else trains
        assert len(trainable) == 28 and all("lora_" in n for n in trainable)
        assert all(p.dtype == torch.float32 for n, p in model.named_parameters() if n in trainable)


def test_worker_on_cuda_passes_a_device_type(monkeypatch: pytest.MonkeyPatch) -> None:
    # on a GPU the worker selects cuda:N once and hands "cuda" to the runs (torch.autocast takes a
    # device type; "cuda:1" is refused): faked CUDA calls, the training run captured
    torch = pytest.importorskip("torch")
    from vramcalc.measure import suite_worker as sw

    seen: dict[str, Any] = {}
    for name in ("set_device", "synchronize", "reset_peak_memory_stats", "empty_cache"):
        monkeypatch.setattr(torch.cuda, name, lambda *a, n=name, **k: seen.setdefault(n, a))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda *a: 1000)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a: 5000)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda *a: 6144)
    monkeypatch.setattr(sw, "_environment", lambda i: {"gpu": "Fake GPU"})
    monkeypatch.setattr(sw, "build", lambda item, device: (seen.setdefault("build", device), None))
    import vramcalc.measure.workload as wk

    monkeypatch.setattr(
        wk, "run_training", lambda m, wl, device, phase, steps: seen.update(run=device)
    )
    from vramcalc import nvml as gpu
    monkeypatch.setattr(gpu, "process_used_bytes", lambda pid, i=0: 7000)
    item = su.SuiteItem("qwen2.5-0.5b", "training", 1, 128)
    rec = sw.run_item(item, "cuda:1")
    assert seen["set_device"] == (1,) and seen["build"] == "cuda" and seen["run"] == "cuda"
    r = rec["readings"]
    assert (r["max_memory_allocated_bytes"], r["max_memory_reserved_bytes"]) == (5000, 6144)
    assert r["nvml_process_bytes_before"] == r["nvml_process_bytes_after"] == 7000
    assert rec["environment"] == {"gpu": "Fake GPU"}


@pytest.mark.parametrize(
    ("exc_text", "oom"),
    [("CUDA error: out of memory", True), ("CUBLAS_STATUS_ALLOC_FAILED", True), ("shape", False)],
)
def test_worker_oom_spellings(monkeypatch: pytest.MonkeyPatch, exc_text: str, oom: bool) -> None:
    # an exhausted GPU is a result whichever way torch spells it; any other error propagates
    # (the parent then records the exit)
    pytest.importorskip("torch")
    from vramcalc.measure import suite_worker as sw

    def build(item: Any, device: str) -> Any:
        raise RuntimeError(exc_text)

    monkeypatch.setattr(sw, "build", build)
    item = su.SuiteItem("gpt2", "inference", 1, 8)
    if oom:
        rec = sw.run_item(item, "cpu")
        assert rec["readings"]["oom"] is True and rec["readings"]["error"] == exc_text
    else:
        with pytest.raises(RuntimeError, match="shape"):
            sw.run_item(item, "cpu")
