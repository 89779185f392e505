"""Charts of a sweep as SVG, PNG or a self-contained HTML page (the SVG inline, no scripts).

matplotlib is the optional extra ``plot`` (``pip install 'vramcalc[plot]'``) and is imported only
here, when a chart is asked for. One swept axis: the components stacked against it, each GPU's
capacity as a horizontal line and the first point that does not fit marked. Two swept axes: a
heatmap of the headroom on each GPU (of the total without a GPU).
"""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Any

from vramcalc.core.sweeps import SweepResult
from vramcalc.errors import VramcalcError
from vramcalc.report.sweep_output import Curve, Grid, chart_axes, curve, display_table, grids
from vramcalc.units import GIB

SUFFIXES = (".svg", ".png", ".html")
COLORS = ("#4C72B0", "#DD8452", "#55A868", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974")


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise VramcalcError(
            "charts need matplotlib: pip install 'vramcalc[plot]' (or matplotlib)"
        ) from None
    matplotlib.use("Agg")  # files only, never a window
    matplotlib.rcParams["svg.hashsalt"] = "vramcalc"  # stable element ids: reproducible SVG
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text in the SVG
    import matplotlib.pyplot as plt

    return plt


def check_plot_path(path: Path) -> None:
    if path.suffix.lower() not in SUFFIXES:
        raise VramcalcError(
            f"--plot {path}: the file name must end in {', '.join(SUFFIXES)} (got {path.suffix!r})"
        )


def write_plot(result: SweepResult, path: Path, units: str = "GiB") -> None:
    """Draw the sweep into `path` (.svg, .png or .html)."""
    check_plot_path(path)
    axes = chart_axes(result)
    if len(axes) not in (1, 2):
        raise VramcalcError(
            "a chart needs one swept axis (stacked components) or two (heatmap) besides --gpu; "
            f"this sweep varies {len(axes)}: {', '.join(axes) or 'none'}"
        )
    plt = _pyplot()
    scale = GIB if units == "GiB" else 10**9
    if len(axes) == 1:
        fig = _curve_figure(plt, curve(result), scale, units)
    else:
        fig = _grid_figure(plt, grids(result), scale, units)
    suffix = path.suffix.lower()
    metadata = {"Date": None} if suffix in (".svg", ".html") else {}
    if suffix == ".png":
        fig.savefig(path, format="png", dpi=120, bbox_inches="tight")
    else:
        buf = io.StringIO()
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata=metadata)
        svg = buf.getvalue()
        text = svg if suffix == ".svg" else _html_page(result, svg, units)
        path.write_text(text, encoding="utf-8")
    plt.close(fig)


def _curve_figure(plt: Any, c: Curve, scale: float, units: str) -> Any:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    xs = list(range(len(c.labels)))
    bottom = [0.0] * len(xs)
    for color, (band, series) in zip(COLORS, c.bands.items(), strict=False):
        heights = [(v or 0) / scale for v in series]
        ax.bar(xs, heights, bottom=bottom, label=band, color=color, width=0.7)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    for i, total in enumerate(c.totals):
        if total is None:
            ax.annotate("refused", (i, 0), ha="center", va="bottom", fontsize=8, rotation=90)
    for k, (gpu, memory) in enumerate(c.capacities.items()):
        y = memory / scale
        style = ("-", "--", ":", "-.")[k % 4]
        ax.axhline(y, color="black", linestyle=style, linewidth=1)
        ax.annotate(
            f"{gpu} ({y:,.0f} {units})", (xs[0] - 0.4, y), ha="left", va="bottom", fontsize=8
        )
        first = c.first_over[gpu]
        if first is not None:
            top = (c.totals[first] or 0) / scale
            ax.plot([first], [top], marker="v", color="red", markersize=9, zorder=5)
            ax.annotate(
                f"over {gpu}",
                (first, top),
                xytext=(0, 8),
                textcoords="offset points",
                ha="center",
                fontsize=8,
                color="red",
            )
    ax.set_xticks(xs, c.labels, rotation=45 if len(xs) > 8 else 0)
    ax.set_xlabel(c.axis.replace("_", "-"))
    ax.set_ylabel(f"memory per GPU ({units})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def _grid_figure(plt: Any, gs: list[Grid], scale: float, units: str) -> Any:
    fig, axes = plt.subplots(1, len(gs), figsize=(4.2 * len(gs) + 1, 4), squeeze=False)
    for ax, g in zip(axes[0], gs, strict=True):
        values = [[float("nan") if v is None else v / scale for v in row] for row in g.values]
        finite = [abs(v) for row in values for v in row if v == v]
        limit = max(finite) if finite else 1.0
        if g.gpu is None:  # totals: no headroom without a GPU
            image = ax.imshow(values, cmap="viridis", aspect="auto", origin="lower")
            label = f"total ({units})"
        else:  # headroom: red short, pale at the edge, green room to spare
            from matplotlib.colors import TwoSlopeNorm

            low = min([v for row in values for v in row if v == v] + [-limit / 10])
            high = max([v for row in values for v in row if v == v] + [limit / 10])
            norm = TwoSlopeNorm(vmin=min(low, -1e-9), vcenter=0.0, vmax=max(high, 1e-9))
            image = ax.imshow(values, cmap="RdYlGn", norm=norm, aspect="auto", origin="lower")
            label = f"headroom on {g.gpu} ({units}); * tight"
        for i, row in enumerate(values):
            for j, v in enumerate(row):
                text = "—" if v != v else f"{v:,.1f}" if abs(v) < 10 else f"{v:,.0f}"
                text += "*" if g.verdicts[i][j] == "tight" else ""
                ax.text(j, i, text, ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(g.col_labels)), g.col_labels, rotation=45)
        ax.set_yticks(range(len(g.row_labels)), g.row_labels)
        ax.set_xlabel(g.cols_axis.replace("_", "-"))
        ax.set_ylabel(g.rows_axis.replace("_", "-"))
        ax.set_title(label, fontsize=9)
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.tight_layout()
    return fig


def _html_page(result: SweepResult, svg: str, units: str) -> str:
    """One file that opens offline: the SVG inline and the sweep's table; no scripts, no links."""
    headers, cells = display_table(result, units)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>\n" for row in cells
    )
    svg_body = svg[svg.index("<svg") :]  # drop the XML prolog and DOCTYPE: invalid inside HTML
    title = html.escape(f"vramcalc {result.task} sweep: {', '.join(result.models)}")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n<style>body{{font-family:sans-serif;margin:2em}}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:2px 6px;text-align:right}</style>\n</head>\n<body>\n"
        f"<h1>{title}</h1>\n{svg_body}\n<table>\n<tr>{head}</tr>\n{body}</table>\n"
        "</body>\n</html>\n"
    )
