"""From what the meta-device build of a model says (:class:`MetaInventory`) to a ModelSpec: the
exact tensors and cache, and the generic fields the activation model reads (pure data, no torch;
:mod:`vramcalc.measure.meta` fills the inventory).

Cache fields: ``kv_elements_per_token`` sums every cache layer; ``sliding_window`` /
``sliding_window_layers`` are set only when every cache layer holds the same elements per token and
there is one cache layer per decoder layer, so that the windowed layers' share is
``kv_elements_per_token × sliding_window_layers / num_layers``; otherwise windowed layers are
counted at full length and the notes say so (an upper bound).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vramcalc.errors import VramcalcError
from vramcalc.spec.model import ExactTensor, ModelSpec
from vramcalc.spec.params import LINEAR, LM_HEAD, POSITION

# Config names of the number of experts a token is routed to, across transformers' MoE configs.
_TOP_K_NAMES = (
    "num_experts_per_tok",
    "num_experts_per_token",
    "experts_per_token",
    "moe_k",
    "moe_topk",
    "top_k",
)
_GATED_LEAVES = ("gate_proj", "gate_up_proj", "w3", "gate_up", "wi_0", "w1_w3")


@dataclass(frozen=True)
class CacheInventory:
    """The model's own cache at batch 1: elements per token and fixed elements per sequence, with
    each cache layer's per-token elements and sliding window (None: full length)."""

    kv_elements_per_token: int
    state_elements_per_sequence: int
    per_layer: tuple[tuple[int, int | None], ...]
    cache_class: str


@dataclass(frozen=True)
class MetaInventory:
    """What a meta-device build of the transformers model says about it."""

    model_type: str
    model_class: str
    transformers_version: str
    tensors: tuple[ExactTensor, ...]
    param_count: int
    num_experts: int
    expert_layers: int
    cache: CacheInventory | None
    cache_error: str
    build_seconds: float
    cache_seconds: float
    config: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    notes: tuple[str, ...] = ()


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _first(config: dict[str, Any], *names: str) -> int | None:
    for n in names:
        v = _positive_int(config.get(n))
        if v is not None:
            return v
    return None


def _decoder_config(inv: MetaInventory) -> dict[str, Any]:
    """The config's fields, with its text_config's on top for a multimodal wrapper built whole
    (the decoder's widths are there)."""
    c = inv.config
    text = c.get("text_config")
    if isinstance(text, dict) and _first(c, "hidden_size", "d_model") is None:
        return {**c, **text}
    return c


