"""A sweep as text for other tools (CSV, TSV, Markdown, JSON, JSON lines) and as chart data.

No rich, no plotting library: the table and chart renderers (report_sweep.py, plot.py) draw what
:func:`display_table`, :func:`curve` and :func:`grid` compute here, so the terminal and the files
show the same numbers.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

from vramcalc.core.cost import TrainingCost
from vramcalc.core.sweeps import RUNTIME, SweepResult, SweepRow
from vramcalc.units import bytes_to, format_usd

FORMATS = ("table", "csv", "tsv", "md", "json", "jsonl")
MAIN_SHARE = 0.05  # a component is "main" (its own column/band) when it reaches 5 % of a total


def to_text(result: SweepResult, fmt: str, units: str = "GiB") -> str:
    """The whole sweep in a machine format (one row per combination, the same keys in each)."""
    rows = result.to_dicts()
    if fmt == "json":
        return json.dumps(rows, indent=2, allow_nan=False) + "\n"
    if fmt == "jsonl":
        return "".join(json.dumps(r, allow_nan=False) + "\n" for r in rows)
    if fmt in ("csv", "tsv"):
        out = io.StringIO()
        names = list(rows[0]) if rows else []
        writer = csv.DictWriter(
            out, fieldnames=names, delimiter="," if fmt == "csv" else "\t", lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
        return out.getvalue()
    if fmt == "md":
        headers, cells = display_table(result, units)
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
        return "\n".join(lines) + "\n"
    raise ValueError(fmt)


def main_components(result: SweepResult) -> list[str]:
    """Components that reach MAIN_SHARE of some row's total; the runtime terms count as one."""
    names = []
    for name in result.component_names():
        if name in RUNTIME:
            continue
        for row in result.rows:
            est = row.estimate
            if est is not None and est.component(name) >= MAIN_SHARE * est.total_bytes > 0:
                names.append(name)
                break
    return names


def stack(row: SweepRow, names: list[str]) -> dict[str, int]:
    """The row's bytes in the chart's bands: main components, ``runtime``, then ``other``."""
    est = row.estimate
    if est is None:
        return {}
    parts = {name: est.component(name) for name in names}
    parts["runtime"] = sum(est.component(n) for n in RUNTIME)
    parts["other"] = est.total_bytes - sum(parts.values())
    return parts


