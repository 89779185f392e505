"""The pieces of an inference estimate that depend on the model and shape, not on the request's
other inputs: activation peak, weights, KV cache; memoised per spec (:class:`SpecTerms`)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from vramcalc.core import activations as act
from vramcalc.core.kv_cache import kv_cache_formula, kv_cache_terms
from vramcalc.core.results import Component
from vramcalc.spec.model import ModelSpec
from vramcalc.spec.params import TensorGroup, active_param_count, param_count, tensor_groups
from vramcalc.spec.quant import WeightFormat, kv_bytes_per_element, weight_bytes


def inference_activation_bytes(
    spec: ModelSpec, batch_size: int, seq_len: int, act_bytes: int, logits: str, attention: str
) -> tuple[int, str]:
    """Peak transient bytes of a prefill of `seq_len` tokens and which part sets it.

    Inside a layer the residual stream (4·h per token, 5·h for GPT-2) sits beside the largest
    workspace. Eager attention adds one layer's scores: transformers computes q·kᵀ (compute dtype),
    then ``softmax(..., dtype=float32)`` — which first upcasts its input (a second fp32 copy when
    the scores are 16-bit) — then casts back: (a + 8)·b·heads·s² at the softmax, (a + 4) in fp32,
    beside q (k and v are in the cache by then), and the b·s² additive mask lives through the
    layers; GPT-2's block also holds the layer's probabilities (a·b·heads·s²) through its MLP. The logits peak comes after the layers, when only the kept logits and
    the fp32 copy that generate() (or a scorer) makes are alive: rows × V × (a + 4).
    Coefficients checked against ``vramcalc validate`` (docs/validation.md).
    """
    activations, peak_part, _ = inference_activation_terms(
        spec, batch_size, seq_len, act_bytes, logits, attention
    )
    return activations, peak_part


@lru_cache(maxsize=1024, typed=True)  # pure in its arguments; sweeps repeat them
def inference_activation_terms(
    spec: ModelSpec, batch_size: int, seq_len: int, act_bytes: int, logits: str, attention: str
) -> tuple[int, str, str]:
    """inference_activation_bytes, the part that sets the peak, and its arithmetic (--explain)."""
    tokens = batch_size * seq_len
    res_per_token = act.inference_residual_per_token(spec, act_bytes)
    residual = tokens * res_per_token
    ws = act.inference_layer_workspace_per_token(spec, act_bytes)
    candidates = {name: residual + tokens * per_token for name, per_token in ws.items()}
    eager_attention = False  # the attention candidate is the eager softmax's, not the workspace's
    mask = scores = 0
    if attention == "eager":
        upcast = 4 if act_bytes < 4 else 0
        scores = batch_size * spec.num_attention_heads * seq_len * seq_len
        mask = batch_size * seq_len * seq_len * act_bytes  # additive causal mask, whole forward
        at_softmax = tokens * spec.q_dim * act_bytes  # q (k and v are in the cache by now)
        at_softmax += scores * (act_bytes + 4 + upcast)
        if residual + at_softmax > candidates["attention"]:
            candidates["attention"] = residual + at_softmax
            eager_attention = True
        candidates = {k: v + mask for k, v in candidates.items()}
        if spec.architecture in act.KEEPS_ATTN_OUTPUT:  # the block returns the probabilities
            candidates["mlp"] += scores * act_bytes
    logit_rows = tokens if logits == "all" else batch_size
    candidates["logits"] = logit_rows * spec.output_width * (act_bytes + 4)
    peak_part = max(candidates, key=lambda k: candidates[k])
    # the arithmetic of the peak only (the other candidates' text is never shown)
    if peak_part == "logits":
        formula = f"{logit_rows} rows × {spec.output_width} vocab × ({act_bytes} + 4) B"
    elif eager_attention and peak_part == "attention":
        upcast = 4 if act_bytes < 4 else 0
        formula = (
            f"{tokens} tokens × ({res_per_token:g} residual + {spec.q_dim} × {act_bytes} q) B"
            f" + {scores} scores × {act_bytes + 4 + upcast} B"
        )
    else:
        formula = (
            f"{tokens} tokens × ({res_per_token:g} residual + {ws[peak_part]:g} {peak_part}) B"
        )
    if attention == "eager" and peak_part != "logits":
        formula += f" + {mask} mask B"
        if peak_part == "mlp" and spec.architecture in act.KEEPS_ATTN_OUTPUT:
            formula += f" + {scores} probabilities × {act_bytes} B"
    return int(candidates[peak_part]), peak_part, formula


@lru_cache(maxsize=512)  # the same model and format recur across a sweep's points
def weights_formula(groups: tuple[TensorGroup, ...], fmt: WeightFormat) -> str:
    """The weights' arithmetic: values × width when every tensor has one width, else the bytes
    of each tensor group in `fmt` (quantized linears carry their scales and zeros)."""
    numel = sum(g.numel for g in groups)
    total = sum(fmt.group_bytes(g) for g in groups)
    if total == numel * fmt.compute_bytes:
        return f"{numel:,} values × {fmt.compute_bytes} B"
    return " + ".join(f"{fmt.group_bytes(g):,} {g.name}" for g in groups)


@lru_cache(maxsize=512)  # keyed by the spec (its hash is cached), not by its tensor groups
def weights_terms(spec: ModelSpec, fmt: WeightFormat) -> tuple[int, str]:
    """The weights' bytes in `fmt` and their arithmetic."""
    groups = tensor_groups(spec)
    return weight_bytes(groups, fmt), weights_formula(groups, fmt)


