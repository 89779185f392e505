"""Model sources: model folders with safetensors headers, GGUF files, the Hub (a local fake of its
cache layout, offline), the resolver and the CLI. No test touches the network."""

from __future__ import annotations

import json
import math
import struct
import types
from pathlib import Path
from typing import Any

import pytest
from model_files import DTYPE_BYTES, TINY, llama_tensors, write_safetensors
from typer.testing import CliRunner

import vramcalc
from vramcalc.cli.app import app, main
from vramcalc.errors import VramcalcError
from vramcalc.sources import resolve_model_source
from vramcalc.sources.gguf import GGML_TYPES, read_gguf
from vramcalc.sources.safetensors import read_header
from vramcalc.spec.params import param_count, tensor_groups
from vramcalc.spec.quant import FORMATS, weight_bytes

runner = CliRunner()







def model_folder(tmp_path: Path, cfg: dict[str, Any] | None = None, shards: int = 1) -> Path:
    folder = tmp_path / "my-finetune"
    folder.mkdir()
    cfg = cfg or TINY
    (folder / "config.json").write_text(json.dumps(cfg))
    tensors = llama_tensors(cfg)
    if shards == 1:
        write_safetensors(folder / "model.safetensors", tensors)
        return folder
    names = list(tensors)
    weight_map = {}
    for s in range(shards):
        part = {n: tensors[n] for n in names[s::shards]}
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        write_safetensors(folder / fname, part)
        weight_map |= dict.fromkeys(part, fname)
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return folder


# ---- safetensors ---------------------------------------------------------------------------


def test_header_reader_matches_the_safetensors_library(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    st = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "lib.safetensors"
    st.save_file({"a": np.zeros((3, 5), np.float16), "b": np.zeros(7, np.int32)}, str(path))
    header = read_header(path)
    assert header["a"]["shape"] == [3, 5] and header["a"]["dtype"] == "F16"
    begin, end = header["b"]["data_offsets"]
    assert end - begin == 7 * 4


@pytest.mark.parametrize("shards", [1, 3])
def test_folder_gives_exact_params_and_weights(tmp_path: Path, shards: int) -> None:
    folder = model_folder(tmp_path, shards=shards)
    src = resolve_model_source(str(folder))
    assert src.kind == "config" and src.checkpoint is not None
    # by hand: embed + lm_head 2×256×64 = 32768; per layer q,o 2×4096 + k,v 2×2048 + MLP 3×8192
    # + norms 128 = 36992; ×2 = 75008; final norm 64 → 106816
    assert src.params == 32768 + 2 * 36992 + 64 == 106816
    assert src.params == param_count(src.spec)  # the config mapping agrees with the header
    assert src.checkpoint.stored_bytes == 2 * 106816
    for quant in ("bf16", "awq", "nf4", "llm.int8"):
        fmt = FORMATS[quant]
        # the same bytes whether costed from the checkpoint's tensors or from the ModelSpec
        est = vramcalc.estimate_inference(str(folder), dtype=fmt.dtype, quant=quant)
        assert est.component("weights") == weight_bytes(tensor_groups(src.spec), fmt)
        assert "safetensors header" in next(c.note for c in est.components if c.name == "weights")


def test_fp32_checkpoint_is_recosted_in_the_requested_dtype(tmp_path: Path) -> None:
    folder = tmp_path / "fp32"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY))
    write_safetensors(folder / "model.safetensors", llama_tensors(TINY, "F32"))
    est = vramcalc.estimate_inference(str(folder), dtype="bf16")
    assert est.component("weights") == 2 * 106816  # loaded as bf16, not as stored (4 B)
    assert est.params == 106816


