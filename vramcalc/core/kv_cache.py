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

from functools import lru_cache

from vramcalc.spec.model import ModelSpec


def kv_elements_per_token(spec: ModelSpec) -> int:
    """Cache elements one token adds over all layers while the context is within every window."""
    if spec.kv_elements_per_token is not None:
        return spec.kv_elements_per_token
    return spec.kv_layers * spec.kv_cache_width


def _token_elements(spec: ModelSpec, seq_len: int) -> tuple[int, str]:
    """Cache elements the tokens of one sequence hold (the fixed state apart), and that arithmetic
    with its numbers: Σ over attention layers of min(seq_len, window) × width."""
    window_tokens = min(seq_len, spec.sliding_window or seq_len)
    if spec.kv_elements_per_token is not None:  # uniform layers: each holds 1/num_layers of it
        L, w = spec.num_layers, min(spec.windowed_layers, spec.num_layers)
        token_layers = (L - w) * seq_len + w * window_tokens
        n = spec.kv_elements_per_token * token_layers // L
        return n, f"{n} values read from the model"
    windowed = min(spec.windowed_layers, spec.kv_layers)
    full = spec.kv_layers - windowed
    tokens = (
        f"({full} layers × {seq_len} + {windowed} layers × {window_tokens} tokens)"
        if windowed
        else f"{full} layers × {seq_len} tokens"
    )
    n = spec.kv_cache_width * (full * seq_len + windowed * window_tokens)
    return n, f"{tokens} × {spec.kv_cache_width} values"


def kv_elements_per_sequence(spec: ModelSpec, seq_len: int) -> int:
    """Cache elements of one sequence of `seq_len` tokens: its tokens' keys and values plus the
    fixed state (conv + SSM) of its state-space layers."""
    return _token_elements(spec, seq_len)[0] + spec.state_elements


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
    total = kv_cache_bytes(spec, batch_size, seq_len, kv_bytes)
    per_seq = _token_elements(spec, seq_len)[1]
    if spec.state_elements:
        per_seq = f"({per_seq} + {spec.state_elements} state values)"
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
