"""The exact route for any causal LM transformers can build: its tensors and cache, read off the
model itself on the meta device (shapes only: no weights, no memory, no GPU).

From a config.json dict, ``AutoModelForCausalLM.from_config`` builds the model under
``torch.device("meta")``; its parameters give the exact tensor inventory (tied weights counted
once, as ``model.parameters()`` counts them), each classified by role for the kinds of
:mod:`vramcalc.spec.params`. A forward with ``use_cache=True`` at three short lengths, still on the meta
device, fills the model's own cache object (transformers v5 ``Cache``: layers holding keys/values,
or conv/recurrent states for state-space and linear-attention layers); the slope of its element
count is the cache per token, the intercept the fixed per-sequence state.

:mod:`vramcalc.measure.meta_spec` turns that inventory into a ModelSpec; what the model does not
say is read from the generic config fields (hidden, layers, heads, vocab, max positions), which the
analytic activation model uses as it would for a Llama-style decoder, so activations are
approximate for unusual blocks (the notes say so). Nothing here runs remote code.
"""

from __future__ import annotations

import json
import re
import time
from functools import lru_cache
from typing import Any

from vramcalc.errors import VramcalcError
from vramcalc.spec.model import ExactTensor, ModelSpec
from vramcalc.spec.params import BIAS, EMBEDDING, LINEAR, LM_HEAD, NORM, OTHER, POSITION, ROUTER

from .meta_spec import CacheInventory, MetaInventory, spec_from_inventory

# Lengths of the meta-device forwards: short enough to stay under any sliding window or attention
# chunk (the cache of a windowed layer stops growing at window − 1 tokens), three so the growth
# can be checked to be linear.
CACHE_PROBE_LENGTHS = (4, 8, 12)
_POSITION_HINTS = ("pos", "wpe")
_ROUTER_LEAVES = ("gate", "router", "gate_inp", "w_gate")
_LAYER_INDEX = re.compile(r"\.(\d+)\.")
_EXPERT_INDEX = re.compile(r"(?<![A-Za-z_])experts\.\d+\.")


def _quiet_transformers() -> Any:
    """transformers' logger set to errors only (config warnings about unrelated fields); returns
    the previous verbosity."""
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    return previous


def build_config(cfg: dict[str, Any]) -> tuple[Any, list[str]]:
    """The transformers config object for a config.json dict (the decoder's text config for a
    multimodal wrapper that has no causal-LM class of its own)."""
    import transformers
    from transformers import AutoConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    model_type = str(cfg.get("model_type", "") or "")
    notes: list[str] = []
    if model_type not in CONFIG_MAPPING:
        raise VramcalcError(
            f"model_type {model_type or '(none)'!r} is not an architecture transformers "
            f"{transformers.__version__} ships (custom code is never run)"
        )
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and isinstance(
        cfg.get("text_config"), dict
    ):
        inner = cfg["text_config"]
        inner_type = str(inner.get("model_type", "") or "")
        if inner_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
            notes.append(f"{model_type} config: its {inner_type} text model only")
            return build_config(inner)[0], notes
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise VramcalcError(
            f"model_type {model_type!r} has no causal-LM class in transformers "
            f"{transformers.__version__} (vramcalc estimates decoder language models)"
        )
    kwargs = {k: v for k, v in cfg.items() if k not in ("model_type", "architectures", "auto_map")}
    try:
        config = AutoConfig.for_model(model_type, **kwargs)
    except Exception as exc:  # transformers validates its own configs: pass its reason on
        raise VramcalcError(f"transformers rejects this {model_type} config: {exc}") from None
    return config, notes


