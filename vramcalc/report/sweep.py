"""Rendering of sweeps and comparisons with rich: the table, and the chart drawn in the terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from vramcalc.core.sweeps import Comparison, SweepResult
from vramcalc.report.console import make_console, plain
from vramcalc.report.sweep_output import Curve, Grid, chart_axes, curve, display_table, grids
from vramcalc.units import bytes_to

CHART_WIDTH = 48
BAND_STYLES = ("blue", "magenta", "cyan", "green", "yellow", "bright_blue", "bright_magenta")
BAND_CHARS = "█▓▒░▚▞▙"  # told apart without colour too (NO_COLOR, a pasted README block)
VERDICT_STYLE = {"fits": "green", "tight": "yellow", "does not fit": "red"}


def render_sweep(result: SweepResult, units: str = "GiB") -> None:
    console = make_console()
    headers, cells = display_table(result, units)
    fixed = ", ".join(
        f"{k.replace('_', '-')}={v[0]}" for k, v in result.axes.items() if len(v) == 1
    )
    title = f"{result.task} sweep: {', '.join(dict.fromkeys(result.models))}"
    table = Table(title=plain(title), caption=plain(fixed) or None)
    for h in headers:
        table.add_column(h, justify="left" if h in ("error", "verdict", "gpu") else "right")
    verdict_at = headers.index("verdict") if "verdict" in headers else -1
    for line in cells:
        styled: list[str | Text] = [plain(cell) for cell in line]  # names and errors are data
        if verdict_at >= 0 and line[verdict_at]:
            styled[verdict_at] = Text(line[verdict_at], style=VERDICT_STYLE[line[verdict_at]])
        table.add_row(*styled)
    width = console.measure(table, options=console.options.update_width(400)).maximum
    if width > console.width:  # a wide sweep reads better unwrapped than squeezed into columns
        console = make_console(width=min(width, 200))
    console.print(table)
    for problem in dict.fromkeys(r.cost_error for r in result.rows if r.cost_error):
        console.print(f"[yellow]—[/] {plain(problem)}")
    if result.errors:
        console.print(
            f"[yellow]{result.errors} of {len(result.rows)} combinations refused by the "
            "estimator: see the error column[/]"
        )
    axes = chart_axes(result)
    if len(axes) == 1:
        render_curve(console, curve(result), units)
    elif len(axes) == 2:
        for g in grids(result):
            render_grid(console, g, units)


def render_curve(console: Console, c: Curve, units: str) -> None:
    """One bar per point, bands stacked left to right, each GPU's capacity as a marked column."""
    known = [t for t in c.totals if t is not None]
    top = max([*known, *c.capacities.values(), 1])
    scale = CHART_WIDTH / top
    styles = dict(zip(c.bands, BAND_STYLES * 2, strict=False))
    chars = dict(zip(c.bands, BAND_CHARS * 2, strict=False))
    marks = {gpu: str(i + 1) for i, gpu in enumerate(c.capacities)}
    width = max(len(label) for label in c.labels)
    console.print()
    for i, label in enumerate(c.labels):
        line = Text(f"{label:>{width}} ")
        cells: list[tuple[str, str]] = []
        for band, series in c.bands.items():
            n = round((series[i] or 0) * scale)
            cells += [(chars[band], styles[band])] * n
        cells += [(" ", "")] * (CHART_WIDTH + 1 - len(cells))
        for gpu, memory in c.capacities.items():
            at = min(round(memory * scale), CHART_WIDTH)
            over = c.first_over[gpu] is not None and i >= c.first_over[gpu]  # type: ignore[operator]
            cells[at] = (marks[gpu], "bold red" if over else "bold green")
        for char, style in cells:
            line.append(char, style=style)
        total = c.totals[i]
        line.append(" refused" if total is None else f" {bytes_to(total, units):,.2f} {units}")
        console.print(line)
    legend = Text("  ")
    for band, style in styles.items():
        legend.append(f"{chars[band]} ", style=style).append(f"{band}  ")
    console.print(legend)
    for gpu, memory in c.capacities.items():
        first = c.first_over[gpu]
        where = (
            "fits at every point"
            if first is None
            else f"first does not fit at {c.axis.replace('_', '-')}={c.labels[first]}"
        )
        console.print(
            f"  {marks[gpu]} = {plain(gpu)} ({bytes_to(memory, units):,.2f} {units}): {where}"
        )


def render_grid(console: Console, g: Grid, units: str) -> None:
    """Headroom per cell (green fits, yellow tight, red does not fit); totals without a GPU."""
    what = f"headroom on {g.gpu}" if g.gpu else "total"
    table = Table(
        title=f"{what} ({units}): {g.rows_axis.replace('_', '-')} × {g.cols_axis.replace('_', '-')}"
    )
    table.add_column(f"{g.rows_axis} \\ {g.cols_axis}".replace("_", "-"), justify="right")
    for label in g.col_labels:
        table.add_column(label, justify="right")
    for label, values, verdicts in zip(g.row_labels, g.values, g.verdicts, strict=True):
        row: list[str | Text] = [label]
        for value, verdict in zip(values, verdicts, strict=True):
            text = "—" if value is None else f"{bytes_to(value, units):,.1f}"
            row.append(Text(text, style=VERDICT_STYLE.get(verdict or "", "")))
        table.add_row(*row)
    console.print(table)


def render_comparison(comp: Comparison, units: str = "GiB") -> None:
    """Components as rows, configurations as columns, then each one's difference from the first."""
    console = make_console()
    letters = [chr(ord("A") + i) for i in range(len(comp.rows))]
    table = Table(title=f"{comp.task} memory ({units}): differences against A")
    table.add_column("")
    for letter in letters:
        table.add_column(letter, justify="right")
    for letter in letters[1:]:
        table.add_column(f"{letter} − A", justify="right")
    diffs = comp.differences()

    def gib(value: int | None, signed: bool = False) -> str:
        if value is None:
            return "—"
        return f"{bytes_to(value, units):{'+' if signed else ''},.2f}"

    for name, deltas in diffs.items():
        values = [
            None
            if r.estimate is None
            else r.estimate.total_bytes
            if name == "total"
            else r.estimate.component(name)
            for r in comp.rows
        ]
        if name == "total":
            table.add_section()
        style = "bold" if name == "total" else ""
        table.add_row(
            Text(name, style=style),
            *[Text(gib(v), style=style) for v in values],
            *[Text(gib(d, signed=True), style=style) for d in deltas[1:]],
        )
    verdicts = [r.verdict for r in comp.rows]
    if any(verdicts):
        table.add_row(
            "verdict",
            *[Text(v or "—", style=VERDICT_STYLE.get(v or "", "")) for v in verdicts],
            *[""] * (len(comp.rows) - 1),
        )
    console.print(table)
    for letter, label, row in zip(letters, comp.labels, comp.rows, strict=True):
        options = ", ".join(f"{k.replace('_', '-')}={v}" for k, v in row.values.items())
        console.print(
            f"[bold]{letter}[/] {plain(label)}: {plain(row.model)}"
            + (f", {plain(options)}" if options else "")
        )
        if row.error:
            console.print(f"  [red]refused:[/] {plain(row.error)}")
