"""vramcalc's training estimate against published fine-tuning peaks (validation/training/*.toml).

PYTHONPATH=. python benchmarks/training_evidence.py            # per-record rows + the table
PYTHONPATH=. python benchmarks/training_evidence.py --summary  # the per-framework table only

Each usable record becomes an estimate through the public API: the model preset, or the record's
`model_config` written as a config.json in a temporary folder; the record's method, precision,
LoRA, batch, sequence, checkpointing, optimizer and distribution flags; and

* BEFORE: nothing else — what vramcalc computed before framework profiles (every record read as
  transformers + PEFT, `--framework hf`),
* AFTER: the record's framework profile (presets/frameworks/) with the record's own convention
  flags on top (adapter dtype, loss, activation offload, optimizer in backward, compile, packing,
  paged optimizer), as `vramcalc train --framework X --flag ...` would.

The published metric maps onto the estimate's components (docs/frameworks.md):
allocated = total − cuda_context − allocator_slack (torch.cuda.max_memory_allocated counts live
tensors only); reserved = total − cuda_context (max_memory_reserved adds the allocator's cached free
blocks); nvidia-smi = total (reserved + the CUDA context); unknown = the range [allocated,
nvidia-smi], error 0 inside it. Paged optimizer state may sit on the GPU or the host: each
counterpart spans from the floor without it to the total with it.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vramcalc import estimate_training
from vramcalc.core.lora import valid_targets
from vramcalc.errors import VramcalcError
from vramcalc.sources.frameworks import (
    apply_framework,
    get_framework,
    list_frameworks,
    lora_targets_of,
    optimizer_of,
    untied,
)

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "validation" / "training"
GIB = 2**30
# QLoRA records whose run predates bitsandbytes 0.43.2 (tagged 2024-07-23, the release with PR #1270)
# for a reason the profile's versions do not carry: the release they ran, as --bnb-version takes it.
BNB_RELEASE = {
    # PEFT's FSDP/DeepSpeed guides, written 2024-03-13, "require bitsandbytes>=0.43.0": 0.43.0 or 0.43.1
    "trl-llama-2-70b-qlora-fsdp-offload-2gpu": "0.43.1",
    "trl-llama-2-70b-qlora-fsdp-2gpu": "0.43.1",
    "trl-llama-2-70b-qlora-zero3-2gpu": "0.43.1",
    # Axolotl's 2023 Llama 2 example: every bitsandbytes release of 2023 is 0.41.x/0.42.0 or older
    "axolotl-llama-2-7b-qlora-2023": "0.41.1",
}
# records of these frameworks use the profile named here (PEFT's harness is a plain loop over a
# PEFT model: the transformers + PEFT conventions)
PROFILE_OF = {"peft": "hf"}


# |estimate − published| / published allowed after profiles, per framework (docs/frameworks.md):
BAND = {
    # the traced stack itself (transformers + PEFT): allocator and harness residual only
    "peft": 0.10,
    "hf": 0.10,
    # LitGPT's own model code (not the traced transformers modules); config-hub seq_len is a cap
    # (Alpaca2k samples are shorter, so the estimate at the cap is an upper bound)
    "litgpt": 0.25,
    # torch.compile is not modelled, and the README's own table shows it moving the peak 15 %
    # (60.0 → 51.0 GiB); packed, allocated (active) bytes otherwise
    "torchtune": 0.25,
    # metric unknown (figures read off GPU-usage screenshots); 70B sharded over 2-8 GPUs
    "trl": 0.25,
    # metric unknown or reserved, published as "about"/"~" whole GiB; MoE under FSDP2
    "axolotl": 0.30,
    # Unsloth's own kernels (fast cross-entropy without the fp32 logits, its RoPE/RMSNorm/LoRA
    # autograd functions) are not traced; every record is a cap (Alpaca samples ≪ 2,048 tokens)
    "unsloth": 0.25,
}

_LITGPT_2023_FSDP_PHI_MB4 = (
    "Lit-GPT 2023 FSDP LoRA, phi-1.5 at micro-batch 4: the full-state-dict load peak is modelled "
    "(full_state_dict_load: 2.8 + 1.4 GB) and holds micro-batches 1-2; at 4 the step passes it and "
    "reads low (phi's parallel block under FSDP with Block checkpointing; not found)"
)
KNOWN_MISSES = {
    "litgpt-rt2023-phi-1_5-lora-mb4-2xa100": _LITGPT_2023_FSDP_PHI_MB4,
    "trl-llama-2-70b-qlora-fsdp-offload-2gpu": (
        "FSDP cpu_offload of a QLoRA base: vramcalc's offload=params layout leaves ~9 GiB on the "
        "GPU; the guide shows 18 GB (the gathered unit, prefetch and the bf16 quant_storage of "
        "the 4-bit weights under FSDP are not modelled for offload)"
    ),
    "axolotl-gpt-oss-20b-full-fsdp2-offload-2gpu": (
        "gpt-oss-20b (MoE, MXFP4 dequantized to bf16 at load) under FSDP2: ~10-15 GiB per GPU "
        "unexplained once the fused loss and activation offload are applied; no load-time peak "
        "is modelled for sharded jobs, nor MoE token-permutation buffers"
    ),
    "axolotl-gpt-oss-20b-full-fsdp2-8gpu": "same as the gpt-oss FSDP2 offload record",
    "torchtune-readme-2024-04-llama2-7b-qlora-1gpu": (
        "torchtune's April 2024 table gives 'the minimum memory requirements' of each recipe, "
        "earlier measured under torch.cuda.set_per_process_memory_fraction limits: the figure is "
        "the limit a run passed under, not a measured peak, and reads above it"
    ),
    "torchtune-readme-2024-04-llama2-7b-lora-fsdp-2gpu": "same as the April 2024 QLoRA row",
}
# records vramcalc cannot estimate at all, with the reason the runner gives
NOT_MODELLED = {
    "peft-metamathqa-lora-rank32-dora-2026-07": "method 'dora' is not modelled",
    "peft-metamathqa-lora-rank32-dora-2025-06": "method 'dora' is not modelled",
    "peft-metamathqa-lora-rank32-dora-2026-01": "method 'dora' is not modelled",
}


def load_records() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted(RECORDS.glob("*.toml")):
        for rec in tomllib.loads(path.read_text(encoding="utf-8")).get("record", []):
            out.append(rec | {"file": path.name})
    return out


def _hf_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The record's model_config (config.json names plus head_dim, mlp_kind, parallel_residual,
    bias, norm) as the config.json of its model_type."""
    mt = cfg["model_type"]
    base = {
        k: cfg[k]
        for k in (
            "model_type", "vocab_size", "hidden_size", "num_hidden_layers",
            "num_attention_heads", "intermediate_size", "max_position_embeddings",
        )
    } | {"tie_word_embeddings": bool(cfg.get("tie_word_embeddings", False))}  # fmt: skip
    kv = cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    if mt == "falcon":  # FalconConfig: multi_query with one KV head, parallel attention + MLP
        return base | {
            "num_kv_heads": kv,
            "multi_query": kv == 1,
            "new_decoder_architecture": False,
            "parallel_attn": bool(cfg.get("parallel_residual", True)),
            "bias": bool(cfg.get("bias", False)),
            "ffn_hidden_size": cfg["intermediate_size"],
            "alibi": False,
        }
    if mt == "gpt_neox":
        return base | {"use_parallel_residual": bool(cfg.get("parallel_residual", True))}
    if mt == "phi":
        return base | {"num_key_value_heads": kv, "hidden_act": "gelu_new"}
    return base | {"num_key_value_heads": kv, "head_dim": cfg.get("head_dim")}


