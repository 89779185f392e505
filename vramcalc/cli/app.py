"""Typer command tree: parse options, call the core, render. User errors: one stderr line, exit 2."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from vramcalc.cli import cost, fit, gpus, measure, rlhf, sources, sweep
from vramcalc.cli.infer import infer
from vramcalc.cli.options import VramcalcGroup, print_version
from vramcalc.cli.presets import presets_app
from vramcalc.cli.train import train
from vramcalc.errors import VramcalcError

app = typer.Typer(
    name="vramcalc",
    help="How much GPU memory does serving or training a large language model take?",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    cls=VramcalcGroup,
)
app.add_typer(presets_app, name="presets")


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=print_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """How much GPU memory does serving or training a large language model take?"""


# command modules register in the order `vramcalc --help` lists them
app.command()(infer)
app.command()(train)
for _module in (gpus, cost, fit, sources, measure, rlhf, sweep):
    _module.register(app)


def _click_class(name: str) -> type[Exception]:
    """Typer vendors click in recent releases: find its exception classes through typer's own."""
    for cls in typer.BadParameter.__mro__:
        if cls.__name__ == name:
            return cls
    raise LookupError(name)  # pragma: no cover


_UsageError = _click_class("UsageError")
_ClickException = _click_class("ClickException")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line on stderr and exit code 2."""
    from vramcalc.cli.guard import LAST_RESORT, hardened_command, one_line, safe_streams

    safe_streams()
    command = hardened_command(app, argv)
    try:
        code = command.main(args=argv, prog_name="vramcalc", standalone_mode=False)
    except VramcalcError as exc:
        _fail(str(exc))
    except _UsageError as exc:
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__.startswith("NoArgsIsHelp") and ctx is not None:
            sys.stdout.write(ctx.get_help() + "\n")
            sys.exit(0)
        _fail(exc.format_message())  # type: ignore[attr-defined]
    except _ClickException as exc:
        _fail(exc.format_message())  # type: ignore[attr-defined]
    except typer.Abort:
        sys.exit(130)
    except BrokenPipeError:  # `vramcalc ... | head`
        sys.exit(0)
    except LAST_RESORT as exc:  # input-driven failures not caught where they arise
        _fail(one_line(exc))
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str) -> None:
    from vramcalc.safe_io import clean_text

    # One line: click lists choices on tab-indented lines, pydantic prefixes "Value error, ";
    # file data never reaches the terminal raw.
    message = " ".join(clean_text(message).replace("Value error, ", "").split())
    sys.stderr.write(f"vramcalc: error: {message}\n")
    sys.exit(2)
