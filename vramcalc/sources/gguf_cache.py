"""The KV cache of a GGUF model, as llama.cpp allocates it, from the file's metadata: exact, or
refused in one line. Weights are exact from the tensor headers whatever the architecture; the
cache is not in the file, so every case below says where its figure comes from.

* recurrent / state-space / linear-attention layers (Mamba, RWKV, Jamba and the other hybrids,
  LFM2 short convolutions, Kimi's KDA): llama.cpp keeps a per-sequence state whose size depends on
  per-architecture hyper-parameters; vramcalc refuses rather than guess (the config.json of the
  model goes through the exact meta-device route);
* multi-head latent attention (DeepSeek-V2/V3, ``attention.kv_lora_rank``): a file converted with
  ``attention.key_length_mla`` runs llama.cpp's MLA path, which caches the latent
  ``kv_lora_rank + rope`` values per layer (the same figure as vLLM/SGLang); an older conversion
  without it runs the plain attention path, which caches every head's decompressed K and V;
* sliding-window layers: which layers use the window comes from the file's
  ``attention.sliding_window_pattern`` when present, else from llama.cpp's fixed pattern for the
  architecture (``llama_hparams::set_swa_pattern``: gemma2 and gpt-oss every other layer, gemma3
  five of six, cohere2 three of four); any other windowed architecture is refused;
* per-layer K/V head counts (``attention.head_count_kv`` as an array): summed layer by layer;
* KV shared between layers (``attention.shared_kv_layers``, Gemma-3n): refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vramcalc.errors import VramcalcError

_RECURRENT_KEYS: tuple[str, ...] = ("ssm.", "wkv.", "shortconv.", "kda.", "rescale_every_n_layers")
_RECURRENT_KEYS += ("time_mix_extra_dim", "time_decay_extra_dim", "token_shift_count")
_RECURRENT_TENSORS = (".ssm_", ".time_mix_", ".channel_mix_", ".shortconv.")

# llama.cpp's llama_hparams::set_swa_pattern(n): layer il is windowed when il % n < n - 1
_SWA_PATTERN = {"gemma2": 2, "gpt-oss": 2, "gemma3": 6, "cohere2": 4}

# llama_kv_cache_iswa sizes the windowed layers' cache to the window plus one micro-batch
ISWA_NOTE = (
    "llama.cpp's sliding-window cache keeps the window plus one micro-batch (n_ubatch, 512 by "
    "default) per windowed layer, and the whole context with --swa-full; the windowed layers "
    "here hold the window alone"
)


def _pattern_count(n: int, layers: int) -> int:
    return sum(1 for il in range(layers) if n == 0 or il % n < n - 1)


def refuse_recurrent(meta: dict[str, Any], names: set[str], arch: str, source: str) -> None:
    """One line when the model keeps a recurrent state llama.cpp sizes from hyper-parameters."""
    keys = [
        k
        for k in meta
        if k.startswith(f"{arch}.") and k[len(arch) + 1 :].startswith(_RECURRENT_KEYS)
    ]
    tensors = [n for n in names if any(t in n for t in _RECURRENT_TENSORS)]
    if keys or tensors:
        seen = sorted(keys)[0] if keys else sorted(tensors)[0]
        raise VramcalcError(
            f"{source}: GGUF architecture {arch!r} keeps a recurrent state (state-space, RWKV or "
            f"linear-attention layers: {seen}) that vramcalc does not derive from GGUF metadata; "
            "give the model's config.json instead (exact route of vramcalc[torch])"
        )
    if meta.get(f"{arch}.attention.shared_kv_layers") is not None:
        raise VramcalcError(
            f"{source}: GGUF architecture {arch!r} shares KV caches between layers "
            f"({arch}.attention.shared_kv_layers); vramcalc does not derive that cache from GGUF "
            "metadata: give the model's config.json instead"
        )


def window_fields(
    meta: dict[str, Any], arch: str, layers: int, window: int, source: str
) -> tuple[dict[str, Any], list[str]]:
    """sliding_window and how many layers use it, or one line when the file does not say."""
    pattern = meta.get(f"{arch}.attention.sliding_window_pattern")
    if isinstance(pattern, list) and len(pattern) == layers:  # per layer: true = windowed
        windowed = sum(1 for p in pattern if p)
    elif isinstance(pattern, int) and not isinstance(pattern, bool) and 0 <= pattern <= layers:
        windowed = _pattern_count(pattern, layers)
    elif arch in _SWA_PATTERN:
        windowed = _pattern_count(_SWA_PATTERN[arch], layers)
    else:
        raise VramcalcError(
            f"{source}: GGUF architecture {arch!r} has a {window}-token sliding window but its "
            f"metadata does not say which layers use it ({arch}.attention.sliding_window_pattern "
            "is absent); vramcalc refuses to guess the KV cache: give the model's config.json"
        )
    return {"sliding_window": window, "sliding_window_layers": windowed}, [ISWA_NOTE]


def mla_fields(
    key: Callable[[str], int | None], layers: int, heads: int, kv_lora: int, source: str
) -> tuple[dict[str, Any], list[str]]:
    """The MLA spec fields and, for a file converted before llama.cpp's MLA path, the cache of
    decompressed K and V that the plain attention path keeps."""
    rope = int(key("rope.dimension_count") or 64)
    k_mla, v_mla = key("attention.key_length_mla"), key("attention.value_length_mla")
    k_len, v_len = key("attention.key_length"), key("attention.value_length")
    qk_head = int(k_mla or k_len or 0)
    v_head = int(v_mla or v_len or 0)
    fields: dict[str, Any] = {
        "num_kv_heads": None,
        "kv_lora_rank": kv_lora,
        "q_lora_rank": key("attention.q_lora_rank"),
        "qk_rope_head_dim": rope,
        "qk_nope_head_dim": max(qk_head - rope, 1),
        "v_head_dim": max(v_head, 1),
    }
    if k_mla:  # llama.cpp's MLA path: one cache row of the latent and the rotary key per token
        if k_len is not None and k_len != kv_lora + rope:
            raise VramcalcError(
                f"{source}: GGUF MLA key_length {k_len} is not kv_lora_rank {kv_lora} + rope "
                f"{rope}: an MLA layout vramcalc does not know"
            )
        return fields, [
            f"MLA: llama.cpp caches the latent, kv_lora_rank {kv_lora} + rope {rope} values per "
            "layer and token (builds that also keep a separate V of kv_lora_rank need up to "
            f"{(2 * kv_lora + rope) / (kv_lora + rope):.2f}× this cache)"
        ]
    if not (k_len and v_len):
        raise VramcalcError(
            f"{source}: GGUF MLA model without key_length_mla nor key_length/value_length: "
            "the width of the cache llama.cpp keeps is unknown"
        )
    kv_heads = int(key("attention.head_count_kv") or heads)
    fields["kv_elements_per_token"] = layers * kv_heads * (k_len + v_len)
    return fields, [
        "MLA converted without attention.key_length_mla: llama.cpp runs plain attention and "
        f"caches each of {kv_heads} heads' K ({k_len}) and V ({v_len}) per layer and token"
    ]


def per_layer_kv(
    meta: dict[str, Any], arch: str, layers: int, head_k: int, head_v: int
) -> int | None:
    """Cache values per token over all layers when the K/V head count varies by layer (an array
    in the file), else None (the uniform count describes it)."""
    value = meta.get(f"{arch}.attention.head_count_kv")
    if not isinstance(value, list) or len(set(value)) <= 1:
        return None
    if len(value) != layers or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        return None
    return sum(value) * (head_k + head_v)
