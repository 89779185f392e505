"""A long fuzz campaign of the command line, run by hand (CI runs a few hundred examples through
tests/test_fuzz_cli.py). It uses the checks and strategies of that test, but generates only (no
shrinking) and collects every failure instead of stopping at the first, so one run reports
them all with the argv that shows each:

    PYTHONPATH=. python benchmarks/fuzz.py --runs 5000            # CLI options and crafted files
    PYTHONPATH=. python benchmarks/fuzz.py --runs 500 --torch     # + trace/measure/validate

Prints the totals: runs, exit codes, the slowest run, the largest Python allocation of a file
run, and the failures.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000, help="runs of each fuzz (CLI, files)")
    parser.add_argument("--torch", action="store_true", help="include trace/measure/validate")
    parser.add_argument("--seconds", type=float, default=5.0, help="time limit of one run")
    parser.add_argument("--full-config", action="store_true", help="unbounded layer counts")
    args = parser.parse_args()
    os.environ["VRAMCALC_FUZZ_TORCH"] = "1" if args.torch else "0"
    os.environ["VRAMCALC_FUZZ_SECONDS"] = str(args.seconds)
    os.environ["VRAMCALC_FUZZ_FULL_CONFIG"] = "1" if args.full_config else "0"

    import test_fuzz_cli as fuzz
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    from vramcalc.errors import VramcalcError
    from vramcalc.sources import hub

    def offline() -> Any:
        raise VramcalcError("Hugging Face Hub disabled in the fuzz")

    hub._hub = offline  # type: ignore[attr-defined]  # no network
    root = Path(tempfile.mkdtemp(prefix="vramcalc-fuzz-"))
    special_dir = root / "special"
    special_dir.mkdir()
    special = fuzz._special_files(special_dir)
    failures: list[tuple[list[str], str]] = []

    def campaign(kind: str) -> None:
        @settings(
            max_examples=args.runs,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(data=st.data())
        def one(data: st.DataObject) -> None:
            strategy = fuzz.cli_argv(special) if kind == "cli" else fuzz.file_argv(root, special)
            argv = data.draw(strategy)
            problem = fuzz.check(argv, measure_memory=kind == "file")
            if problem is not None:
                failures.append((argv, problem))

        one()

    start = time.monotonic()
    for kind in ("cli", "file"):
        campaign(kind)
    stats = fuzz.STATS
    print(
        f"{stats['runs']:,} runs in {time.monotonic() - start:.0f} s: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(stats.items()) if k.startswith("exit_"))
        + f"; slowest run {stats['max_seconds']:.2f} s; "
        f"largest allocation of a file run {stats['max_peak_bytes'] / 2**20:.1f} MiB; "
        f"{len(failures)} failures"
    )
    for argv, problem in failures[:50]:
        print(f"  vramcalc {' '.join(repr(a) for a in argv)[:300]}\n    -> {problem[:300]}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
