"""Fuzz of the whole command line (hypothesis): every command and option with values drawn per
option type (hostile strings, huge and negative numbers, nan/inf, unicode), and malformed files
of every supported format (config.json, safetensors, GGUF, index json, GPU TOML: truncated,
nested, huge counts, wrong types, FIFOs, symlink loops, unreadable).

Every run must end with exit code 0 or 2 (1 only with --check); on exit 2 exactly one line on
stderr and no traceback; with --json, stdout alone is strict JSON; each run within
``SECONDS_PER_RUN``; and a run on a crafted file within ``PEAK_BYTES`` of Python allocations.

Cheap by default (a few hundred runs, well under a minute); the `fuzz` marker lets a fast lane
deselect it (``-m "not fuzz"``). ``benchmarks/fuzz.py`` runs long campaigns of the same checks
(``VRAMCALC_FUZZ_EXAMPLES``; ``VRAMCALC_FUZZ_TORCH=1`` adds trace/measure/validate).
"""

from __future__ import annotations

import json
import os
import signal
import struct
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hostile_files import (
    ARR,
    LLAMA_META,
    STR,
    U32,
    gguf_bytes,
    gguf_entry,
    gguf_string,
    nested_array,
    run_main,
    safetensors_bytes,
    strict_json,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from model_files import TINY, llama_tensor_shapes, safetensors_for

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("VRAMCALC_FUZZ_EXAMPLES", "200"))
WITH_TORCH = os.environ.get("VRAMCALC_FUZZ_TORCH") == "1"
SECONDS_PER_RUN = float(os.environ.get("VRAMCALC_FUZZ_SECONDS", "5"))
PEAK_BYTES = 256 * 2**20
TORCH_COMMANDS = {"trace", "measure", "validate"}
STATS = {"runs": 0, "exit_0": 0, "exit_2": 0, "max_seconds": 0.0, "max_peak_bytes": 0}

HOSTILE_TEXT = [
    "", " ", "-", "--", "-1", "0", "1", "7", "1e400", "-1e400", "nan", "NaN", "inf", "-inf",
    "1e308", "9" * 5000, "²", "٣", "4k", "32K", "1.5B", "2T", "1M", "0x10", "1_000", "[/x]",
    "[link=http://x]y[/link]", "\x1b[31mred", "\x9b2J", "../../../../etc/passwd", "/dev/zero",
    "/dev/null", "a" * 5000, "critic=²", "critic=8,reference=16", "policy=1", "×", "–", "█",
    "🙂", "llama-2-7b", "gpt2", "h100", "rtx-4090", "org/name@rev", "hf:", "@", "all-linear",
    "q,k,v", "q,,", "\t", "\n", "é" * 300, "%s%n", "{}", "[]",
]  # fmt: skip
MODELS = ["gpt2", "llama-2-7b", "mixtral-8x7b", "qwen2-moe-a2.7b", "deepseek-v2-lite", "gemma-2-9b"]
GPUS = ["h100", "a100-80gb", "rtx-4090", "t4", "mi300x"]


