"""CLI commands `sweep` (every combination of comma lists and ranges) and `compare` (2-6
configurations side by side). Their per-option flags are generated from
:data:`vramcalc.core.sweep_options.OPTIONS`, so a new sweepable option needs no change here."""

from __future__ import annotations

import inspect
import shlex
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from vramcalc.cli.options import TaskChoice, task_option
from vramcalc.core.sweep_options import OPTIONS
from vramcalc.errors import VramcalcError


class UnitsChoice(str, Enum):  # as cli.UnitsChoice; not imported, so cli_sweep adds no cycle
    GiB = "GiB"
    GB = "GB"


class FormatChoice(str, Enum):
    table = "table"
    csv = "csv"
    tsv = "tsv"
    md = "md"
    json = "json"
    jsonl = "jsonl"


UnitsOpt = Annotated[UnitsChoice, typer.Option("--units", help="GiB (2^30 bytes) or GB (10^9)")]
TaskOpt = Annotated[TaskChoice, task_option("--task", "-t", help="serving or training")]
RevisionOpt = Annotated[
    str | None, typer.Option("--revision", help="Hub revision of org/name models")
]
OfflineOpt = Annotated[
    bool, typer.Option("--offline", help="Hub models from the local cache only (HF_HUB_OFFLINE)")
]
_SUFFIX_FORMAT = {".csv": "csv", ".tsv": "tsv", ".md": "md", ".json": "json", ".jsonl": "jsonl"}


def _with_options(extra_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command one ``--flag VALUES`` option per entry of OPTIONS (collected in ``options``
    by the wrapper), after the command's own parameters."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        own = inspect.signature(fn, eval_str=True)
        params = [p for p in own.parameters.values() if p.name != "options"]
        for option in OPTIONS.values():
            tasks = " (train)" if option.tasks == {"train"} else ""
            tasks = " (infer)" if option.tasks == {"infer"} else tasks
            values = f": {', '.join(option.choices)}" if 0 < len(option.choices) <= 8 else ""
            annotation = Annotated[
                str | None,
                typer.Option(
                    f"--{option.flag}",
                    *([option.short] if option.short else []),
                    help=f"{option.help}{tasks}{values}",
                    rich_help_panel=extra_help,
                ),
            ]
            params.append(
                inspect.Parameter(
                    option.keyword,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=None,
                    annotation=annotation,
                )
            )

        params.append(
            inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
        )

        def command(**kwargs: Any) -> None:
            # click fills ctx.params in command-line order: the sweep keeps that order
            # (the last option given varies fastest, as written)
            ctx = kwargs.pop("ctx")
            keywords = {o.keyword for o in OPTIONS.values()}
            order = [k for k in ctx.params if k in keywords]
            options = {k: kwargs.pop(k) for k in order}
            fn(**kwargs, options={k: v for k, v in options.items() if v is not None})

        command.__name__ = fn.__name__
        command.__doc__ = fn.__doc__
        command.__signature__ = own.replace(parameters=params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate


def _writable(path: Path, force: bool, flag: str) -> None:
    """Nothing the user wrote is overwritten unless they say --force."""
    if path.exists() and not force:
        raise VramcalcError(f"{flag} {path} exists; add --force to overwrite it")
    if path.is_dir():
        raise VramcalcError(f"{flag} {path} is a folder; give a file name")
    if not path.parent.exists():
        raise VramcalcError(f"{flag} {path}: folder {path.parent} does not exist")


@_with_options("Options to sweep: a,b,c lists, a..b doubling, a..b:step linear ranges")
def sweep(
    models: Annotated[
        str,
        typer.Argument(
            metavar="MODEL[,MODEL...]", help="presets, config files, .gguf files or Hub ids"
        ),
    ],
    task: TaskOpt = TaskChoice.infer,
    fmt: Annotated[
        FormatChoice,
        typer.Option("--format", "-f", help="table (with a chart), csv, tsv, md, json, jsonl"),
    ] = FormatChoice.table,
    as_json: Annotated[bool, typer.Option("--json", help="same as --format json")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write the rows to FILE")
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="chart FILE.svg, .png or .html (needs the plot extra)"),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="overwrite an existing --output/--plot file")
    ] = False,
    tokens: Annotated[
        str | None, typer.Option("--tokens", help="training tokens (e.g. 2T): cost columns")
    ] = None,
    output_tokens: Annotated[
        str | None,
        typer.Option("--output-tokens", help="generated tokens per request: serving cost"),
    ] = None,
    price: Annotated[
        float | None, typer.Option("--price", min=0.0, help="USD per GPU-hour for the cost")
    ] = None,
    units: UnitsOpt = UnitsChoice.GiB,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    *,
    options: dict[str, str],
) -> None:
    """Estimate every combination of models and option values: one row each, with the fit
    verdict per GPU and (with --tokens / --output-tokens) the cost; optionally a chart."""
    from vramcalc.core.sweeps import sweep as run_sweep

    chosen = "json" if as_json else fmt.value
    if output is not None and chosen == "table":
        chosen = _SUFFIX_FORMAT.get(output.suffix.lower(), "")
        if not chosen:
            raise VramcalcError(
                f"--output {output}: give --format csv|tsv|md|json|jsonl or a file name "
                f"ending in {', '.join(_SUFFIX_FORMAT)}"
            )
    for path, flag in ((output, "--output"), (plot, "--plot")):
        if path is not None:
            _writable(path, force, flag)
    if plot is not None:
        from vramcalc.report.plot import check_plot_path

        check_plot_path(plot)
    result = run_sweep(
        models,
        task.value,
        tokens=tokens,
        output_tokens=output_tokens,
        usd_per_gpu_hour=price,
        revision=revision,
        offline=offline,
        **options,
    )
    if plot is not None:
        from vramcalc.report.plot import write_plot

        write_plot(result, plot, units.value)
    if chosen == "table":
        from vramcalc.report import sweep as report_sweep

        report_sweep.render_sweep(result, units.value)
    else:
        from vramcalc.report.sweep_output import to_text

        text = to_text(result, chosen, units.value)
        if output is None:
            sys.stdout.write(text)
        else:
            output.write_text(text, encoding="utf-8")
        if result.errors:
            sys.stderr.write(
                f"vramcalc: {result.errors} of {len(result.rows)} combinations were refused "
                "(see the error column)\n"
            )
    if output is not None or plot is not None:
        written = ", ".join(str(p) for p in (output, plot) if p is not None)
        sys.stderr.write(f"vramcalc: wrote {written}\n")