@dataclass
class Case:
    """One usable record as an estimate request."""

    rec: dict[str, Any]
    spec: Any
    options: dict[str, Any]
    flags: dict[str, Any]
    profile: str


def release(rec: dict[str, Any]) -> str | None:
    """The record's framework release as a profile version ('0.4.0.dev0' → '0.4.0'), or None."""
    m = re.match(r"\d+(\.\d+)*", str(rec.get("framework_version") or ""))
    return m.group(0).rstrip(".") if m else None


def _quant(rec: dict[str, Any]) -> str | None:
    q = rec.get("quant") or ""
    if q == "nf4":
        return "nf4" if rec.get("double_quant", True) else "nf4-nodq"
    return {"int8": "llm.int8", "": None}.get(q, q)


def case_of(rec: dict[str, Any], spec: Any) -> Case:
    """The record's estimate request, or VramcalcError naming what vramcalc does not model."""
    method = rec.get("method", "")
    if method not in ("full", "lora", "qlora"):
        raise VramcalcError(f"method {method!r} is not modelled (full, lora, qlora)")
    if rec.get("metric") not in ("allocated", "reserved", "nvidia-smi", "unknown"):
        raise VramcalcError(f"metric {rec.get('metric')!r}")
    optimizer, paged = optimizer_of(rec.get("optimizer") or "adamw")
    dist = rec.get("distributed") or ""
    opts: dict[str, Any] = {
        "method": method,
        "precision": rec.get("precision") or "bf16-mixed",
        "optimizer": optimizer,
        "batch_size": rec["batch_size"],
        "grad_accum": rec.get("grad_accum") or 1,
        "seq_len": rec["seq_len"],
        "grad_checkpointing": rec.get("gradient_checkpointing") or "none",
        "quant": _quant(rec) if method == "qlora" else None,
    }
    if method != "full":
        opts |= {
            "lora_rank": rec["lora_rank"],
            "lora_alpha": float(rec.get("lora_alpha") or rec["lora_rank"]),
            "lora_targets": lora_targets_of(rec["lora_targets"], valid_targets(spec))
            or "all-linear",
            # the record's own value; else the profile's default (LitGPT 0.05), else PEFT's 0.0
            "lora_dropout": rec.get("lora_dropout"),
        }
    n = int(rec.get("num_gpus") or 1)
    if n > 1 or dist:
        opts["num_gpus"] = n
        opts |= {"zero": 3} if dist == "zero3" else {"fsdp": "full"}
        if rec.get("cpu_offload"):
            opts["offload"] = "params"
    chunks = rec.get("loss_chunks")
    if chunks is None and rec.get("loss_chunk_tokens"):
        chunks = min(4096, math.ceil(rec["seq_len"] / rec["loss_chunk_tokens"]))
    flags = {
        "loss": rec.get("loss") or None,
        "loss_chunks": chunks,
        "activation_offload": rec.get("activation_offload"),
        "optimizer_in_backward": rec.get("optimizer_in_backward"),
        "compile": rec.get("compile"),
        "packing": rec.get("packing"),
        "adapter_dtype": rec.get("adapter_dtype") or None,
        "paged_optimizer": paged or None,
        "bnb_version": BNB_RELEASE.get(rec["id"]),
    }
    name = PROFILE_OF.get(rec["framework"], rec["framework"])
    if name not in list_frameworks():
        raise VramcalcError(f"no profile for framework {rec['framework']!r}")
    return Case(rec, spec, opts, flags, name)


