"""The sweepable options as data, and how a value list such as ``2k,8k`` or ``1..64`` is read.

One :class:`SweepOption` per option: its CLI flag, the library keyword it becomes, the tasks it
applies to, how one value is parsed, and (for names) the valid choices. Adding a sweepable option
(say ``--engine`` once serving engines exist) is one more entry in :data:`OPTIONS`.

Value lists (the same grammar on the command line and in ``vramcalc.sweep(...)`` strings)::

    8k,32k,128k     a comma list; sizes as the single commands read them: lengths (seq-len) with
                    k = 1024 as context windows are quoted, counts (batch size, ranks) with k = 1000
    1..64           powers of two: doubling from the start while <= the end: 1,2,4,8,16,32,64
    1..8:1          linear: start, start + step, ... while <= the end: 1,2,...,8
    512..4096:512   linear with any step (the step is a count too: 1k..8k:1k)

>>> parse_values(OPTIONS["batch-size"], "1..64")
[1, 2, 4, 8, 16, 32, 64]
>>> parse_values(OPTIONS["seq-len"], "2k,8k")
[2048, 8192]
>>> parse_values(OPTIONS["zero"], "0..3:1")
[0, 1, 2, 3]
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

from vramcalc.core.optimizers import Optimizer
from vramcalc.errors import VramcalcError
from vramcalc.spec.quant import DEFAULT_FORMAT, FORMATS, KV_BYTES
from vramcalc.units import parse_count

Task = Literal["infer", "train"]
TASKS: tuple[Task, ...] = ("infer", "train")
MAX_RANGE_POINTS = 10_000  # one range; a typo like 1..1e9:1 is refused rather than expanded
INFER: frozenset[Task] = frozenset({"infer"})
TRAIN: frozenset[Task] = frozenset({"train"})
BOTH: frozenset[Task] = frozenset(TASKS)


def _int(text: str) -> int:
    """A whole number that may be 0 (ZeRO stage): plain digits, else a count (``2k``)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    return parse_count(text)


def _length(text: str) -> int:
    """A token length: k = 1024, as `--seq-len` reads it in every command (4k = 4096)."""
    return parse_count(text, binary=True)


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise VramcalcError(f"cannot read number {text!r}") from None
    if not value > 0 or value != value:
        raise VramcalcError(f"number {text!r} must be positive")
    return value


def _bool(text: str) -> bool:
    word = text.strip().lower()
    if word in ("true", "yes", "on", "1"):
        return True
    if word in ("false", "no", "off", "0"):
        return False
    raise VramcalcError(f"cannot read {text!r} as true or false")


@dataclass(frozen=True, slots=True)
class SweepOption:
    """One option a sweep can vary: ``--flag`` on the command line, ``keyword`` in the library."""

    flag: str
    keyword: str
    tasks: frozenset[Task]
    help: str
    parse: Callable[[str], Any] = str
    choices: tuple[str, ...] = ()
    ranges: bool = False  # numeric: accepts a..b and a..b:step
    short: str = ""  # one-letter CLI spelling, as infer/train have it (-b, -s)

    def read(self, text: str) -> Any:
        """One value; a name outside `choices` is refused with the close matches."""
        if self.choices:
            value = text.strip()
            if value not in self.choices:
                close = difflib.get_close_matches(value, self.choices, n=3, cutoff=0.5)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise VramcalcError(
                    f"--{self.flag}: unknown value {value!r}{hint} (valid: {', '.join(self.choices)})"
                )
            return value
        try:
            return self.parse(text)
        except VramcalcError as exc:
            raise VramcalcError(f"--{self.flag}: {exc}") from None


def _opt(flag: str, tasks: frozenset[Task], help: str, **kw: Any) -> SweepOption:
    kw.setdefault("keyword", flag.replace("-", "_"))
    return SweepOption(flag=flag, tasks=tasks, help=help, **kw)


_PRECISIONS = ("fp32", "bf16-mixed", "fp16-mixed", "bf16", "fp16")