@_with_options("Options common to every --config (one value each)")
def compare(
    model: Annotated[
        str | None,
        typer.Argument(help="MODEL of every configuration (or --model inside each --config)"),
    ] = None,
    config: Annotated[
        list[str] | None,
        typer.Option(
            "--config",
            "-c",
            help='one configuration in option syntax, e.g. "--method qlora --lora-rank 16"; '
            "give it 2 to 6 times",
        ),
    ] = None,
    task: TaskOpt = TaskChoice.infer,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    units: UnitsOpt = UnitsChoice.GiB,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    *,
    options: dict[str, str],
) -> None:
    """Put 2-6 configurations side by side, component by component, with each one's
    difference from the first (e.g. --config "--method lora" --config "--method qlora")."""
    from vramcalc.core.sweeps import compare as run_compare

    configs = [parse_config(text) for text in config or []]
    labels = [text.strip() or "(defaults)" for text in config or []]
    comp = run_compare(
        configs,
        task.value,
        model=model,
        labels=labels,
        revision=revision,
        offline=offline,
        **options,
    )
    if as_json:
        from vramcalc.cli.options import print_json

        data = {
            "task": comp.task,
            "labels": comp.labels,
            "configurations": [r.model_dump(mode="json") for r in comp.rows],
            "differences_bytes": comp.differences(),
        }
        print_json(data, "comparison")
        return
    from vramcalc.report import sweep as report_sweep

    report_sweep.render_comparison(comp, units.value)


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep)
    app.command("compare")(compare)


def parse_config(text: str) -> dict[str, str]:
    """``"--method qlora --lora-rank=16"`` -> {"method": "qlora", "lora-rank": "16"}; ``--model``
    names the configuration's own model."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise VramcalcError(f"--config {text!r}: {exc}") from None
    out: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if not word.startswith("--"):
            raise VramcalcError(f"--config {text!r}: expected --option value, got {word!r}")
        name, eq, value = word[2:].partition("=")
        if not eq:
            if i + 1 >= len(words):
                raise VramcalcError(f"--config {text!r}: --{name} needs a value")
            value = words[i + 1]
            i += 1
        if name != "model" and name not in OPTIONS:
            import difflib

            close = difflib.get_close_matches(name, list(OPTIONS), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join('--' + c for c in close)}?" if close else ""
            raise VramcalcError(f"--config {text!r}: unknown option --{name}{hint}")
        out[name] = value
        i += 1
    return out
