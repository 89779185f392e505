"""Time the cost and planner library calls in a sweep (run by hand: python benchmarks/cost_sweep.py)."""

from __future__ import annotations

import time
from collections.abc import Callable

from vramcalc.core.cost import estimate_inference_cost, estimate_training_cost
from vramcalc.core.fitting import fit, plan
from vramcalc.sources.presets import list_gpus


def per_call(label: str, calls: list[Callable[[], object]]) -> None:
    calls[0]()  # warm the caches (presets, tensor groups)
    start = time.perf_counter()
    for call in calls:
        call()
    seconds = (time.perf_counter() - start) / len(calls)
    print(f"{label:<40} {len(calls):>6} calls  {seconds * 1e6:>10.1f} µs/call")


def main() -> None:
    # GPUs the cost formulas can price: a 16-bit peak and a memory bandwidth in the catalog
    gpus = [
        g.name
        for g in list_gpus()
        if (g.peak_tflops("bf16") or g.peak_tflops("fp16")) and g.memory_bandwidth_gbps
    ]
    per_call(
        "estimate_inference_cost",
        [
            (lambda g=g, b=b: estimate_inference_cost("llama-2-7b", gpu=g, batch_size=b))
            for g in gpus
            for b in range(1, 129)
        ],
    )
    per_call(
        "estimate_training_cost",
        [
            (lambda g=g, n=n: estimate_training_cost("llama-2-7b", tokens="2T", gpu=g, num_gpus=n))
            for g in gpus
            for n in range(1, 129)
        ],
    )
    per_call("fit (batch + context search)", [(lambda g=g: fit("llama-2-7b", g)) for g in gpus])
    per_call(
        "plan infer (all GPUs)",
        [(lambda b=b: plan("llama-2-70b", task="infer", batch_size=b)) for b in (1, 8, 32, 64)],
    )
    per_call(
        "plan train (all GPUs)",
        [(lambda: plan("llama-2-7b", task="train", tokens="2T", batch_size=1)) for _ in range(4)],
    )


if __name__ == "__main__":
    main()
