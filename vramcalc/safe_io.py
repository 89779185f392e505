"""Reading files a user names and writing what vramcalc prints, safely.

Every file a user can point vramcalc at (config.json, a shard index, safetensors and GGUF headers,
a GPU TOML file, a ``--record`` JSONL file) goes through here:

- only regular files are opened (``os.stat`` + ``S_ISREG`` first, then ``O_NONBLOCK`` and an
  ``fstat`` on the open descriptor): a FIFO, a device or a directory is refused, never blocks;
- sizes are capped before reading (config.json and index files 10 MB, TOML 1 MB);
- JSON is parsed with bounded nesting (64 levels), Python's 4,300-digit integer limit turned into
  one line, and NaN/Infinity (or a number that overflows to infinity, ``1e320``) refused;
- JSON output is strict (``allow_nan=False``): an infinite or NaN value is an error, never the
  non-JSON token ``Infinity``;
- appends to a JSONL file are one ``os.write`` of the whole line on an ``O_APPEND`` descriptor
  under ``fcntl.flock``, so concurrent writers never tear or interleave lines.

Every failure is a :class:`VramcalcError` with one line naming the file.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any

from vramcalc.errors import VramcalcError

MAX_JSON_BYTES = 10_000_000  # config.json and model.safetensors.index.json (largest real: ~2 MB)
MAX_TOML_BYTES = 1_000_000  # a user GPU file: a few [[gpu]] tables
MAX_JSON_DEPTH = 64  # real configs nest 3-4 levels; json's C parser recurses per level
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(rb"[^\[\]{}]+")


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def expand_user(text: str | Path) -> Path:
    """``~`` and ``~user`` expanded like a shell: an unknown user (or no home) leaves the path as
    written instead of raising RuntimeError."""
    if "~" not in str(text):  # no part can start with ~: expanduser would return it unchanged
        return Path(text)
    try:
        return Path(text).expanduser()
    except RuntimeError:
        return Path(text)


def check_regular(path: Path, what: str = "file") -> os.stat_result:
    """``os.stat`` of `path` (following symlinks); refuses anything but an existing regular file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise VramcalcError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:  # ELOOP, ENAMETOOLONG, EACCES; ValueError: NUL byte
        reason = _reason(exc) if isinstance(exc, OSError) else "invalid path"
        raise VramcalcError(f"{path}: cannot read {what}: {reason}") from None
    if not stat.S_ISREG(st.st_mode):
        raise VramcalcError(f"{path}: is {_kind(st.st_mode)}, not a {what}")
    return st


