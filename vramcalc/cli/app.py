"""Typer command tree: parse options, call the core, render. User errors: one stderr line, exit 2.

Commands are registered cheaply: a process that runs one command (``vramcalc infer ...``) imports
and builds that command's module only; ``vramcalc --help``, a misspelt name and the ``app``
attribute (tests, completion) get the whole tree, in the order below.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from vramcalc.cli.options import VramcalcGroup, print_version
from vramcalc.errors import VramcalcError


def _infer(app: typer.Typer) -> None:
    from vramcalc.cli.infer import infer

    app.command()(infer)


def _train(app: typer.Typer) -> None:
    from vramcalc.cli.train import train

    app.command()(train)


def _presets(app: typer.Typer) -> None:
    from vramcalc.cli.presets import presets_app

    app.add_typer(presets_app, name="presets")


def _module(name: str) -> Callable[[typer.Typer], None]:
    def register(app: typer.Typer) -> None:
        import importlib

        importlib.import_module(f"vramcalc.cli.{name}").register(app)

    return register


# (command names, how to register them), in the order `vramcalc --help` lists them
COMMANDS: tuple[tuple[tuple[str, ...], Callable[[typer.Typer], None]], ...] = (
    (("presets",), _presets),
    (("infer",), _infer),
    (("train",), _train),
    (("gpus",), _module("gpus")),
    (("cost",), _module("cost")),
    (("fit", "plan"), _module("fit")),
    (("inspect",), _module("sources")),
    (("trace", "measure", "validate"), _module("measure")),
    (("rlhf",), _module("rlhf")),
    (("sweep", "compare"), _module("sweep")),
)


def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=print_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """How much GPU memory does serving or training a large language model take?"""


def make_app(command: str | None = None) -> typer.Typer:
    """The Typer app with every command, or with only `command` when that names one."""
    app = typer.Typer(
        name="vramcalc",
        help="How much GPU memory does serving or training a large language model take?",
        no_args_is_help=True,
        add_completion=True,
        pretty_exceptions_enable=False,
        cls=VramcalcGroup,
    )
    app.callback()(_root)
    chosen = [reg for names, reg in COMMANDS if command in names]
    for register in chosen or [reg for _, reg in COMMANDS]:
        register(app)
    return app


_APPS: dict[str | None, typer.Typer] = {}


def get_app(command: str | None = None) -> typer.Typer:
    """`make_app(command)`, made once per process."""
    if not any(command in names for names, _ in COMMANDS):
        command = None
    if command not in _APPS:
        _APPS[command] = make_app(command)
    return _APPS[command]


def __getattr__(name: str) -> Any:
    if name == "app":  # the whole tree, built on first use
        return get_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    args = sys.argv[1:] if argv is None else argv
    name = args[0] if args and not args[0].startswith("-") else None
    try:
        command = hardened_command(get_app(name), argv)
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
