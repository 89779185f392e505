"""Rendering of the GPU catalog, cost estimates and planner results (rich tables)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.markup import escape
from rich.table import Table

from vramcalc.core.cost import InferenceCost, TrainingCost
from vramcalc.core.fitting import FitResult, Plan
from vramcalc.nvml import LocalGPU
from vramcalc.report.console import make_console, plain, print_table
from vramcalc.spec.model import GPUSpec
from vramcalc.units import GIB, format_duration, format_usd


def _num(value: float | None, fmt: str = ",.2f", missing: str = "—") -> str:
    return missing if value is None else format(value, fmt)


def _duration(hours: float) -> str:
    return format_duration(hours * 3600)


_LINK = {"nvlink": "NVLink", "pcie": "PCIe", "infinity-fabric": "IF"}


def render_gpu_catalog(gpus: Sequence[GPUSpec], prices: Any = None) -> None:
    """The catalog with each price's market and date; `prices` (a PriceSet) is named below."""
    table = Table(title="GPU catalog: dense peaks (TFLOP/s), bandwidths in GB/s")
    for col, just in (
        ("name", "left"),
        ("GiB", "right"),
        ("16-bit", "right"),
        ("FP8", "right"),
        ("memory", "right"),
        ("link", "left"),
        ("TDP W", "right"),
        ("$/h", "right"),
        ("market", "left"),
        ("read", "left"),
    ):
        table.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for g in gpus:
        half = g.peak_bf16_tflops or g.peak_fp16_tflops
        link = (
            f"{_LINK.get(g.interconnect or '', '?')} {g.interconnect_gbps:,.0f}"
            if g.interconnect_gbps
            else "—"
        )
        priced = g.usd_per_gpu_hour is not None
        table.add_row(
            plain(g.name),
            f"{g.memory_bytes / GIB:.1f}",
            _num(half, ",.0f"),
            _num(g.peak_fp8_tflops, ",.0f"),
            _num(g.memory_bandwidth_gbps, ",.0f"),
            link,
            _num(g.tdp_watts, ",.0f"),
            _num(g.usd_per_gpu_hour, ".2f"),
            (g.price_market or "—") if priced else "",
            (g.price_date or "undated") if priced else "",
        )
    console = make_console()
    print_table(console, table, optional=[9, 8])
    if prices is not None:
        unpriced = [g.name for g in gpus if g.usd_per_gpu_hour is None]
        console.print(  # a price set can be the user's own file: its text is data
            plain(
                f"prices: set {prices.name!r}, {prices.provider} {prices.market}, read "
                f"{prices.date} ({prices.source}); another set: --price-source (sets: "
                f"{', '.join(_price_sets())}) or a TOML file; one price: --gpus-file"
            )
        )
        if unpriced:
            console.print(
                f"[dim]{plain(f'no dated {prices.market} price in this set: ' + ', '.join(unpriced))}[/]"
            )
    console.print("[dim]sources of every figure: `vramcalc gpus --json`[/]")


def _price_sets() -> list[str]:
    from vramcalc.sources.presets import list_price_sets

    return list_price_sets()


def render_local_gpus(found: Sequence[tuple[LocalGPU, GPUSpec | None]]) -> None:
    console = make_console()
    if not found:
        console.print("no NVIDIA GPU found (no NVIDIA driver or NVML on this machine)")
        return
    table = Table(title=f"GPUs on this machine (driver {found[0][0].driver_version})")
    for col in ("index", "name", "total GiB", "free GiB", "used GiB", "catalog"):
        table.add_column(col, justify="right" if "GiB" in col else "left")
    for dev, match in found:
        table.add_row(
            str(dev.index),
            plain(dev.name),
            f"{dev.total_bytes / GIB:.2f}",
            f"{dev.free_bytes / GIB:.2f}",
            f"{dev.used_bytes / GIB:.2f}",
            plain(match.name) if match else "[yellow]not in catalog[/]",
        )
    print_table(console, table)


def _kv_table(title: str, rows: list[tuple[str, str]], notes: Sequence[str]) -> None:
    table = Table(title=title, show_header=False)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for key, value in rows:
        table.add_row(key, value)  # numbers and enum values formatted here, no file data
    console = make_console()
    print_table(console, table)
    for note in notes:
        console.print(f"  · {plain(note)}")


def render_training_cost(c: TrainingCost) -> None:
    f = c.flops
    rows = [
        ("tokens", f"{f.tokens:,}"),
        ("sequence length", f"{f.seq_len:,}"),
        ("matmul parameters N", f"{f.matmul_params:,}"),
        ("6·N·D FLOPs", f"{f.dense_flops:.3e}"),
        ("attention FLOPs", f"{f.attention_flops:.3e}"),
        ("model FLOPs", f"{f.model_flops:.3e} ({c.petaflop_s_days:,.0f} PF/s-days)"),
        ("hardware FLOPs", f"{f.hardware_flops:.3e}"),
        (f"peak per GPU ({c.dtype})", f"{c.peak_tflops_per_gpu:,.1f} TFLOP/s"),
        ("MFU / HFU", f"{c.mfu:.3f} / {c.hfu:.3f}"),
        ("GPU-hours", f"{c.gpu_hours:,.0f}"),
        (f"wall time on {c.num_gpus:,} GPUs", _duration(c.wall_hours)),
        (
            "price",
            f"{format_usd(c.price_usd)} at {format_usd(c.usd_per_gpu_hour)}/GPU-hour"
            if c.price_usd is not None
            else "— (no price in catalog)",
        ),
        ("energy (GPUs at TDP)", f"{_num(c.energy_kwh, ',.0f')} kWh"),
    ]
    _kv_table(
        f"Training cost: {plain(c.model)} on {c.num_gpus:,} × {plain(c.gpu)}", rows, c.assumptions
    )