def hostile_text() -> st.SearchStrategy[str]:
    # no NUL: an argv string cannot hold one
    free = st.text(
        st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=40
    )
    return st.one_of(st.sampled_from(HOSTILE_TEXT), free)


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`good` seven times in ten: hostile values everywhere would stop every run at its first
    option, never reaching the code behind the others."""
    return st.integers(0, 9).flatmap(lambda k: good if k < 7 else bad)


def int_text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(-4, 70).map(str),
        st.sampled_from([2**31, 2**32, 2**63, 2**64, 10**30, -(2**63)]).map(str),
        st.integers().map(str),
        st.sampled_from(HOSTILE_TEXT[:24]),
    )


def float_text() -> st.SearchStrategy[str]:
    return st.one_of(
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.floats(0.001, 100).map(lambda f: f"{f:.3g}"),
        st.sampled_from(["nan", "inf", "-inf", "1e-320", "0", "-0.0", "1e400", "0.5"]),
    )


# ---- files ------------------------------------------------------------------------------------


def _special_files(root: Path) -> list[str]:
    """Paths that are not files a reader should open: FIFOs, folders, loops, devices, unreadable."""
    os.mkfifo(root / "fifo.gguf")
    os.mkfifo(root / "fifo.toml")
    os.mkfifo(root / "fifo.json")
    (root / "dir.gguf").mkdir()
    (root / "loop.gguf").symlink_to(root / "loop2.gguf")
    (root / "loop2.gguf").symlink_to(root / "loop.gguf")
    (root / "loop.toml").symlink_to(root / "loop.toml")
    unreadable = root / "unreadable.toml"
    unreadable.write_text("[[gpu]]\n")
    unreadable.chmod(0)
    names = ["fifo.gguf", "fifo.toml", "fifo.json", "dir.gguf", "loop.gguf", "loop.toml"]
    return [*(str(root / n) for n in names), str(unreadable), str(root), "/dev/null", "/dev/zero"]


@pytest.fixture(scope="module")
def special(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return _special_files(tmp_path_factory.mktemp("special"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module", autouse=True)
def no_hub() -> Iterator[None]:
    """No network in tests: any Hub id the fuzz produces fails as an unreachable Hub would."""
    from vramcalc.errors import VramcalcError
    from vramcalc.sources import hub

    def offline() -> Any:
        raise VramcalcError("Hugging Face Hub disabled in the fuzz")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(hub, "_hub", offline)
        yield


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=10),
    ),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
RAW_JSON = [
    b"[" * 5000 + b"]" * 5000, b'{"a": ' + b"9" * 5000 + b"}", b'{"num_hidden_layers": 1e320}',
    b'{"hidden_size": NaN}', b"\xff\xfe", b"", b"{", b"null", b"[]", b'"x"',
]  # fmt: skip


# Layer and head counts bounded unless VRAMCALC_FUZZ_FULL_CONFIG=1: bounding the per-layer work of
# the config mapping (num_hidden_layers: 1e9) is validated in vramcalc.sources.hf_config.
FULL_CONFIG = os.environ.get("VRAMCALC_FUZZ_FULL_CONFIG") == "1"
COUNT_KEYS = {"num_hidden_layers", "num_attention_heads", "num_key_value_heads"}


def _bounded(value: Any) -> Any:
    if FULL_CONFIG or isinstance(value, bool) or not isinstance(value, int | float):
        return value
    return value if abs(value) <= 10**5 else 10**5


@st.composite
def config_json(draw: st.DrawFn) -> bytes:
    """TINY with fields replaced by hostile values, or raw malformed JSON."""
    if draw(st.integers(0, 5)) == 0:
        return draw(st.sampled_from(RAW_JSON))
    cfg = dict(TINY)
    cfg["model_type"] = draw(
        st.sampled_from(["llama", "qwen2_moe", "mixtral", "gpt2", "deepseek_v2", "gemma2", "x"])
    )
    for key in draw(st.lists(st.sampled_from([*TINY, "num_experts", "head_dim",
                                              "num_local_experts", "sliding_window",
                                              "decoder_sparse_step", "mlp_only_layers"]),
                             max_size=3)):  # fmt: skip
        value = draw(
            st.one_of(
                json_values,
                st.sampled_from([0, -1, 10**9, 2**63, True, "24", "x", [], [[1]], 1e300, 0.5]),
            )
        )
        cfg[key] = _bounded(value) if key in COUNT_KEYS else value
    return json.dumps(cfg).encode()


@st.composite
def safetensors_file(draw: st.DrawFn) -> bytes:
    shapes = llama_tensor_shapes(TINY)
    good = safetensors_for(shapes)
    kind = draw(st.integers(0, 4))
    if kind == 0:  # truncated anywhere
        return good[: draw(st.integers(0, len(good)))]
    if kind == 1:  # header length lies
        return struct.pack("<Q", draw(st.integers(0, 2**64 - 1))) + good[8:200]
    if kind == 2:  # one entry replaced by hostile fields
        header = json.loads(good[8 : 8 + struct.unpack("<Q", good[:8])[0]])
        name = draw(st.sampled_from(sorted(shapes)))
        header[name] = draw(
            st.fixed_dictionaries(
                {
                    "dtype": st.one_of(
                        st.sampled_from(["BF16", "F32", "I32", "Q9", "F4", ""]), json_values
                    ),
                    "shape": st.one_of(
                        st.lists(st.integers(-(2**65), 2**65), max_size=9), json_values
                    ),
                    "data_offsets": st.one_of(
                        st.lists(st.integers(-5, 2**65), max_size=3), json_values
                    ),
                }
            )
        )
        return safetensors_bytes(header, 4096)
    if kind == 3:
        return safetensors_bytes(draw(st.sampled_from(RAW_JSON)), 64)
    return safetensors_bytes(draw(json_values).__repr__().encode(), 16)


@st.composite
def gguf_file(draw: st.DrawFn) -> bytes:
    good = gguf_bytes()
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return good[: draw(st.integers(0, len(good)))]
    if kind == 1:  # a few bytes flipped in the header
        data = bytearray(good)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, 1500))] = draw(st.integers(0, 255))
        return bytes(data)
    entries = [gguf_entry(*e) for e in LLAMA_META]
    if kind == 2:  # one metadata value of a hostile type
        key = draw(
            st.sampled_from(
                [k for k, _, _ in LLAMA_META] + ["split.count", "llama.attention.key_length"]
            )
        )
        vtype = draw(st.sampled_from([0, 1, 4, 5, 6, 7, 8, 10, 11, 12]))
        fmt = {0: "<B", 1: "<b", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
        if vtype == 8:
            raw = gguf_string(draw(hostile_text()))
        elif vtype in (6, 12):
            raw = struct.pack(fmt[vtype], draw(st.floats(width=32 if vtype == 6 else 64)))
        else:
            bits = struct.calcsize(fmt[vtype]) * 8
            lo = -(2 ** (bits - 1)) if fmt[vtype][1].islower() else 0
            raw = struct.pack(fmt[vtype], draw(st.integers(lo, lo + 2**bits - 1)))
        if vtype == 7:
            raw = struct.pack("<B", draw(st.integers(0, 1)))
        entries = [e for e, (k, _, _) in zip(entries, LLAMA_META, strict=True) if k != key]
        entries.append(gguf_string(key) + struct.pack("<I", vtype) + raw)
    elif kind == 3:  # nested or huge arrays under a needed key
        key = draw(st.sampled_from(["llama.attention.key_length", "llama.block_count", "junk"]))
        depth = draw(st.integers(1, 40))
        raw = (
            nested_array(depth)
            if draw(st.booleans())
            else struct.pack(
                "<IQ", draw(st.sampled_from([U32, ARR, STR, 99])), draw(st.integers(0, 2**64 - 1))
            )
        )
        entries.append(gguf_string(key) + struct.pack("<I", ARR) + raw)
    else:  # counts that lie
        return gguf_bytes(
            entries,
            n_kv=draw(st.integers(1, 2**64 - 1)),
            n_tensors=draw(st.integers(1, 2**64 - 1)),
        )
    return gguf_bytes(entries)


@st.composite
def gpu_toml(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 4)) == 0:
        return draw(st.sampled_from([b"\xff", b"a = " + b"[" * 3000, b"[[gpu]", b"gpu = 1"]))
    fields = draw(
        st.dictionaries(
            st.sampled_from(["memory_mib", "price_usd_per_hour", "peak_bf16_tflops",
                             "memory_bandwidth_gbps", "aliases", "display_name", "bogus"]),
            st.sampled_from(["inf", "nan", "-1", "0", "1e400", "80000", '"x"', "[]", "true",
                             '"[/x]\\u001b[31m"', "9" * 400]),
            max_size=3,
        )
    )  # fmt: skip
    name = draw(st.sampled_from(['"h100"', '"[/x]my gpu"', '"\\u001b[2J"', '""', "1", '"t4"']))
    body = "".join(f"{k} = {v}\n" for k, v in fields.items())
    return f"[[gpu]]\nname = {name}\n{body}".encode()


@st.composite
def model_dir(draw: st.DrawFn, root: Path) -> str:
    """A model folder with a crafted config.json, checkpoint or shard index."""
    folder = root / f"m{draw(st.integers(0, 10**9))}"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_bytes(draw(config_json()))
    what = draw(st.integers(0, 2))
    if what == 0:
        (folder / "model.safetensors").write_bytes(draw(safetensors_file()))
    elif what == 1:
        names = draw(st.lists(st.sampled_from(["../x", "../../../../etc/passwd", "/etc/passwd",
                                               "a.safetensors", "", "..", "b/../../c"]),
                              min_size=1, max_size=3))  # fmt: skip
        index = {"weight_map": {f"t{i}": n for i, n in enumerate(names)}}
        (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return str(folder)


# ---- the check ----------------------------------------------------------------------------------


class RunTimeout(BaseException):
    """Raised by the alarm in a run that went on too long (a BaseException: no handler of the
    CLI may turn it into an ordinary error)."""


def _alarm(signum: int, frame: Any) -> None:
    raise RunTimeout


def check(argv: list[str], measure_memory: bool = False) -> str | None:
    """Run `vramcalc ARGV`; None when it behaved, else what went wrong. A run still going after
    four times the time limit is stopped by SIGALRM and reported (it would otherwise hang)."""
    from vramcalc.sources.presets import use_gpus_file

    if measure_memory:
        tracemalloc.start()
    start = time.monotonic()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, 4 * SECONDS_PER_RUN)
    try:
        code, out, err = run_main(argv)
    except RunTimeout:
        code, out, err = -1, "", f"stopped after {4 * SECONDS_PER_RUN:.0f} s"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        seconds = time.monotonic() - start
        peak = tracemalloc.get_traced_memory()[1] if measure_memory else 0
        if measure_memory:
            tracemalloc.stop()
        use_gpus_file(None)  # runs stay independent
    STATS["runs"] += 1
    STATS[f"exit_{code}"] = STATS.get(f"exit_{code}", 0) + 1
    STATS["max_seconds"] = max(STATS["max_seconds"], seconds)
    STATS["max_peak_bytes"] = max(STATS["max_peak_bytes"], peak)
    allowed = {0, 2} | ({1} if "--check" in argv else set())
    if code not in allowed:
        return f"exit {code}: {err[-300:]!r}"
    if "Traceback" in out + err:
        return f"traceback: {err[-300:]!r}"
    if code == 2 and (err.count("\n") != 1 or not err.startswith("vramcalc: error: ")):
        return f"exit 2 without one error line: {err[:300]!r}"
    if code == 0 and "--json" in argv and "--help" not in argv:
        try:
            strict_json(out)
        except ValueError as exc:
            return f"--json output is not strict JSON ({exc}): {out[:200]!r}"
    if "\x1b" in out or "\x1b" in err:
        return f"escape byte in the output: {(out + err)[:200]!r}"
    if seconds > SECONDS_PER_RUN:
        return f"took {seconds:.1f} s"
    if peak > PEAK_BYTES:
        return f"allocated {peak / 2**20:.0f} MiB"
    return None


def _commands() -> list[tuple[list[str], Any]]:
    import typer.main

    from vramcalc.cli.app import app

    out = []
    stack: list[tuple[list[str], Any]] = [([], typer.main.get_command(app))]
    while stack:
        path, cmd = stack.pop()
        subs = getattr(cmd, "commands", None)
        if subs:
            stack += [([*path, name], sub) for name, sub in subs.items()]
        elif WITH_TORCH or path[0] not in TORCH_COMMANDS:
            out.append((path, cmd))
    return sorted(out, key=lambda pc: pc[0])


COMMANDS = _commands()


@st.composite
def cli_argv(draw: st.DrawFn, files: list[str]) -> list[str]:
    """A command and options: required ones always, the others at random, values per type."""
    path, cmd = draw(st.sampled_from(COMMANDS))
    argv = list(path)
    paths = st.sampled_from(files)
    for param in cmd.params:
        desc = param.type_descriptor
        if param.param_type_name == "argument":
            argv.append(draw(mostly(st.sampled_from(MODELS), st.one_of(paths, hostile_text()))))
            continue
        if not param.required and not draw(st.integers(0, 3)) == 0:
            continue
        opt = param.opts[0]
        if getattr(param, "is_flag", False):
            argv.append(draw(st.sampled_from([opt, *param.secondary_opts])))
            continue
        if desc.is_choice:
            choices = [c.value if hasattr(c, "value") else str(c) for c in desc.choices or ()]
            value = draw(mostly(st.sampled_from(choices), hostile_text()))
        elif desc.is_path:
            value = draw(paths)
        elif desc.annotation is int:
            value = draw(mostly(st.integers(1, 64).map(str), int_text()))
        elif desc.annotation is float:
            value = draw(mostly(st.floats(0.01, 10).map(lambda f: f"{f:.3g}"), float_text()))
        elif "gpu" in param.name and param.name != "role_gpus":
            value = draw(mostly(st.sampled_from(GPUS), hostile_text()))
        elif "model" in param.name:
            value = draw(mostly(st.sampled_from(MODELS), st.one_of(paths, hostile_text())))
        elif param.name in ("tokens", "params"):
            value = draw(mostly(st.sampled_from(["7B", "2T", "1e9", "300B"]), hostile_text()))
        else:
            value = draw(hostile_text())
        argv += [opt, value]
    if "--json" not in argv and draw(st.booleans()):
        argv.append("--json")
    return argv


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_cli_fuzz(data: st.DataObject, special: list[str]) -> None:
    argv = data.draw(cli_argv(special), label="argv")
    problem = check(argv)
    assert problem is None, f"vramcalc {argv!r}: {problem}"


FILE_COMMANDS = [["inspect", "--json"], ["infer", "--json"], ["train", "--json"], ["infer"]]


@st.composite
def file_argv(draw: st.DrawFn, root: Path, special: list[str]) -> list[str]:
    """A command on one crafted file of a random format."""
    fmt = draw(st.sampled_from(["gguf", "config", "safetensors", "folder", "gpus", "special"]))
    n = draw(st.integers(0, 10**9))
    command = list(draw(st.sampled_from(FILE_COMMANDS)))
    if fmt == "gguf":
        target = root / f"f{n}.gguf"
        target.write_bytes(draw(gguf_file()))
    elif fmt == "config":
        target = root / f"c{n}" / "config.json"
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(draw(config_json()))
    elif fmt == "safetensors":
        folder = root / f"s{n}"
        folder.mkdir(exist_ok=True)
        (folder / "config.json").write_text(json.dumps(TINY))
        target = folder / "model.safetensors"
        target.write_bytes(draw(safetensors_file()))
    elif fmt == "folder":
        target = Path(draw(model_dir(root)))
    elif fmt == "gpus":
        gpus = root / f"g{n}.toml"
        gpus.write_bytes(draw(gpu_toml()))
        return ["gpus", "--json", "--gpus-file", str(gpus)] if draw(st.booleans()) else [
            "cost", "infer", "gpt2", "--gpu", "h100", "--gpus-file", str(gpus),
        ]  # fmt: skip
    else:
        return [command[0], draw(st.sampled_from(special)), *command[1:]]
    return [command[0], str(target), *command[1:]]


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_file_fuzz(data: st.DataObject, workdir: Path, special: list[str]) -> None:
    argv = data.draw(file_argv(workdir, special), label="argv")
    problem = check(argv, measure_memory=True)
    assert problem is None, f"vramcalc {argv!r}: {problem}"