def open_regular(path: Path, what: str = "file") -> tuple[Any, int]:
    """A binary file object for a regular file and its size. Opened non-blocking and checked again
    on the descriptor, so a FIFO swapped in after the stat cannot block the read."""
    check_regular(path, what)
    try:
        fd = os.open(path, os.O_RDONLY | _NONBLOCK)
    except OSError as exc:
        raise VramcalcError(f"{path}: cannot read {what}: {_reason(exc)}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise VramcalcError(f"{path}: is {_kind(st.st_mode)}, not a {what}")
    return os.fdopen(fd, "rb"), st.st_size


def read_bytes(path: Path, max_bytes: int, what: str = "file") -> bytes:
    """The whole file, refused above `max_bytes` (said in the message)."""
    f, size = open_regular(path, what)
    with f:
        if size > max_bytes:
            raise VramcalcError(
                f"{path}: {what} of {size:,} bytes is larger than the {max_bytes:,}-byte limit"
            )
        try:
            data: bytes = f.read(max_bytes + 1)
        except OSError as exc:
            raise VramcalcError(f"{path}: cannot read {what}: {_reason(exc)}") from None
    if len(data) > max_bytes:
        raise VramcalcError(f"{path}: {what} is larger than the {max_bytes:,}-byte limit")
    return data


def read_text(path: Path, max_bytes: int, what: str = "file") -> str:
    """A UTF-8 text file, size-capped; a non-UTF-8 file is one clear error."""
    data = read_bytes(path, max_bytes, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VramcalcError(
            f"{path}: {what} is not UTF-8 text (byte {exc.start}: {data[exc.start]:#04x})"
        ) from None


def json_depth(raw: bytes) -> int:
    """Deepest nesting of objects/arrays in JSON text (brackets inside strings do not count)."""
    brackets = _BRACKETS.sub(b"", _STRINGS.sub(b'""', raw))
    depth = deepest = 0
    for ch in brackets:
        if ch in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is too large for a float")
    return value


def loads_json(raw: bytes | str, where: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON strictly: bounded depth, no NaN/Infinity, integers within Python's digit limit."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    depth = json_depth(data)
    if depth > max_depth:
        raise VramcalcError(f"{where}: JSON nested {depth} levels deep (the limit is {max_depth})")
    try:
        return json.loads(data, parse_constant=_no_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise VramcalcError(
            f"{where}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except UnicodeDecodeError:
        raise VramcalcError(f"{where}: JSON is not UTF-8 text") from None
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise VramcalcError(f"{where}: JSON nested too deeply") from None
    except ValueError as exc:  # an integer over 4,300 digits (sys.get_int_max_str_digits), NaN
        first = str(exc).splitlines()[0][:120]
        raise VramcalcError(f"{where}: invalid JSON value: {first}") from None


def load_json(path: Path, max_bytes: int = MAX_JSON_BYTES, what: str = "JSON file") -> Any:
    """A JSON file (config.json, the shard index), size-capped and strictly parsed."""
    return loads_json(read_bytes(path, max_bytes, what), str(path))


def dumps_json(data: object) -> str:
    """The one JSON writer: strict JSON, an infinite or NaN number is an error, not `Infinity`."""
    try:
        return json.dumps(data, indent=2, allow_nan=False)
    except ValueError:
        raise VramcalcError(
            "the result holds an infinite or undefined number (check prices, budgets and sizes: "
            "they must be finite)"
        ) from None


def clean_text(text: object) -> str:
    """`text` with control characters (C0 and C1, escape included; not tab or newline) removed:
    data from files is printed, never interpreted by the terminal."""
    return _CONTROL.sub("", str(text))


def safe_relative(name: str, where: str) -> str:
    """A file name from an index, refused when it could leave its folder (absolute, ``..``, NUL).

    Checked on the name itself, not on the resolved path: a Hugging Face cache snapshot's shards
    are symlinks into ``../../blobs`` by design, and the name is what an index controls."""
    parts = name.replace("\\", "/").split("/")
    if not name or "\x00" in name or name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        raise VramcalcError(f"{where}: shard name {clean_text(name)!r} is not a relative file name")
    if ".." in parts or any(p == "" for p in parts):
        raise VramcalcError(f"{where}: shard name {clean_text(name)!r} leaves the model folder")
    return name


def check_appendable(path: Path) -> None:
    """Refuse, before any work is done, a ``--record`` path that cannot be appended to: a
    directory, FIFO or device; an existing file without write permission; a folder that cannot
    be created or written."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise VramcalcError(f"{path}: cannot use as a record file: {_reason(exc)}") from None
    if st is not None:
        if not stat.S_ISREG(st.st_mode):
            raise VramcalcError(f"{path}: is {_kind(st.st_mode)}, not a record file")
        if not os.access(path, os.W_OK):
            raise VramcalcError(f"{path}: record file is not writable (permission denied)")
        return
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise VramcalcError(f"{path}: cannot create the record file: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise VramcalcError(f"{path}: cannot create the record file: {parent} is not writable")


def append_line(path: Path, line: str) -> None:
    """Append one line to `path` atomically with respect to other vramcalc writers.

    Under an exclusive ``flock``: if the file does not end with a newline (an interrupted earlier
    write), one is prepended; then the whole line goes out in one ``os.write`` on an ``O_APPEND``
    descriptor (looping only on a short write) and is fsync'd. Existing bytes are never rewritten.
    """
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NONBLOCK, 0o644)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise VramcalcError(f"{path}: not a regular file, not a record file")
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            data = line.rstrip("\n").encode("utf-8") + b"\n"
            size = os.fstat(fd).st_size
            if size and _last_byte(path, size) != b"\n":
                data = b"\n" + data
            while data:
                written = os.write(fd, data)
                data = data[written:]
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _last_byte(path: Path, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | _NONBLOCK)
    try:
        return os.pread(fd, 1, size - 1)
    finally:
        os.close(fd)
