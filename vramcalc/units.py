"""Byte constants, dtype widths and human-readable size parsing/formatting.

Bytes are integers everywhere inside vramcalc; conversion to GiB/GB happens only when rendering.

>>> parse_count("7B")
7000000000
>>> parse_count("1.5b")
1500000000
>>> parse_count("2T")
2000000000000
>>> parse_count("4k", binary=True), parse_count("128K", binary=True), parse_count("1M", binary=True)
(4096, 131072, 1048576)
>>> parse_param_count("7B")
7000000000
>>> format_bytes(2 * GIB)
'2.00 GiB'
>>> format_bytes(2 * GIB, "GB")
'2.15 GB'
"""

from __future__ import annotations

from vramcalc.errors import VramcalcError

KIB = 1024
MIB = 1024**2
GIB = 1024**3
GB = 10**9


_COUNT_SUFFIXES = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12}
# Context lengths are quoted in powers of two: "4k context" is 4,096 tokens (Llama 2), "128k" is
# 131,072 (Llama 3.1 max_position_embeddings), "1M" is 1,048,576.
_BINARY_SUFFIXES = {"": 1, "k": 2**10, "m": 2**20, "b": 2**30, "g": 2**30, "t": 2**40}


def parse_count(text: str | int | float, *, binary: bool = False) -> int:
    """Parse a parameter/token count such as '7B', '70b', '1.5T', '124M', '7e9' or '32K'.

    With `binary` the suffixes are powers of two (k = 1024), as context lengths are quoted.
    The value must come out a whole number of at least 1 ('0.4' and '2.5' are refused)."""
    suffixes = _BINARY_SUFFIXES if binary else _COUNT_SUFFIXES
    if isinstance(text, bool):
        raise VramcalcError(f"cannot read count {text!r}: use a number such as 7B or 4096")
    if isinstance(text, int | float):
        value = float(text)
    else:
        raw = text.strip().replace("_", "").replace(",", "")
        suffix = raw[-1:].lower() if raw and raw[-1:].isalpha() else ""
        number = raw[: len(raw) - len(suffix)] if suffix else raw
        if suffix not in suffixes:
            raise VramcalcError(
                f"cannot read count {text!r}: use a number with K, M, B or T (e.g. 4096, 4k, 7B)"
            )
        try:
            value = float(number) * suffixes[suffix]
        except ValueError:
            raise VramcalcError(
                f"cannot read count {text!r}: use a number with K, M, B or T (e.g. 4096, 4k, 7B)"
            ) from None
    if not value > 0 or value != value or value > 1e16:
        raise VramcalcError(f"count {text!r} must be positive and below 1e16")
    if value < 1 or abs(value - round(value)) > 1e-6 * value:
        raise VramcalcError(f"count {text!r} is not a whole number (e.g. 4096, 4k, 7B)")
    return int(round(value))


# Below this a bare number is almost surely a size in billions typed without its unit.
_MIN_BARE_PARAMS = 1000


def parse_param_count(text: str | int | float) -> int:
    """A model size: like parse_count, but a bare number below a thousand is refused ("7" is
    not seven parameters; write 7B), as is anything that rounds to under one parameter."""
    raw = str(text).strip().replace("_", "").replace(",", "")
    if not isinstance(text, bool) and not raw[-1:].isalpha():
        try:
            bare_value: float | None = float(raw)
        except ValueError:
            bare_value = None
        if bare_value is not None and bare_value < _MIN_BARE_PARAMS:
            raise VramcalcError(
                f"model size {text!r} has no unit: write it with K, M, B or T (e.g. {raw}B)"
            )
    return parse_count(text)


def bytes_to(value_bytes: int | float, units: str = "GiB") -> float:
    """Bytes in GiB (2^30) or GB (10^9)."""
    return value_bytes / (GIB if units == "GiB" else GB)


def format_bytes(value_bytes: int | float, units: str = "GiB") -> str:
    return f"{bytes_to(value_bytes, units):.2f} {units}"


def format_duration(seconds: float) -> str:
    """Seconds as the unit a person reads best: s, min, h, then days past two days."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:,.1f} days"


def format_usd(value: float | None) -> str:
    """Dollars to the cent; sums under a cent keep two significant digits instead of "$0.00"."""
    if value is None:
        return "—"
    if 0 < value < 0.01:
        return f"${value:.2g}"
    return f"${value:,.2f}"
