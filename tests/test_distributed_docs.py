"""docs/distributed.md examples are real CLI output: a stale block fails here.

Blocks use the README's convention (`<!-- vramcalc: ARGS -->` then a ```text block). Refresh with
``PYTHONPATH=. python tests/test_distributed_docs.py``.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from typer.testing import CliRunner

from vramcalc.cli import app

DOC = Path(__file__).resolve().parent.parent / "docs" / "distributed.md"
BLOCK = re.compile(r"(<!-- vramcalc: (?P<args>.+?) -->\n```text\n)(?P<body>.*?)(```)", re.S)
ENV = {"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}


def run(args: str) -> str:
    result = CliRunner().invoke(app, shlex.split(args), env=ENV)
    text = result.output
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines()) + "\n"


def render(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + run(m.group("args")) + m.group(4), text)


def test_docs_examples_are_current() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert len(BLOCK.findall(text)) >= 5
    assert render(text) == text, "run: PYTHONPATH=. python tests/test_distributed_docs.py"


if __name__ == "__main__":
    DOC.write_text(render(DOC.read_text(encoding="utf-8")), encoding="utf-8")