def render_inference_cost(c: InferenceCost) -> None:
    rows = [
        ("batch × (prompt + output)", f"{c.batch_size} × ({c.prompt_tokens} + {c.output_tokens})"),
        (
            f"peak per GPU ({c.compute_dtype}) / bandwidth",
            f"{c.peak_tflops_per_gpu:,.1f} TFLOP/s / {c.memory_bandwidth_gbps:,.0f} GB/s",
        ),
        ("prefill (whole batch)", f"{c.prefill_seconds * 1e3:,.1f} ms"),
        ("time to first token", f"{c.time_to_first_token_seconds * 1e3:,.1f} ms"),
        (
            f"decode step ({c.decode_bound}-bound)",
            f"{c.decode_step_seconds * 1e3:,.2f} ms, {c.decode_bytes_per_step / 1e9:,.2f} GB read",
        ),
        ("per sequence", f"{c.decode_tokens_per_second_per_sequence:,.1f} tokens/s"),
        ("request latency", f"{c.latency_seconds:,.2f} s"),
        ("throughput (output)", f"{c.output_tokens_per_second:,.0f} tokens/s"),
        ("throughput (prompt + output)", f"{c.total_tokens_per_second:,.0f} tokens/s"),
        ("price", f"{format_usd(c.usd_per_hour)}/hour for {c.num_gpus} GPU(s)"),
        ("$ per 1M output tokens", format_usd(c.usd_per_million_output_tokens)),
        ("$ per 1M tokens (prompt + output)", format_usd(c.usd_per_million_tokens)),
    ]
    memory = c.memory
    if memory is not None:
        verdict = "[green]fits[/]" if memory.fits else "[red]does not fit[/]"
        if memory.verdict == "may fit":  # --assume-llama: never a plain "fits"
            verdict = "[yellow]may fit[/] (rough estimate of an assumed architecture)"
        rows.insert(
            0,
            (
                f"memory per GPU ({memory.parallelism})",
                f"{memory.per_gpu_bytes / GIB:,.2f} of {memory.memory_bytes / GIB:,.2f} GiB: "
                + verdict,
            ),
        )
    _kv_table(
        f"Inference cost: {plain(c.model)} ({c.dtype}) on {c.num_gpus} × {plain(c.gpu)}",
        rows,
        c.assumptions,
    )


_ROUGH = (
    "rough estimate: architecture {!r} is not mapped, read as Llama (--assume-llama); "
    "searched so that twice the estimate fits"
)


def render_fit(r: FitResult) -> None:
    gpus = f"{r.num_gpus} × {plain(r.gpu)}" if r.num_gpus > 1 else plain(r.gpu)
    rows = [
        ("GPU memory", f"{r.memory_bytes / GIB:.2f} GiB ({r.parallelism})"),
        (f"largest batch at {r.seq_len:,} tokens", f"{r.max_batch_size:,}"),
        (
            f"longest context at batch {r.batch_size}",
            f"{r.max_seq_len:,}" + (" (model maximum)" if r.max_seq_len == r.seq_len_cap else ""),
        ),
    ]
    notes = ["0 means not even one fits"] if not (r.max_batch_size and r.max_seq_len) else []
    if r.assumed_architecture is not None:
        notes.append(_ROUGH.format(r.assumed_architecture))
    _kv_table(f"Fit: {plain(r.model)} ({r.task}) on {gpus}", rows, notes)


def render_plan(p: Plan) -> None:
    train = p.task == "train"
    title = f"Plan: {plain(p.model)} ({p.task}), cheapest first"
    if p.budget_usd is not None:
        title += f"; budget {format_usd(p.budget_usd)} ({p.budget_meaning})"
    caption = (
        "PyTorch FSDP full shard (vramcalc.core.distributed), micro-batch per GPU"
        if train
        else "tensor parallel inside one node; throughput = output tokens/s of the batch"
    )
    if p.price_set:
        caption += f"; prices: set {p.price_set!r} (--price-source)"
    table = Table(title=title, caption=caption)
    cols = ["gpu", "GPUs", "GiB/GPU"]
    cols += ["time", "GPU-hours", "price"] if train else ["tok/s", "latency", "$/h", "$/1M out"]
    cols += ["note"]
    for col in cols:
        table.add_column(
            col, justify="left" if col in ("gpu", "note") else "right", no_wrap=col != "note"
        )
    for r in p.rows:
        if not r.fits:
            table.add_row(plain(r.gpu), "—", *([""] * (len(cols) - 3)), f"[red]{plain(r.note)}[/]")
            continue
        head = [plain(r.gpu), f"{r.num_gpus:,}", _num((r.per_gpu_bytes or 0) / GIB, ",.1f")]
        if train:
            body = [
                _duration(r.wall_hours) if r.wall_hours is not None else "—",
                _num(r.gpu_hours, ",.0f"),
                format_usd(r.price_usd),
            ]
        else:
            body = [
                _num(r.output_tokens_per_second, ",.0f"),
                "—" if r.latency_seconds is None else f"{r.latency_seconds:.1f} s",
                format_usd(r.usd_per_hour),
                format_usd(r.usd_per_million_output_tokens),
            ]
        note = plain(r.note)
        if r.within_budget is False:
            note = ("[yellow]> budget[/] " + note).strip()
        table.add_row(*head, *body, note)
    print_table(make_console(), table)
    if p.assumed_architecture is not None:
        make_console().print(f"[yellow]{escape(_ROUGH.format(p.assumed_architecture))}[/]")
