"""Input safety of the command line as a whole: finite float options, output streams that cannot
fail on a character, and the last-resort conversion of an unexpected error into one line.

The specific causes are fixed where they arise (``safe_io``, the source readers); this module
makes sure that whatever is left still ends as ``vramcalc: error: ...`` and exit code 2.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import typer
import typer.main

from .safe_io import clean_text

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


_BUILT: dict[int, Any] = {}


def hardened_command(app: typer.Typer) -> Any:
    """The click command of `app` with finite float options, built once per process (building
    it walks every command's signature: ~0.05 s that in-process callers would pay per call)."""
    if id(app) not in _BUILT:
        _BUILT[id(app)] = require_finite_floats(typer.main.get_command(app))
    return _BUILT[id(app)]


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
