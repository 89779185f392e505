"""Rendering of training estimates with per-GPU and per-cluster columns, savings and --explain."""

from __future__ import annotations

from rich.table import Table

from vramcalc.core.results import Estimate
from vramcalc.report.console import (
    band_line,
    explain_lines,
    fit_line,
    fmt_bytes,
    make_console,
    plain,
    print_table,
    share_bar,
)


def phase_lines(est: Estimate, units: str = "GiB") -> list[str]:
    """What lies beside the steady step: the load-time peak (and its parts), activations moved
    to the host, and optimizer state that can page out (with the GPU floor it still needs)."""
    lines = []
    if est.load_peak_bytes:
        above = est.load_peak_bytes > est.total_bytes
        verdict = "above the step: the fit is judged on it" if above else "below the step"
        lines.append(f"load peak: {fmt_bytes(est.load_peak_bytes, units)} {units} ({verdict})")
        for c in est.load_components if above else []:
            lines.append(
                f"[dim]  {plain(c.name)} {fmt_bytes(c.bytes, units)} {units}: {plain(c.formula)}[/]"
            )
    if est.host_activation_bytes:
        lines.append(
            f"activations offloaded to host memory: {fmt_bytes(est.host_activation_bytes, units)} {units}"
        )
    if est.spillable_bytes:
        floor = est.total_bytes - est.spillable_bytes
        lines.append(
            f"paged optimizer: {fmt_bytes(est.spillable_bytes, units)} {units} can page to the host; "
            f"GPU floor {fmt_bytes(floor, units)} {units}"
        )
    return lines


def render_training(est: Estimate, units: str = "GiB", explain: bool = False) -> None:
    """The component table (per GPU, and summed over the cluster for multi-GPU jobs), the fit,
    what each choice saved, and with `explain` every term's formula with its numbers."""
    console = make_console()
    method = est.inputs.get("method", "full")
    title = f"Training memory: {plain(est.model)} ({est.params / 1e9:.2f}B params"
    if method != "full":
        title += f", {method}: {est.inputs.get('trainable_params', 0):,} trainable"
    title += ")"
    multi = est.num_gpus > 1
    caption = f"peak at: {est.phase}" if est.phase else None
    table = Table(title=title, caption=caption)
    table.add_column("component")
    table.add_column(f"per GPU ({units})", justify="right")
    table.add_column("share", justify="right")
    if multi:
        table.add_column(f"cluster, {est.num_gpus} GPUs ({units})", justify="right")
    if not multi:
        table.add_column("", no_wrap=True)
    total = est.total_bytes or 1
    for c in est.components:
        share = c.bytes / total
        row = [plain(c.name), fmt_bytes(c.bytes, units), f"{share:.1%}"]
        if multi:
            row.append(fmt_bytes(c.cluster_bytes or 0, units))
        else:
            row.append(share_bar(share))
        table.add_row(*row)
    table.add_section()
    row = ["[bold]total", f"[bold]{fmt_bytes(est.total_bytes, units)}", "100.0%"]
    if multi:
        row.append(f"[bold]{fmt_bytes(est.cluster_total_bytes or 0, units)}")
    else:
        row.append("")
    table.add_row(*row)
    print_table(console, table, optional=[] if multi else [3])
    if band_line(est, units):
        console.print(band_line(est, units) + (" per GPU" if multi else ""))
    inputs = ", ".join(f"{k}={v}" for k, v in est.inputs.items() if k != "model")
    console.print(f"[dim]inputs: {plain(inputs)}[/]")
    if est.parallel:
        p = est.parallel
        layout = ", ".join(
            f"{k}={p[k]}" for k in ("num_gpus", "dp", "tp", "pp", "cp", "ep") if p.get(k, 1) != 1
        )
        extras = [f"{p['framework']} layout"]
        if p.get("sequence_parallel"):
            extras.append("sequence parallel")
        if p.get("zero") is not None:
            extras.append(f"ZeRO-{p['zero']}")
        if p.get("fsdp"):
            extras.append(f"FSDP {p['fsdp']}")
        if p.get("offload", "none") != "none":
            extras.append(f"offload {p['offload']}")
        if p.get("shard_degree", 1) > 1:
            extras.append(f"states sharded over {p['shard_degree']} ranks")
        console.print(f"parallel: {', '.join(x for x in [layout, *extras] if x)}")
    if len(est.stage_totals_bytes) > 1:
        stages = ", ".join(fmt_bytes(b, units) for b in est.stage_totals_bytes)
        console.print(f"per-GPU total by pipeline stage ({units}): {stages}")
    if est.cpu_bytes_per_node:
        console.print(
            f"CPU memory per node (offloaded state): {fmt_bytes(est.cpu_bytes_per_node, units)} {units}"
        )
    for line in phase_lines(est, units):
        console.print(line)
    if est.gpu is not None:
        console.print(fit_line(est, units) + (" (most loaded GPU)" if multi else ""))
    for s in est.savings:
        verb = "saves" if s.saved_bytes >= 0 else "costs"
        console.print(
            f"{s.choice} {verb} {fmt_bytes(abs(s.saved_bytes), units)} {units} per GPU vs {s.compared_to}"
        )
    if explain:
        for line in explain_lines(est):
            console.print(line)
    else:
        for c in est.components:
            if c.note and c.bytes:
                console.print(f"[dim]{plain(c.name)}: {plain(c.note)}[/]")
    for note in est.assumptions:
        console.print(f"[dim]· {plain(note)}[/]")