MEMO_ENTRIES = 256  # per spec and kind of component (a full memo starts again): bounded memory


class SpecTerms:
    """The pieces of an inference estimate of one spec, each built once: the weights component of
    each format, the KV cache and activation components of each shape, the approximation notes and
    parameter counts. Found with one hash of the spec per estimate (:func:`spec_terms`); the
    components are frozen, so estimates share them."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.approximations = tuple(act.approximation_notes(spec))
        self.params = param_count(spec)
        self.active_params = active_param_count(spec)
        self._weights: dict[str, tuple[WeightFormat, Component]] = {}
        self._kv: dict[tuple[int, int, str], Component] = {}
        self._act: dict[tuple[int, int, int, str, str], Component] = {}

    def weights(self, fmt: WeightFormat) -> Component:
        # keyed by name (hashing the format's fields costs more), checked by identity or equality
        hit = self._weights.get(fmt.name)
        if hit is not None and (hit[0] is fmt or hit[0] == fmt):
            return hit[1]
        weights, formula = weights_terms(self.spec, fmt)
        note = f"{fmt.name}: {fmt.description}"
        component = Component(name="weights", bytes=weights, note=note, formula=formula)
        remember(self._weights, fmt.name, (fmt, component))
        return component

    def kv_cache(self, batch_size: int, seq_len: int, kv_dtype: str) -> Component:
        key = (batch_size, seq_len, kv_dtype)
        hit = self._kv.get(key)
        if hit is None:
            spec = self.spec
            kv, formula = kv_cache_terms(spec, batch_size, seq_len, kv_bytes_per_element(kv_dtype))
            note = kv_cache_formula(spec, batch_size, seq_len, kv_dtype)
            hit = Component(name="kv_cache", bytes=kv, note=note, formula=formula)
            remember(self._kv, key, hit)
        return hit

    def activations(
        self, batch_size: int, seq_len: int, act_bytes: int, logits: str, attention: str
    ) -> Component:
        key = (batch_size, seq_len, act_bytes, logits, attention)
        hit = self._act.get(key)
        if hit is None:
            activations, peak_part, formula = inference_activation_terms(
                self.spec, batch_size, seq_len, act_bytes, logits, attention
            )
            note = (
                f"prefill peak: residual stream + {peak_part} workspace ({attention} attention, "
                f"logits of {logits} positions)"
            )
            hit = Component(name="activations", bytes=activations, note=note, formula=formula)
            remember(self._act, key, hit)
        return hit


def remember(memo: dict[Any, Any], key: Any, value: Any) -> None:
    if len(memo) >= MEMO_ENTRIES:
        memo.clear()
    memo[key] = value


@lru_cache(maxsize=32)  # equal specs share their terms, as the per-term caches did
def spec_terms(spec: ModelSpec) -> SpecTerms:
    return SpecTerms(spec)
