"""Rendering of a serving-engine estimate (`infer --engine`): the per-GPU table, then what the
engine's start-up log would report: KV pool in GiB and tokens, maximum concurrency, refusal."""

from __future__ import annotations

from rich.table import Table

from vramcalc.core.results import Estimate
from vramcalc.core.serving.planning import EngineFit, EnginePlan
from vramcalc.report.console import make_console, plain, render_estimate
from vramcalc.units import bytes_to


def serving_lines(est: Estimate, units: str) -> list[str]:
    """The engine's own summary lines, in its vocabulary."""
    s = est.serving
    if s is None:
        return []
    pool = f"{bytes_to(s.kv_pool_bytes, units):,.2f} {units}"
    lines = [f"[bold]{plain(s.engine)}[/] ({plain(s.engine_version)}), TP {s.tp} × PP {s.pp}"]
    if s.engine == "llama.cpp":
        lines.append(
            f"KV cache on the GPU: {pool}; context {s.kv_pool_tokens:,} cells, "
            f"{s.max_num_seqs} slot(s) of {s.max_model_len:,} tokens"
        )
        lines.append(f"host memory: {bytes_to(s.host_bytes, units):,.2f} {units}")
    else:
        budget = f"{bytes_to(s.budget_bytes, units):,.2f} {units}"
        lines.append(
            f"budget per GPU: {budget}; KV cache: {pool} per GPU, {s.kv_pool_tokens:,} tokens"
        )
        lines.append(
            f"Maximum concurrency for {s.max_model_len:,} tokens per request: {s.max_concurrency:.2f}x"
        )
    if s.refused:
        lines.append(f"[red]the engine refuses to start:[/] {plain(s.refused)}")
    return lines


def render_serving(est: Estimate, units: str = "GiB", explain: bool = False) -> None:
    render_estimate(est, units, explain=explain)
    console = make_console()
    for line in serving_lines(est, units):
        console.print(line)


def render_engine_fit(r: EngineFit) -> None:
    console = make_console()
    table = Table(
        title=f"Fit: {plain(r.model)} on {r.tp * r.pp} × {plain(r.gpu)} ({plain(r.engine)})"
    )
    table.add_column("quantity")
    table.add_column("value", justify="right")
    longest = f"{r.max_model_len:,}" + (
        " (model maximum)" if r.max_model_len == r.model_max_len else ""
    )
    table.add_row("longest context that starts and fits one request", longest)
    table.add_row(f"max concurrency at {r.at_max_model_len:,} tokens", f"{r.max_concurrency:.2f}x")
    table.add_row("KV pool tokens", f"{r.kv_pool_tokens:,}")
    console.print(table)
    if r.refused:
        console.print(
            f"[red]at {r.at_max_model_len:,} tokens the engine refuses:[/] {plain(r.refused)}"
        )


def render_engine_plan(p: EnginePlan) -> None:
    console = make_console()
    table = Table(
        title=f"Plan: {plain(p.model)} ({plain(p.engine)}), {p.target_concurrency:g} requests of "
        f"{p.max_model_len:,} tokens",
        caption="fewest GPUs whose KV pool holds the target ("
        + (
            "llama.cpp layer split, all layers offloaded)"
            if p.engine == "llama.cpp"
            else "tensor parallel)"
        ),
    )
    for col in ("gpu", "GPUs", "concurrency", "KV tokens", "note"):
        table.add_column(col, justify="left" if col in ("gpu", "note") else "right")
    for r in p.rows:
        table.add_row(
            plain(r.gpu),
            "—" if r.num_gpus is None else str(r.num_gpus),
            f"{r.max_concurrency:.2f}x" if r.num_gpus else "",
            f"{r.kv_pool_tokens:,}" if r.num_gpus else "",
            plain(r.note),
        )
    console.print(table)


def print_note(text: str) -> None:
    make_console().print(f"[dim]{plain(text)}[/]")
