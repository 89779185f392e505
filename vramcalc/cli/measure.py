"""`vramcalc trace`, `vramcalc measure`, `vramcalc validate`: the estimate against ground truth."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from vramcalc.cli.options import print_json, size_option
from vramcalc.errors import VramcalcError
from vramcalc.safe_io import dumps_json
from vramcalc.spec.task import TASK_VERBS, Task, parse_task

TaskArg = Annotated[
    str, typer.Option("--task", metavar="TASK", help="inference (infer) or training (train)")
]


_WORKLOAD_OPTIONS = (
    "batch_size",
    "seq_len",
    "dtype",
    "logits",
    "precision",
    "optimizer",
    "grad_accum",
    "grad_checkpointing",
    "attention",
)


def _task(text: str, option: str) -> Task:
    """inference or training from either spelling; an error names the option."""
    try:
        return parse_task(text)
    except VramcalcError:
        raise VramcalcError(f"{option} {text}: use inference (infer) or training (train)") from None


def _workload(args: dict[str, Any]) -> Any:
    """The Workload a command's options describe (the options every command shares)."""
    model, task = args["model"], _task(args["task"], "--task")  # either spelling
    kw = {k: args[k] for k in _WORKLOAD_OPTIONS}
    try:
        from vramcalc.measure.workload import make_workload
    except ImportError as exc:  # pragma: no cover - torch extra missing
        raise VramcalcError(f"this command needs the torch extra: {TORCH_HINT} ({exc})") from None
    return make_workload(task, model, **kw)


TORCH_HINT = 'pip install "vramcalc[torch]"'


def require_torch(command: str) -> None:
    """The torch-backed commands say how to install what they need, in one line, before any
    work (find_spec looks the packages up without importing them)."""
    import importlib.util

    for module in ("torch", "transformers"):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # ValueError: a module set to None in sys.modules
            found = False
        if not found:
            raise VramcalcError(f"`vramcalc {command}` needs {module}: {TORCH_HINT}")


NumGpusOpt = Annotated[
    int, typer.Option("--num-gpus", min=1, help="ranks to launch (torch.distributed.run)")
]
FsdpOpt = Annotated[str | None, typer.Option("--fsdp", help="FSDP2: full or grad-op")]
ZeroOpt = Annotated[int | None, typer.Option("--zero", help="DeepSpeed ZeRO stage 1, 2 or 3")]
TpOpt = Annotated[int, typer.Option("--tp", min=1, help="DTensor tensor-parallel degree")]
MethodOpt = Annotated[str, typer.Option("--method", help="full or lora (PEFT)")]
LoraRankOpt = Annotated[int, typer.Option("--lora-rank", min=1)]


def _dist_run(args: dict[str, Any]) -> Any:
    """The DistRun of a command's options, or None when they describe one process."""
    wants = args["num_gpus"] > 1 or args["fsdp"] or args["zero"] is not None or args["tp"] > 1
    if not wants and args["method"] == "full":
        return None
    if _task(args["task"], "--task") != "training":
        raise VramcalcError("--num-gpus/--fsdp/--zero/--tp/--method need --task training")
    if args["num_gpus"] < 2:
        raise VramcalcError(
            f"--num-gpus {args['num_gpus']}: --fsdp/--zero/--tp/--method run on 2 or more ranks"
        )
    from vramcalc.measure.dist import run_from_options

    keys: tuple[str, ...] = (
        "num_gpus",
        "fsdp",
        "zero",
        "tp",
        "method",
        "lora_rank",
        "precision",
        "optimizer",
    )
    keys += ("grad_accum", "grad_checkpointing", "batch_size", "seq_len", "attention")
    return run_from_options(args["model"], **{k: args[k] for k in keys})


def _dist_command(run: Any, backend: str, as_json: bool, record: Path | None = None) -> None:
    """Launch the ranks, set them beside the estimate, print (and record) the result."""
    from vramcalc.measure import dist

    ranks = dist.launch([run], run.num_gpus, backend=backend)[0]
    row = dist.compare(run, ranks)
    if record is not None:
        from vramcalc.measure import live

        live.append_record(record, {"record_version": 1, "distributed": row, "backend": backend})
    if as_json:
        print_json(row, "distributed_measurement")
        return
    from vramcalc.report.measure import render_distributed

    title = "Ranks on the CPU (gloo)" if backend == "gloo" else "Ranks on CUDA (NCCL)"
    render_distributed([row], title)


def _guarded(what: str, model: str, run: Any) -> Any:
    """Run the reference model; a failure inside torch/transformers becomes one clear line."""
    try:
        return run()
    except VramcalcError:
        raise
    except Exception as exc:  # transformers/torch refusing this configuration
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise VramcalcError(
            f"{what} of {model} failed in the reference implementation: "
            f"{type(exc).__name__}: {first}"
        ) from None