def _value(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 10_000:
        return f"{value:,}"
    return str(value)


def display_table(result: SweepResult, units: str = "GiB") -> tuple[list[str], list[list[str]]]:
    """Headers and cells of the human table: swept options, main components, total, likely range,
    GPU verdict and headroom, cost and error."""
    swept = result.swept
    names = main_components(result)
    has_gpu = any(r.estimate is not None and r.estimate.gpu for r in result.rows)
    bands = [*names, "runtime"]
    if any(stack(r, names).get("other") for r in result.rows):
        bands.append("other")
    gpu_column = False  # a single GPU is named in the caption, several are a swept column
    headers = [s.replace("_", "-") for s in swept] + bands
    headers += [f"total {units}", "likely range"]
    if has_gpu:
        headers += ["gpu"] * gpu_column + ["verdict", "headroom"]
    if result.cost is not None:
        headers += (
            ["gpu-hours", "days", "price"] if result.task == "train" else ["tok/s out", "$/M out"]
        )
    headers.append("error")

    def gib(value_bytes: int) -> str:
        return f"{bytes_to(value_bytes, units):,.2f}"

    cells = []
    for row in result.rows:
        line = [_value(row.model if s == "model" else row.values[s]) for s in swept]
        est = row.estimate
        fit_cells = (gpu_column + 2) if has_gpu else 0
        if est is None:
            line += [""] * (len(bands) + 2 + fit_cells)
        else:
            parts = stack(row, names)
            line += [gib(parts[b]) for b in bands]
            line += [gib(est.total_bytes), f"{gib(est.low_bytes)}–{gib(est.high_bytes)}"]
            fit = est.gpu
            if fit is None:
                line += [""] * fit_cells
            elif has_gpu:
                line += [fit.gpu] * gpu_column + [fit.verdict, gib(fit.headroom_bytes)]
        if result.cost is not None:
            line += _cost_cells(row)
        line.append(row.error or "")
        cells.append(line)
    if not any(c[-1] for c in cells):  # no errors: drop the empty column
        headers.pop()
        cells = [c[:-1] for c in cells]
    return headers, cells


def _cost_cells(row: SweepRow) -> list[str]:
    cost = row.cost
    if cost is None:
        return ["—" if row.cost_error else ""] * (3 if row.task == "train" else 2)
    if isinstance(cost, TrainingCost):
        return [f"{cost.gpu_hours:,.0f}", f"{cost.wall_days:,.1f}", format_usd(cost.price_usd)]
    return [f"{cost.output_tokens_per_second:,.0f}", format_usd(cost.usd_per_million_output_tokens)]


# ---- chart data ---------------------------------------------------------------------------------
@dataclass
class Curve:
    """Stacked components against one swept axis, each GPU's capacity, the first point over it."""

    axis: str
    labels: list[str]
    bands: dict[str, list[int | None]]  # band -> bytes at each point (None: the row was refused)
    totals: list[int | None]
    capacities: dict[str, int] = field(default_factory=dict)  # GPU -> memory bytes
    first_over: dict[str, int | None] = field(default_factory=dict)  # GPU -> point index


@dataclass
class Grid:
    """Headroom (or total, without a GPU) over two swept axes, one grid per GPU."""

    rows_axis: str
    cols_axis: str
    row_labels: list[str]
    col_labels: list[str]
    gpu: str | None
    capacity_bytes: int | None
    values: list[list[int | None]]  # headroom bytes (or total bytes when gpu is None)
    verdicts: list[list[str | None]]


def chart_axes(result: SweepResult) -> list[str]:
    """The swept axes a chart draws along (the GPU is drawn as capacity lines, not an axis)."""
    return [a for a in result.swept if a != "gpu"]


def _key(row: SweepRow, axis: str) -> Any:
    return row.model if axis == "model" else row.values[axis]


def _gpus(result: SweepResult) -> dict[str, int]:
    """GPU title -> memory bytes, in sweep order."""
    found: dict[str, int] = {}
    for row in result.rows:
        if row.estimate is not None and row.estimate.gpu is not None:
            found.setdefault(row.estimate.gpu.gpu, row.estimate.gpu.memory_bytes)
    return found


def curve(result: SweepResult) -> Curve:
    """The one-axis chart: the estimate does not depend on which GPU, so the first GPU's rows
    give the stack and every GPU gives a capacity line."""
    (axis,) = chart_axes(result)
    names = main_components(result)
    points: dict[Any, SweepRow] = {}
    for row in result.rows:
        points.setdefault(_key(row, axis), row)
    bands: dict[str, list[int | None]] = {n: [] for n in [*names, "runtime", "other"]}
    totals: list[int | None] = []
    for row in points.values():
        parts = stack(row, names)
        for band, series in bands.items():
            series.append(parts.get(band))
        totals.append(row.total_bytes)
    capacities = _gpus(result)
    first_over = {
        gpu: next(
            (i for i, t in enumerate(totals) if t is not None and t > memory),
            None,
        )
        for gpu, memory in capacities.items()
    }
    bands = {k: v for k, v in bands.items() if any(v)}
    labels = [_value(k) for k in points]
    return Curve(axis, labels, bands, totals, capacities, first_over)


def grids(result: SweepResult) -> list[Grid]:
    """The two-axis charts: one per GPU (or one of totals without a GPU)."""
    rows_axis, cols_axis = chart_axes(result)
    row_keys = list(dict.fromkeys(_key(r, rows_axis) for r in result.rows))
    col_keys = list(dict.fromkeys(_key(r, cols_axis) for r in result.rows))
    capacities = _gpus(result) or {None: None}  # type: ignore[dict-item]
    out = []
    for gpu, memory in capacities.items():
        values: list[list[int | None]] = [[None] * len(col_keys) for _ in row_keys]
        verdicts: list[list[str | None]] = [[None] * len(col_keys) for _ in row_keys]
        for row in result.rows:
            est = row.estimate
            fit = None if est is None else est.gpu
            if gpu is not None and (fit is None or fit.gpu != gpu):
                continue
            i, j = row_keys.index(_key(row, rows_axis)), col_keys.index(_key(row, cols_axis))
            if est is not None:
                values[i][j] = est.total_bytes if fit is None else fit.headroom_bytes
                verdicts[i][j] = None if fit is None else fit.verdict
        out.append(
            Grid(
                rows_axis,
                cols_axis,
                [_value(k) for k in row_keys],
                [_value(k) for k in col_keys],
                gpu,
                memory,
                values,
                verdicts,
            )
        )
    return out
