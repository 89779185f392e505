"""Sweep speed (run by hand): 10,000-point sweeps through the library and the CLI.

Target (issue 16): a 10,000-point sweep finishes in seconds.

    python benchmarks/sweep.py
"""

from __future__ import annotations

import subprocess
import sys
import time

# 5 models × 4 dtypes × 5 GPUs × 10 contexts × 10 batch sizes = 10,000 inference points
INFER = dict(
    models="llama-2-7b,llama-3.1-8b,mistral-7b,llama-2-13b,mixtral-8x7b",
    dtype="fp32,bf16,int8,int4",
    gpu="rtx-4090,l40s,a100-80gb,h100,h200",
    seq_len="1k..10k:1k",
    batch_size="1..512",
)
# 2 models × 3 methods × 5 ranks × 4 contexts × 5 batch sizes × 5 GPUs... = 3,000 training points,
# measured as points per second (LoRA/QLoRA go through the detailed distributed path)
TRAIN = dict(
    models="llama-2-7b,mistral-7b",
    method="full,lora,qlora",
    lora_rank="8..128",
    seq_len="1k,2k,4k,8k",
    batch_size="1..16",
    gpu="rtx-4090,a100-80gb,h100,h200,b200",
)


def library(task: str, spec: dict[str, str]) -> tuple[int, float]:
    import vramcalc

    options = dict(spec)
    models = options.pop("models")
    start = time.perf_counter()
    result = vramcalc.sweep(models, task, **options)  # type: ignore[arg-type]
    rows = result.to_dicts()
    return len(rows), time.perf_counter() - start


def cli(spec: dict[str, str]) -> float:
    args = [spec["models"]]
    for key, value in spec.items():
        if key != "models":
            args += [f"--{key.replace('_', '-')}", value]
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "vramcalc", "sweep", *args, "--format", "csv"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> None:
    n, seconds = library("infer", INFER)
    print(f"library, inference: {n:,} points in {seconds:.2f} s ({n / seconds:,.0f} points/s)")
    n, seconds = library("train", TRAIN)
    print(f"library, training:  {n:,} points in {seconds:.2f} s ({n / seconds:,.0f} points/s)")
    print(f"CLI `vramcalc sweep ... --format csv`, 10,000 inference points: {cli(INFER):.2f} s")


if __name__ == "__main__":
    main()
