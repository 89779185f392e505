"""Input safety of the command line as a whole: finite float options, output streams that cannot
fail on a character, and the last-resort conversion of an unexpected error into one line.

The specific causes are fixed where they arise (``safe_io``, the source readers); this module
makes sure that whatever is left still ends as ``vramcalc: error: ...`` and exit code 2.
"""

from __future__ import annotations

import copy
import math
import sys
from collections.abc import Callable
from typing import Any

import typer
import typer.main

from vramcalc.safe_io import clean_text

# Errors that input alone can provoke in the standard library (a path too long, a symlink loop,
# an integer too large for a float, text the terminal cannot encode); the last resort turns them
# into one line instead of a traceback.
LAST_RESORT = (OSError, RecursionError, OverflowError, UnicodeError, MemoryError)
_SAMPLE = "×–█·…≈"  # characters the tables and notes use


def _finite(previous: Callable[..., Any] | None) -> Callable[..., Any]:
    def check(ctx: Any, param: Any, value: Any) -> Any:
        values = value if isinstance(value, list | tuple) else [value]
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise typer.BadParameter(f"{v} is not a finite number", ctx=ctx, param=param)
        return previous(ctx, param, value) if previous is not None else value

    return check


def require_finite_floats(command: Any) -> Any:
    """Every option and argument of `command` and its subcommands refuses nan and ±inf floats
    (click's FloatRange lets both through: nan compares false to any bound)."""
    stack = [command]
    while stack:
        cmd = stack.pop()
        stack.extend(getattr(cmd, "commands", {}).values())
        for param in cmd.params:
            param.callback = _finite(param.callback)
    return command


_BUILT: dict[tuple[int, str | None], Any] = {}


def _only(app: typer.Typer, name: str) -> typer.Typer | None:
    """A copy of `app` that registers only its command or group called `name` (None: no such
    name). Building the click command walks every registered command's signature; a process that
    runs one command needs only that one built."""
    commands = [
        info
        for info in app.registered_commands
        if info.callback is not None
        and (info.name or typer.main.get_command_name(info.callback.__name__)) == name
    ]
    groups = [info for info in app.registered_groups if info.name == name]
    if len(commands) + len(groups) != 1:
        return None
    only = copy.copy(app)
    only.registered_commands = commands
    only.registered_groups = groups
    return only


def hardened_command(app: typer.Typer, argv: list[str] | None = None) -> Any:
    """The click command of `app` with finite float options, built once per process (building
    it walks every command's signature: ~0.05 s that in-process callers would pay per call).

    When the first argument names a command (``vramcalc infer ...``), the group is built with
    that command alone: parsing, help and errors of that command are the same, and the others
    are not built (~0.08 s at each start). Anything else (no arguments, an option, a misspelt
    name, completion) gets the whole tree."""
    args = sys.argv[1:] if argv is None else argv
    name = args[0] if args and not args[0].startswith("-") else None
    target = _only(app, name) if name is not None else None
    key = (id(app), name if target is not None else None)
    if key not in _BUILT:
        _BUILT[key] = require_finite_floats(typer.main.get_command(target or app))
    return _BUILT[key]


def safe_streams() -> None:
    """On a terminal or pipe whose encoding lacks ×, – or █ (``PYTHONIOENCODING=ascii``, a C
    locale), such characters print as '?' instead of raising UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        encoding = getattr(stream, "encoding", None) or "utf-8"
        try:
            _SAMPLE.encode(encoding)
        except (UnicodeEncodeError, LookupError):
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is not None:
                reconfigure(errors="replace")


def one_line(exc: BaseException) -> str:
    """The last-resort message: the error's kind and its first line, control characters removed."""
    if isinstance(exc, RecursionError):
        return "input nested too deeply to process"
    if isinstance(exc, MemoryError):
        return "input too large to process (out of memory)"
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        text = f"{where}{exc.strerror}"
    else:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return clean_text(f"{text[:300]} ({type(exc).__name__})")
