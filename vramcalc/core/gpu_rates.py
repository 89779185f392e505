"""What a GPU sustains: dense peaks per math dtype, default MFU per generation, ring all-reduce time.

Read by `cost` (training and serving) and `rlhf` (time and price of its FLOP terms) alike.
"""

from __future__ import annotations

from vramcalc.errors import VramcalcError
from vramcalc.spec.model import GPUSpec

# Default MFU per GPU generation: the fraction of the dense BF16/FP16 peak that large, well-tuned
# training runs reach. Published figures (not fitted to the tests):
#   volta  0.21  GPT-3 175B on V100: 21.3 % MFU (PaLM, Chowdhery et al. 2022, Table 3)
#   ampere 0.40  Megatron-Turing NLG 530B on A100: 30.2 %, Gopher 32.5 % (TPU), PaLM 46.2 % (TPU)
#                (PaLM Table 3); Megatron-LM 2021 reports 44-52 % of peak on A100 (Narayanan et
#                al., Table 1, hardware FLOPs with recomputation). 0.40 is the middle of that range.
#   hopper 0.40  Llama 3 405B on H100: 38-43 % BF16 MFU (Llama 3 paper, Dubey et al. 2024, Table 4)
#   turing / ada / blackwell / cdna2 / cdna3: no published large-scale run; assumed (say so in reports).
DEFAULT_MFU: dict[str, tuple[float, str]] = {
    "volta": (0.21, "GPT-3 175B on V100, 21.3 % (PaLM paper, Table 3)"),
    "turing": (0.30, "assumed: no published large-scale training run"),
    "ampere": (0.40, "A100 runs 30-52 % (PaLM Table 3; Megatron-LM 2021, Table 1)"),
    "ada": (0.30, "assumed: no published large-scale training run"),
    "hopper": (0.40, "Llama 3 405B on H100, 38-43 % (Llama 3 paper, Table 4)"),
    "blackwell": (0.35, "assumed: no published large-scale run yet; below Hopper's 0.40"),
    "cdna2": (0.30, "assumed: no published large-scale training run"),
    "cdna3": (0.30, "assumed: no published large-scale training run"),
}
FALLBACK_MFU = (0.30, "assumed: GPU generation unknown")


def default_mfu(gpu: GPUSpec) -> tuple[float, str]:
    """The documented default MFU of the GPU's generation and where it comes from."""
    return DEFAULT_MFU.get(gpu.generation or "", FALLBACK_MFU)


_FALLBACKS = {"bf16": ("bf16", "fp16"), "fp16": ("fp16", "bf16"), "fp8": ("fp8",)}


def compute_peak(gpu: GPUSpec, dtype: str) -> tuple[float, str]:
    """Dense peak TFLOP/s for math in `dtype`, and the dtype whose peak it is.

    bf16 falls back to fp16 (V100, T4 have no BF16 tensor cores and train in fp16); fp32 uses the
    non-tensor FP32 peak (PyTorch leaves TF32 matmuls off by default)."""
    for candidate in _FALLBACKS.get(dtype, (dtype,)):
        peak = gpu.peak_tflops(candidate)
        if peak:
            return peak, candidate
    listed = [d for d in ("fp32", "tf32", "bf16", "fp16", "fp8", "int8") if gpu.peak_tflops(d)]
    raise VramcalcError(
        f"{gpu.name} has no {dtype} peak in the catalog; it lists {', '.join(listed) or 'none'} "
        "(add one with a GPU file, see docs/cost.md)"
    )


def compute_seconds(flops: float, gpus: int, peak_tflops: float, mfu: float) -> float:
    """Wall time of `flops` on `gpus` GPUs running at `mfu` of `peak_tflops` each."""
    return flops / (gpus * peak_tflops * 1e12 * mfu)


def need_figure(value: float | None, gpu: GPUSpec, what: str) -> float:
    if not value:
        raise VramcalcError(f"{gpu.name} has no {what} in the catalog (add it with a GPU file)")
    return value


def allreduce_seconds(num_bytes: float, num_gpus: int, gpu: GPUSpec) -> float:
    """Ring all-reduce: 2·(n−1)/n × bytes over one direction of the link (half the vendor's
    bidirectional figure); latency terms ignored."""
    if num_gpus == 1:
        return 0.0
    link = need_figure(gpu.interconnect_gbps, gpu, "interconnect_gbps") / 2 * 1e9
    return 2 * (num_gpus - 1) / num_gpus * num_bytes / link
