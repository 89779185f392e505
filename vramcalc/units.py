"""Byte constants, dtype widths and human-readable size parsing/formatting.

Bytes are integers everywhere inside vramcalc; conversion to GiB/GB happens only when rendering.

>>> parse_count("7B")
7000000000
>>> parse_count("1.5b")
1500000000
>>> parse_count("2T")
2000000000000
>>> format_bytes(2 * GIB)
'2.00 GiB'
>>> format_bytes(2 * GIB, "GB")
'2.15 GB'
"""

from __future__ import annotations

from .errors import VramcalcError

KIB = 1024
MIB = 1024**2
GIB = 1024**3
GB = 10**9


_COUNT_SUFFIXES = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12}


def parse_count(text: str | int | float) -> int:
    """Parse a parameter/token count such as '7B', '70b', '1.5T', '124M' or '7e9'."""
    if isinstance(text, int | float):
        value = float(text)
    else:
        raw = text.strip().replace("_", "").replace(",", "")
        suffix = raw[-1:].lower() if raw and raw[-1:].isalpha() else ""
        number = raw[: len(raw) - len(suffix)] if suffix else raw
        if suffix not in _COUNT_SUFFIXES:
            raise VramcalcError(
                f"cannot read count {text!r}: use a number with K, M, B or T (e.g. 7B)"
            )
        try:
            value = float(number) * _COUNT_SUFFIXES[suffix]
        except ValueError:
            raise VramcalcError(
                f"cannot read count {text!r}: use a number with K, M, B or T (e.g. 7B)"
            ) from None
    if not value > 0 or value != value or value > 1e16:
        raise VramcalcError(f"count {text!r} must be positive and below 1e16")
    return int(round(value))


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
