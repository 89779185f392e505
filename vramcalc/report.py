"""Rendering: the only module that imports rich. Tables with each component, share and a bar."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .results import Estimate, GPUFit
from .safe_io import clean_text, dumps_json
from .specs import GPUSpec, ModelSpec
from .units import bytes_to

BAR_WIDTH = 24
OVERHEAD = ("cuda_context", "allocator_slack")


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False)


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


def _fmt(value_bytes: int, units: str) -> str:
    return f"{bytes_to(value_bytes, units):,.2f}"


def _bar(share: float, width: int = BAR_WIDTH) -> str:
    filled = round(share * width)
    full, empty = _bar_chars()
    return full * filled + empty * (width - filled)


def bar_width(console: Console, reserved: int = 46) -> int:
    """Bar cells that leave the numbers room on this terminal: 24, fewer when narrow, none
    under 8 (numbers are never cut to '…' to keep a bar)."""
    room = console.width - reserved
    return min(BAR_WIDTH, room) if room >= 8 else 0


def print_json(data: object) -> None:
    sys.stdout.write(dumps_json(data) + "\n")


def fit_line(est: Estimate, units: str) -> str:
    if est.gpu is None:
        return ""
    return gpu_fit_line(est.gpu, est.low_bytes, est.high_bytes, units)


def gpu_fit_line(g: GPUFit, low_bytes: int, high_bytes: int, units: str) -> str:
    """fits / tight / does not fit on one GPU, with the headroom, shortfall or likely range."""
    if g.verdict == "tight":
        return f"[yellow]tight[/] on {plain(g.gpu)} ({_fmt(g.memory_bytes, units)} {units}): inside the likely range {_fmt(low_bytes, units)}–{_fmt(high_bytes, units)} {units}"
    if g.fits:
        return f"[green]fits[/] on {plain(g.gpu)} ({_fmt(g.memory_bytes, units)} {units}): {_fmt(g.headroom_bytes, units)} {units} headroom"
    return f"[red]does not fit[/] on {plain(g.gpu)} ({_fmt(g.memory_bytes, units)} {units}): short by {_fmt(-g.headroom_bytes, units)} {units}"


def render_estimate(est: Estimate, units: str = "GiB") -> None:
    console = _console()
    title = f"{est.kind.title()} memory: {plain(est.model)}"
    if not est.weights_only:
        title += f" ({est.params / 1e9:.2f}B params" + (
            f", {est.active_params / 1e9:.2f}B active)" if est.active_params != est.params else ")"
        )
    table = Table(title=title, caption=f"peak at: {est.phase}" if est.phase else None)
    width = bar_width(console)
    table.add_column("component", overflow="fold")
    table.add_column(units, justify="right", no_wrap=True)
    table.add_column("share", justify="right", no_wrap=True)
    if width:
        table.add_column("", no_wrap=True)
    total = est.total_bytes or 1
    for c in est.components:
        share = c.bytes / total
        bar = [_bar(share, width)] if width else []
        table.add_row(plain(c.name), _fmt(c.bytes, units), f"{share:.1%}", *bar)
    table.add_section()
    table.add_row(
        "[bold]total", f"[bold]{_fmt(est.total_bytes, units)}", "100.0%", *([""] if width else [])
    )
    console.print(table)
    if est.high_bytes > est.low_bytes:
        console.print(
            f"{_fmt(est.total_bytes, units)} {units}, likely {_fmt(est.low_bytes, units)}–{_fmt(est.high_bytes, units)} {units}"
        )
    inputs = ", ".join(f"{k}={v}" for k, v in est.inputs.items() if k != "model")
    console.print(f"[dim]inputs: {plain(inputs)}[/]")
    if est.gpu is not None:
        console.print(fit_line(est, units))
    for c in est.components:
        if c.note:
            console.print(f"[dim]{plain(c.name)}: {plain(c.note)}[/]")
    for note in est.assumptions:
        console.print(f"[dim]· {plain(note)}[/]")


def render_compare(rows: Sequence[Estimate], units: str = "GiB") -> None:
    """One row per dtype: the classic table with real totals."""
    console = _console()
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
            *(_fmt(est.component(n), units) for n in names),
            _fmt(overhead, units),
            _fmt(est.total_bytes, units),
        ]
        if est.gpu is not None:
            verdict = est.gpu.verdict
            cells.append(
                "[yellow]tight[/]"
                if verdict == "tight"
                else "[green]yes[/]"
                if verdict == "fits"
                else "[red]no[/]"
            )
        table.add_row(*cells)
    console.print(table)
    if first.gpu is not None:
        console.print(
            f"fits: on {plain(first.gpu.gpu)} ({_fmt(first.gpu.memory_bytes, units)} {units}); overhead = CUDA context + allocator slack"
        )
    for note in first.assumptions:
        console.print(f"[dim]· {plain(note)}[/]")


def render_weights_only_compare(rows: Sequence[Estimate], units: str = "GiB") -> None:
    """params × bytes per dtype, and what each dtype's default format really stores per parameter."""
    console = _console()
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
            _fmt(raw, units),
            plain(est.inputs["quant"]),
            _fmt(real, units),
            f"{(real - raw) / raw:+.1%}",
        )
    console.print(table)
    console.print(
        "[dim]· 'with format metadata': bytes per parameter of the format on a 4096×4096 linear "
        "weight (scales, zero points, absmax); real models also keep embeddings and norms in 16-bit[/]"
    )


def render_model_list(models: Sequence[ModelSpec], param_counts: Sequence[int]) -> None:
    console = _console()
    # names and numbers stay whole; aliases need room, so a narrow terminal leaves them out
    with_aliases = console.width >= 110
    table = Table(
        title="model presets",
        caption=None if with_aliases else "aliases: a wider terminal, or `presets show NAME`",
    )
    cols = ("name", "params", "layers", "hidden", "heads/kv", "vocab", "context")
    for col in (*cols, "aliases") if with_aliases else cols:
        table.add_column(
            col,
            justify="right"
            if col in ("params", "layers", "hidden", "vocab", "context")
            else "left",
            no_wrap=col != "aliases",
            overflow="fold",
        )
    for spec, n in zip(models, param_counts, strict=True):
        row = [
            plain(spec.name),
            f"{n / 1e9:.2f}B",
            str(spec.num_layers),
            str(spec.hidden_size),
            f"{spec.num_attention_heads}/{spec.kv_heads}",
            str(spec.vocab_size),
            str(spec.max_position_embeddings),
        ]
        table.add_row(*row, *([plain(", ".join(spec.aliases))] if with_aliases else []))
    console.print(table)


def render_model(spec: ModelSpec, n_params: int, n_active: int) -> None:
    table = Table(title=f"{plain(spec.title)} ({n_params:,} parameters)", show_header=False)
    table.add_column("field")
    table.add_column("value", overflow="fold")
    for key, value in spec.model_dump(by_alias=True).items():
        if value not in (None, "", (), 0) or key in ("num_experts",):
            table.add_row(key, plain(value))
    table.add_row("head_dim (derived)", str(spec.head_dim))
    if n_active != n_params:
        table.add_row("active params", f"{n_active:,}")
    _console().print(table)


def render_gpu_list(gpus: Sequence[GPUSpec]) -> None:
    table = Table(title="GPU presets")
    table.add_column("name")
    table.add_column("memory (GiB)", justify="right")
    table.add_column("aliases")
    for g in gpus:
        table.add_row(plain(g.name), f"{g.memory_bytes / 2**30:.1f}", plain(", ".join(g.aliases)))
    _console().print(table)