def build_meta_model(config: Any) -> Any:
    """``AutoModelForCausalLM.from_config`` on the meta device, in bf16 (the dtype transformers'
    grouped expert matmuls need for the cache forward; shapes do not depend on it)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        try:
            return AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        except Exception as exc:
            raise VramcalcError(
                f"transformers could not build the {config.model_type} model on the meta device: "
                f"{type(exc).__name__}: {exc}"
            ) from None


def _pattern(name: str) -> str:
    """'model.layers.3.mlp.experts.7.w1.weight' → 'model.layers.*.mlp.experts.*.w1.weight'."""
    return _LAYER_INDEX.sub(".*.", _LAYER_INDEX.sub(".*.", f".{name}."))[1:-1]


def _fused_expert(name: str, module: Any, ndim: int) -> bool:
    """A tensor of a fused experts module (transformers v5: ``mlp.experts.gate_up_proj`` of shape
    experts × rows × cols, its biases experts × width), not one expert's own ``nn.Linear``."""
    owner = name.rsplit(".", 2)[-2] if name.count(".") else ""
    fused_owner = owner == "experts" or type(module).__name__.lower().endswith("experts")
    return fused_owner and ndim >= 2 and not _EXPERT_INDEX.search(name)


def _classify(
    name: str, module: Any, shape: tuple[int, ...], role: str | None, expert_counts: set[int]
) -> tuple[str, str, int, int, int, bool]:
    """(group name, kind, rows, cols, count, expert) of one parameter tensor."""
    import torch.nn as nn
    from transformers.pytorch_utils import Conv1D

    cls = type(module).__name__.lower()
    leaf = name.rsplit(".", 1)[-1]
    owner = name.rsplit(".", 2)[-2] if name.count(".") else ""
    pattern = _pattern(name)
    fused = _fused_expert(name, module, len(shape))
    expert = fused or bool(_EXPERT_INDEX.search(name))
    if role is not None:
        kind = role
    elif isinstance(module, nn.Embedding):
        kind = POSITION if any(h in name.lower() for h in _POSITION_HINTS) else EMBEDDING
    elif "norm" in cls or "norm" in owner.lower():
        kind = NORM  # weights and biases of norms
    elif leaf.endswith("bias"):
        kind = BIAS
    elif len(shape) == 2 and (
        ((owner in _ROUTER_LEAVES or "router" in cls) and shape[0] in expert_counts)
        or owner.endswith("expert_gate")
    ):
        kind = ROUTER  # the MoE router (experts × hidden), Qwen2-MoE's shared-expert gate
    elif isinstance(module, (nn.Linear, Conv1D)) and leaf == "weight":
        kind = LINEAR
    elif fused and len(shape) >= 3:
        kind = LINEAR  # fused expert matrices
    else:
        kind = OTHER  # SSM A/D, attention sinks, conv kernels, per-head scales
    if kind in (LINEAR, ROUTER) and leaf == "weight":
        pattern = pattern.removesuffix(".weight")
    if not shape:
        return pattern, kind, 1, 1, 1, False
    if fused:  # leading dimension(s) are the experts
        count = 1
        for d in shape[:-2] if len(shape) >= 3 else shape[:1]:
            count *= d
        if len(shape) == 2:
            return pattern, kind, shape[1], 1, count, True
        return pattern, kind, shape[-2], shape[-1], count, True
    if len(shape) == 1:
        return pattern, kind, shape[0], 1, 1, expert
    cols = 1
    for d in shape[1:]:
        cols *= d
    return pattern, kind, shape[0], cols, 1, expert  # conv kernels: (channels, 1, width)


def tensor_inventory(model: Any) -> tuple[tuple[ExactTensor, ...], int, int]:
    """Every parameter of `model`, grouped by (name pattern, kind, shape), tied weights once; and
    the number of routed experts and of layers that hold expert tensors."""
    emb_w = getattr(model.get_input_embeddings(), "weight", None)
    head_w = getattr(model.get_output_embeddings(), "weight", None)
    seen: set[int] = set()
    params: list[tuple[str, Any, Any]] = []
    for mod_name, module in model.named_modules():
        for leaf, p in module.named_parameters(recurse=False):
            if id(p) not in seen:  # a tied weight is one tensor, counted once
                seen.add(id(p))
                params.append((f"{mod_name}.{leaf}" if mod_name else leaf, module, p))
    experts: set[int] = set()
    expert_layers: set[str] = set()
    for name, module, p in params:
        indexed = re.search(r"(?<![A-Za-z_])experts\.(\d+)\.", name)
        if _fused_expert(name, module, p.dim()):
            experts.add(int(p.shape[0]))
        elif indexed:
            experts.add(int(indexed.group(1)) + 1)
        else:
            continue
        layer = _LAYER_INDEX.search(f".{name}.")
        expert_layers.add(layer.group(1) if layer else "")
    if any(re.search(r"experts\.\d+\.", n) for n, _, _ in params) and experts:
        experts = {max(experts)}  # one nn.Module per expert: the highest index + 1
    groups: dict[tuple[str, str, int, int, bool], int] = {}
    for name, module, p in params:
        role = EMBEDDING if p is emb_w else LM_HEAD if p is head_w else None
        pattern, kind, rows, cols, count, expert = _classify(
            name, module, tuple(p.shape), role, experts
        )
        key = (pattern, kind, rows, cols, expert)
        groups[key] = groups.get(key, 0) + count
    tensors = tuple(
        ExactTensor(name=pat, kind=kind, rows=rows, cols=cols, count=count, expert=expert)
        for (pat, kind, rows, cols, expert), count in groups.items()
    )
    if len(experts) > 1:
        raise VramcalcError(f"meta route: expert tensors of different counts {sorted(experts)}")
    return tensors, max(experts, default=0), len(expert_layers)


