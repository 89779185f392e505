"""Option types and help tidying shared by the commands: sizes as people write them (4k, 1.5B),
case-insensitive choices, and help without a type placeholder on every flag."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from vramcalc.errors import VramcalcError
from vramcalc.units import parse_count


class SizeParser:
    """Parse '4096', '4k', '32K', '1M', '1.5B' into an int within [low, high].

    `binary` reads k/M as 1024/1024² (context lengths are quoted that way: "4k" = 4,096);
    otherwise they are 10³/10⁶ (batch sizes, token budgets). The help says which."""

    def __init__(self, low: int, high: int, *, binary: bool = False) -> None:
        self.low, self.high, self.binary = low, high, binary

    def __call__(self, value: str | int) -> int:
        try:
            n = parse_count(value, binary=self.binary)
        except VramcalcError as exc:
            raise typer.BadParameter(str(exc)) from None
        if not self.low <= n <= self.high:
            raise typer.BadParameter(f"{value} is not in the range {self.low:,}..{self.high:,}")
        return n


LENGTH_HELP = " (4k = 4,096, 128k = 131,072)"


def size_option(*decls: str, help: str, low: int = 1, high: int, binary: bool = False) -> Any:
    """A count option that accepts human sizes; metavar LENGTH (binary) or SIZE (decimal)."""
    return typer.Option(
        *decls,
        parser=SizeParser(low, high, binary=binary),
        metavar="LENGTH" if binary else "SIZE",
        help=help + (LENGTH_HELP if binary else " (1k = 1,000)"),
    )


class TaskChoice(str, Enum):
    """The task, spelt as the commands are named (`vramcalc infer`, `cost train`): the value the
    library's fit/plan/sweep take and their JSON `task` keeps."""

    infer = "infer"
    train = "train"


def _task_choice(value: str | TaskChoice) -> TaskChoice:
    """Either spelling of spec.task (inference/infer, training/train, any case)."""
    if isinstance(value, TaskChoice):
        return value
    from vramcalc.spec.task import TASK_VERBS, parse_task

    try:
        return TaskChoice(TASK_VERBS[parse_task(value)])
    except VramcalcError as exc:
        raise typer.BadParameter(str(exc)) from None


def task_option(*decls: str, help: str = "") -> Any:
    """`--task`: inference or training, the command names infer and train read as the same."""
    return typer.Option(
        *decls,
        parser=_task_choice,
        metavar="TASK",
        help=(help + ": " if help else "") + "inference (infer) or training (train)",
    )


GpusFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--gpus-file",
        help="TOML file of \\[\\[gpu]] tables adding GPUs or overriding catalog fields such as prices "
        "(also $VRAMCALC_GPUS or ~/.config/vramcalc/gpus.toml)",
    ),
]


CheckOpt = Annotated[
    bool,
    typer.Option(
        "--check",
        help="exit code 1 when the job does not fit the GPU(s); 0 when it does, 2 on bad input",
    ),
]


NodesOpt = Annotated[
    int | None,
    typer.Option(
        "--nodes",
        min=1,
        max=100_000,
        help="machines in the job, GPUs split evenly (default 1; sets the host-memory figures)",
    ),
]
GpusPerNodeOpt = Annotated[
    int | None,
    typer.Option(
        "--gpus-per-node", min=1, max=1024, help="GPUs per machine (default: --num-gpus / --nodes)"
    ),
]
ExplainOpt = Annotated[
    bool, typer.Option("--explain", help="print each term's formula with the numbers")
]


def need_gpu_for_check(check: bool, gpu: str | None, gpu_mem: float | None) -> None:
    if check and gpu is None and gpu_mem is None:
        raise VramcalcError("--check needs a GPU to check against: add --gpu or --gpu-mem")


def warn(messages: list[str]) -> None:
    """Inputs used as given that may not be what was meant: one stderr line each, exit code kept."""
    for message in dict.fromkeys(messages):
        sys.stderr.write(f"vramcalc: warning: {message}\n")


def print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            sys.stdout.write(f"vramcalc {version('vramcalc')}\n")
        except PackageNotFoundError:  # pragma: no cover - run from a checkout without install
            sys.stdout.write("vramcalc (not installed)\n")
        raise typer.Exit()


def exit_if_not_fit(check: bool, fits: bool) -> None:
    """With --check, a job that does not fit ends the command with exit code 1 (after output)."""
    if check and not fits:
        raise typer.Exit(1)


def print_json(data: object, kind: str | None = None, key: str = "items") -> None:
    """The one JSON writer of the command line: every document is an object that begins with
    schema_version and kind (a list is put under `key`), written by safe_io.dumps_json."""
    from vramcalc.core.results import SCHEMA_VERSION
    from vramcalc.safe_io import dumps_json  # strict: no Infinity/NaN, ever

    if isinstance(data, list):
        data = {key: data}
    if isinstance(data, dict):
        data = {"schema_version": SCHEMA_VERSION, "kind": data.get("kind", kind)} | data
    sys.stdout.write(dumps_json(data) + "\n")


def use_gpus_file(path: Path | None, price_source: str | None = None) -> None:
    """Each command starts from the default lookup and price set, then `--gpus-file` and
    `--price-source` if given (so one invocation's choice never leaks into the next in the same
    process, e.g. under CliRunner)."""
    from vramcalc.sources.presets import use_gpus_file as use
    from vramcalc.sources.presets import use_price_source

    use(path)
    use_price_source(price_source)


# typer ≥ 0.2x prints each option's Python type as a placeholder (<bool>, <str>, <int range>):
# flags take no value, so they get none; other values get a plain metavar.
_METAVARS: dict[Any, str] = {str: "TEXT", int: "INTEGER", float: "NUMBER", Path: "FILE"}


def tidy_params(command: Any, ctx: Any) -> None:
    """Help without placeholders on flags; every choice matched case-insensitively (--dtype INT8)."""
    params = [*command.params, command.get_help_option(ctx)]
    for param in params:
        if isinstance(param, typer.core.TyperArgument) and param.display_type(ctx) == "<str>":
            # arguments print their type beside their name; a plain string needs no "<str>"
            param.display_type_rich = lambda ctx: "TEXT"  # type: ignore[method-assign]
        if param is None or not isinstance(param, typer.core.TyperOption):
            continue
        desc = getattr(param, "type_descriptor", None)
        if desc is not None and desc.is_choice:
            desc.parameter_info.case_sensitive = False
        if param.metavar is not None:
            continue
        if param.is_flag:
            param.metavar = ""
        elif desc is not None and not desc.is_choice:
            annotation = desc.annotation
            args = getattr(annotation, "__args__", ())
            base = (
                next((a for a in args if a is not type(None)), annotation) if args else annotation
            )
            if base in _METAVARS:
                param.metavar = _METAVARS[base]


class VramcalcGroup(TyperGroup):
    """The command group: each command's options tidied before help or parsing sees them."""

    def get_params(self, ctx: Any) -> Any:
        tidy_params(self, ctx)
        return super().get_params(ctx)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            tidy_params(command, ctx)
        return command
