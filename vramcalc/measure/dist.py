"""Distributed ground truth: launch N ranks with torch's launcher and set each rank's peak beside the
per-GPU estimate of the same layout.

This module is torch-free (it writes the run list, starts ``python -m torch.distributed.run`` and
reads the ranks' JSON back); dist_worker.py is what runs inside each rank. Engines:

* ``fsdp`` — FSDP2 ``fully_shard`` per decoder layer and at the root; ``fsdp="full"`` reshards after
  forward (FULL_SHARD), ``"grad-op"`` keeps the unsharded parameters until backward
  (SHARD_GRAD_OP); bf16-mixed is ``MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32)``.
* ``tp`` — DTensor ``parallelize_module``: q/k/v/gate/up column-wise, o/down row-wise, embedding
  row-wise, lm_head column-wise with ``loss_parallel`` (the vocab-parallel loss).
* ``tp-fsdp`` — both on a 2-D (dp, tp) device mesh.
* ``zero`` — DeepSpeed ZeRO stage 1/2/3 (on the CPU: its CPU accelerator, ``DS_ACCELERATOR=cpu``).
* ``ddp`` — DistributedDataParallel (replicated states; the baseline of LoRA on several GPUs).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vramcalc.errors import VramcalcError
from vramcalc.spec.model import ModelSpec

ENGINES = ("fsdp", "tp", "tp-fsdp", "zero", "ddp")

# Relative error bands of the estimate's tensor bytes against the most loaded rank's measured peak
# (CPU, gloo, live tensor bytes), per engine; docs/distributed.md "Measured against the engines"
# gives the grid's errors. ZeRO rows are dominated by DeepSpeed's 5e8-element reduce bucket, so
# they are also held to a band with the bucket taken out of both sides (ZERO_REST_BAND).
BANDS = {
    "fsdp": (-0.10, 0.10),
    "tp-fsdp": (-0.10, 0.10),
    "tp": (-0.20, 0.15),
    "zero": (-0.05, 0.05),
    "ddp": (-0.10, 0.10),
}
ZERO_REST_BAND = (-0.15, 0.15)
DS_BUCKET_ELEMENTS = 500_000_000  # DeepSpeed reduce_bucket_size default (parallel.py)


@dataclass(frozen=True)
class DistRun:
    """One distributed training configuration (all ranks run the same micro-batch shape)."""

    spec: ModelSpec
    num_gpus: int
    engine: str
    fsdp: str = "full"
    zero: int = 0
    tp: int = 1
    method: str = "full"
    lora_rank: int = 8
    precision: str = "bf16-mixed"
    batch_size: int = 2
    seq_len: int = 256
    grad_checkpointing: str = "none"

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise VramcalcError(f"engine {self.engine!r}; valid: {', '.join(ENGINES)}")
        if self.engine == "zero" and self.zero not in (1, 2, 3):
            raise VramcalcError(f"--zero {self.zero}: the runnable ZeRO stages are 1, 2 and 3")
        if self.engine in ("tp", "tp-fsdp") and (self.tp < 2 or self.num_gpus % self.tp):
            raise VramcalcError(
                f"--tp {self.tp} must be at least 2 and divide {self.num_gpus} ranks"
            )
        if self.engine in ("tp", "tp-fsdp") and self.method != "full":
            raise VramcalcError(
                "tensor parallel runs a full fine-tune (LoRA layers are not planned)"
            )
        if self.engine == "tp" and self.tp != self.num_gpus:
            raise VramcalcError(
                f"--tp {self.tp} alone needs --num-gpus {self.tp}; add --fsdp for dp"
            )

    @property
    def label(self) -> str:
        eng = {
            "fsdp": f"fsdp-{self.fsdp}",
            "tp": f"tp{self.tp}",
            "tp-fsdp": f"tp{self.tp}×fsdp{self.num_gpus // self.tp}",
            "zero": f"zero{self.zero}",
            "ddp": "ddp",
        }[self.engine]
        ckpt = " ckpt" if self.grad_checkpointing == "full" else ""
        lora = f" lora{self.lora_rank}" if self.method == "lora" else ""
        return f"{self.spec.name} {self.num_gpus}r {eng}{lora} {self.precision}{ckpt}"

    def plan_args(self) -> dict[str, Any]:
        """The options of `vramcalc train` that describe this layout."""
        args: dict[str, Any] = {"num_gpus": self.num_gpus}
        if self.engine in ("fsdp", "tp-fsdp"):
            args["fsdp"] = self.fsdp
        if self.engine == "zero":
            args["zero"] = self.zero
        if self.engine in ("tp", "tp-fsdp"):
            args["tp"] = self.tp
        return args

    def estimate(self) -> Any:
        from vramcalc.core.training import estimate_training

        kw: dict[str, Any] = {}
        if self.method == "lora":
            kw = {"method": "lora", "lora_rank": self.lora_rank, "lora_alpha": 2.0 * self.lora_rank}
        return estimate_training(
            self.spec,
            precision=self.precision,
            optimizer="adamw",
            batch_size=self.batch_size,
            seq_len=self.seq_len,
            grad_checkpointing=self.grad_checkpointing,
            **kw,
            **self.plan_args(),
        )

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["spec"] = self.spec.model_dump(mode="json", exclude_none=True)
        d["label"] = self.label
        return d


def tiny_llama(name: str = "tiny-llama-dist", **kw: Any) -> ModelSpec:
    """A Llama of a few MB: 4 heads (4 KV heads, so tp 2 and 4 divide them), 2 layers."""
    from .validate import tiny_spec

    return tiny_spec(name, "llama", **kw)


def launch(
    runs: list[DistRun], num_gpus: int, backend: str = "gloo", timeout_s: float = 600
) -> list[list[dict[str, Any]]]:
    """Run `runs` on `num_gpus` ranks started by ``torch.distributed.run``; per run, every rank's
    readings (rank order)."""
    if any(r.num_gpus != num_gpus for r in runs):
        raise VramcalcError("every run of one launch must use the launch's number of ranks")
    if backend not in ("gloo", "nccl"):
        raise VramcalcError(f"backend {backend!r}: use gloo (CPU) or nccl (CUDA)")
    pkg_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([pkg_root, *filter(None, [env.get("PYTHONPATH")])])
    env.setdefault("OMP_NUM_THREADS", "1")
    if backend == "gloo":
        env["DS_ACCELERATOR"] = "cpu"  # DeepSpeed's CPU accelerator (it probes CUDA otherwise)
        env["CUDA_VISIBLE_DEVICES"] = ""
    with tempfile.TemporaryDirectory(prefix="vramcalc-dist-") as tmp:
        runs_file = Path(tmp) / "runs.json"
        payload = {"backend": backend, "runs": [r.to_json() for r in runs]}
        runs_file.write_text(json.dumps(payload), encoding="utf-8")
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={num_gpus}",
            "-m",
            "vramcalc.measure.dist_worker",
            str(runs_file),
            tmp,
        ]
        try:
            proc = subprocess.run(
                cmd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            raise VramcalcError(f"the {num_gpus}-rank launch ran past {timeout_s:.0f} s") from None
        outputs = [Path(tmp) / f"rank{r}.json" for r in range(num_gpus)]
        if proc.returncode != 0 or not all(p.exists() for p in outputs):
            tail = [ln for ln in proc.stderr.splitlines() if "Error" in ln][-1:] or [
                (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            ]
            raise VramcalcError(
                f"torch.distributed.run exited {proc.returncode} on {num_gpus} ranks: {tail[0][:300]}"
            )
        per_rank = [json.loads(p.read_text(encoding="utf-8")) for p in outputs]
    return [[per_rank[r][i] for r in range(num_gpus)] for i in range(len(runs))]


def compare(run: DistRun, ranks: list[dict[str, Any]]) -> dict[str, Any]:
    """The estimate's tensor bytes beside each rank's peak; error against the most loaded rank."""
    from vramcalc.core.results import RUNTIME

    est = run.estimate()
    est_bytes = sum(c.bytes for c in est.components if c.name not in RUNTIME)
    errors = [r["error"] for r in ranks if r.get("error")]
    row: dict[str, Any] = {
        "label": run.label,
        "config": {k: v for k, v in run.to_json().items() if k not in ("spec", "label")},
        "model": run.spec.name,
        "estimate_tensor_bytes": est_bytes,
        "estimate_total_bytes": est.total_bytes,
        "estimate_phase": est.phase,
        "estimate_components": {c.name: c.bytes for c in est.components if c.bytes},
        "ranks": ranks,
        "error": errors[0] if errors else None,
    }
    key = (
        "peak_bytes"
        if ranks and ranks[0].get("peak_bytes") is not None
        else "max_memory_allocated_bytes"
    )
    peaks = [r.get(key) for r in ranks]
    if not errors and all(isinstance(p, int) and p > 0 for p in peaks):
        worst: int = max(int(p) for p in peaks if p is not None)
        row["measured_peak_bytes"] = worst
        row["measured_by"] = key
        row["relative_error"] = round(est_bytes / worst - 1, 5)
        low, high = BANDS[run.engine]
        row["band"] = [low, high]
        row["within_band"] = low <= row["relative_error"] <= high
        if run.engine == "zero":
            bucket = DS_BUCKET_ELEMENTS * (4 if run.precision == "fp32" else 2)
            rest = (est_bytes - bucket) / (worst - bucket) - 1
            row["relative_error_without_bucket"] = round(rest, 5)
            row["within_band"] &= ZERO_REST_BAND[0] <= rest <= ZERO_REST_BAND[1]
    return row


def ci_grid() -> list[DistRun]:
    """At least 20 configurations on 2 and 4 ranks: FSDP full/grad-op, ZeRO-1/2/3, TP 2, TP×FSDP
    2×2, DDP; full fine-tune and LoRA; checkpointing on and off."""
    m = tiny_llama()
    g: list[DistRun] = []
    for n in (2, 4):
        g += [
            DistRun(m, n, "fsdp", fsdp="full"),
            DistRun(m, n, "fsdp", fsdp="full", grad_checkpointing="full"),
            DistRun(m, n, "fsdp", fsdp="grad-op"),
            DistRun(m, n, "fsdp", fsdp="full", method="lora"),
            DistRun(m, n, "zero", zero=1),
            DistRun(m, n, "zero", zero=2, grad_checkpointing="full"),
            DistRun(m, n, "zero", zero=3),
            DistRun(m, n, "zero", zero=3, method="lora"),
        ]
    g += [
        DistRun(m, 2, "fsdp", fsdp="grad-op", grad_checkpointing="full"),
        DistRun(m, 2, "fsdp", fsdp="full", precision="fp32"),
        DistRun(m, 2, "fsdp", fsdp="full", method="lora", grad_checkpointing="full"),
        DistRun(m, 2, "zero", zero=2),
        DistRun(m, 2, "tp", tp=2, precision="fp32"),
        DistRun(m, 2, "tp", tp=2, precision="bf16", grad_checkpointing="full"),
        DistRun(m, 2, "ddp", method="lora"),
        DistRun(m, 4, "tp-fsdp", tp=2),
        DistRun(m, 4, "tp-fsdp", tp=2, grad_checkpointing="full"),
    ]
    return g


def run_from_options(
    model: str,
    *,
    num_gpus: int,
    fsdp: str | None = None,
    zero: int | None = None,
    tp: int = 1,
    method: str = "full",
    lora_rank: int = 8,
    precision: str = "bf16-mixed",
    optimizer: str = "adamw",
    grad_accum: int = 1,
    grad_checkpointing: str = "none",
    batch_size: int = 1,
    seq_len: int | None = None,
    attention: str = "flash",
) -> DistRun:
    """The DistRun that `trace`/`measure` options describe; a bad value raises VramcalcError."""
    from vramcalc.core.workloads import resolve_model, resolve_seq_len

    if num_gpus < 2:
        raise VramcalcError(f"--num-gpus {num_gpus}: a distributed run needs at least 2 ranks")
    if optimizer != "adamw":
        raise VramcalcError(f"--optimizer {optimizer}: distributed runs use adamw")
    if grad_accum != 1:
        raise VramcalcError(f"--grad-accum {grad_accum}: distributed runs take one micro-batch")
    if attention != "flash":
        raise VramcalcError(f"--attention {attention}: distributed runs use torch SDPA (flash)")
    if precision not in ("bf16-mixed", "fp32", "bf16"):
        raise VramcalcError(f"--precision {precision}: use bf16-mixed, fp32 or bf16")
    if method not in ("full", "lora"):
        raise VramcalcError(f"--method {method}: distributed runs take full or lora")
    if fsdp is not None and fsdp not in ("full", "grad-op"):
        raise VramcalcError(f"--fsdp {fsdp}: the runnable FSDP2 strategies are full and grad-op")
    if zero is not None and (fsdp is not None or tp > 1):
        raise VramcalcError("--zero runs DeepSpeed alone: drop --fsdp and --tp")
    if grad_checkpointing not in ("none", "full"):
        raise VramcalcError(f"--grad-checkpointing {grad_checkpointing}: use none or full")
    spec = resolve_model(model)
    if spec.architecture not in ("llama", "mistral", "qwen2"):
        raise VramcalcError(
            f"{spec.name}: distributed runs plan the Llama-style projections "
            "(q/k/v/o, gate/up/down); use a llama, mistral or qwen2 model"
        )
    engine = "ddp"
    if zero is not None:
        engine = "zero"
        if importlib.util.find_spec("deepspeed") is None:
            raise VramcalcError("--zero needs DeepSpeed: pip install deepspeed")
    elif fsdp is not None:
        engine = "tp-fsdp" if tp > 1 else "fsdp"
    elif tp > 1:
        engine = "tp"
    if tp > 1 and (spec.num_attention_heads % tp or spec.kv_heads % tp):
        raise VramcalcError(
            f"--tp {tp} must divide {spec.name}'s {spec.num_attention_heads} attention heads "
            f"and {spec.kv_heads} KV heads"
        )
    return DistRun(
        spec,
        num_gpus,
        engine,
        fsdp=fsdp or "full",
        zero=zero or 0,
        tp=tp,
        method=method,
        lora_rank=lora_rank,
        precision=precision,
        batch_size=batch_size,
        seq_len=resolve_seq_len(spec, seq_len),
        grad_checkpointing=grad_checkpointing,
    )