def _cache_tensors(obj: Any, found: dict[int, Any], depth: int = 0) -> None:
    """Tensors (1-D and up) an object of transformers' cache holds, searched through its
    attributes, dicts, lists and tuples; 0-D bookkeeping tensors are left out."""
    import torch

    if depth > 4:
        return
    if isinstance(obj, torch.Tensor):
        if obj.dim() > 0:
            found[id(obj)] = obj
        return
    if isinstance(obj, dict):
        for v in obj.values():
            _cache_tensors(v, found, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _cache_tensors(v, found, depth + 1)
    elif type(obj).__module__.startswith("transformers.") and hasattr(obj, "__dict__"):
        for v in vars(obj).values():
            _cache_tensors(v, found, depth + 1)


def _cache_layers(cache: Any) -> list[Any]:
    layers = getattr(cache, "layers", None)
    return list(layers) if isinstance(layers, (list, tuple)) else [cache]


class _UnpaddedMasks:
    """While a probe runs, transformers' ``masking_utils.fast_all`` answers True for meta tensors:
    it asks whether a padding mask is all ones (to skip building the causal mask), a ``.item()``
    the meta device cannot answer; the probe's rows are unpadded, so it is. Only the attention
    path depends on it, never what the cache holds."""

    def __enter__(self) -> None:
        import transformers.masking_utils as masking

        self.module: Any = masking
        self.original = getattr(masking, "fast_all", None)
        original = self.original
        if original is not None:

            def fast_all(tensor: Any) -> Any:
                return True if tensor.device.type == "meta" else original(tensor)

            masking.fast_all = fast_all

    def __exit__(self, *exc: object) -> None:
        if self.original is not None:
            self.module.fast_all = self.original


def _cache_counts(
    model: Any, seq_len: int, with_mask: bool
) -> tuple[list[int], list[int | None], str]:
    """Elements held by each cache layer after a prefill of `seq_len` tokens, and its window."""
    import torch

    ids = torch.zeros((1, seq_len), dtype=torch.long, device="meta")
    inputs: dict[str, Any] = {"input_ids": ids, "use_cache": True}
    if with_mask:  # one unpadded, unpacked row, said explicitly (see cache_inventory)
        inputs["attention_mask"] = torch.ones_like(ids)
    with torch.no_grad(), _UnpaddedMasks():
        try:
            out = model(**inputs, logits_to_keep=1)
        except TypeError as exc:  # an older forward without logits_to_keep
            if "logits_to_keep" not in str(exc):
                raise
            out = model(**inputs)
    cache = getattr(out, "past_key_values", None)
    if cache is None:
        raise RuntimeError("the forward returned no cache")
    counts, windows = [], []
    for layer in _cache_layers(cache):
        found: dict[int, Any] = {}
        _cache_tensors(layer, found)
        counts.append(sum(int(t.numel()) for t in found.values()))
        window = getattr(layer, "sliding_window", None)
        windows.append(int(window) if isinstance(window, int) else None)
    return counts, windows, type(cache).__name__


def cache_inventory(model: Any, vocab: int = 0) -> CacheInventory:
    """The cache the model really holds, from meta-device prefills at CACHE_PROBE_LENGTHS; raises
    RuntimeError (with the reason) when the forward cannot run or the growth is not linear.
    (`vocab` is not needed; accepted for callers of the first version.)"""
    s0, s1, s2 = CACHE_PROBE_LENGTHS
    # Without a mask first; some models then look for padding in input_ids or for packed
    # sequences in position_ids (data the meta device lacks), others need no mask to run their
    # state-space path: the second try passes an all-ones mask.
    try:
        first, with_mask = _cache_counts(model, s0, False), False
    except RuntimeError as exc:
        if "meta" not in str(exc):
            raise
        first, with_mask = _cache_counts(model, s0, True), True
    runs = [first, *(_cache_counts(model, s, with_mask) for s in (s1, s2))]
    (c0, windows, cls), (c1, _, _), (c2, _, _) = runs
    if not len(c0) == len(c1) == len(c2):
        raise RuntimeError("the number of cache layers changed with the sequence length")
    small = [w for w in windows if w is not None and w - 1 < s2]
    if small:
        raise RuntimeError(f"a sliding window of {min(small)} tokens is below the probe length")
    per_layer = []
    state = 0
    for a, b, c in zip(c0, c1, c2, strict=True):
        slope, rem = divmod(b - a, s1 - s0)
        if rem or c - b != slope * (s2 - s1):
            raise RuntimeError("the cache does not grow linearly with the sequence length")
        per_layer.append(slope)
        state += a - slope * s0
    if state < 0:
        raise RuntimeError("negative fixed cache state")
    return CacheInventory(
        kv_elements_per_token=sum(per_layer),
        state_elements_per_sequence=state,
        per_layer=tuple(zip(per_layer, windows, strict=True)),
        cache_class=cls,
    )


def inspect_config(cfg: dict[str, Any]) -> MetaInventory:
    """Build the model of `cfg` on the meta device and read its tensors and cache."""
    import torch  # noqa: F401  (fails here, not half-way, when the torch extra is missing)
    import transformers
    from transformers.utils import logging as hf_logging

    previous = _quiet_transformers()
    try:
        t0 = time.perf_counter()
        config, notes = build_config(cfg)
        model = build_meta_model(config)
        tensors, experts, expert_layers = tensor_inventory(model)
        total = sum(p.numel() for p in model.parameters())
        t1 = time.perf_counter()
        cache: CacheInventory | None = None
        cache_error = ""
        try:
            cache = cache_inventory(model)
        except Exception as exc:  # any failure of the model's own forward on meta tensors
            cache_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        t2 = time.perf_counter()
    finally:
        hf_logging.set_verbosity(previous)
    if sum(t.rows * t.cols * t.count for t in tensors) != total:  # pragma: no cover
        raise VramcalcError("meta route: the tensor inventory does not add up to the parameters")
    return MetaInventory(
        model_type=str(config.model_type),
        model_class=type(model).__name__,
        transformers_version=transformers.__version__,
        tensors=tensors,
        param_count=int(total),
        num_experts=experts,
        expert_layers=expert_layers,
        cache=cache,
        cache_error=cache_error,
        build_seconds=t1 - t0,
        cache_seconds=t2 - t1,
        config=config.to_dict(),
        notes=tuple(notes),
    )


@lru_cache(maxsize=16)
def _inspect_cached(cfg_json: str) -> MetaInventory:
    return inspect_config(json.loads(cfg_json))


def spec_from_meta(cfg: dict[str, Any], name: str, source: str = "") -> tuple[ModelSpec, list[str]]:
    """The ModelSpec of any causal LM transformers can build from `cfg` (a config.json dict), with
    the exact tensor inventory and cache; VramcalcError when it cannot be built or run."""
    if not isinstance(cfg, dict):
        raise VramcalcError(f"{source or name}: config.json must hold a JSON object")
    inv = _inspect_cached(json.dumps(cfg, sort_keys=True, default=str))
    return spec_from_inventory(inv, name, source)


__all__ = [
    "CacheInventory",
    "MetaInventory",
    "cache_inventory",
    "inspect_config",
    "spec_from_inventory",
    "spec_from_meta",
    "tensor_inventory",
    "build_config",
    "build_meta_model",
]
