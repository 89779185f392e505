"""The inference cache, in one place: keys and values per token plus a fixed state per sequence.

Every estimate that needs the cache (serving memory, the RLHF rollout engine, decode traffic in
``cost infer``) calls these functions, so a model's cache is described once:

* **per token**, for each layer that has attention: ``2 · kv_heads · head_dim`` values (K and V),
  or for multi-head latent attention the compressed latent and the shared rotary key,
  ``kv_lora_rank + qk_rope_head_dim`` (DeepSeek-V2, arXiv 2405.04434, §2.1; what vLLM and SGLang
  cache). A sliding-window layer keeps at most ``sliding_window`` tokens (Mistral 7B,
  arXiv 2310.06825, §2 "rolling buffer cache"); a hybrid's state-space layers keep none;
* **per sequence**, a fixed state that does not grow with the context: the state-space layers'
  convolution window and recurrent state (Mamba, arXiv 2312.00752, §3.4; Mamba-2,
  arXiv 2405.21060), counted by :attr:`ModelSpec.state_elements`.

An exact route (a meta-device build of the real model) may set ``kv_elements_per_token``: it then
replaces the per-token figure derived from the fields. It sums every cache layer; when that route
also sets ``sliding_window`` / ``sliding_window_layers`` (it does so only when every layer caches
the same width), the windowed layers' share is ``kv_elements_per_token × sliding_window_layers /
num_layers``, capped at the window like the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from vramcalc.spec.model import ModelSpec


def kv_elements_per_token(spec: ModelSpec) -> int:
    """Cache elements one token adds over all layers while the context is within every window."""
    if spec.kv_elements_per_token is not None:
        return spec.kv_elements_per_token
    return spec.kv_layers * spec.kv_cache_width


@dataclass(frozen=True, slots=True)
class _CacheShape:
    """The fields of a spec the cache arithmetic reads, derived once per spec (several of them
    are computed properties of ModelSpec, and every estimate reads them)."""

    per_token_override: int | None  # spec.kv_elements_per_token (the exact route)
    num_layers: int
    windowed_of_all: int  # windowed layers among all layers (the override's share)
    windowed: int  # windowed layers among the attention layers
    full: int  # attention layers without a window
    width: int  # values per token per attention layer (0 with an override)
    window: int | None
    state: int  # fixed state elements per sequence


@lru_cache(maxsize=256)
def _shape(spec: ModelSpec) -> _CacheShape:
    override = spec.kv_elements_per_token
    windowed = min(spec.windowed_layers, spec.kv_layers)
    return _CacheShape(
        per_token_override=override,
        num_layers=spec.num_layers,
        windowed_of_all=min(spec.windowed_layers, spec.num_layers),
        windowed=windowed,
        full=spec.kv_layers - windowed,
        width=0 if override is not None else spec.kv_cache_width,
        window=spec.sliding_window,
        state=spec.state_elements,
    )


def _token_elements(spec: ModelSpec, seq_len: int) -> tuple[int, str]:
    """Cache elements the tokens of one sequence hold (the fixed state apart), and that arithmetic
    with its numbers: Σ over attention layers of min(seq_len, window) × width."""
    shape = _shape(spec)
    window_tokens = min(seq_len, shape.window or seq_len)
    if shape.per_token_override is not None:  # uniform layers: each holds 1/num_layers of it
        L, w = shape.num_layers, shape.windowed_of_all
        token_layers = (L - w) * seq_len + w * window_tokens
        n = shape.per_token_override * token_layers // L
        return n, f"{n} values read from the model"
    windowed, full = shape.windowed, shape.full
    tokens = (
        f"({full} layers × {seq_len} + {windowed} layers × {window_tokens} tokens)"
        if windowed
        else f"{full} layers × {seq_len} tokens"
    )
    n = shape.width * (full * seq_len + windowed * window_tokens)
    return n, f"{tokens} × {shape.width} values"


def kv_elements_per_sequence(spec: ModelSpec, seq_len: int) -> int:
    """Cache elements of one sequence of `seq_len` tokens: its tokens' keys and values plus the
    fixed state (conv + SSM) of its state-space layers."""
    return _token_elements(spec, seq_len)[0] + _shape(spec).state


def kv_cache_bytes(spec: ModelSpec, batch_size: int, seq_len: int, kv_bytes: float) -> int:
    """Bytes of the cache of `batch_size` sequences of `seq_len` tokens, `kv_bytes` per element."""
    return int(batch_size * kv_elements_per_sequence(spec, seq_len) * kv_bytes)


# The terms and the note are pure functions of their arguments, built once per (spec, batch, seq,
# width); typed: 1 and True (or 2 and 2.0) are different keys, as their text differs.
@lru_cache(maxsize=1024, typed=True)
def kv_cache_terms(
    spec: ModelSpec, batch_size: int, seq_len: int, kv_bytes: float
) -> tuple[int, str]:
    """:func:`kv_cache_bytes` and its arithmetic with the numbers substituted (``--explain``; the
    formula evaluates to the bytes)."""
    token_elements, per_seq = _token_elements(spec, seq_len)
    state = _shape(spec).state
    total = int(batch_size * (token_elements + state) * kv_bytes)  # = kv_cache_bytes
    if state:
        per_seq = f"({per_seq} + {state} state values)"
    return total, f"{batch_size} seqs × {per_seq} × {kv_bytes:g} B"


@lru_cache(maxsize=1024, typed=True)
def kv_cache_formula(spec: ModelSpec, batch_size: int, seq_len: int, kv_dtype: str) -> str:
    """The formula behind :func:`kv_cache_bytes`, in words, for the estimate's note."""
    layers = (
        f"{spec.kv_layers} attention layers"
        if spec.kv_layers != spec.num_layers
        else (f"{spec.num_layers} layers")
    )
    if spec.kv_layers == 0 and spec.kv_elements_per_token is None:
        text = "no attention layers: no keys or values"
    elif spec.kv_elements_per_token is not None:
        text = f"{spec.kv_elements_per_token} elements per token (read from the model) × {batch_size} × {seq_len} tokens × {kv_dtype}"
    elif spec.is_mla:
        text = (
            f"{layers} × {batch_size} × {seq_len} tokens × (kv_lora_rank {spec.kv_lora_rank} + "
            f"rope {spec.qk_rope_head_dim}) × {kv_dtype} (MLA latent cache)"
        )
    else:
        text = (
            f"2 × {layers} × {batch_size} × {seq_len} tokens × {spec.kv_heads} kv heads × "
            f"{spec.head_dim} × {kv_dtype}"
        )
    windowed = min(spec.windowed_layers, spec.kv_layers)
    if windowed:
        text += f"; {windowed} layers capped at a {spec.sliding_window}-token window"
    if spec.state_elements:
        text += (
            f"; + {batch_size} × {spec.state_elements:,} state elements per sequence "
            f"({spec.state_layers} state-space layers: conv + recurrent state)"
        )
    return text
