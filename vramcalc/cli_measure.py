"""`vramcalc trace`, `vramcalc measure`, `vramcalc validate`: the estimate against ground truth."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .errors import VramcalcError
from .safe_io import dumps_json

TaskArg = Annotated[str, typer.Option("--task", help="inference or training")]


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


def _workload(args: dict[str, Any]) -> Any:
    """The Workload a command's options describe (the options every command shares)."""
    model, task = args["model"], args["task"]
    kw = {k: args[k] for k in _WORKLOAD_OPTIONS}
    if task not in ("inference", "training"):
        raise VramcalcError(f"--task {task}: use inference or training")
    try:
        from .measure.workload import make_workload
    except ImportError as exc:  # pragma: no cover - torch extra missing
        raise VramcalcError(
            f"this command needs the torch extra: pip install 'vramcalc[torch]' ({exc})"
        ) from None
    return make_workload(task, model, **kw)


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


def register(app: typer.Typer) -> None:
    @app.command()
    def trace(
        model: Annotated[str, typer.Argument(help="preset name or alias")],
        task: TaskArg = "inference",
        batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1)] = 1,
        seq_len: Annotated[int | None, typer.Option("--seq-len", "-s", min=1)] = None,
        dtype: Annotated[str, typer.Option("--dtype", help="inference: fp32, bf16, fp16")] = "bf16",
        logits: Annotated[str, typer.Option("--logits", help="inference: last or all")] = "last",
        precision: Annotated[str, typer.Option("--precision")] = "bf16-mixed",
        optimizer: Annotated[str, typer.Option("--optimizer")] = "adamw",
        grad_accum: Annotated[int, typer.Option("--grad-accum", min=1)] = 1,
        grad_checkpointing: Annotated[str, typer.Option("--grad-checkpointing")] = "none",
        attention: Annotated[str, typer.Option("--attention", help="flash or eager")] = "flash",
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Exact peak of live tensor bytes of the transformers model on fake tensors (no GPU)."""
        wl = _workload(dict(locals()))
        from .measure.trace import trace as run_trace
        from .measure.validate import tensor_bytes

        result = _guarded("trace", model, lambda: run_trace(wl).to_json())
        est_bytes = tensor_bytes(wl.estimate())
        if as_json:
            out = {"config": wl.describe(), "trace": result, "estimate_tensor_bytes": est_bytes}
            sys.stdout.write(dumps_json(out) + "\n")
            return
        from .report_measure import render_trace

        render_trace(wl.label, result, est_bytes)

    @app.command()
    def measure(
        model: Annotated[str, typer.Argument(help="preset name or alias")],
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
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Run the workload on a CUDA GPU with random weights; out-of-memory is a result."""
        if record is not None:  # before the GPU run: an unusable path must not cost the result
            from .safe_io import check_appendable

            check_appendable(record)
        wl = _workload(dict(locals()))
        from .measure import live

        if not live.cuda_available():
            raise VramcalcError("measure needs a CUDA GPU (none found); use `vramcalc trace`")
        readings = _guarded("measure", model, lambda: live.measure(wl, device))
        rec = live.make_record(wl, readings, live.environment(device))
        if record is not None:
            _append_or_show(live, record, rec)
        if as_json:
            sys.stdout.write(dumps_json(rec) + "\n")
            return
        from .report_measure import render_measure

        render_measure(rec)

    @app.command()
    def validate(
        suite: Annotated[str, typer.Option("--suite", help="ci (tiny models) or 7b")] = "ci",
        live_gpu: Annotated[
            bool, typer.Option("--measure/--no-measure", help="also run on a GPU when present")
        ] = True,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Estimate vs trace (and vs a live GPU run when one is present), error per row."""
        try:
            from .measure import validate as v
        except ImportError as exc:  # pragma: no cover
            raise VramcalcError(f"validate needs the torch extra ({exc})") from None
        if suite not in ("ci", "7b"):
            raise VramcalcError(f"--suite {suite}: use ci or 7b")
        grid = v.ci_grid() if suite == "ci" else v.seven_b_grid()
        rows = [v.compare(wl) for wl in grid]
        data = [r.to_json() for r in rows]
        if live_gpu:
            from .measure import live

            if live.cuda_available():
                for row, wl in zip(data, grid, strict=True):
                    row["measured"] = live.measure(wl)
                    row["measured_error"] = live.measured_error(
                        wl.estimate().total_bytes, row["measured"]
                    )
        summ = v.summary(rows)
        if as_json:
            sys.stdout.write(dumps_json({"rows": data, "summary": summ}) + "\n")
            return
        from .report_measure import render_validate

        render_validate(data, summ)
