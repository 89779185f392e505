"""`vramcalc measure --suite standard`: a fixed list of single-GPU workloads, one fresh process each.

The list is data (standard_suite.toml beside this module). This module is torch-free: it loads and
validates the list, estimates each workload, lists them with a time budget (``--dry-run``, which
runs without a GPU) and, on a GPU machine, starts ``python -m vramcalc.measure.suite_worker`` once
per workload and appends the record it prints to the --record file (live.append_record: one JSON
line per run, existing bytes never rewritten). A worker that crashes or runs past its time limit
still leaves a record, with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vramcalc.errors import VramcalcError

SUITE_FILE = Path(__file__).with_name("standard_suite.toml")
GPU_MEMORY_BYTES = 80 * 10**9  # the suite is sized for one 80 GB GPU (A100/H100 80GB)
TOTAL_BUDGET_S = 600  # all 49 workloads on one 80 GB GPU; each half fits a 15-minute lease alone
DECODE_TOKENS = 32

# Time budget of one workload (--dry-run prints it): a fresh Python with torch and transformers
# imported and CUDA initialised, random initialisation of the weights on the GPU, and the model
# FLOPs of the measured work at a conservative fraction of an H100's dense rate.
PROCESS_START_S = 6.0
INIT_S_PER_BILLION_PARAMS = 0.5
EFFECTIVE_FLOPS = {"16-bit": 2.0e14, "fp32": 4.0e13}


@dataclass(frozen=True)
class SuiteItem:
    """One workload of the suite (the TOML keys)."""

    model: str
    kind: str
    batch_size: int
    seq_len: int
    dtype: str = "bf16"
    phase: str = "prefill"
    precision: str = "bf16-mixed"
    optimizer: str = "adamw"
    grad_checkpointing: str = "none"
    method: str = "full"
    lora_rank: int = 16
    expect: str = "fits"

    @property
    def label(self) -> str:
        if self.kind == "inference":
            tail = f"{self.dtype} {self.phase}"
        else:
            m = "" if self.method == "full" else f" {self.method} r{self.lora_rank}"
            ck = " ckpt" if self.grad_checkpointing == "full" else ""
            tail = f"{self.precision} {self.optimizer}{m}{ck}"
        return f"{self.model} {self.kind[:5]} b{self.batch_size} s{self.seq_len} {tail}"

    def estimate(self) -> Any:
        if self.kind == "inference":
            from vramcalc.core.inference import estimate_inference

            dtype, quant = self.dtype, None
            if self.dtype in ("int8", "int4"):
                dtype, quant = self.dtype, {"int8": "llm.int8", "int4": "awq"}[self.dtype]
            return estimate_inference(
                self.model,
                dtype=dtype,
                quant=quant,
                batch_size=self.batch_size,
                seq_len=self.seq_len,
            )
        from vramcalc.core.training import estimate_training

        kw: dict[str, Any] = {}
        if self.method != "full":
            kw = {
                "method": self.method,
                "lora_rank": self.lora_rank,
                "lora_alpha": 2.0 * self.lora_rank,
            }
        return estimate_training(
            self.model,
            precision=self.precision,
            optimizer=self.optimizer,
            batch_size=self.batch_size,
            seq_len=self.seq_len,
            grad_checkpointing=self.grad_checkpointing,
            **kw,
        )

    def budget_s(self) -> float:
        est = self.estimate()
        params = est.params
        if self.expect == "oom":  # the first allocation past the GPU's memory ends it
            return PROCESS_START_S + INIT_S_PER_BILLION_PARAMS * params / 1e9
        tokens = self.batch_size * self.seq_len
        flops = 2.0 * params * tokens
        if self.kind == "training":
            flops = 2 * 6.0 * params * tokens * (4 / 3 if self.grad_checkpointing == "full" else 1)
        wide = self.dtype == "fp32" if self.kind == "inference" else self.precision == "fp32"
        rate = EFFECTIVE_FLOPS["fp32" if wide else "16-bit"]
        return PROCESS_START_S + INIT_S_PER_BILLION_PARAMS * params / 1e9 + flops / rate


KINDS = {"inference": "infer", "training": "train"}
_CHOICES = {
    "kind": ("inference", "training"),
    "dtype": ("fp32", "bf16", "fp16", "int8", "int4"),
    "phase": ("prefill", "decode"),
    "precision": ("bf16-mixed", "fp32", "bf16"),
    "optimizer": ("adamw", "sgd", "sgd-momentum"),
    "grad_checkpointing": ("none", "full"),
    "method": ("full", "lora", "qlora"),
    "expect": ("fits", "oom"),
}


def load_suite(only: str | None = None, path: Path = SUITE_FILE) -> list[SuiteItem]:
    """The suite's workloads (one half with `only`: infer or train); a bad entry raises."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    items = []
    for i, raw in enumerate(data.get("workload", []), 1):
        try:
            item = SuiteItem(**raw)
        except TypeError as exc:
            raise VramcalcError(f"{path.name} workload {i}: {exc}") from None
        for key, valid in _CHOICES.items():
            if getattr(item, key) not in valid:
                raise VramcalcError(
                    f"{path.name} workload {i}: {key} = {getattr(item, key)!r}; valid: {', '.join(valid)}"
                )
        items.append(item)
    if only is not None:
        items = [it for it in items if KINDS[it.kind] == only]
    return items