def _model(rec: dict[str, Any], folder: Path) -> Any:
    from vramcalc.sources import resolve_model_source

    if "model_config" not in rec:
        return resolve_model_source(rec["model"]).spec
    path = folder / rec["id"] / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_hf_config(rec["model_config"])), encoding="utf-8")
    return resolve_model_source(str(path)).spec


def estimate(case: Case, *, after: bool) -> Any:
    """The estimate of the record BEFORE (no conventions) or AFTER (profile + record flags)."""
    spec = case.spec
    fixed = {k: v for k, v in case.options.items() if v is not None}
    if not after:
        return estimate_training(spec, **fixed)
    profile = get_framework(case.profile, release(case.rec) if case.profile != "hf" else None)
    spec = untied(profile, spec)
    if case.rec.get("untie_embeddings"):
        spec = spec.model_copy(update={"tie_word_embeddings": False})
    stack = apply_framework(profile, fixed, case.flags, seq_len=case.options["seq_len"])
    return estimate_training(spec, **{**fixed, **stack.estimator_kwargs})


def metric_range_bytes(est: Any, metric: str) -> tuple[int, int]:
    """The estimate's counterpart of a published metric, as a (low, high) range of bytes.

    Published peaks are maxima over the whole run, so the load-time peak (when the estimator
    models one; it includes the CUDA context) counts as well as the step's. Paged optimizer state
    (bitsandbytes, CUDA unified memory) is spillable: the GPU holds anything from none of it (the
    floor, total − spillable_bytes) to all of it, so each metric is a range over that span."""
    context = est.component("cuda_context")
    slack = est.component("allocator_slack")
    load = est.load_peak_bytes

    def at(total: int) -> dict[str, int]:
        return {
            "allocated": max(total - context - slack, load - context),
            "reserved": max(total - context, load - context),
            "nvidia-smi": max(total, load),
        }

    floor, full = at(est.total_bytes - est.spillable_bytes), at(est.total_bytes)
    if metric == "unknown":
        return floor["allocated"], full["nvidia-smi"]
    return floor[metric], full[metric]


