"""Rendering of `vramcalc inspect` (rich)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from vramcalc.report.console import make_console, plain, print_table, render_model


def render_source(source: Any, data: dict[str, Any]) -> None:
    render_model(source.spec, data["params"], data["active_params"])
    console = make_console()
    console.print(f"[dim]source: {data['source']} ({plain(data['origin'])})[/]")
    ck = data["checkpoint"]
    if ck is not None:
        table = Table(title=f"{ck['tensors']:,} tensors ({ck['format']})", min_width=32)
        table.add_column("dtype")
        table.add_column("GiB", justify="right")
        for dtype, nbytes in ck["bytes_by_dtype"].items():
            table.add_row(plain(dtype), f"{nbytes / 2**30:,.3f}")
        table.add_section()
        table.add_row("[bold]total", f"[bold]{ck['stored_bytes'] / 2**30:,.3f}")
        print_table(console, table)
        if ck["quantization"]:
            console.print(f"[dim]pre-quantized: {plain(ck['quantization'])}[/]")
    if data["params"] != data["spec_params"]:
        console.print(
            f"[dim]checkpoint holds {data['params']:,} values; the mapped architecture "
            f"{data['spec_params']:,} parameters[/]"
        )
    for note in data["notes"]:
        console.print(f"[dim]· {plain(note)}[/]")
