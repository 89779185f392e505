"""docs/rlhf.md examples are real CLI output: a stale block fails here.

Blocks follow the README's convention (`<!-- vramcalc: ARGS -->` then a ```text block). Refresh with
``PYTHONPATH=. python tests/test_rlhf_docs.py``.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from typer.testing import CliRunner

from vramcalc.cli import app

DOC = Path(__file__).resolve().parent.parent / "docs" / "rlhf.md"
BLOCK = re.compile(r"(<!-- vramcalc: (?P<args>.+?) -->\n```text\n)(?P<body>.*?)(```)", re.S)
ENV = {"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}


def refresh(text: str) -> str:
    def run(match: re.Match[str]) -> str:
        out = CliRunner().invoke(app, shlex.split(match.group("args")), env=ENV).output
        body = "\n".join(line.rstrip() for line in out.rstrip().splitlines()) + "\n"
        return match.group(1) + body + match.group(4)

    return BLOCK.sub(run, text)


def test_rlhf_doc_examples_are_current() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert len(BLOCK.findall(text)) >= 6
    assert refresh(text) == text, "run: PYTHONPATH=. python tests/test_rlhf_docs.py"


if __name__ == "__main__":
    DOC.write_text(refresh(DOC.read_text(encoding="utf-8")), encoding="utf-8")
