"""Reference formulas from the papers, written as the papers write them: the independent values
the estimator is tested against (they are not used by the package itself)."""

from __future__ import annotations


def zero_model_state_bytes(psi: int, stage: int, n: int, k: int = 12) -> float:
    """Model states per GPU under ZeRO (Rajbhandari et al. 2019, §5 and Figure 1), mixed precision
    with K bytes of optimizer state per parameter: stage 0 (2 + 2 + K)Ψ, stage 1 4Ψ + KΨ/N,
    stage 2 2Ψ + (2 + K)Ψ/N, stage 3 (4 + K)Ψ/N."""
    return {
        0: (4 + k) * psi,
        1: 4 * psi + k * psi / n,
        2: 2 * psi + (2 + k) * psi / n,
        3: (4 + k) * psi / n,
    }[stage]


def korthikanti_layer_bytes(
    s: int, b: int, h: int, a: int, t: int = 1, sp: bool = False, recompute: str = "none"
) -> float:
    """Activation bytes of one GPT layer, 16-bit (Korthikanti et al. 2022, Table 2):
    none: sbh(10 + 24/t + 5as/(ht)); sp: sbh/t·(34 + 5as/h); selective: the 5as/h term dropped;
    full: 2sbh (the layer input; /t with sequence parallelism)."""
    sbh = s * b * h
    if recompute == "full":
        return 2 * sbh / (t if sp else 1)
    attn = 0.0 if recompute == "selective" else 5 * a * s / h
    if sp:
        return sbh / t * (34 + attn)
    return sbh * (10 + 24 / t + attn / t)