def test_prequantized_gptq_checkpoint_uses_stored_bytes(tmp_path: Path) -> None:
    cfg = TINY | {"quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 32}}
    folder = tmp_path / "gptq"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(cfg))
    tensors = {}
    for name, (dtype, shape) in llama_tensors(TINY).items():
        if "layers" in name and name.endswith("proj.weight"):
            out_f, in_f = shape
            base = name.removesuffix(".weight")
            tensors |= {
                base + ".qweight": ("I32", [in_f // 8, out_f]),
                base + ".qzeros": ("I32", [in_f // 32, out_f // 8]),
                base + ".scales": ("F16", [in_f // 32, out_f]),
                base + ".g_idx": ("I32", [in_f]),
            }
        else:
            tensors[name] = (dtype, shape)
    stored = write_safetensors(folder / "model.safetensors", tensors)
    est = vramcalc.estimate_inference(str(folder), dtype="int4")
    assert est.component("weights") == stored
    note = next(c.note for c in est.components if c.name == "weights")
    assert note.startswith("as stored: gptq 4-bit, group 32 (I32 tensors)")
    assert est.params == param_count(resolve_model_source(str(folder)).spec)  # packed: formula


def test_config_only_falls_back_to_formula(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(TINY))
    src = resolve_model_source(str(tmp_path / "config.json"))
    assert src.checkpoint is None and "weights from the formula" in src.notes[0]
    est = vramcalc.estimate_inference(src, dtype="bf16")
    assert est.component("weights") == 2 * param_count(src.spec)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"{not json", "malformed JSON at line 1 column 2"),
        (b"[1, 2]", "config.json must hold a JSON object"),
    ],
)
def test_bad_config_files(tmp_path: Path, content: bytes, expected: str) -> None:
    (tmp_path / "config.json").write_bytes(content)
    with pytest.raises(VramcalcError, match=expected):
        resolve_model_source(str(tmp_path))


def test_corrupt_safetensors_header(tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", 10) + b"{oops")
    with pytest.raises(VramcalcError, match="truncated safetensors header"):
        resolve_model_source(str(folder))
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", 1 << 40))
    with pytest.raises(VramcalcError, match="not a safetensors file"):
        resolve_model_source(str(folder))


# ---- GGUF ----------------------------------------------------------------------------------


def _gguf_string(s: str) -> bytes:
    raw = s.encode()
    return struct.pack("<Q", len(raw)) + raw


def _gguf_value(value: Any) -> bytes:
    if isinstance(value, str):
        return struct.pack("<I", 8) + _gguf_string(value)
    if isinstance(value, list):
        return (
            struct.pack("<IIQ", 9, 8, len(value))[:4]
            + struct.pack("<IQ", 8, len(value))
            + b"".join(_gguf_string(v) for v in value)
        )
    return struct.pack("<II", 4, value)


def write_gguf(
    path: Path, meta: dict[str, Any], tensors: list[tuple[str, list[int], int]], version: int = 3
) -> int:
    """A GGUF file written field by field from the spec; returns the tensor data bytes."""
    out = [b"GGUF", struct.pack("<IQQ", version, len(tensors), len(meta))]
    out += [_gguf_string(k) + _gguf_value(v) for k, v in meta.items()]
    offset = 0
    sizes = []
    for name, ne, type_id in tensors:
        _, block, size = GGML_TYPES[type_id]
        nbytes = math.prod(ne) // block * size
        sizes.append(nbytes)
        out.append(_gguf_string(name) + struct.pack("<I", len(ne)))
        out.append(struct.pack(f"<{len(ne)}Q", *ne) + struct.pack("<IQ", type_id, offset))
        offset += -(-nbytes // 32) * 32
    head = b"".join(out)
    with path.open("wb") as f:
        f.write(head + b"\0" * (-len(head) % 32))
        f.truncate(len(head) + (-len(head) % 32) + offset)
    return sum(sizes)


Q4_K, Q6_K, Q8_0, F32 = 12, 14, 8, 0


def tiny_gguf(path: Path) -> int:
    meta = {
        "general.architecture": "llama",
        "general.name": "tiny-gguf",
        "llama.block_count": 2,
        "llama.embedding_length": 256,
        "llama.feed_forward_length": 512,
        "llama.attention.head_count": 4,
        "llama.attention.head_count_kv": 2,
        "llama.context_length": 2048,
        "tokenizer.ggml.tokens": [f"t{i}" for i in range(320)],
    }
    tensors = [("token_embd.weight", [256, 320], Q8_0), ("output_norm.weight", [256], F32)]
    tensors.append(("output.weight", [256, 320], Q6_K))
    for i in range(2):
        b = f"blk.{i}."
        tensors += [
            (b + "attn_q.weight", [256, 256], Q4_K),
            (b + "attn_k.weight", [256, 128], Q4_K),
            (b + "attn_v.weight", [256, 128], Q6_K),
            (b + "attn_output.weight", [256, 256], Q4_K),
            (b + "ffn_gate.weight", [256, 512], Q4_K),
            (b + "ffn_up.weight", [256, 512], Q4_K),
            (b + "ffn_down.weight", [512, 256], Q6_K),
            (b + "attn_norm.weight", [256], F32),
            (b + "ffn_norm.weight", [256], F32),
        ]
    return write_gguf(path, meta, tensors)


def test_ggml_block_sizes() -> None:
    # bytes per block from the block layouts: Q4_0 = fp16 d + 16 B of nibbles; Q8_0 = d + 32 int8;
    # Q4_K = d, dmin, 12 B of 6-bit scales, 128 B of nibbles; Q6_K = 128 + 64 + 16 + d
    assert GGML_TYPES[2][1:] == (32, 18) and GGML_TYPES[8][1:] == (32, 34)
    assert GGML_TYPES[12][1:] == (256, 144) and GGML_TYPES[13][1:] == (256, 176)
    assert GGML_TYPES[14][1:] == (256, 210)
    assert GGML_TYPES[10][1:] == (256, 84) and GGML_TYPES[11][1:] == (256, 110)
    # Q4_K_M's published ~4.5-4.8 bits per weight: Q4_K alone is 144·8/256 = 4.5
    assert GGML_TYPES[12][2] * 8 / GGML_TYPES[12][1] == 4.5


def test_gguf_exact_weight_bytes(tmp_path: Path) -> None:
    path = tmp_path / "tiny.Q4_K_M.gguf"
    data = tiny_gguf(path)
    meta, tensors = read_gguf(path)
    assert meta["tokenizer.ggml.tokens"] == 320  # long token lists kept as their length
    # by hand: token_embd 320×256 Q8_0 = 2560 blocks × 34 = 87040; output Q6_K 320 blocks × 210
    # = 67200; per layer Q4_K: q,o 256 blocks, k 128, gate, up 512 each → 1664 blocks × 144
    # = 239616; Q6_K: v 128 + down 512 blocks = 640 × 210 = 134400; norms 2×256×4 = 2048
    # → 376064 per layer; output_norm 1024
    assert data == 87040 + 67200 + 2 * 376064 + 1024 == 907392
    src = resolve_model_source(str(path))
    assert src.kind == "gguf" and src.spec.name == "tiny-gguf"
    assert src.spec.vocab_size == 320 and src.spec.kv_heads == 2
    est = vramcalc.estimate_inference(src, seq_len=1024)
    assert est.component("weights") == 907392
    # params: every element of every tensor (ne are logical sizes): embeddings 2×320×256, final
    # norm 256; per layer attention 2×65536 + 2×32768, MLP 3×131072, norms 512
    assert est.params == 2 * 320 * 256 + 256 + 2 * (196608 + 393216 + 512) == 1344768
    # KV cache: 2 × 2 layers × 1024 tokens × 2 kv heads × 64 × 2 B (bf16) = 1 MiB
    assert est.component("kv_cache") == 2 * 2 * 1024 * 2 * 64 * 2


def test_gguf_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGML" + b"\0" * 20)
    with pytest.raises(VramcalcError, match="not a GGUF file"):
        resolve_model_source(str(bad))
    write_gguf(bad, {"general.architecture": "llama"}, [], version=1)
    with pytest.raises(VramcalcError, match="GGUF version 1 is not supported"):
        resolve_model_source(str(bad))
    write_gguf(bad, {"general.architecture": "llama"}, [])
    with pytest.raises(VramcalcError, match="could not map llama.embedding_length"):
        resolve_model_source(str(bad))
    full = tmp_path / "full.gguf"
    tiny_gguf(full)
    bad.write_bytes(full.read_bytes()[:200])
    with pytest.raises(VramcalcError, match="malformed GGUF header"):
        resolve_model_source(str(bad))
    with pytest.raises(VramcalcError, match="no such file"):
        resolve_model_source(str(tmp_path / "missing.gguf"))


# ---- the Hub (a local fake of its cache layout) ---------------------------------------------

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: bool = True) -> Path:
    """HF_HUB_CACHE laid out as huggingface_hub writes it: refs/main → snapshots/<commit>/."""
    hub = pytest.importorskip("huggingface_hub")
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    repo = cache / "models--acme--tiny-chat"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    (snapshot / "config.json").write_text(json.dumps(TINY))
    write_safetensors(snapshot / "model.safetensors", llama_tensors(TINY))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", offline)
    if not offline:  # the faked Hub answers: skip the reachability probe of the real endpoint
        monkeypatch.setattr("vramcalc.sources.hub.endpoint_reachable", lambda *a, **k: True)
    del hub
    return snapshot


def test_hub_id_from_the_cache_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_hub(tmp_path, monkeypatch)
    src = resolve_model_source("acme/tiny-chat")
    assert src.kind == "hub" and src.spec.name == "acme/tiny-chat"
    assert src.checkpoint is not None and "1 cached shard" in src.checkpoint.origin
    assert src.params == 106816
    rev = resolve_model_source("acme/tiny-chat", revision=COMMIT)
    assert rev.params == 106816 and rev.spec.name == f"acme/tiny-chat@{COMMIT}"


def test_hub_offline_without_shards_uses_formula(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = fake_hub(tmp_path, monkeypatch)
    (snapshot / "model.safetensors").unlink()
    src = resolve_model_source("acme/tiny-chat")
    assert src.checkpoint is None and "not cached" in src.notes[0]


def test_hub_online_reads_headers_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Online with the shards not cached: headers come from get_safetensors_metadata (faked here
    with huggingface_hub's own metadata classes), never from downloading the weights."""
    huggingface_hub = pytest.importorskip("huggingface_hub")
    from huggingface_hub.utils import SafetensorsFileMetadata, SafetensorsRepoMetadata, TensorInfo

    snapshot = fake_hub(tmp_path, monkeypatch, offline=False)
    (snapshot / "model.safetensors").unlink()
    (snapshot.parent.parent / ".no_exist" / COMMIT).mkdir(parents=True)
    (snapshot.parent.parent / ".no_exist" / COMMIT / "model.safetensors.index.json").touch()
    calls: list[str] = []

    def no_download(*args: Any, **kwargs: Any) -> str:
        raise AssertionError(f"downloaded {args} {kwargs}")

    def config_only(repo_id: str, filename: str, **kwargs: Any) -> str:
        calls.append(filename)
        assert filename == "config.json"
        return str(snapshot / "config.json")

    def metadata(repo_id: str, revision: str | None = None, **kwargs: Any) -> Any:
        calls.append("headers")
        tensors = {}
        offset = 0
        for name, (dtype, shape) in llama_tensors(TINY).items():
            size = math.prod(shape) * 2
            tensors[name] = TensorInfo(
                dtype=dtype, shape=shape, data_offsets=(offset, offset + size)
            )
            offset += size
        file_meta = SafetensorsFileMetadata(metadata={}, tensors=tensors)
        return SafetensorsRepoMetadata(
            metadata=None,
            sharded=False,
            weight_map=dict.fromkeys(tensors, "model.safetensors"),
            files_metadata={"model.safetensors": file_meta},
        )

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", config_only)
    monkeypatch.setattr(huggingface_hub, "get_safetensors_metadata", metadata)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_download)
    src = resolve_model_source("acme/tiny-chat")
    assert calls == ["config.json", "headers"]
    assert src.params == 106816 and "over HTTP" in src.checkpoint.origin  # type: ignore[union-attr]


def _raiser(exc: Exception) -> Any:
    def fn(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return fn


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("GatedRepoError", "gated repository"),
        ("RepositoryNotFoundError", "no such model on the Hugging Face Hub"),
        ("RevisionNotFoundError", "no revision"),
        ("RemoteEntryNotFoundError", "has no config.json"),
    ],
)
def test_hub_errors_are_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: str,
    expected: str,
) -> None:
    huggingface_hub = pytest.importorskip("huggingface_hub")
    hub_errors = pytest.importorskip("huggingface_hub.errors")

    fake_hub(tmp_path, monkeypatch, offline=False)
    response = types.SimpleNamespace(headers={}, request=None)
    exc = getattr(hub_errors, error)("boom", response=response)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _raiser(exc))
    with pytest.raises(SystemExit) as done:
        main(["infer", "acme/other-model", "--revision", "v2"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err and err.startswith("vramcalc: error: acme/")


def test_hub_not_cached_and_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_hub(tmp_path, monkeypatch)
    with pytest.raises(SystemExit) as done:
        main(["infer", "acme/not-cached"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "not in the Hugging Face cache and the Hub cannot be reached" in err
    assert err.count("\n") == 1


# ---- resolver and CLI -----------------------------------------------------------------------


def test_presets_still_win_and_unknown_names_suggest(tmp_path: Path) -> None:
    assert resolve_model_source("llama-2-7b").kind == "preset"
    with pytest.raises(KeyError, match="did you mean llama-2-7b"):
        resolve_model_source("llama-2-7x")
    with pytest.raises(VramcalcError, match="no such file or folder"):
        resolve_model_source(str(tmp_path / "nothing" / "config.json"))


def test_cli_infer_and_train_accept_a_folder(tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    result = runner.invoke(app, ["infer", str(folder), "--json", "--seq-len", "128"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["params"] == 106816 and data["model"] == "my-finetune"
    assert data["inputs"]["model_source"] == "config"
    assert data["total_bytes"] == sum(c["bytes"] for c in data["components"])
    train = runner.invoke(app, ["train", str(folder), "--json", "--seq-len", "128"])
    assert train.exit_code == 0, train.output
    assert json.loads(train.stdout)["params"] == 106816


def test_cli_gguf_table(tmp_path: Path) -> None:
    path = tmp_path / "tiny.gguf"
    tiny_gguf(path)
    result = runner.invoke(app, ["infer", str(path), "--seq-len", "256"])
    assert result.exit_code == 0, result.output
    assert "weights" in result.stdout and "tiny-gguf" in result.stdout


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["infer", "missing/folder/config.json"], "no such file"),
        (["infer", "nope.gguf"], "no such file"),
        (["train", "./not-here"], "no such file or folder"),
    ],
)
def test_cli_source_errors(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1


# ---- properties -----------------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_shapes = st.lists(st.integers(1, 40), min_size=0, max_size=3)
_tensors = st.dictionaries(
    st.from_regex(r"[a-z]{1,8}(\.[a-z0-9_]{1,8}){0,3}", fullmatch=True),
    st.tuples(st.sampled_from(sorted(DTYPE_BYTES)), _shapes),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(_tensors)
def test_safetensors_round_trip(tensors: dict[str, tuple[str, list[int]]]) -> None:
    import tempfile

    from vramcalc.sources.safetensors import records_from_header

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.safetensors"
        data = write_safetensors(path, tensors)
        records = records_from_header(read_header(path), str(path))
    assert {r.name: (r.dtype, list(r.shape)) for r in records} == tensors
    assert sum(r.nbytes for r in records) == data
    assert all(r.nbytes == r.numel * DTYPE_BYTES[r.dtype] for r in records)


_gguf_tensor = st.tuples(
    st.sampled_from(sorted(GGML_TYPES)), st.integers(1, 3), st.integers(1, 5), st.integers(1, 3)
)


@settings(max_examples=40, deadline=None)
@given(st.lists(_gguf_tensor, min_size=1, max_size=8))
def test_gguf_round_trip(specs: list[tuple[int, int, int, int]]) -> None:
    import tempfile

    tensors = [
        (f"t{i}", [GGML_TYPES[type_id][1] * blocks, rows, depth][:ndim], type_id)
        for i, (type_id, blocks, rows, ndim) in enumerate(specs)
        for depth in [2]
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.gguf"
        data = write_gguf(path, {"general.architecture": "llama"}, tensors)
        _, records = read_gguf(path)
    assert sum(r.nbytes for r in records) == data
    for (name, ne, type_id), rec in zip(tensors, records, strict=True):
        _, block, size = GGML_TYPES[type_id]
        assert rec.name == name and rec.shape == tuple(reversed(ne))
        assert rec.nbytes == math.prod(ne) // block * size


@settings(max_examples=15, deadline=None)
@given(
    st.integers(1, 4),
    st.sampled_from([1, 2, 4]),
    st.integers(1, 3),
    st.integers(1, 4),
    st.sampled_from(sorted(FORMATS)),
)
def test_checkpoint_and_formula_agree(
    head_dim_units: int, kv_heads: int, layers: int, inter_units: int, quant: str
) -> None:
    """For a complete checkpoint, costing its tensors equals costing the ModelSpec, any format."""
    import tempfile

    cfg = TINY | {
        "hidden_size": 4 * 16 * head_dim_units,
        "num_attention_heads": 4,
        "num_key_value_heads": kv_heads,
        "num_hidden_layers": layers,
        "intermediate_size": 64 * inter_units,
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "m"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(cfg))
        write_safetensors(folder / "model.safetensors", llama_tensors(cfg))
        src = resolve_model_source(str(folder))
    fmt = FORMATS[quant]
    assert src.params == param_count(src.spec)
    est = vramcalc.estimate_inference(src, dtype=fmt.dtype, quant=quant, seq_len=64)
    assert est.component("weights") == weight_bytes(tensor_groups(src.spec), fmt)


def test_presets_do_not_import_the_hub_or_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from vramcalc.cli.app import main\n"
        "try:\n    main(['infer', 'llama-2-7b', '--json'])\nexcept SystemExit:\n    pass\n"
        "bad = [m for m in ('huggingface_hub', 'torch', 'numpy', 'transformers') if m in sys.modules]\n"
        "sys.stderr.write(repr(bad))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.stderr.strip() == "[]"


def test_cli_inspect_json(tmp_path: Path) -> None:
    path = tmp_path / "tiny.gguf"
    data_bytes = tiny_gguf(path)
    result = runner.invoke(app, ["inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["source"] == "gguf" and data["params"] == 1344768
    assert data["checkpoint"]["stored_bytes"] == data_bytes
    assert sum(data["checkpoint"]["bytes_by_dtype"].values()) == data_bytes
    assert data["spec"]["num_kv_heads"] == 2
    table = runner.invoke(app, ["inspect", "llama-2-7b"])
    assert table.exit_code == 0 and "6,738,415,616" in table.stdout


def test_split_gguf_reads_every_part(tmp_path: Path) -> None:
    meta = {"general.architecture": "llama", "split.count": 2}
    whole = tmp_path / "whole.gguf"
    data = tiny_gguf(whole)
    _, tensors = read_gguf(whole)
    ggml_id = {name: i for i, (name, _, _) in GGML_TYPES.items()}
    info = [(t.name, list(reversed(t.shape)), ggml_id[t.dtype]) for t in tensors]
    first = {k: v for k, v in read_gguf(whole)[0].items() if k != "tokenizer.ggml.tokens"}
    write_gguf(tmp_path / "m-00001-of-00002.gguf", first | meta, info[:7])
    write_gguf(tmp_path / "m-00002-of-00002.gguf", meta, info[7:])
    src = resolve_model_source(str(tmp_path / "m-00001-of-00002.gguf"))
    assert src.checkpoint is not None and src.checkpoint.stored_bytes == data
    assert len(src.checkpoint.tensors) == len(tensors)


def test_hub_prefix_and_revision_syntax(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_hub(tmp_path, monkeypatch)
    assert resolve_model_source(f"acme/tiny-chat@{COMMIT}").spec.name == f"acme/tiny-chat@{COMMIT}"
    # hf: skips the presets, even for a preset's own Hub id
    with pytest.raises(VramcalcError, match="not in the Hugging Face cache"):
        resolve_model_source("hf:meta-llama/Llama-2-7b-hf")
    assert resolve_model_source("meta-llama/Llama-2-7b-hf").kind == "preset"


def test_gguf_version_2_reads_like_3(tmp_path: Path) -> None:
    v3, v2 = tmp_path / "v3.gguf", tmp_path / "v2.gguf"
    meta = {"general.architecture": "llama"}
    tensors = [("blk.0.ffn_up.weight", [256, 3], Q4_K), ("token_embd.weight", [32, 5], Q8_0)]
    # 3 Q4_K blocks × 144 + 5 Q8_0 blocks × 34 = 432 + 170
    assert write_gguf(v3, meta, tensors) == write_gguf(v2, meta, tensors, version=2) == 602
    assert read_gguf(v2)[1] == read_gguf(v3)[1]


def test_cli_offline_flag_reads_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_hub(tmp_path, monkeypatch, offline=False)  # the flag alone keeps it local
    result = runner.invoke(app, ["infer", "acme/tiny-chat", "--offline", "--json", "-s", "64"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["params"] == 106816 and data["inputs"]["model_source"] == "hub"
    assert data["inputs"]["weights_from"] == "checkpoint header"
    train = runner.invoke(app, ["train", "acme/tiny-chat", "--offline", "--json", "-s", "64"])
    assert train.exit_code == 0 and json.loads(train.stdout)["model"] == "acme/tiny-chat"


def test_folder_of_gguf_files_points_at_them(tmp_path: Path) -> None:
    tiny_gguf(tmp_path / "m.Q4_K_M.gguf")
    with pytest.raises(VramcalcError, match=r"no config.json in this folder; give a .gguf file"):
        resolve_model_source(str(tmp_path))
