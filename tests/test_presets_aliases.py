"""Hub ids and tuned variants (-Instruct, -it, -chat) resolve to presets, without network."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

import vramcalc.sources as sources
from vramcalc.cli.app import app
from vramcalc.errors import UnknownNameError
from vramcalc.sources import resolve_model_source
from vramcalc.sources.presets import VARIANT_SUFFIX as VARIANT
from vramcalc.sources.presets import get_model, resolve_model_name

runner = CliRunner()


@pytest.fixture
def no_hub(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records any attempt to read the Hub instead of making it."""
    calls: list[str] = []

    def load_hub(repo: str, *args: Any) -> Any:
        calls.append(repo)
        raise AssertionError(f"went to the Hub for {repo}")

    monkeypatch.setattr(sources, "load_hub", load_hub)
    return calls


@pytest.mark.parametrize(
    ("name", "preset"),
    [
        ("meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b"),
        ("meta-llama/Meta-Llama-3.1-8B-Instruct", "llama-3.1-8b"),  # the repo's first name
        ("Qwen/Qwen2.5-7B-Instruct", "qwen2.5-7b"),
        ("google/gemma-2-9b-it", "gemma-2-9b"),
        ("GOOGLE/Gemma-2-9B-IT", "gemma-2-9b"),  # case does not matter
        ("llama-2-7b-chat", "llama-2-7b"),  # no org: the suffix alone
        ("meta-llama/Llama-2-7b-chat-hf", "llama-2-7b"),  # listed alias of the chat repo
    ],
)
def test_variants_resolve_to_the_base_preset(no_hub: list[str], name: str, preset: str) -> None:
    source = resolve_model_source(name)
    assert source.kind == "preset" and source.spec.name == preset
    assert get_model(name).name == preset and not no_hub


def test_the_rule_is_said_in_the_notes(no_hub: list[str]) -> None:
    spec, note = resolve_model_name("google/gemma-2-9b-it")
    assert spec.name == "gemma-2-9b"
    assert note == (
        "google/gemma-2-9b-it read as a tuned variant of preset gemma-2-9b "
        "(same architecture and tensors)"
    )
    assert resolve_model_name("gemma-2-9b") == (spec, None)  # a direct name needs no note


@pytest.mark.parametrize(
    "name",
    [
        "someone/Llama-3.1-8B-Instruct",  # another organisation's model of that name
        "mlx-community/gemma-2-9b-it",
        "mistralai/Mistral-7B-Instruct-v0.2",  # a later version, not a suffix: not assumed
    ],
)
def test_other_names_go_to_the_hub(no_hub: list[str], name: str) -> None:
    with pytest.raises(AssertionError, match="went to the Hub"):
        resolve_model_source(name)
    assert no_hub == [name]


def test_unknown_variant_still_suggests() -> None:
    with pytest.raises(UnknownNameError, match="did you mean"):
        get_model("llama-3.1-9b-instruct")


def test_cli_infer_instruct_hub_id_offline(no_hub: list[str]) -> None:
    result = runner.invoke(app, ["infer", "Qwen/Qwen2.5-7B-Instruct", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"] == "qwen2.5-7b"
    assert any("tuned variant of preset qwen2.5-7b" in a for a in data["assumptions"])


# ---- properties ---------------------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import vramcalc  # noqa: E402

_WITH_HUB_ID = [m for m in vramcalc.list_models() if m.hf_id and "/" in m.hf_id]


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from(_WITH_HUB_ID),
    st.sampled_from(["-Instruct", "-it", "-chat", "_instruct", "-IT", "-Chat"]),
    st.booleans(),
)
def test_every_preset_hub_id_and_variant_resolves(spec: Any, suffix: str, upper: bool) -> None:
    hub_id = spec.hf_id.upper() if upper else spec.hf_id
    assert get_model(hub_id).name == spec.name
    org, _, repo = hub_id.partition("/")
    if VARIANT.fullmatch(repo):  # already a tuned variant's id: its base is the preset
        return
    found, note = resolve_model_name(f"{hub_id}{suffix}")
    assert found.name == spec.name and note is not None
    with pytest.raises(UnknownNameError):  # another organisation's variant is not assumed
        resolve_model_name(f"not-{org}/{repo}{suffix}")