def error(est: Any, rec: dict[str, Any]) -> float:
    """(estimate − published) / published; 0 when the published figure is inside the range."""
    low, high = metric_range_bytes(est, rec["metric"])
    published = rec["peak_gib"] * GIB
    if low <= published <= high:
        return 0.0
    near = low if published < low else high
    return (near - published) / published


@dataclass
class Row:
    id: str
    framework: str
    published_gib: float
    before: float | None
    after: float | None
    note: str = ""
    cap: bool = False  # seq_len is a truncation cap: the estimate at it is an upper bound


def within_band(row: Row) -> bool:
    """|after| within the framework's band; for a cap record only the lower side is held (the
    estimate at the cap may exceed a run whose batches were shorter by any amount)."""
    band = BAND.get(row.framework, 0.0)
    if row.after is None:
        return False
    return row.after >= -band if row.cap else abs(row.after) <= band


def rows(*, after: bool = True) -> Iterator[Row]:
    with tempfile.TemporaryDirectory() as tmp:
        for rec in load_records():
            if rec.get("status") != "usable":
                continue
            try:
                case = case_of(rec, _model(rec, Path(tmp)))
                b = error(estimate(case, after=False), rec)
            except VramcalcError as exc:
                yield Row(
                    rec["id"], rec["framework"], rec.get("peak_gib", 0.0), None, None, str(exc)
                )
                continue
            a: float | None = None
            note = ""
            if after:
                try:
                    a = error(estimate(case, after=True), rec)
                except VramcalcError as exc:
                    note = f"after: {exc}"
            cap = rec.get("seq_len_kind") == "cap"
            yield Row(rec["id"], rec["framework"], rec["peak_gib"], b, a, note, cap)


def summary(all_rows: list[Row]) -> dict[str, dict[str, float]]:
    """Per framework: n, median |error| and worst |error| (signed), before and after."""
    out: dict[str, dict[str, float]] = {}
    for fw in sorted({r.framework for r in all_rows}):
        mine = [r for r in all_rows if r.framework == fw and r.before is not None]
        if not mine:
            continue
        entry: dict[str, float] = {"n": len(mine)}
        entry["in_band"] = sum(1 for r in mine if within_band(r))
        entry["named_misses"] = sum(1 for r in mine if r.id in KNOWN_MISSES)
        for when in ("before", "after"):
            errs = [getattr(r, when) for r in mine if getattr(r, when) is not None]
            if errs:
                entry[f"{when}_median"] = statistics.median(abs(e) for e in errs)
                entry[f"{when}_worst"] = max(errs, key=abs)
        out[fw] = entry
    return out


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:+.1%}"


def main() -> None:
    all_rows = list(rows())
    if "--summary" not in sys.argv:
        for r in all_rows:
            print(
                f"{r.id:58s} {r.published_gib:7.2f} GiB  before {_pct(r.before):>8s}  "
                f"after {_pct(r.after):>8s}  {r.note}"
            )
    print(
        "\n| framework | records | median before | worst before | median after | worst after "
        "| band | in band | named misses |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for fw, s in summary(all_rows).items():
        print(
            f"| {fw} | {s['n']:.0f} | {s.get('before_median', 0):.1%} | "
            f"{_pct(s.get('before_worst'))} | "
            + (
                f"{s['after_median']:.1%} | {_pct(s.get('after_worst'))} | "
                if "after_median" in s
                else "— | — | "
            )
            + f"±{BAND.get(fw, 0):.0%} | {s['in_band']:.0f} | {s['named_misses']:.0f} |"
        )


if __name__ == "__main__":
    main()
