"""Speed benchmark (run by hand): cold CLI time and library estimates per second.

Targets (issue 12): `vramcalc infer llama-2-7b` cold in at most 120 ms; at least 50,000 library
inference estimates/s. A cold process here is a new interpreter with the bytecode already written
(as after `pip install`): the first run writes it, even under PYTHONDONTWRITEBYTECODE.

    python benchmarks/speed.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

# bytecode written once, as an installed package has it
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def cold_cli_seconds(runs: int = 9) -> list[float]:
    # `python -m vramcalc` with this interpreter measures the checkout on sys.path (an installed
    # `vramcalc` entry point may import a different copy of the package).
    cmd = [sys.executable, "-m", "vramcalc", "infer", "llama-2-7b"]
    subprocess.run(cmd, check=True, capture_output=True, env=_ENV)  # writes the bytecode
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=_ENV)
        times.append(time.perf_counter() - start)
    return times


def import_seconds(runs: int = 9) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import vramcalc"], check=True, env=_ENV)
        times.append(time.perf_counter() - start)
    return times


def floor_seconds(runs: int = 9) -> list[float]:
    """The interpreter importing only what any `infer` must load (pydantic models, typer's
    parser, rich's table): no change inside vramcalc can start faster than this."""
    code = "from pydantic import BaseModel; import typer.main, rich.console, rich.table"
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=_ENV)
        times.append(time.perf_counter() - start)
    return times


def estimates_per_second(seconds: float = 2.0) -> dict[str, float]:
    import vramcalc
    from vramcalc.core.inference import estimate_inference
    from vramcalc.core.training import estimate_training

    spec = vramcalc.get_model("llama-2-7b")
    rates = {}
    for label, fn in {
        "inference (preset name)": lambda i: estimate_inference(
            "llama-2-7b", batch_size=1 + i % 64, seq_len=4096
        ),
        "inference (ModelSpec)": lambda i: estimate_inference(
            spec, dtype="int4", batch_size=1 + i % 64, seq_len=2048
        ),
        "training": lambda i: estimate_training(spec, batch_size=1 + i % 16, seq_len=2048),
    }.items():
        fn(0)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(200):
                fn(n)
                n += 1
        rates[label] = n / (time.perf_counter() - start)
    return rates


def main() -> None:
    imp = import_seconds()
    floor = floor_seconds()
    cli = cold_cli_seconds()
    print(
        f"python -c 'import vramcalc' (incl. interpreter start): median {statistics.median(imp) * 1000:.0f} ms"
    )
    print(
        f"floor: pydantic + typer + rich imports only:      median {statistics.median(floor) * 1000:.0f} ms"
    )
    print(
        f"vramcalc infer llama-2-7b (cold process):           median {statistics.median(cli) * 1000:.0f} ms, "
        f"min {min(cli) * 1000:.0f} ms (target <= 120 ms)"
    )
    for label, rate in estimates_per_second().items():
        print(f"{label:28s} {rate:10,.0f} estimates/s (target >= 50,000)")


if __name__ == "__main__":
    main()
