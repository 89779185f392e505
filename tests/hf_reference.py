"""Independent references from transformers itself: parameters of the model built on the meta
device, and the cache a real (tiny, CPU) forward pass leaves behind."""

from __future__ import annotations

from typing import Any

import pytest


def _config(cfg: dict[str, Any]) -> Any:
    transformers = pytest.importorskip("transformers")
    cfg = dict(cfg)
    return transformers.AutoConfig.for_model(cfg.pop("model_type"), **cfg)


def meta_param_count(cfg: dict[str, Any]) -> int:
    """sum(p.numel()) of AutoModelForCausalLM built from `cfg` on the meta device."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = _config(cfg)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def cache_elements(cfg: dict[str, Any], seq_lens: tuple[int, int] = (4, 8)) -> tuple[int, int]:
    """(elements one token adds, fixed elements per sequence) of the cache a forward pass of one
    sequence fills, read from two lengths (both inside every window): every tensor the cache
    layers hold (keys, values, conv and recurrent states)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(_config(cfg)).eval()
    totals = []
    for seq in seq_lens:
        with torch.no_grad():
            out = model(torch.ones(1, seq, dtype=torch.long), use_cache=True)
        cache = getattr(out, "cache", None) or out.past_key_values
        total = 0
        for layer in cache.layers:
            for value in vars(layer).values():
                if isinstance(value, torch.Tensor) and value.dim() >= 2:
                    total += value.numel()
                elif isinstance(value, (list, tuple, dict)):  # conv/recurrent states by index
                    items = value.values() if isinstance(value, dict) else value
                    total += sum(
                        t.numel() for t in items if isinstance(t, torch.Tensor) and t.dim() >= 2
                    )
        totals.append(total)
    (a, b), (ta, tb) = seq_lens, totals
    per_token = (tb - ta) // (b - a)
    return per_token, ta - per_token * a
