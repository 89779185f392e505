"""Rendering of training-stack choices and of fit/plan suggestions ("what would make it fit")."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from vramcalc.report.console import make_console


def render_stack(summary: dict[str, Any]) -> None:
    """One line under the table naming the profile and the convention values it set."""
    values = summary["values"]
    shown = ", ".join(
        f"{k}={v}"
        for k, v in values.items()
        if k != "framework" and (k in summary["from_flags"] or k in summary["from_profile"])
    )
    version = f"@{summary['version']}" if summary.get("version") else ""
    defaults = ", ".join(f"{k}={v}" for k, v in summary.get("defaults", {}).items())
    shown = "; ".join(x for x in (shown, defaults) if x)
    unknown = summary.get("unknown_in_profile") or []
    tail = f" (not traced, baseline kept: {', '.join(unknown)})" if unknown else ""
    make_console(soft_wrap=True).print(
        f"framework {summary['framework']}{version}: {shown or 'baseline conventions'}{tail}",
        highlight=False,
    )


def render_suggestions(r: Any) -> None:
    """fit: the changes that would make a training job fit, cheapest first, with their peaks."""
    if r.fits or not r.suggestions:
        if not r.fits and r.task == "train":
            make_console().print("No change vramcalc tries makes this job fit.")
        return
    peak = r.per_gpu_bytes / 2**30
    table = Table(
        title=f"Does not fit ({peak:,.2f} GiB per GPU): changes that would, cheapest first",
        caption="each change alone (or, when none suffices, together); docs/frameworks.md",
    )
    for col in ("change", "GiB/GPU", "GPUs", "costs"):
        table.add_column(col, justify="right" if col in ("GiB/GPU", "GPUs") else "left")
    for s in r.suggestions:
        table.add_row(
            s.change,
            f"{s.per_gpu_bytes / 2**30:,.2f}" + ("" if s.fits else " (still too big)"),
            f"{s.num_gpus:,}",
            s.cost,
        )
    make_console().print(table)
