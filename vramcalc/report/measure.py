"""Tables of the trace, the live measurement and the validation suite (rich)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table

from vramcalc.report.console import make_console, plain
from vramcalc.units import MIB


def _mib(n: int | None) -> str:
    return "—" if n is None else f"{n / MIB:,.1f}"


def render_trace(label: str, result: dict[str, Any], estimate_tensor_bytes: int) -> None:
    console = make_console()
    table = Table(title=f"Trace: {plain(label)}", caption=f"peak during {result['phase']}")
    table.add_column("category")
    table.add_column("MiB", justify="right")
    for name, nbytes in result["by_category"].items():
        if nbytes:
            table.add_row(name, _mib(nbytes))
    table.add_section()
    table.add_row("[bold]peak of live tensors", f"[bold]{_mib(result['peak_bytes'])}")
    table.add_row("estimate (tensor bytes)", _mib(estimate_tensor_bytes))
    err = estimate_tensor_bytes / result["peak_bytes"] - 1 if result["peak_bytes"] else 0.0
    table.add_row("estimate error", f"{err:+.1%}")
    console.print(table)
    for note in result["notes"]:
        console.print(f"[dim]· {plain(note)}[/]")
    console.print(f"[dim]traced in {result['seconds']:.2f} s on fake tensors (no GPU)[/]")


def render_measure(record: dict[str, Any]) -> None:
    console = make_console()
    r, env = record["readings"], record["environment"]
    table = Table(
        title=plain(f"Measured on {env['gpu']} (driver {env['driver']}, torch {env['torch']})")
    )
    table.add_column("reading")
    table.add_column("MiB", justify="right")
    for key in (
        "max_memory_allocated_bytes",
        "max_memory_reserved_bytes",
        "nvml_process_bytes_before",
        "nvml_process_bytes_after",
    ):
        table.add_row(key.removesuffix("_bytes"), _mib(r.get(key)))
    table.add_row("estimate total", _mib(record["estimate"]["total_bytes"]))
    console.print(table)
    if r["oom"]:
        console.print(f"[red]out of memory[/]: {plain(r['error'])}")


def render_validate(rows: Sequence[dict[str, Any]], summary: dict[str, dict[str, float]]) -> None:
    console = make_console()
    table = Table(title="Estimate vs trace (tensor bytes; runtime terms excluded)")
    for col, just in (
        ("workload", "left"),
        ("estimate MiB", "right"),
        ("trace MiB", "right"),
        ("error", "right"),
        ("peak at (trace)", "left"),
    ):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(
            row["label"],
            _mib(row["estimate_tensor_bytes"]),
            _mib(row["trace_peak_bytes"]),
            f"{row['error']:+.1%}",
            row["trace_phase"],
        )
    console.print(table)
    for task, s in summary.items():
        console.print(
            f"{task}: n={s['n']:.0f}, median |error| {s['median_abs_error']:.1%}, "
            f"worst {s['worst_abs_error']:.1%}"
        )


def render_distributed(rows: Sequence[dict[str, Any]], title: str) -> None:
    """One table per configuration: every rank's reading beside the per-GPU estimate."""
    console = make_console()
    for row in rows:
        if row.get("error"):
            console.print(f"[red]{plain(row['label'])}[/]: {plain(row['error'])}")
            continue
        key = row.get("measured_by", "peak_bytes")
        table = Table(
            title=f"{title}: {row['label']}", caption=f"estimate peak at {row['estimate_phase']}"
        )
        table.add_column("rank", justify="right")
        table.add_column("measured MiB", justify="right")
        table.add_column("estimate MiB", justify="right")
        table.add_column("error", justify="right")
        table.add_column("peak during")
        est = row["estimate_tensor_bytes"]
        for rank, r in enumerate(row["ranks"]):
            got = r.get(key)
            err = f"{est / got - 1:+.1%}" if got else "—"
            table.add_row(str(rank), _mib(got), _mib(est), err, r.get("phase", ""))
        console.print(table)
        band = row.get("band")
        if band is not None:
            verdict = "within" if row["within_band"] else "[red]outside[/]"
            console.print(
                f"[dim]most loaded rank: {row['relative_error']:+.1%}, {verdict} the "
                f"{row['config']['engine']} band [{band[0]:+.0%}, {band[1]:+.0%}][/]"
            )
    what = (
        "peak of live tensor bytes per rank (CPU, gloo; no NCCL buffers, no allocator "
        "fragmentation) against the estimate without cuda_context and allocator_slack"
    )
    if rows and rows[0].get("measured_by") == "max_memory_allocated_bytes":
        what = (
            "torch.cuda.max_memory_allocated per rank against the estimate without cuda_context "
            "and allocator_slack (max_memory_reserved and NVML are in --json)"
        )
    console.print(f"[dim]· {what}[/]")


def render_suite(rows: Sequence[dict[str, Any]], budget_s: float) -> None:
    console = make_console()
    table = Table(title="vramcalc measure --suite (dry run: nothing is run)")
    for col, just in (
        ("#", "right"),
        ("workload", "left"),
        ("estimate GiB", "right"),
        ("expect", "left"),
        ("budget s", "right"),
    ):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for i, row in enumerate(rows, 1):
        table.add_row(
            str(i),
            row["label"],
            f"{row['estimate_total_bytes'] / 2**30:,.2f}",
            row["expect"],
            f"{row['budget_s']:.0f}",
        )
    console.print(table)
    console.print(f"{len(rows)} workloads, time budget {budget_s:.0f} s")


__all__ = [
    "render_distributed",
    "render_measure",
    "render_suite",
    "render_trace",
    "render_validate",
]
