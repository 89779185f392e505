"""Rendering of a serving-engine estimate (`infer --engine`): the per-GPU table, then what the
engine's start-up log would report: KV pool in GiB and tokens, maximum concurrency, refusal."""

from __future__ import annotations

from rich.console import Console

from vramcalc.core.results import Estimate
from vramcalc.report.console import plain, render_estimate
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
        lines.append(f"budget per GPU: {budget}; KV cache: {pool} per GPU, {s.kv_pool_tokens:,} tokens")
        lines.append(
            f"Maximum concurrency for {s.max_model_len:,} tokens per request: {s.max_concurrency:.2f}x"
        )
    if s.refused:
        lines.append(f"[red]the engine refuses to start:[/] {plain(s.refused)}")
    return lines


def render_serving(est: Estimate, units: str = "GiB", explain: bool = False) -> None:
    render_estimate(est, units, explain=explain)
    console = Console(highlight=False, soft_wrap=False)
    for line in serving_lines(est, units):
        console.print(line)
