"""Rendering of RLHF estimates: a roles × phases table per GPU group, the peak's components and
the FLOPs per stage. Imports rich (allowed for report_*.py modules)."""

from __future__ import annotations

from rich.table import Table

from vramcalc.core.rlhf import RlhfEstimate
from vramcalc.report.console import gpu_fit_line, make_console, plain, print_table
from vramcalc.units import bytes_to, format_duration, format_usd

ROLE_ORDER = ("policy", "actor", "critic", "reference", "reward", "experience", "runtime")


def fmt_bytes(value_bytes: int, units: str) -> str:
    return f"{bytes_to(value_bytes, units):,.2f}"


def _gpus(n: int) -> str:
    return f"{n} GPU" if n == 1 else f"{n} GPUs"


def _flops(value: float) -> str:
    return f"{value:.3e}"


def render_rlhf(est: RlhfEstimate, units: str = "GiB") -> None:
    console = make_console()
    for group in est.groups:
        roles = [r for r in ROLE_ORDER if r in group.roles or r == "runtime"]
        where = (
            "every model on the same GPUs"
            if est.placement == "colocated"
            else f"GPU group '{group.name}'"
        )
        table = Table(
            title=f"RLHF {est.stage.upper()} memory per GPU ({units}): {plain(est.model)}, {where}",
            caption=f"peak at: {group.peak_phase}",
        )
        table.add_column("model", no_wrap=True)
        for phase in est.phases:
            style = "bold" if phase.name == group.peak_phase else None
            table.add_column(phase.name, justify="right", style=style)
        for role in roles:
            cells = [
                fmt_bytes(
                    sum(c.bytes for c in p.components if c.role == role and c.group == group.name),
                    units,
                )
                for p in est.phases
            ]
            table.add_row(role, *cells)
        table.add_section()
        table.add_row(
            "[bold]total per GPU",
            *(fmt_bytes(group.phase_bytes[p.name], units) for p in est.phases),
        )
        print_table(console, table)
        if group.high_bytes > group.low_bytes:
            console.print(
                f"{fmt_bytes(group.peak_bytes, units)} {units}, likely "
                f"{fmt_bytes(group.low_bytes, units)}–{fmt_bytes(group.high_bytes, units)} {units}"
            )
        if group.gpu is not None:
            verdict = gpu_fit_line(group.gpu, group.low_bytes, group.high_bytes, units)
            console.print(f"group '{group.name}' ({_gpus(group.num_gpus)}): {verdict}")

    peak = est.phase(est.peak_phase)
    worst = max(est.groups, key=lambda g: g.peak_bytes)
    detail = Table(title=f"components at the peak ({est.peak_phase}, group '{worst.name}')")
    detail.add_column("model")
    detail.add_column("component")
    detail.add_column(units, justify="right")
    detail.add_column("note", overflow="fold")
    for c in peak.components:
        if c.group == worst.name and c.bytes:
            detail.add_row(c.role, plain(c.name), fmt_bytes(c.bytes, units), plain(c.note))
    detail.add_section()
    detail.add_row("[bold]total", "", f"[bold]{fmt_bytes(worst.peak_bytes, units)}", "")
    print_table(console, detail)

    flops = Table(title=f"compute per {est.inputs.get('iterations', 1)} iteration(s)")
    flops.add_column("term")
    flops.add_column("model")
    flops.add_column("FLOPs", justify="right")
    flops.add_column("formula", overflow="fold")
    for f in est.flops:
        flops.add_row(plain(f.name), f.role, _flops(f.flops), plain(f.formula))
    flops.add_section()
    flops.add_row("[bold]total", "", f"[bold]{_flops(est.total_flops)}", "")
    print_table(console, flops)
    if est.time_s is not None:
        line = f"time: {format_duration(est.time_s)} on {_gpus(est.num_gpus)}"
        if est.cost_usd is not None:
            line += f"; price: {format_usd(est.cost_usd)}"
        console.print(line)
    console.print(f"[dim]GPUs: {est.num_gpus} in {len(est.groups)} group(s) ({est.placement})[/]")
    if est.cpu_bytes_per_node:
        console.print(
            f"host memory per node (offloaded): {fmt_bytes(est.cpu_bytes_per_node, units)} {units}"
        )
    for note in est.assumptions:
        console.print(f"[dim]· {plain(note)}[/]")
