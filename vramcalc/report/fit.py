"""Rendering of training-stack choices and of fit/plan suggestions ("what would make it fit")."""

from __future__ import annotations

from typing import Any

from rich.console import Console


def render_stack(summary: dict[str, Any]) -> None:
    """One line under the table naming the profile and the convention values it set."""
    values = summary["values"]
    shown = ", ".join(
        f"{k}={v}"
        for k, v in values.items()
        if k != "framework" and (k in summary["from_flags"] or k in summary["from_profile"])
    )
    version = f"@{summary['version']}" if summary.get("version") else ""
    unknown = summary.get("unknown_in_profile") or []
    tail = f" (not traced, baseline kept: {', '.join(unknown)})" if unknown else ""
    Console(highlight=False, soft_wrap=True).print(
        f"framework {summary['framework']}{version}: {shown or 'baseline conventions'}{tail}",
        highlight=False,
    )