def dry_row(item: SuiteItem) -> dict[str, Any]:
    est = item.estimate()
    return {
        "label": item.label,
        "config": asdict(item),
        "estimate_total_bytes": est.total_bytes,
        "estimate_phase": est.phase,
        "expect": item.expect,
        "estimate_says": "oom" if est.total_bytes > GPU_MEMORY_BYTES else "fits",
        "budget_s": round(item.budget_s(), 1),
    }


def run_suite(items: list[SuiteItem], record: Path, device: int = 0) -> dict[str, Any]:
    """Run each item in a fresh process and append its record; a summary of what happened."""
    t0 = time.perf_counter()
    counts = {"ran": 0, "oom": 0, "failed": 0}
    for item in items:
        rec = run_one_process(item, device)
        from .live import append_record

        append_record(record, rec)
        counts["ran"] += 1
        if rec.get("readings", {}).get("oom"):
            counts["oom"] += 1
        if rec.get("readings", {}).get("error") and not rec["readings"].get("oom"):
            counts["failed"] += 1
        sys.stderr.write(f"[{counts['ran']}/{len(items)}] {item.label}: {_outcome(rec)}\n")
    return counts | {"seconds": round(time.perf_counter() - t0, 1), "record": str(record)}


def _outcome(rec: dict[str, Any]) -> str:
    r = rec.get("readings", {})
    if r.get("oom"):
        return "out of memory"
    if r.get("error"):
        return f"failed: {r['error']}"
    return f"max allocated {r.get('max_memory_allocated_bytes', 0) / 2**30:.2f} GiB"


def run_one_process(
    item: SuiteItem, device: int = 0, python: str = sys.executable
) -> dict[str, Any]:
    """One workload in a fresh interpreter (no memory left over from the previous one)."""
    pkg_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([pkg_root, *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:False")
    limit_s = max(60.0, 4 * item.budget_s())
    cmd = [python, "-m", "vramcalc.measure.suite_worker", json.dumps(asdict(item)), str(device)]
    base = {"record_version": 1, "suite": "standard", "label": item.label, "config": asdict(item)}
    try:
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=limit_s, check=False
        )
    except subprocess.TimeoutExpired:
        return base | {"readings": {"oom": False, "error": f"timed out after {limit_s:.0f} s"}}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1][:300]
        return base | {"readings": {"oom": False, "error": f"exit {proc.returncode}: {tail}"}}
    return base | json.loads(lines[-1])