def _append_or_show(live: Any, record: Path, rec: dict[str, Any]) -> None:
    """Append the record; when that fails (disk full, file removed since the check) the record
    is printed on stdout so the run's result is not lost, and the error names the file."""
    try:
        live.append_record(record, rec)
    except (OSError, VramcalcError) as exc:
        sys.stdout.write(dumps_json(rec) + "\n")
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise VramcalcError(
            f"{record}: could not append the record ({reason}); it is printed on stdout"
        ) from None


def trace(
    model: Annotated[str, typer.Argument(help="preset name or alias")],
    task: TaskArg = "inference",
    batch_size: Annotated[
        int, size_option("--batch-size", "-b", high=1_000_000, help="sequences per step")
    ] = 1,
    seq_len: Annotated[
        int | None,
        size_option("--seq-len", "-s", high=1 << 24, binary=True, help="tokens per sequence"),
    ] = None,
    dtype: Annotated[str, typer.Option("--dtype", help="inference: fp32, bf16, fp16")] = "bf16",
    logits: Annotated[str, typer.Option("--logits", help="inference: last or all")] = "last",
    precision: Annotated[str, typer.Option("--precision")] = "bf16-mixed",
    optimizer: Annotated[str, typer.Option("--optimizer")] = "adamw",
    grad_accum: Annotated[int, typer.Option("--grad-accum", min=1)] = 1,
    grad_checkpointing: Annotated[str, typer.Option("--grad-checkpointing")] = "none",
    attention: Annotated[str, typer.Option("--attention", help="flash or eager")] = "flash",
    num_gpus: NumGpusOpt = 1,
    fsdp: FsdpOpt = None,
    zero: ZeroOpt = None,
    tp: TpOpt = 1,
    method: MethodOpt = "full",
    lora_rank: LoraRankOpt = 8,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Exact peak of live tensor bytes of the transformers model on fake tensors (no GPU);
    with --num-gpus N, N ranks of the real engine on the CPU (gloo), peak per rank."""
    require_torch("trace")
    run = _dist_run(dict(locals()))
    if run is not None:
        _dist_command(run, "gloo", as_json)
        return
    wl = _workload(dict(locals()))
    from vramcalc.measure.trace import trace as run_trace
    from vramcalc.measure.validate import tensor_bytes

    result = _guarded("trace", model, lambda: run_trace(wl).to_json())
    est_bytes = tensor_bytes(wl.estimate())
    if as_json:
        out = {"config": wl.describe(), "trace": result, "estimate_tensor_bytes": est_bytes}
        print_json(out, "trace")
        return
    from vramcalc.report.measure import render_trace

    render_trace(wl.label, result, est_bytes)


def measure(
    model: Annotated[
        str | None, typer.Argument(help="preset name or alias (not with --suite)")
    ] = None,
    task: TaskArg = "inference",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1)] = 1,
    seq_len: Annotated[int | None, typer.Option("--seq-len", "-s", min=1)] = None,
    dtype: Annotated[str, typer.Option("--dtype")] = "bf16",
    logits: Annotated[str, typer.Option("--logits")] = "last",
    precision: Annotated[str, typer.Option("--precision")] = "bf16-mixed",
    optimizer: Annotated[str, typer.Option("--optimizer")] = "adamw",
    grad_accum: Annotated[int, typer.Option("--grad-accum", min=1)] = 1,
    grad_checkpointing: Annotated[str, typer.Option("--grad-checkpointing")] = "none",
    attention: Annotated[str, typer.Option("--attention")] = "flash",
    device: Annotated[int, typer.Option("--device", min=0, help="CUDA device index")] = 0,
    record: Annotated[
        Path | None, typer.Option("--record", help="append one JSON line per run to FILE")
    ] = None,
    num_gpus: NumGpusOpt = 1,
    fsdp: FsdpOpt = None,
    zero: ZeroOpt = None,
    tp: TpOpt = 1,
    method: MethodOpt = "full",
    lora_rank: LoraRankOpt = 8,
    suite: Annotated[
        str | None, typer.Option("--suite", help="standard: the fixed single-GPU suite")
    ] = None,
    only: Annotated[
        str | None,
        typer.Option(
            "--only", metavar="TASK", help="suite half: inference (infer) or training (train)"
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="list the suite with estimates; run nothing")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Run the workload on a CUDA GPU with random weights; out-of-memory is a result.
    --num-gpus N launches N ranks (NCCL); --suite standard runs the fixed suite."""
    if record is not None:  # before the GPU run: an unusable path must not cost the result
        from vramcalc.safe_io import check_appendable

        check_appendable(record)
    if suite is not None or dry_run or only is not None:
        if model is not None:
            raise VramcalcError(f"give a MODEL or --suite, not both (got {model!r})")
        if not dry_run:
            require_torch("measure")
        _suite_command(suite, only, dry_run, record, as_json)
        return
    if model is None:
        raise VramcalcError("measure needs a MODEL (a preset name or path) or --suite standard")
    require_torch("measure")
    run = _dist_run(dict(locals()))
    if run is not None:
        backend = _dist_backend(run.num_gpus)
        _dist_command(run, backend, as_json, record)
        return
    wl = _workload(dict(locals()))
    from vramcalc.measure import live

    if not live.cuda_available():
        raise VramcalcError("measure needs a CUDA GPU (none found); use `vramcalc trace`")
    readings = _guarded("measure", model, lambda: live.measure(wl, device))
    rec = live.make_record(wl, readings, live.environment(device))
    if record is not None:
        _append_or_show(live, record, rec)
    if as_json:
        print_json(rec, "measurement")
        return
    from vramcalc.report.measure import render_measure

    render_measure(rec)


def validate(
    suite: Annotated[str, typer.Option("--suite", help="ci (tiny models) or 7b")] = "ci",
    live_gpu: Annotated[
        bool, typer.Option("--measure/--no-measure", help="also run on a GPU when present")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Estimate vs trace (and vs a live GPU run when one is present), error per row."""
    require_torch("validate")
    try:
        from vramcalc.measure import validate as v
    except ImportError as exc:  # pragma: no cover
        raise VramcalcError(f"validate needs the torch extra: {TORCH_HINT} ({exc})") from None
    if suite not in ("ci", "7b"):
        raise VramcalcError(f"--suite {suite}: use ci or 7b")
    grid = v.ci_grid() if suite == "ci" else v.seven_b_grid()
    rows = [v.compare(wl) for wl in grid]
    data = [r.to_json() for r in rows]
    if live_gpu:
        from vramcalc.measure import live

        if live.cuda_available():
            for row, wl in zip(data, grid, strict=True):
                row["measured"] = live.measure(wl)
                row["measured_error"] = live.measured_error(
                    wl.estimate().total_bytes, row["measured"]
                )
    summ = v.summary(rows)
    if as_json:
        print_json({"rows": data, "summary": summ}, "validation")
        return
    from vramcalc.report.measure import render_validate

    render_validate(data, summ)


def register(app: typer.Typer) -> None:
    """The torch-backed commands: trace (fake tensors), measure (a CUDA GPU), validate."""
    for command in (trace, measure, validate):
        app.command()(command)


# The CPU stand-in for the NCCL launch (tests, and machines without GPUs): the same launch plumbing
# and worker, gloo instead of NCCL, live tensor bytes instead of torch.cuda readings.
STANDIN_ENV = "VRAMCALC_DIST_BACKEND"


def _dist_backend(num_gpus: int) -> str:
    import os

    if os.environ.get(STANDIN_ENV) == "gloo":
        return "gloo"
    from vramcalc.measure import live

    if not live.cuda_available():
        raise VramcalcError(
            "measure --num-gpus needs CUDA GPUs (none found); use `vramcalc trace --num-gpus` "
            "for the CPU ranks"
        )
    found = live.cuda_device_count()
    if found < num_gpus:
        raise VramcalcError(f"--num-gpus {num_gpus}: this machine has {found} CUDA GPU(s)")
    return "nccl"


def _suite_command(
    suite: str | None, only: str | None, dry_run: bool, record: Path | None, as_json: bool
) -> None:
    from vramcalc.measure import suite as su

    if suite != "standard":
        raise VramcalcError(f"--suite {suite}: the runnable suite is standard")
    if only is not None:  # either spelling; the suite file names its halves infer and train
        only = TASK_VERBS[_task(only, "--only")]
    items = su.load_suite(only)
    if dry_run:
        rows = [su.dry_row(item) for item in items]
        budget = sum(r["budget_s"] for r in rows)
        if as_json:
            out = {"suite": suite, "only": only, "budget_s": budget, "workloads": rows}
            print_json(out, "suite_plan")
            return
        from vramcalc.report.measure import render_suite

        render_suite(rows, budget)
        return
    if record is None:
        raise VramcalcError("--suite runs need --record FILE (one JSON line per workload)")
    from vramcalc.measure import live

    if not live.cuda_available():
        raise VramcalcError("--suite needs a CUDA GPU (none found); --dry-run lists it without one")
    summary = su.run_suite(items, record)
    if as_json:
        print_json(summary, "suite_summary")
        return
    sys.stdout.write(
        f"{summary['ran']} workloads ran ({summary['oom']} out of memory, {summary['failed']} "
        f"failed) in {summary['seconds']:.0f} s; records appended to {record}\n"
    )
