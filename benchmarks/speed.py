"""Speed benchmark (run by hand): cold CLI time and library estimates per second.

Targets (issue 12): `vramcalc infer llama-2-7b` cold in at most 120 ms; at least 50,000 library
inference estimates/s. A cold process here is a new interpreter with the bytecode already written
(as after `pip install`): the first run writes it, even under PYTHONDONTWRITEBYTECODE.

Each figure is given as wall time and as CPU time (user + system of the child process, or of this
process for the estimates): on a machine shared with other jobs the wall time measures the
neighbours, the CPU time much less so.

    python benchmarks/speed.py
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time

# bytecode written once, as an installed package has it
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
# what any `infer` must load whatever vramcalc does: pydantic (and its first model class),
# typer's parser and rich's table. No change inside vramcalc can start faster than this.
FLOOR = (
    "from pydantic import BaseModel\n"
    "class A(BaseModel):\n    x: int = 1\n"
    "import typer.main, rich.console, rich.table"
)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_seconds(argv: list[str], runs: int = 9) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of `argv` as a new process, `runs` times (after one warm-up run that
    writes the bytecode)."""
    subprocess.run(argv, check=True, capture_output=True, env=_ENV)
    wall, cpu = [], []
    for _ in range(runs):
        cpu0, start = _children_cpu(), time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, env=_ENV)
        wall.append(time.perf_counter() - start)
        cpu.append(_children_cpu() - cpu0)
    return wall, cpu


def cold_cli_seconds(runs: int = 9) -> tuple[list[float], list[float]]:
    # `python -m vramcalc` with this interpreter measures the checkout on sys.path (an installed
    # `vramcalc` entry point may import a different copy of the package).
    return process_seconds([sys.executable, "-m", "vramcalc", "infer", "llama-2-7b"], runs)


def import_seconds(runs: int = 9) -> tuple[list[float], list[float]]:
    return process_seconds([sys.executable, "-c", "import vramcalc"], runs)


def floor_seconds(runs: int = 9) -> tuple[list[float], list[float]]:
    return process_seconds([sys.executable, "-c", FLOOR], runs)


def estimates_per_second(seconds: float = 2.0) -> dict[str, tuple[float, float]]:
    """Estimates per second of wall time and of CPU time, the best of three rounds."""
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
        # every request a new shape: what the per-shape memos cannot help (a capacity planner
        # scanning lengths token by token)
        "inference (all different)": lambda i: estimate_inference(
            spec, dtype="int4", batch_size=1 + i % 64, seq_len=128 + (i * 7919) % 32_000
        ),
        "training": lambda i: estimate_training(spec, batch_size=1 + i % 16, seq_len=2048),
    }.items():
        fn(0)
        best_wall = best_cpu = 0.0
        for _ in range(3):
            n, start, cpu0 = 0, time.perf_counter(), time.process_time()
            while time.perf_counter() - start < seconds / 3:
                for _ in range(200):
                    fn(n)
                    n += 1
            best_wall = max(best_wall, n / (time.perf_counter() - start))
            best_cpu = max(best_cpu, n / (time.process_time() - cpu0))
        rates[label] = (best_wall, best_cpu)
    return rates


def _ms(label: str, figures: tuple[list[float], list[float]], target: str = "") -> None:
    wall, cpu = figures
    print(
        f"{label:52s} wall median {statistics.median(wall) * 1000:4.0f} ms (min "
        f"{min(wall) * 1000:4.0f}), CPU median {statistics.median(cpu) * 1000:4.0f} ms (min "
        f"{min(cpu) * 1000:4.0f}){target}"
    )


def main() -> None:
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    _ms("python -c 'import vramcalc' (incl. interpreter start)", import_seconds())
    _ms("floor: pydantic model + typer + rich imports", floor_seconds())
    _ms("vramcalc infer llama-2-7b (cold process)", cold_cli_seconds(), "  target <= 120 ms")
    for label, (wall, cpu) in estimates_per_second().items():
        print(
            f"{label:28s} {wall:10,.0f} estimates/s wall, {cpu:10,.0f} per CPU second (target >= 50,000)"
        )


if __name__ == "__main__":
    main()
