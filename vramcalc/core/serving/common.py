"""What every serving engine shares: its defaults read from presets/engines/, the model's weights
and KV cache per tensor-parallel rank, and the CUDA-side terms outside the torch allocator.

The cache per token comes from the one KV function (:mod:`vramcalc.core.kv_cache`); this module
only divides it over ranks the way the engines shard it.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from functools import cache
from typing import Any

from vramcalc.core.kv_cache import kv_elements_per_token
from vramcalc.errors import PresetError, VramcalcError
from vramcalc.spec.model import ModelSpec
from vramcalc.units import GIB

ENGINES = ("hf", "vllm", "sglang", "llama.cpp")

# CUDA context, cuBLAS workspaces and kernel modules loaded during the profile run: what vLLM logs as
# `non_torch_memory` at TP=1. The logged values spread from 0.10 GiB (A100-40GB, v0.6.6, issue
# #12330) through 0.35 GiB (RTX 3090, v0.6.4, issue #10517) to 1.79 GiB (H100, PR #10511); the
# median of the three is used (validation/serving/vllm.toml).
NON_TORCH_TP1_BYTES = int(0.35 * GIB)
# NCCL buffers and vLLM's custom all-reduce IPC buffers grow the non-torch memory per rank when
# TP > 1 over NVLink: +1.79 GiB from TP=1 to TP=2 on H100 (PR #10511, same model and machine).
# Over PCIe without peer access the custom all-reduce is off and NCCL's ring buffers are small:
# 0.25 GiB of non-torch memory in all on 2×RTX 4090 (issue #13061), below the TP=1 median, so no
# growth is added there (and the output says the PCIe figure is not sized).
COMM_BUFFERS_NVLINK_BYTES = int(1.79 * GIB)


def comm_buffers_bytes(tp: int, interconnect: str | None) -> tuple[int, str]:
    """Communication buffers per rank for TP over `interconnect` (a GPU preset's field; None:
    unknown, taken as NVLink, the larger), and what the figure is."""
    if tp == 1:
        return 0, ""
    if interconnect == "pcie":
        return (
            0,
            "PCIe: NCCL buffers not sized (0.25 GiB non-torch in all on 2×RTX 4090, vLLM #13061)",
        )
    said = "NVLink NCCL/custom all-reduce buffers (+1.79 GiB at TP=2 on H100, vLLM PR #10511)"
    if interconnect is None:
        said += "; interconnect unknown (--gpu-mem), NVLink assumed"
    elif interconnect != "nvlink":
        said += f"; {interconnect} taken as NVLink (no reading)"
    return COMM_BUFFERS_NVLINK_BYTES, said


@dataclass(frozen=True, slots=True)
class EngineDefaults:
    """The numeric defaults of one engine, by the names presets/engines/<engine>.toml gives them."""

    engine: str
    values: dict[str, float]

    def get(self, name: str) -> float:
        if name not in self.values:
            raise PresetError(f"presets/engines/{self.engine}.toml has no numeric default {name!r}")
        return self.values[name]


@cache
def engine_defaults(engine: str) -> EngineDefaults:
    """Numeric `[[default]]` values of presets/engines/<engine>.toml (written by the evidence
    collection with the source of each); rule-like defaults (tables by GPU size) are in the
    engine modules with the same sources."""
    from vramcalc.sources.presets import presets_dir

    path = presets_dir() / "engines" / f"{engine}.toml"
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PresetError(f"{path}: {exc}") from None
    values = {
        str(d["name"]): float(d["value"])
        for d in data.get("default", [])
        if isinstance(d, dict)
        and isinstance(d.get("value"), int | float)
        and not isinstance(d.get("value"), bool)
    }
    return EngineDefaults(engine=engine, values=values)


def check_parallel(spec: ModelSpec, tp: int, pp: int) -> None:
    """Tensor parallel shards the attention heads: they must divide evenly (as every engine
    requires); pipeline stages split the layers."""
    if tp < 1 or pp < 1:
        raise VramcalcError(f"--tp and --pp must be at least 1 (got --tp {tp}, --pp {pp})")
    if spec.num_attention_heads % tp:
        raise VramcalcError(
            f"--tp {tp}: the {spec.num_attention_heads} attention heads of {spec.name} do not "
            f"divide evenly; use a divisor of {spec.num_attention_heads}"
        )
    if pp > spec.num_layers:
        raise VramcalcError(f"--pp {pp}: {spec.name} has only {spec.num_layers} layers")


def kv_heads_per_rank(spec: ModelSpec, tp: int) -> int:
    """KV heads one rank caches: kv_heads / tp, at least 1 (vLLM and SGLang replicate a KV head
    over ranks when there are fewer KV heads than ranks)."""
    return max(1, spec.kv_heads // tp)


def kv_bytes_per_token_per_rank(spec: ModelSpec, tp: int, pp: int, kv_bytes: float) -> int:
    """Cache bytes of one token on one rank: the model's per-token elements (kv_cache) over all
    layers, the heads' share of this rank, the layers' share of this pipeline stage. An MLA latent
    is not split by heads: every rank holds it whole (vLLM and SGLang MLA backends)."""
    elements = kv_elements_per_token(spec)
    if not spec.is_mla and spec.kv_heads:
        elements = elements * kv_heads_per_rank(spec, tp) // spec.kv_heads
    return math.ceil(elements * kv_bytes / pp)


def refuse_state_models(spec: ModelSpec, engine: str) -> None:
    """Hybrid state-space models: the engines page their recurrent state in their own layouts
    (vLLM raises the block size to align pages); not sized here."""
    if spec.state_elements:
        raise VramcalcError(
            f"--engine {engine}: {spec.name} has state-space layers; their paged state layout in "
            f"{engine} is not modelled (use --engine hf for the memory of the cache itself)"
        )


def weights_per_rank(weights_bytes: int, tp: int, pp: int) -> int:
    """Weights of one rank: every linear and the vocabulary matrices are sharded over TP
    (column/row parallel, vocab parallel), layers over PP; norms (replicated) are < 0.1 %."""
    return -(-weights_bytes // (tp * pp))


def window_note(spec: ModelSpec, engine: str) -> list[str]:
    """Sliding-window layers are counted at the full context per token here (as vLLM V0 and SGLang
    without its SWA pool allocate them); engines with a hybrid allocator (vLLM >= 0.10) keep only
    the window for those layers, so their concurrency is higher than this estimate."""
    windowed = min(spec.windowed_layers, spec.kv_layers)
    if not windowed:
        return []
    return [
        f"{windowed} sliding-window layers counted at the full context per token; {engine} "
        f"releases with a hybrid KV allocator keep only the {spec.sliding_window}-token window "
        "for them: the concurrency here is a lower bound"
    ]
