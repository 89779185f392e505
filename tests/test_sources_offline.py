"""No network: a Hub id fails in a second or two with one line, or comes from the local cache; a
string written as a path fails as a path and is never tried on the Hub. Only loopback is used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from model_files import TINY, TINY_PARAMS

from vramcalc.errors import VramcalcError
from vramcalc.sources import resolve_model_source

hub = pytest.importorskip("huggingface_hub")
np = pytest.importorskip("numpy")
st_numpy = pytest.importorskip("safetensors.numpy")

import huggingface_hub.constants  # noqa: E402

from vramcalc.sources import hub as vram_hub  # noqa: E402

UNREACHABLE = "http://127.0.0.1:9"  # the discard port on loopback: nothing listens there
COMMIT = "0" * 40


def fake_cache(root: Path) -> Path:
    """HF_HUB_CACHE as huggingface_hub lays it out, holding acme/tiny-chat at main."""
    repo = root / "models--acme--tiny-chat"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    (snapshot / "config.json").write_text(json.dumps(TINY))
    h, i, v, kv = 64, 128, 256, 32
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (v, h)}
    for n in range(2):
        p = f"model.layers.{n}."
        shapes |= {p + "self_attn.q_proj.weight": (h, h), p + "self_attn.k_proj.weight": (kv, h)}
        shapes |= {p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.o_proj.weight": (h, h)}
        shapes |= {p + "mlp.gate_proj.weight": (i, h), p + "mlp.up_proj.weight": (i, h)}
        shapes |= {p + "mlp.down_proj.weight": (h, i), p + "input_layernorm.weight": (h,)}
        shapes[p + "post_attention_layernorm.weight"] = (h,)
    shapes |= {"model.norm.weight": (h,), "lm_head.weight": (v, h)}
    tensors = {k: np.zeros(s, dtype=np.float16) for k, s in shapes.items()}
    st_numpy.save_file(tensors, str(snapshot / "model.safetensors"))
    return root


@pytest.fixture
def unreachable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The Hub endpoint on a closed loopback port, an empty cache, offline mode off."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", UNREACHABLE)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    vram_hub.endpoint_reachable.cache_clear()
    return cache


def test_unreachable_hub_fails_fast_with_one_line(unreachable: Path) -> None:
    start = time.perf_counter()
    with pytest.raises(VramcalcError) as failed:
        resolve_model_source("acme/not-cached")
    seconds = time.perf_counter() - start
    # huggingface_hub alone retries 5 times (1 + 2 + 4 + 8 + 8 s ≈ 25 s) before giving up
    assert seconds < 2.5
    message = str(failed.value)
    assert "\n" not in message
    assert "not in the Hugging Face cache and the Hub cannot be reached" in message


def test_unreachable_hub_uses_the_local_cache(unreachable: Path) -> None:
    fake_cache(unreachable)
    start = time.perf_counter()
    source = resolve_model_source("acme/tiny-chat")
    assert time.perf_counter() - start < 2.5
    assert source.kind == "hub" and source.params == TINY_PARAMS
    assert source.checkpoint is not None and "cached shard" in source.checkpoint.origin


def test_probe_target_follows_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert vram_hub._probe_target("https://huggingface.co") == ("proxy.internal", 3128)
    monkeypatch.setenv("NO_PROXY", "huggingface.co")
    assert vram_hub._probe_target("https://huggingface.co") == ("huggingface.co", 443)
    monkeypatch.delenv("HTTPS_PROXY")
    assert vram_hub._probe_target("http://127.0.0.1:9") == ("127.0.0.1", 9)


def run_cli(
    args: list[str], env: dict[str, str], cwd: Path
) -> tuple[subprocess.CompletedProcess[str], float]:
    root = Path(__file__).resolve().parents[1]
    full = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HTTP", "http"))}
    full |= {"PYTHONPATH": str(root)} | env
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "vramcalc", *args], env=full, cwd=cwd, capture_output=True, text=True
    )
    return done, time.perf_counter() - start


def test_cli_with_an_unreachable_endpoint(tmp_path: Path) -> None:
    env = {"HF_ENDPOINT": UNREACHABLE, "HF_HUB_CACHE": str(tmp_path / "empty")}
    done, seconds = run_cli(["infer", "acme/not-cached"], env, tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Hub cannot be reached" in done.stderr
    assert seconds < 15  # interpreter start-up included; ~25 s of retries before


@pytest.mark.parametrize("how", ["env", "flag"])
def test_offline_uses_the_local_cache(tmp_path: Path, how: str) -> None:
    cache = fake_cache(tmp_path / "hub")
    env = {"HF_HUB_CACHE": str(cache), "HF_ENDPOINT": UNREACHABLE}
    args = ["infer", "acme/tiny-chat", "--json", "--seq-len", "64"]
    if how == "env":
        env["HF_HUB_OFFLINE"] = "1"
    else:
        args.append("--offline")
    done, _ = run_cli(args, env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["params"] == TINY_PARAMS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("./my-model", "./my-model: no such file or folder"),
        ("~/no-such-model-here", "no such file or folder"),
        ("acme/tiny-chat.json", "acme/tiny-chat.json: no such file or folder"),
        ("models/acme-7b", "models/ exists here, acme-7b does not"),
        ("models/sub/config.json", "(models exists, sub/config.json does not)"),
    ],
)
def test_a_path_fails_as_a_path(
    unreachable: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    expected: str,
) -> None:
    (tmp_path / "models").mkdir()
    monkeypatch.chdir(tmp_path)
    calls: list[str] = []
    monkeypatch.setattr(vram_hub, "fetch_config", lambda *a: calls.append("hub"))
    with pytest.raises(VramcalcError, match="no such file or folder") as failed:
        resolve_model_source(text)
    assert expected in str(failed.value) and not calls
