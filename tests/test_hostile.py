"""Hostile input, item by item (issue 17): crafted files and values end in one line on stderr and
exit code 2, never a hang, a traceback, unbounded memory, a read outside the model folder or
output that is not what it claims to be."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import struct
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from hostile_files import (
    ARR,
    F32,
    LLAMA_META,
    STR,
    U32,
    assert_one_line_error,
    gguf_bytes,
    gguf_entry,
    gguf_string,
    llama_meta_with,
    model_folder,
    nested_array,
    run_main,
    safetensors_bytes,
    strict_json,
)
from model_files import TINY, llama_tensor_shapes, safetensors_for

from vramcalc.errors import VramcalcError
from vramcalc.safe_io import (
    MAX_JSON_BYTES,
    append_line,
    check_appendable,
    clean_text,
    dumps_json,
    json_depth,
    loads_json,
    safe_relative,
)
from vramcalc.sources import resolve_model_source

ROOT = Path(__file__).resolve().parent.parent


# ---- GGUF: bounded work and memory, validated values ----------------------------------------


def _gguf(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "crafted.gguf"
    path.write_bytes(data)
    return path


def test_gguf_key_length_array_of_arrays_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    # before: [[...]] reached `head_dim * heads` and grew a list by a count the file chose (1.9 GB)
    value = (ARR, [(U32, [4_000_000_000]) for _ in range(3)])
    path = _gguf(tmp_path, gguf_bytes(llama_meta_with("llama.attention.key_length", ARR, value)))
    tracemalloc.start()
    try:
        with pytest.raises(VramcalcError, match=r"llama.attention.key_length = .*whole number"):
            resolve_model_source(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20


def test_gguf_array_nested_5000_deep_is_one_line(tmp_path: Path) -> None:
    entry = gguf_string("junk.deep") + struct.pack("<I", ARR) + nested_array(5000)
    path = _gguf(tmp_path, gguf_bytes([*[gguf_entry(*e) for e in LLAMA_META], entry]))
    code, _, err = run_main(["inspect", str(path)])
    assert_one_line_error(code, err, "arrays nested more than 3 deep")


@pytest.mark.parametrize(
    ("vtype", "value", "shown"),
    [
        (F32, math.nan, "nan"),
        (F32, 24.0, "24.0"),
        (STR, "24", "'24'"),
        (ARR, (STR, ["x"]), "<array"),
    ],
)
def test_gguf_counts_of_the_wrong_type_are_refused(
    tmp_path: Path, vtype: int, value: object, shown: str
) -> None:
    path = _gguf(tmp_path, gguf_bytes(llama_meta_with("llama.block_count", vtype, value)))
    with pytest.raises(VramcalcError, match="llama.block_count = ") as info:
        resolve_model_source(str(path))
    assert shown in str(info.value) and "whole number from 0 to 2^32" in str(info.value)


def test_gguf_long_arrays_under_other_keys_are_skipped_not_kept(tmp_path: Path) -> None:
    # 1,000,000 u32 (4 MB) under a non-tokenizer key: read past with a seek; before, kept as a
    # list of Python ints (16x the bytes)
    big = (U32, list(range(1_000_000)))
    path = _gguf(tmp_path, gguf_bytes(llama_meta_with("llama.rope.freqs_big", ARR, big)))
    tracemalloc.start()
    try:
        src = resolve_model_source(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert src.spec.num_layers == 2 and src.params == 106816
    assert peak < 8 * 2**20  # well under the 4 MB array itself


def test_gguf_counts_beyond_the_file_are_refused_before_reading(tmp_path: Path) -> None:
    # an array claiming 2^27 u64 items in a file of a few hundred bytes
    entry = gguf_string("junk.arr") + struct.pack("<IIQ", ARR, 10, 1 << 27)
    path = _gguf(tmp_path, gguf_bytes([*[gguf_entry(*e) for e in LLAMA_META], entry]))
    with pytest.raises(VramcalcError, match=r"array of 134,217,728 items in a file of"):
        resolve_model_source(str(path))
    path.write_bytes(gguf_bytes(n_kv=1_000_000))
    with pytest.raises(VramcalcError, match="1,000,000 metadata entries"):
        resolve_model_source(str(path))


def test_gguf_tensor_larger_than_the_file_is_refused(tmp_path: Path) -> None:
    # 64 × 2^40 F16 values claimed by a file of a few hundred bytes
    path = _gguf(
        tmp_path, gguf_bytes(tensors=[("token_embd.weight", [64, 1 << 40], 1)], data=False)
    )
    with pytest.raises(VramcalcError, match="tensors of 140,737,488,355,328 bytes in a file of"):
        resolve_model_source(str(path))


def test_gguf_split_count_is_bounded(tmp_path: Path) -> None:
    path = _gguf(tmp_path, gguf_bytes(llama_meta_with("split.count", U32, 4_000_000_000)))
    with pytest.raises(VramcalcError, match="split.count 4,000,000,000 is above 99,999"):
        resolve_model_source(str(path))


# ---- config.json and JSON limits -----------------------------------------------------------


def test_config_json_over_10_mb_is_refused_without_reading(tmp_path: Path) -> None:
    folder = model_folder(tmp_path, weights=False)
    with (folder / "config.json").open("r+b") as f:
        f.truncate(MAX_JSON_BYTES + 1)  # sparse: the size check comes before any read
    code, _, err = run_main(["inspect", str(folder)])
    assert_one_line_error(code, err, "10,000,001 bytes is larger than the 10,000,000-byte limit")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[" * 1001 + "]" * 1001, "JSON nested 1001 levels deep (the limit is 64)"),
        ('{"num_hidden_layers": ' + "9" * 5000 + "}", "Exceeds the limit (4300 digits)"),
        ('{"num_hidden_layers": 1e320}', "number 1e320 is too large for a float"),
        ('{"hidden_size": NaN}', "NaN is not a JSON number"),
        ('{"hidden_size": Infinity}', "Infinity is not a JSON number"),
    ],
)
def test_json_limits_are_one_line(tmp_path: Path, text: str, fragment: str) -> None:
    folder = model_folder(tmp_path, weights=False)
    (folder / "config.json").write_text(text)
    code, _, err = run_main(["infer", str(folder)])
    assert_one_line_error(code, err, fragment)


def test_json_depth_ignores_brackets_inside_strings() -> None:
    assert json_depth(b'{"a": "[[[[{{{{", "b": [[1], {"c": []}]}') == 4  # { [ { [
    assert loads_json(b'{"a": "[[[["}', "x") == {"a": "[[[["}


# ---- safetensors: every entry checked, the header against the config -------------------------


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ({"dtype": "BF16", "shape": [-1, 64], "data_offsets": [0, 128]}, "non-negative integers"),
        ({"dtype": "BF16", "shape": [1e400], "data_offsets": [0, 2]}, "too large for a float"),
        ({"dtype": "Q9", "shape": [2], "data_offsets": [0, 4]}, "'Q9' is not a safetensors dtype"),
        ({"dtype": "BF16", "shape": [True], "data_offsets": [0, 2]}, "non-negative integers"),
        ({"dtype": "BF16", "shape": [2], "data_offsets": [0, 1 << 40]}, "outside the"),
        ({"dtype": "BF16", "shape": [1 << 40], "data_offsets": [0, 2]}, "do not hold a BF16"),
        ({"dtype": "BF16", "shape": [2], "data_offsets": [4, 0]}, "end before they begin"),
    ],
)
def test_malformed_safetensors_entries(tmp_path: Path, entry: dict, fragment: str) -> None:
    folder = model_folder(tmp_path)
    raw = json.dumps({"w": entry}).replace("Infinity", "1e400").encode()
    (folder / "model.safetensors").write_bytes(safetensors_bytes(raw, 64))
    code, _, err = run_main(["inspect", str(folder)])
    assert_one_line_error(code, err, fragment)


def test_empty_or_foreign_header_is_refused_not_zero_params(tmp_path: Path) -> None:
    seven_b = TINY | {"hidden_size": 4096, "intermediate_size": 11008,
                             "num_hidden_layers": 32, "num_attention_heads": 32,
                             "num_key_value_heads": 32, "vocab_size": 32000}  # fmt: skip
    folder = model_folder(tmp_path, seven_b, weights=False)
    (folder / "model.safetensors").write_bytes(safetensors_bytes({"__metadata__": {}}))
    code, _, err = run_main(["infer", str(folder)])
    assert_one_line_error(code, err, "the safetensors header lists no tensors")
    # a real (tiny) checkpoint beside a 7B config: 106,816 values against 6,738,415,616
    (folder / "model.safetensors").write_bytes(safetensors_for(llama_tensor_shapes(TINY)))
    code, _, err = run_main(["infer", str(folder)])
    assert_one_line_error(
        code, err, "holds 106,816 parameters but the config describes 6,738,415,616"
    )


def test_index_naming_files_outside_the_folder_is_refused_unread(tmp_path: Path) -> None:
    folder = model_folder(tmp_path, weights=False)
    secret = tmp_path / "secret.safetensors"
    secret.write_bytes(b"TOPSECRET" * 10)
    index = {"weight_map": {"a": "../secret.safetensors", "b": "../../../../etc/passwd"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    code, _, err = run_main(["inspect", str(folder)])
    assert_one_line_error(code, err, "leaves the model folder")
    assert "TOPSECRET" not in err and "root:" not in err
    for bad in ("/etc/passwd", "a/../../x", "C:\\x", ""):
        with pytest.raises(VramcalcError):
            safe_relative(bad, "index")
    assert safe_relative("model-00001-of-00002.safetensors", "index").endswith(".safetensors")


def test_inspect_reads_the_named_safetensors_file(tmp_path: Path) -> None:
    folder = model_folder(tmp_path)  # model.safetensors: BF16
    shapes = llama_tensor_shapes(TINY)
    (folder / "weights.safetensors").write_bytes(safetensors_for(shapes, "F32"))
    code, out, _ = run_main(["inspect", str(folder / "weights.safetensors"), "--json"])
    data = strict_json(out)
    assert code == 0 and data["checkpoint"]["origin"] == str(folder / "weights.safetensors")
    # 106,816 values (tests/test_sources.py derivation) × 4 bytes of F32
    assert data["checkpoint"]["bytes_by_dtype"] == {"F32": 4 * 106816}


# ---- non-regular files: refused before opening, never blocking ------------------------------


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def test_fifos_directories_and_loops_are_refused_quickly(tmp_path: Path) -> None:
    folder = model_folder(tmp_path, weights=False)
    (folder / "config.json").unlink()
    _fifo(folder / "config.json")
    loop = tmp_path / "loop.gguf"
    loop.symlink_to(tmp_path / "loop2.gguf")
    (tmp_path / "loop2.gguf").symlink_to(loop)
    gpu_dir = tmp_path / "gpus.toml"
    gpu_dir.mkdir()
    cases = [
        (["infer", str(_fifo(tmp_path / "m.gguf"))], "is a FIFO (named pipe), not a GGUF file"),
        (["infer", str(folder)], "config.json: is a FIFO (named pipe), not a JSON file"),
        (["infer", str(folder / "config.json")], "is a FIFO (named pipe), not a JSON file"),
        (["infer", str(loop)], "Too many levels of symbolic links"),
        (["infer", "/dev/null.gguf"], "no such file"),
        (["cost", "train", "gpt2", "--gpu", "h100", "--tokens", "1B", "--gpus-file",
          str(_fifo(tmp_path / "g.toml"))], "is a FIFO (named pipe), not a GPU file"),
        (["cost", "train", "gpt2", "--gpu", "h100", "--tokens", "1B", "--gpus-file",
          str(gpu_dir)], "is a directory, not a GPU file"),
    ]  # fmt: skip
    for argv, fragment in cases:
        start = time.monotonic()
        code, _, err = run_main(argv)
        assert time.monotonic() - start < 5
        assert_one_line_error(code, err, fragment)


def test_model_name_longer_than_the_file_system_allows() -> None:
    code, _, err = run_main(["infer", "a" * 5000])
    assert_one_line_error(code, err, "File name too long")
    assert len(err) < 300


def test_non_utf8_gpu_file(tmp_path: Path) -> None:
    bad = tmp_path / "gpus.toml"
    bad.write_bytes(b"[[gpu]]\nname = '\xff'\n")
    code, _, err = run_main(["cost", "train", "gpt2", "--gpu", "h100", "--tokens", "1B",
                             "--gpus-file", str(bad)])  # fmt: skip
    assert_one_line_error(code, err, "GPU file is not UTF-8 text (byte 16: 0xff)")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads unreadable folders")
def test_unreadable_folder(tmp_path: Path) -> None:
    folder = model_folder(tmp_path)
    folder.chmod(0)
    try:
        code, _, err = run_main(["infer", str(folder)])
    finally:
        folder.chmod(0o755)
    assert_one_line_error(code, err, "ermission denied")


# ---- the --record file: checked before the run, appended whole ------------------------------


def test_record_path_is_checked_before_the_run(tmp_path: Path) -> None:
    check_appendable(tmp_path / "new" / "runs.jsonl")  # creatable: fine
    with pytest.raises(VramcalcError, match="is a directory, not a record file"):
        check_appendable(tmp_path)
    with pytest.raises(VramcalcError, match=r"is a FIFO \(named pipe\), not a record file"):
        check_appendable(_fifo(tmp_path / "fifo"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(VramcalcError, match="cannot use as a record file: Not a directory"):
        check_appendable(tmp_path / "file" / "runs.jsonl")
    # the CLI refuses before torch or the GPU are touched
    code, _, err = run_main(["measure", "gpt2", "--record", str(tmp_path)])
    assert_one_line_error(code, err, "is a directory, not a record file")


def _append_many(path: str, writer: int, count: int) -> None:
    for i in range(count):
        record = {"writer": writer, "i": i, "pad": "x" * (5000 + 37 * writer)}
        append_line(Path(path), json.dumps(record))


def test_concurrent_appends_of_large_records_keep_every_line_whole(tmp_path: Path) -> None:
    path = tmp_path / "runs.jsonl"
    path.write_bytes(b'{"torn": ')  # an interrupted earlier write: repaired once, under the lock
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(str(path), w, 40)) for w in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = path.read_bytes().split(b"\n")
    assert lines[0] == b'{"torn": ' and lines[-1] == b""
    records = [json.loads(line) for line in lines[1:-1]]  # every other line parses, none blank
    assert len(records) == 6 * 40
    assert sorted((r["writer"], r["i"]) for r in records) == [
        (w, i) for w in range(6) for i in range(40)
    ]


def test_failed_append_prints_the_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vramcalc.cli import measure as cli_measure
    class Live:
        @staticmethod
        def append_record(path: Path, rec: dict) -> None:
            raise OSError(28, "No space left on device")

    with pytest.raises(VramcalcError, match="No space left on device.*printed on stdout"):
        cli_measure._append_or_show(Live, tmp_path / "r.jsonl", {"readings": {"peak": 1}})


# ---- values: finite floats, strict JSON, consistent checks ----------------------------------


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["cost", "infer", "llama-2-7b", "--gpu", "h100", "--price", "inf", "--json"],
         "'--price': inf is not a finite number"),
        (["plan", "llama-2-7b", "--task", "infer", "--budget", "inf", "--json"],
         "'--budget': inf is not a finite number"),
        (["train", "llama-2-7b", "--method", "lora", "--lora-alpha", "nan"],
         "'--lora-alpha': nan is not a finite number"),
        (["fit", "gpt2", "--gpu", "h100", "--num-gpus", "8"],
         "needs the 12 attention heads of gpt2 to divide evenly"),
        (["rlhf", "llama-2-7b", "--stage", "ppo", "--role-gpus", "critic=²"],
         "write role=count pairs"),
    ],
)  # fmt: skip
def test_bad_values_are_one_line(argv: list[str], fragment: str) -> None:
    code, out, err = run_main(argv)
    assert_one_line_error(code, err, fragment)
    assert out == ""


def test_gpu_file_with_infinite_price_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gpus.toml"
    path.write_text('[[gpu]]\nname = "h100"\nprice_usd_per_hour = inf\n')
    code, _, err = run_main(["cost", "infer", "llama-2-7b", "--gpu", "h100", "--json",
                             "--gpus-file", str(path)])  # fmt: skip
    assert_one_line_error(code, err, "field 'price_usd_per_hour': Input should be a finite number")


def test_json_writer_is_strict() -> None:
    assert dumps_json({"a": 1.5}) == '{\n  "a": 1.5\n}'
    for bad in (math.inf, -math.inf, math.nan):
        with pytest.raises(VramcalcError, match="infinite or undefined number"):
            dumps_json({"price": bad})


# ---- output: plain text, whatever the names and the terminal --------------------------------


def test_names_from_files_print_as_plain_text(tmp_path: Path) -> None:
    name = "[/x][link=http://x]evil\x1b[31mRED\x9b2J"
    path = _gguf(tmp_path, gguf_bytes(llama_meta_with("general.name", STR, name)))
    for argv in (["infer", str(path)], ["inspect", str(path)], ["train", str(path)]):
        code, out, err = run_main(argv)
        assert code == 0, err
        assert "[/x][link=http://x]evil[31mRED2J" in out  # markup shown as written
        assert "\x1b" not in out and "\x9b" not in out
    gpus = tmp_path / "gpus.toml"
    gpus.write_text('[[gpu]]\nname = "[/x][link=http://x]my\\u001b[2Jgpu"\nmemory_mib = 1000\n')
    code, out, err = run_main(["gpus", "--gpus-file", str(gpus)])
    assert code == 0, err
    assert "[/x][link=http://x]my[2Jgpu" in out.replace("\n", "") or "[/x]" in out
    assert "\x1b" not in out
    assert clean_text("a\tb\nc\x00d\x7fe\x85f") == "a\tb\ncdef"


def test_ascii_terminal_does_not_crash() -> None:
    env = os.environ | {"PYTHONIOENCODING": "ascii", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "vramcalc", "infer", "llama-2-7b", "--gpu", "h100"],
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode("ascii")  # every byte is ASCII
    assert "weights" in out and "#" in out and "Traceback" not in proc.stderr.decode()


def test_narrow_terminals_keep_numbers_and_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    code, out, _ = run_main(["infer", "llama-2-7b"])
    # the numbers stay (bf16 weights of 6,738,415,616 params = 12.55 GiB); the bar goes
    assert code == 0 and "12.55" in out and "…" not in out and "█" not in out
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run_main(["presets", "list"])
    assert code == 0 and "│ llama-2-7b " in out and "llama-2…" not in out
    monkeypatch.setenv("COLUMNS", "120")
    code, out, _ = run_main(["infer", "llama-2-7b"])
    assert code == 0 and "█" * 19 + "·" * 5 in out  # 80.8% of 24 cells
