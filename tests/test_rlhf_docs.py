"""The InstructGPT worked-example grid (docs/rlhf.md, README.md) is real `estimate_rlhf` output: a stale row fails here.

The command blocks of the same page are checked with every other document by tests/test_readme.py
(refresh them with ``python scripts/doc_examples.py``); print fresh grid rows with
``PYTHONPATH=. python tests/test_rlhf_docs.py``.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = (ROOT / "docs" / "rlhf.md", ROOT / "README.md")  # both show the grid
# The worked example's table of GPU counts × episodes generated at once per GPU.
GRID = [(32, 1), (64, 1), (64, 2), (64, 4), (128, 4)]


def grid_rows() -> list[str]:
    from vramcalc.core.rlhf import estimate_rlhf

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
    rows = grid_rows()
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for row in rows:
            assert row in text, f"{doc.name}: grid row stale or missing: {row}"


if __name__ == "__main__":
    print("\n".join(grid_rows()))  # paste into the worked example's table
