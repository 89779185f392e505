"""Current models as presets: published sizes, and the KV cache transformers really holds."""

from __future__ import annotations

import pytest

import vramcalc
from vramcalc.spec.hfconfig import hf_config_dict
from vramcalc.spec.params import active_param_count, param_count

# Total parameters (billions, as rounded on the model card) of the text model; Gemma-3 4B-27B
# cards count the 0.42B SigLIP vision tower too, which the text presets leave out.
PUBLISHED_B = {
    "llama-3.2-1b": (1.24, 2),  # Llama-3.2 model card: 1.23B / 1,235,814,400 in transformers
    "llama-3.2-3b": (3.21, 2),
    "llama-3.3-70b": (70.6, 1),
    "qwen3-0.6b": (0.6, 1),  # Qwen3 model cards: 0.6B, 1.7B, 4.0B, 8.2B, 14.8B, 32.8B
    "qwen3-1.7b": (1.7, 1),
    "qwen3-4b": (4.0, 1),
    "qwen3-8b": (8.2, 1),
    "qwen3-14b": (14.8, 1),
    "qwen3-32b": (32.8, 1),
    "qwen2.5-coder-7b": (7.6, 1),  # Qwen2.5-Coder card: 7.61B (7,615,616,512 cut, not rounded)
    "gemma-3-1b": (1.0, 1),
    "phi-4": (14.7, 1),
    "phi-4-mini": (3.8, 1),
    "deepseek-v3": (671.0, 0),  # DeepSeek-V3 report (arXiv 2412.19437): 671B total, 37B active
    "deepseek-r1": (671.0, 0),
    "deepseek-r1-distill-qwen-7b": (7.6, 1),
    "mistral-small-24b": (23.6, 1),
}
# Qwen cards also print the non-embedding count (embedding and untied head subtracted).
QWEN_NON_EMBEDDING_B = {
    "qwen3-0.6b": 0.44,
    "qwen3-4b": 3.6,
    "qwen3-8b": 6.95,
    "qwen3-14b": 13.2,
    "qwen2.5-coder-7b": 6.53,
}
NEW = sorted(PUBLISHED_B) + ["gemma-3-4b", "gemma-3-12b", "gemma-3-27b"]


@pytest.mark.parametrize("name", sorted(PUBLISHED_B))
def test_published_totals(name: str) -> None:
    spec = vramcalc.get_model(name)
    value, digits = PUBLISHED_B[name]
    assert round(param_count(spec) / 1e9, digits) == value
    assert spec.source.startswith(f"https://huggingface.co/{spec.hf_id}/blob/main/config.json")


def test_qwen_non_embedding_counts() -> None:
    for name, value in QWEN_NON_EMBEDDING_B.items():
        spec = vramcalc.get_model(name)
        heads = 1 if spec.tie_word_embeddings else 2
        non_embedding = param_count(spec) - heads * spec.vocab_size * spec.hidden_size
        assert round(non_embedding / 1e9, len(str(value).split(".")[1])) == value


def test_gemma3_text_plus_vision_tower_is_the_card_total() -> None:
    # Gemma-3 model card: 4B, 12B, 27B models with a 417M-parameter SigLIP encoder
    for name, total in (("gemma-3-4b", 4.3), ("gemma-3-12b", 12.2), ("gemma-3-27b", 27.4)):
        assert round((param_count(vramcalc.get_model(name)) + 417e6) / 1e9, 1) == total


def test_deepseek_active_parameters() -> None:
    for name in ("deepseek-v3", "deepseek-r1"):
        assert 37e9 < active_param_count(vramcalc.get_model(name)) < 38e9


def _truncated(name: str) -> vramcalc.ModelSpec:
    """The preset cut to a few layers that keep every kind (Gemma-3: a whole 6-layer period;
    DeepSeek: the dense layers and one MoE layer), for a quick meta-device forward."""
    spec = vramcalc.get_model(name)
    layers = min(spec.num_layers, max(6 if spec.sliding_window else 2, spec.first_dense_layers + 1))
    update: dict[str, int | None] = {"num_layers": layers}
    if spec.sliding_window_layers is not None:
        update["sliding_window_layers"] = layers - layers // 6
    return spec.model_copy(update=update)


@pytest.mark.parametrize("name", NEW)
def test_kv_cache_matches_transformers(name: str) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from vramcalc.measure.meta import build_config, build_meta_model, cache_inventory

    spec = _truncated(name)
    config, _ = build_config(hf_config_dict(spec))
    cache = cache_inventory(build_meta_model(config), spec.vocab_size)
    # every layer caches kv_cache_width values per token (K and V of the KV heads, or MLA's
    # latent + rope key) until its window is full
    assert cache.kv_elements_per_token == spec.kv_cache_width * spec.num_layers
    assert cache.state_elements_per_sequence == 0
    windows = [w for _, w in cache.per_layer if w is not None]
    assert len(windows) == spec.windowed_layers
    assert set(windows) <= {spec.sliding_window}
