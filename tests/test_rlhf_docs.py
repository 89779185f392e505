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


# The worked example's table of GPU counts × episodes generated at once per GPU.
GRID = [(32, 1), (64, 1), (64, 2), (64, 4), (128, 4)]


def grid_rows() -> list[str]:
    from vramcalc.rlhf import estimate_rlhf

    rows = []
    for gpus, rollout in GRID:
        est = estimate_rlhf(
            "instructgpt-175b",
            stage="ppo",
            reward_model="instructgpt-6b-rm",
            precision="fp16-mixed",
            frozen_dtype="fp16",
            prompt_len=1024,
            response_len=1024,
            rollout_batch=rollout,
            grad_checkpointing="full",
            num_gpus=gpus,
            zero=3,
            gpu="h100",
        )
        assert est.gpu is not None
        fits = "yes" if est.gpu.fits else "no"
        peak = f"{est.total_bytes / 2**30:.2f}"
        rows.append(f"| {gpus} | {rollout} | {peak} | {est.peak_phase} | {fits} |")
    return rows


def test_rlhf_doc_grid_is_current() -> None:
    text = DOC.read_text(encoding="utf-8")
    for row in grid_rows():
        assert row in text, f"docs/rlhf.md grid row stale or missing: {row}"


def test_rlhf_doc_examples_are_current() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert len(BLOCK.findall(text)) >= 6
    assert refresh(text) == text, "run: PYTHONPATH=. python tests/test_rlhf_docs.py"


if __name__ == "__main__":
    DOC.write_text(refresh(DOC.read_text(encoding="utf-8")), encoding="utf-8")
    print("\n".join(grid_rows()))  # paste into the worked example's table
