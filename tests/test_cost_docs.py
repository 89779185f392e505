"""docs/cost.md examples are real CLI output (same block format as the README's)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "cost.md"
BLOCK = re.compile(r"(<!-- vramcalc: (?P<args>.+?) -->\n```text\n)(?P<body>.*?)(```)", re.S)


def run(args: str) -> str:
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}
    env.pop("VRAMCALC_GPUS", None)
    env["XDG_CONFIG_HOME"] = str(ROOT / ".no-config")
    out = subprocess.run(
        [sys.executable, "-m", "vramcalc", *shlex.split(args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    text = out.stdout + (out.stderr if out.returncode else "")
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines()) + "\n"


def render(text: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + run(m.group("args")) + m.group(4), text)


def test_cost_doc_examples_are_current() -> None:
    doc = DOC.read_text(encoding="utf-8")
    assert len(BLOCK.findall(doc)) >= 5
    assert render(doc) == doc, "run: python tests/test_cost_docs.py"


if __name__ == "__main__":  # regenerate in place
    DOC.write_text(render(DOC.read_text(encoding="utf-8")), encoding="utf-8")
