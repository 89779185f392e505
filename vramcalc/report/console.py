"""Rendering: the only module that imports rich. Tables with each component, share and a bar."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from vramcalc.core.results import Estimate, GPUFit
from vramcalc.safe_io import clean_text
from vramcalc.spec.model import GPUSpec, ModelSpec
from vramcalc.units import bytes_to

BAR_WIDTH = 24
OVERHEAD = ("cuda_context", "allocator_slack")


def make_console(width: int | None = None, soft_wrap: bool = False) -> Console:
    """The one console of every report: no automatic highlighting (numbers keep the colour the
    table gives them), no soft wrap (tables fold their own columns; prose lines may ask for it)."""
    return Console(highlight=False, soft_wrap=soft_wrap, width=width)


def print_table(
    console: Console, table: Table, optional: Sequence[int] = (), whole: Sequence[int] = ()
) -> None:
    """Print `table` so that on a narrow terminal no number becomes "…": right-aligned (numeric)
    columns and those in `whole` get the width of their widest cell, the other (text) columns
    share what is left and fold; the `optional` columns (the share bar first) are dropped while
    that leaves under 6 characters per text column, and as a last resort each row is printed as a
    block of "header: value" lines."""
    natural = sum(_natural_width(table, i) for i in range(len(table.columns)))
    if natural + 3 * len(table.columns) + 1 <= console.width:
        console.print(table)  # it fits as it is
        return
    pending = sorted((i for i in optional if i < len(table.columns)), reverse=True)
    while True:
        widths = _column_widths(table, console.width, whole)
        cramped = widths is None or any(widths[i] < _natural_width(table, i) for i in pending)
        if not cramped or not pending:
            break
        table.columns.pop(pending.pop(0))  # drop an optional column rather than squeeze it
    if widths is None:
        _print_records(console, table)
        return
    for column, width in zip(table.columns, widths, strict=True):
        column.width = width
        column.no_wrap = False
        column.overflow = "fold"
    console.print(table)


def _natural_width(table: Table, index: int) -> int:
    column = table.columns[index]
    header = _cell_len(str(column.header)) if table.show_header else 0
    return max([header, *(_cell_len(c) for c in column.cells), 1])


_MIN_TEXT_WIDTH = 6


def _column_widths(table: Table, width: int, whole: Sequence[int]) -> list[int] | None:
    """Content width of each column for a table `width` characters wide, or None when the
    numbers alone leave under _MIN_TEXT_WIDTH characters for each text column."""
    cells = [[_cell_len(c) for c in column.cells] for column in table.columns]
    words = [max((len(w) for w in str(c.header).split()), default=0) for c in table.columns]
    fixed = {
        i: max([*cells[i], words[i] if table.show_header else 0, 1])
        for i, column in enumerate(table.columns)
        if column.justify == "right" or i in whole
    }
    text = [i for i in range(len(table.columns)) if i not in fixed]
    frame = 3 * len(table.columns) + 1  # one space either side of each cell, and the rules
    left = width - frame - sum(fixed.values())
    if left < _MIN_TEXT_WIDTH * len(text):
        return None
    natural = {i: _natural_width(table, i) for i in text}
    widths = dict(fixed)
    for n, i in enumerate(sorted(text, key=lambda i: natural[i])):  # share what is left fairly
        widths[i] = min(natural[i], left // (len(text) - n))
        left -= widths[i]
    return [widths[i] for i in range(len(table.columns))]


def _print_records(console: Console, table: Table) -> None:
    """A table as stacked records, for terminals narrower than its numbers."""
    if table.title:
        console.print(table.title, style="bold")
    headers = [str(c.header) for c in table.columns]
    columns = [list(c.cells) for c in table.columns]
    for row in zip(*columns, strict=True):
        first, *rest = row
        console.print(first, style="bold")
        for header, value in zip(headers[1:], rest, strict=True):
            if _cell_len(value):
                console.print(Text("  " + header + ": ").append_text(Text.from_markup(str(value))))
    if table.caption:
        console.print(table.caption, style="dim")


def _cell_len(cell: object) -> int:
    return Text.from_markup(cell).cell_len if isinstance(cell, str) else 0


def plain(value: object) -> str:
    """Data (a model, GPU or file name, a note quoting one) as plain text inside rich markup:
    control characters removed, ``[`` escaped so ``[/x]`` or ``[link=...]`` prints as written."""
    return escape(clean_text(value))


def _bar_chars() -> tuple[str, str]:
    """Block and dot where the output encoding has them, else '#' and '.'."""
    try:
        "█·".encode(sys.stdout.encoding or "utf-8")
    except (UnicodeEncodeError, LookupError):
        return "#", "."
    return "█", "·"


def fmt_bytes(value_bytes: int, units: str) -> str:
    return f"{bytes_to(value_bytes, units):,.2f}"


def share_bar(share: float, width: int = BAR_WIDTH) -> str:
    filled = round(share * width)
    full, empty = _bar_chars()
    return full * filled + empty * (width - filled)


def fit_line(est: Estimate, units: str) -> str:
    if est.gpu is None:
        return ""
    return gpu_fit_line(est.gpu, est.low_bytes, est.high_bytes, units)


def gpu_fit_line(g: GPUFit, low_bytes: int, high_bytes: int, units: str) -> str:
    """fits / tight / does not fit on one GPU, with the headroom, shortfall or likely range."""
    if g.verdict == "may fit":  # assumed architecture (--assume-llama): never a plain "fits"
        return f"[yellow]may fit[/] on {g.gpu} ({fmt_bytes(g.memory_bytes, units)} {units}): rough estimate of an assumed architecture, likely {fmt_bytes(low_bytes, units)}–{fmt_bytes(high_bytes, units)} {units}"
    if g.weights_only:  # the verdict itself says what it counted
        return (
            "weights only: "
            + gpu_fit_line(
                g.model_copy(update={"weights_only": False}), low_bytes, high_bytes, units
            )
            + " (no KV cache, activations or runtime counted)"
        )
    if g.verdict == "tight":
        return f"[yellow]tight[/] on {plain(g.gpu)} ({fmt_bytes(g.memory_bytes, units)} {units}): inside the likely range {fmt_bytes(low_bytes, units)}–{fmt_bytes(high_bytes, units)} {units}"
    if g.fits:
        return f"[green]fits[/] on {plain(g.gpu)} ({fmt_bytes(g.memory_bytes, units)} {units}): {fmt_bytes(g.headroom_bytes, units)} {units} headroom"
    if g.headroom_bytes >= 0:  # the bytes fit but the job cannot run (a serving engine refuses)
        return f"[red]does not run[/] on {plain(g.gpu)} ({fmt_bytes(g.memory_bytes, units)} {units}): the memory fits, but the engine refuses to start (below)"
    return f"[red]does not fit[/] on {plain(g.gpu)} ({fmt_bytes(g.memory_bytes, units)} {units}): short by {fmt_bytes(-g.headroom_bytes, units)} {units}"


def band_line(est: Estimate, units: str) -> str:
    """'13.35 GiB, likely 13.04–14.63 GiB' (empty for exact weights-only arithmetic)."""
    if est.high_bytes <= est.low_bytes:
        return ""
    return (
        f"{fmt_bytes(est.total_bytes, units)} {units}, likely "
        f"{fmt_bytes(est.low_bytes, units)}–{fmt_bytes(est.high_bytes, units)} {units}"
    )


def cluster_line(est: Estimate, units: str) -> str:
    """'per GPU; 4 GPUs (TP 4 × PP 1): 80.00 GiB in all' for a multi-GPU inference estimate."""
    layout = " × ".join(f"{k.upper()} {v}" for k, v in est.parallel.items())
    return (
        f"components are per GPU; {est.num_gpus} GPUs{f' ({layout})' if layout else ''}: "
        f"{fmt_bytes(est.cluster_total_bytes or 0, units)} {units} in all"
    )


def explain_lines(est: Estimate) -> list[str]:
    """--explain: each component's arithmetic with its numbers, then the total as their sum."""
    lines = ["[bold]how each term is computed[/] (bytes)"]
    for c in est.components:
        if c.formula:
            lines.append(f"  {plain(c.name)} = {plain(c.formula)} = {c.bytes:,}")
        elif c.note:
            lines.append(f"  {plain(c.name)} = {c.bytes:,}  ({plain(c.note)})")
    terms = " + ".join(f"{c.bytes:,}" for c in est.components if c.bytes)
    lines.append(f"  total = {terms} = {est.total_bytes:,}")
    return lines


def render_estimate(est: Estimate, units: str = "GiB", explain: bool = False) -> None:
    console = make_console()
    title = f"{est.kind.title()} memory: {plain(est.model)}"
    if not est.weights_only:
        title += f" ({est.params / 1e9:.2f}B params" + (
            f", {est.active_params / 1e9:.2f}B active)" if est.active_params != est.params else ")"
        )
    table = Table(title=title, caption=f"peak at: {est.phase}" if est.phase else None)
    table.add_column("component", overflow="fold")
    table.add_column(units, justify="right", no_wrap=True)
    table.add_column("share", justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)  # the share bar: print_table drops it first when narrow
    total = est.total_bytes or 1
    for c in est.components:
        share = c.bytes / total
        table.add_row(
            plain(c.name), fmt_bytes(c.bytes, units), f"{share:.1%}", share_bar(share, BAR_WIDTH)
        )
    table.add_section()
    table.add_row("[bold]total", f"[bold]{fmt_bytes(est.total_bytes, units)}", "100.0%", "")
    print_table(console, table, optional=[3])
    if est.assumed_architecture is not None:
        console.print(
            f"[yellow]rough estimate: architecture {escape(repr(est.assumed_architecture))} is not mapped, read as Llama (--assume-llama)[/]"
        )
    if band_line(est, units):
        console.print(band_line(est, units))
    if est.num_gpus > 1 and est.cluster_total_bytes:
        console.print(cluster_line(est, units))
    inputs = ", ".join(f"{k}={v}" for k, v in est.inputs.items() if k != "model")
    console.print(f"[dim]inputs: {plain(inputs)}[/]")
    if est.gpu is not None:
        console.print(fit_line(est, units))
    if explain:
        for line in explain_lines(est):
            console.print(line)
    for c in est.components:
        if c.note and not explain:
            console.print(f"[dim]{plain(c.name)}: {plain(c.note)}[/]")
    for note in est.assumptions:
        console.print(f"[dim]· {plain(note)}[/]")


def render_compare(rows: Sequence[Estimate], units: str = "GiB") -> None:
    """One row per dtype: the classic table with real totals."""
    console = make_console()
    first = rows[0]
    table = Table(title=f"{plain(first.model)}: memory by dtype ({units})")
    names = [c.name for c in first.components if c.name not in OVERHEAD]
    table.add_column("dtype")
    table.add_column("format")
    for n in names:
        table.add_column(n, justify="right")
    table.add_column("overhead", justify="right")
    table.add_column("total", justify="right", style="bold")
    if first.gpu is not None:
        table.add_column("fits")
    for est in rows:
        overhead = sum(est.component(n) for n in OVERHEAD)
        cells = [
            plain(est.inputs["dtype"]),
            plain(est.inputs["quant"]),
            *(fmt_bytes(est.component(n), units) for n in names),
            fmt_bytes(overhead, units),
            fmt_bytes(est.total_bytes, units),
        ]
        if est.gpu is not None:
            verdict = est.gpu.verdict
            cells.append(
                f"[yellow]{verdict}[/]"
                if verdict in ("tight", "may fit")
                else "[green]yes[/]"
                if verdict == "fits"
                else "[red]no[/]"
            )
        table.add_row(*cells)
    print_table(console, table)
    if first.gpu is not None:
        console.print(
            f"fits: on {plain(first.gpu.gpu)} ({fmt_bytes(first.gpu.memory_bytes, units)} {units}); overhead = CUDA context + allocator slack"
        )
    for note in first.assumptions:
        console.print(f"[dim]· {plain(note)}[/]")


def render_weights_only_compare(rows: Sequence[Estimate], units: str = "GiB") -> None:
    """params × bytes per dtype, and what each dtype's default format really stores per parameter."""
    console = make_console()
    first = rows[0]
    table = Table(
        title=f"{plain(first.model)}: weights by dtype ({units})",
        caption="weights only: no KV cache, activations or runtime overhead",
    )
    table.add_column("dtype")
    table.add_column("raw weights", justify="right", style="bold")
    table.add_column("format")
    table.add_column("with format metadata", justify="right")
    table.add_column("added", justify="right")
    for est in rows:
        raw = est.total_bytes
        real = int(est.params * est.inputs["format_bytes_per_param"])
        table.add_row(
            plain(est.inputs["dtype"]),
            fmt_bytes(raw, units),
            plain(est.inputs["quant"]),
            fmt_bytes(real, units),
            f"{(real - raw) / raw:+.1%}",
        )
    print_table(console, table)
    console.print(
        "[dim]· 'with format metadata': bytes per parameter of the format on a 4096×4096 linear "
        "weight (scales, zero points, absmax); real models also keep embeddings and norms in 16-bit[/]"
    )


def render_model_list(models: Sequence[ModelSpec], param_counts: Sequence[int]) -> None:
    table = Table(title="model presets")
    for col in ("name", "params", "layers", "hidden", "heads/kv", "vocab", "context", "aliases"):
        table.add_column(
            col,
            justify="right"
            if col in ("params", "layers", "hidden", "vocab", "context")
            else "left",
        )
    for spec, n in zip(models, param_counts, strict=True):
        table.add_row(
            plain(spec.name),
            f"{n / 1e9:.2f}B",
            str(spec.num_layers),
            str(spec.hidden_size),
            f"{spec.num_attention_heads}/{spec.kv_heads}",
            str(spec.vocab_size),
            str(spec.max_position_embeddings),
            plain(", ".join(spec.aliases)),
        )
    # a narrow terminal drops the aliases, then vocab and hidden, before names or numbers are cut
    print_table(make_console(), table, optional=[3, 5, len(table.columns) - 1], whole=[0])


def render_model(spec: ModelSpec, n_params: int, n_active: int) -> None:
    table = Table(title=f"{plain(spec.title)} ({n_params:,} parameters)", show_header=False)
    table.add_column("field")
    table.add_column("value", overflow="fold")
    for key, value in spec.model_dump(by_alias=True).items():
        if key == "exact_tensors" and value:  # the inventory itself is in --json
            count = sum(t["count"] for t in value)
            table.add_row(key, f"{len(value)} groups, {count:,} tensors (listed by --json)")
        elif value not in (None, "", (), 0) or key in ("num_experts",):
            table.add_row(key, plain(value))
    table.add_row("head_dim (derived)", str(spec.head_dim))
    if n_active != n_params:
        table.add_row("active params", f"{n_active:,}")
    make_console().print(table)


def render_gpu_list(gpus: Sequence[GPUSpec]) -> None:
    table = Table(title="GPU presets")
    table.add_column("name")
    table.add_column("memory (GiB)", justify="right")
    table.add_column("aliases")
    for g in gpus:
        table.add_row(plain(g.name), f"{g.memory_bytes / 2**30:.1f}", plain(", ".join(g.aliases)))
    print_table(make_console(), table, optional=[len(table.columns) - 1], whole=[0])
