"""Estimate vs exact fake-tensor trace for 7B-class presets (run by hand; needs vramcalc[torch]).

PYTHONPATH=. python benchmarks/accuracy.py            # table + summary
PYTHONPATH=. python benchmarks/accuracy.py --json     # machine-readable rows
"""

from __future__ import annotations

import json
import sys
import time
import warnings

from vramcalc.measure.validate import compare, seven_b_grid, summary

warnings.filterwarnings("ignore")


def main() -> None:
    t0 = time.perf_counter()
    rows = []
    for wl in seven_b_grid():
        row = compare(wl)
        rows.append(row)
        if "--json" not in sys.argv:
            print(
                f"{wl.label:58s} estimate {row.estimate_bytes / 2**30:8.2f} GiB  "
                f"trace {row.trace_bytes / 2**30:8.2f} GiB  {row.error:+7.2%}  "
                f"({row.seconds:.1f} s, peak at {row.trace_phase})",
                flush=True,
            )
    summ = summary(rows)
    if "--json" in sys.argv:
        print(json.dumps({"rows": [r.to_json() for r in rows], "summary": summ}, indent=2))
        return
    for task, s in summ.items():
        print(
            f"{task}: n={s['n']:.0f} median |error| {s['median_abs_error']:.2%} "
            f"worst {s['worst_abs_error']:.2%}"
        )
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
