"""The presets ship in the wheel: build it, install it in a fresh venv, run the CLI from there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_installs_and_runs(tmp_path: Path) -> None:
    if os.environ.get("VRAMCALC_SKIP_WHEEL"):
        pytest.skip("VRAMCALC_SKIP_WHEEL set")
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    wheel = next(dist.glob("vramcalc-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", str(wheel)], check=True, capture_output=True
    )
    # run from an unrelated folder so the checkout's presets/ cannot be found
    out = subprocess.run(
        [str(env_dir / "bin" / "vramcalc"), "infer", "llama-2-7b", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(out.stdout)
    assert data["params"] == 6_738_415_616
    listed = subprocess.run(
        [str(py), "-c", "from vramcalc.sources.presets import presets_dir; print(presets_dir())"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "_presets" in listed.stdout and str(ROOT) not in listed.stdout