def _generic_fields(inv: MetaInventory, where: str) -> dict[str, Any]:
    """hidden, layers, heads, vocab, max positions (and intermediate width) from the config as
    transformers completed it; refuses when one is missing."""
    c = _decoder_config(inv)
    # names across transformers' configs; decoder_* for the decoders of encoder-decoder families
    # (BART, Marian, ...) that transformers also builds as causal LMs
    found = {
        "hidden_size": _first(c, "hidden_size", "n_embd", "d_model", "dim"),
        "num_layers": _first(
            c, "num_hidden_layers", "n_layer", "num_layers", "n_layers", "decoder_layers"
        ),
        "num_attention_heads": _first(
            c, "num_attention_heads", "n_head", "num_heads", "n_heads", "decoder_attention_heads"
        ),
        "vocab_size": _first(c, "vocab_size"),
        "max_position_embeddings": _first(
            c,
            "max_position_embeddings",
            "n_positions",
            "max_sequence_length",
            "seq_length",
            "max_target_positions",
        ),
    }
    missing = [k for k, v in found.items() if v is None]
    if missing:
        raise VramcalcError(
            f"{where}: the {inv.model_type} config has no {', '.join(missing)}, which the "
            "activation model needs; vramcalc cannot estimate this architecture"
        )
    fields: dict[str, Any] = dict(found)
    hidden: int = fields["hidden_size"]
    heads: int = fields["num_attention_heads"]
    # GPT-2-style configs leave the MLP width as n_inner=None, meaning 4 × hidden
    inter = _first(c, "intermediate_size", "n_inner", "ffn_dim", "d_ff", "decoder_ffn_dim")
    fields["intermediate_size"] = inter if inter is not None else 4 * hidden
    kv = _first(c, "num_key_value_heads", "num_kv_heads")
    fields["num_kv_heads"] = kv if kv is not None and heads % kv == 0 else None
    head_dim = _first(c, "head_dim")
    if head_dim is not None and head_dim * heads != hidden:
        fields["head_dim"] = head_dim
    elif hidden % heads:
        fields["head_dim"] = max(hidden // heads, 1)
    act = c.get("hidden_act") or c.get("activation_function") or c.get("hidden_activation")
    if isinstance(act, str):
        fields["activation"] = act
    return fields


def spec_from_inventory(
    inv: MetaInventory, name: str, source: str = ""
) -> tuple[ModelSpec, list[str]]:
    """A ModelSpec whose tensors and cache are the meta-device build's; other fields generic."""
    where = source or name
    fields = _generic_fields(inv, where)
    kinds = {t.kind for t in inv.tensors}
    leaves = {t.name.rsplit(".", 1)[-1] for t in inv.tensors if t.kind == LINEAR}
    notes = [
        *inv.notes,
        f"exact via transformers {inv.transformers_version} on the meta device "
        f"({inv.model_class}: tensors and cache read from the model itself)",
        "activations follow the generic decoder model (approximate for unusual blocks)",
    ]
    fields |= {
        "architecture": inv.model_type,
        "tie_word_embeddings": LM_HEAD not in kinds,
        "position_embedding": "learned" if POSITION in kinds else "rotary",
        "mlp_kind": "gated" if leaves & set(_GATED_LEAVES) else "plain",
        "exact_tensors": inv.tensors,
    }
    if inv.num_experts:
        top_k = _first(_decoder_config(inv), *_TOP_K_NAMES)
        if top_k is None or top_k > inv.num_experts:
            raise VramcalcError(
                f"{where}: {inv.model_type} has {inv.num_experts} experts but its config names no "
                f"experts-per-token ({', '.join(_TOP_K_NAMES)}); active parameters are unknown"
            )
        fields |= {
            "num_experts": inv.num_experts,
            "experts_per_token": top_k,
            "first_dense_layers": max(fields["num_layers"] - inv.expert_layers, 0),
        }
        moe_inter = _first(
            _decoder_config(inv), "moe_intermediate_size", "expert_intermediate_size"
        )
        if moe_inter is not None:
            fields["moe_intermediate_size"] = moe_inter
    if inv.cache is None:
        raise VramcalcError(
            f"{where}: the {inv.model_type} model was built on the meta device "
            f"({inv.param_count:,} parameters) but its forward could not run there "
            f"({inv.cache_error}), so the cache it holds is unknown; vramcalc refuses to guess it"
        )
    fields |= _cache_fields(inv.cache, fields["num_layers"], notes)
    fields |= _kv_heads_from_cache(inv.cache, fields)
    try:
        spec = ModelSpec(name=name, source=source, **fields)
    except ValueError as exc:
        raise VramcalcError(f"{where}: meta route: {exc}") from None
    return spec, notes


def _kv_heads_from_cache(cache: CacheInventory, fields: dict[str, Any]) -> dict[str, Any]:
    """K/V heads the cache shows (multi-query GPT-BigCode: 1, whatever the config's heads say),
    when every decoder layer caches K and V of the same width and nothing else: the KV fields
    then describe the cache the model holds even where only they are read."""
    widths = {n for n, _ in cache.per_layer}
    heads: int = fields["num_attention_heads"]
    head_dim = fields.get("head_dim") or fields["hidden_size"] // heads
    if len(widths) != 1 or len(cache.per_layer) != fields["num_layers"]:
        return {}
    width = widths.pop()
    if cache.state_elements_per_sequence or width % (2 * head_dim):
        return {}
    kv = width // (2 * head_dim)
    return {"num_kv_heads": kv} if kv and heads % kv == 0 else {}


def _cache_fields(cache: CacheInventory, num_layers: int, notes: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kv_elements_per_token": cache.kv_elements_per_token,
        "state_elements_per_sequence": cache.state_elements_per_sequence,
    }
    windows = {w for _, w in cache.per_layer if w is not None}
    if not windows:
        return out
    widths = {n for n, _ in cache.per_layer}
    if len(windows) == 1 and len(widths) == 1 and len(cache.per_layer) == num_layers:
        windowed = sum(1 for _, w in cache.per_layer if w is not None)
        out |= {"sliding_window": windows.pop(), "sliding_window_layers": windowed}
    else:
        notes.append(
            "sliding-window layers of unequal cache widths: their cache counted at full length "
            "(an upper bound)"
        )
    return out
