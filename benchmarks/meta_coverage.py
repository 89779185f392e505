"""Which causal-LM architectures of the installed transformers the exact meta-device route counts
(run by hand; needs vramcalc[torch]; minutes).

PYTHONPATH=. python benchmarks/meta_coverage.py           # one line per model_type, then totals
PYTHONPATH=. python benchmarks/meta_coverage.py --json    # {model_type: [status, detail]}

The check itself is vramcalc.measure.coverage.route_status (docs/architectures.md uses the same
one): each model_type's configuration defaults, cut to at most 8 layers. Status: "exact" (tensors and cache read from the model), "refused" (the
route's one-line reason: no causal-LM class, the build or the meta-device forward fails, a generic
field is missing) or "config" (transformers' own default config does not validate). A real
config.json can do better than the defaults (DeepSeek-V2's default names no experts-per-token).
"""

from __future__ import annotations

import json
import sys
import time
import warnings

from vramcalc.measure.coverage import causal_lm_types, route_status

warnings.filterwarnings("ignore")


def main() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    rows: dict[str, tuple[str, str]] = {}
    for model_type in causal_lm_types():
        start = time.perf_counter()
        rows[model_type] = route_status(model_type)
        if "--json" not in sys.argv:
            status, detail = rows[model_type]
            seconds = time.perf_counter() - start
            print(f"{model_type:32s} {status:8s} {seconds:5.1f} s  {detail[:150]}", flush=True)
    totals = {s: sum(1 for v in rows.values() if v[0] == s) for s in ("exact", "refused", "config")}
    if "--json" in sys.argv:
        print(json.dumps({"totals": totals, "rows": rows}, indent=1))
    else:
        print(
            f"{len(rows)} causal-LM model types: "
            + ", ".join(f"{v} {k}" for k, v in totals.items())
        )


if __name__ == "__main__":
    main()