# flag -> option. The keyword is the flag with underscores, as estimate_inference/estimate_training
# spell it; the library validates each combination (an invalid one becomes a row with an error).
# fmt: off
OPTIONS: dict[str, SweepOption] = {
    o.flag: o
    for o in (
        # both tasks
        _opt("batch-size", BOTH, "sequences per step", parse=parse_count, ranges=True, short="-b"),
        _opt("seq-len", BOTH, "tokens per sequence", parse=_length, ranges=True, short="-s"),
        _opt("gpu", BOTH, "GPU preset: fit verdict and headroom per GPU"),
        _opt("gpu-mem", BOTH, "GPU memory, GiB", parse=_float, ranges=True, keyword="gpu_mem_gib"),
        _opt("attention", BOTH, "attention kernel", choices=("flash", "eager")),
        _opt("quant", BOTH, "quantization format (qlora: the base format)", choices=tuple(FORMATS)),
        # inference
        _opt("dtype", INFER, "weight dtype", choices=tuple(DEFAULT_FORMAT)),
        _opt("kv-dtype", INFER, "KV cache dtype", choices=tuple(KV_BYTES)),
        _opt(
            "logits", INFER, "logits kept (last: generation, all: scoring)", choices=("last", "all")
        ),
        # training
        _opt("method", TRAIN, "fine-tuning method", choices=("full", "lora", "qlora")),
        _opt("lora-rank", TRAIN, "LoRA rank r", parse=parse_count, ranges=True),
        _opt("precision", TRAIN, "training precision", choices=_PRECISIONS),
        _opt("optimizer", TRAIN, "optimizer", choices=tuple(o.value for o in Optimizer)),
        _opt("grad-accum", TRAIN, "micro-batches per step", parse=parse_count, ranges=True),
        _opt("grad-checkpointing", TRAIN, "activation recomputation", choices=("none", "full")),
        _opt("num-gpus", TRAIN, "GPUs in the job", parse=parse_count, ranges=True),
        _opt("zero", TRAIN, "DeepSpeed ZeRO stage 0-3", parse=_int, ranges=True),
        _opt("fsdp", TRAIN, "FSDP strategy", choices=("full", "grad-op", "no-shard", "hybrid")),
        _opt("offload", TRAIN, "CPU offload", choices=("none", "optimizer", "params")),
        _opt("tp", TRAIN, "tensor-parallel degree", parse=parse_count, ranges=True),
        _opt("pp", TRAIN, "pipeline stages", parse=parse_count, ranges=True),
        _opt("ep", TRAIN, "expert-parallel degree", parse=parse_count, ranges=True),
        _opt("cp", TRAIN, "context-parallel degree", parse=parse_count, ranges=True),
        _opt("sp", TRAIN, "Megatron sequence parallelism (true, false)", parse=_bool),
    )
}
# fmt: on
KEYWORDS: dict[str, SweepOption] = {o.keyword: o for o in OPTIONS.values()}
assert set(get_args(Task)) == set(TASKS)


def _expand_range(option: SweepOption, text: str) -> list[Any]:
    """``a..b`` doubles from a while <= b; ``a..b:s`` steps linearly by s."""
    span, _, step_text = text.partition(":")
    start_text, _, end_text = span.partition("..")
    start, end = option.read(start_text), option.read(end_text)
    if end < start:
        raise VramcalcError(f"--{option.flag}: range {text!r} ends below its start")
    if step_text:
        step = option.read(step_text)
        if not step > 0:
            raise VramcalcError(f"--{option.flag}: range step in {text!r} must be positive")
        count = int((end - start) // step) + 1
        make: Callable[[int], Any] = lambda i: start + i * step  # noqa: E731
    else:
        if not start > 0:
            raise VramcalcError(
                f"--{option.flag}: a doubling range starts above 0; for {text!r} write "
                f"{start_text}..{end_text}:1 (linear)"
            )
        count = 1
        while start * 2**count <= end:
            count += 1
        make = lambda i: start * 2**i  # noqa: E731
    if count > MAX_RANGE_POINTS:
        raise VramcalcError(
            f"--{option.flag}: range {text!r} has {count:,} points (at most {MAX_RANGE_POINTS:,})"
        )
    return [make(i) for i in range(count)]


def parse_values(option: SweepOption, text: str | Any) -> list[Any]:
    """A comma list of values and ranges, in order, duplicates dropped."""
    if not isinstance(text, str):  # a library caller's number or bool
        return [text]
    values: list[Any] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise VramcalcError(f"--{option.flag}: empty value in {text!r}")
        if ".." in part:
            if not option.ranges:
                raise VramcalcError(f"--{option.flag} takes names, not a range ({part!r})")
            values.extend(_expand_range(option, part))
        else:
            values.append(option.read(part))
    return list(dict.fromkeys(values))


def option_for(name: str, task: Task, also: tuple[str, ...] = ()) -> SweepOption:
    """The option named by a flag (``seq-len``) or keyword (``seq_len``) that applies to `task`;
    an unknown name is refused with the close matches among the options and `also` (the calling
    function's own keywords)."""
    key = name.lstrip("-")
    option = OPTIONS.get(key) or KEYWORDS.get(key)
    if option is None:
        known = sorted(OPTIONS)
        close = difflib.get_close_matches(key.replace("_", "-"), known, n=3, cutoff=0.5)
        close += difflib.get_close_matches(key, also, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise VramcalcError(f"unknown sweep option {name!r}{hint} (valid: {', '.join(known)})")
    if task not in option.tasks:
        other = "train" if task == "infer" else "infer"
        raise VramcalcError(f"--{option.flag} is a {other} option; use it with --task {other}")
    return option
