"""Where a model description comes from: a preset, a config.json / model folder, a Hugging Face
Hub id, or a GGUF file. :func:`resolve_model_source` decides which and returns a
:class:`ModelSource`: the ModelSpec plus, when a checkpoint header was read, its exact tensors.

Resolution order for a string: ``hf:org/name`` forces the Hub; an existing path is a GGUF file, a
config.json, a model folder or a .safetensors file beside its config.json; a string written as a
path (./, /, ~, a model file suffix) that does not exist fails as a path; otherwise a preset name
or alias (Hub ids of presets and their instruct/chat variants included, see
:func:`vramcalc.sources.presets.resolve_model_name`); a missing path under a folder that exists fails as a path;
otherwise ``org/name`` (or ``org/name@revision``) is a Hub id. Giving a revision skips the presets.
"""

from __future__ import annotations

import importlib.util
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from vramcalc.errors import UnknownNameError, UnmappedArchitectureError, VramcalcError
from vramcalc.safe_io import clean_text, expand_user
from vramcalc.sources.presets import resolve_model_name
from vramcalc.spec.model import ModelSpec
from vramcalc.spec.params import active_param_count, param_count

from .checkpoint import CheckpointInfo, TensorRecord, checkpoint_weight_bytes, exact_tensors_of

SourceKind = Literal["preset", "spec", "config", "hub", "gguf"]

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.\-]*/[\w.\-]+")
_FLOAT_DTYPES = {"F64", "F32", "F16", "BF16"}


class ModelSource(BaseModel):
    """A resolved model: its spec, where it came from, and the checkpoint header when read."""

    model_config = ConfigDict(frozen=True)

    spec: ModelSpec
    kind: SourceKind
    origin: str
    checkpoint: CheckpointInfo | None = None
    notes: tuple[str, ...] = ()
    # the config.json dict the spec was read from (config and Hub sources): trace/measure rebuild
    # the reference model from it, so an architecture hf_config_dict does not know is built as is
    config: dict[str, Any] | None = None

    @property
    def params(self) -> int:
        """Exact parameters: the checkpoint's element count when its tensors are unpacked
        (16/32-bit safetensors, any GGUF), else the ModelSpec count."""
        ck = self.checkpoint
        if ck is not None and (ck.format == "gguf" or not ck.quantization):
            return ck.numel
        return param_count(self.spec)

    @property
    def active_params(self) -> int:
        """Parameters a token passes through: the exact total less the idle experts' share."""
        return self.params - (param_count(self.spec) - active_param_count(self.spec))


def describe_quantization(cfg: Any, tensors: list[TensorRecord]) -> str | None:
    """What a pre-quantized safetensors checkpoint holds (None: plain 16/32-bit weights).

    Quantized when any tensor is stored in a non-float dtype (packed int32 GPTQ/AWQ qweights,
    uint8 bitsandbytes 4-bit, F8_E4M3 FP8); the config's quantization_config names the method.
    """
    odd = sorted({t.dtype for t in tensors} - _FLOAT_DTYPES)
    if not odd:
        return None
    qc = cfg.get("quantization_config") if isinstance(cfg, dict) else None
    if isinstance(qc, dict):
        method = str(qc.get("quant_method", "quantized"))
        bits = qc.get("bits") or qc.get("w_bit")
        if qc.get("load_in_4bit") or qc.get("_load_in_4bit"):
            bits = f"4-bit {qc.get('bnb_4bit_quant_type', '')}".strip()
        elif qc.get("load_in_8bit") or qc.get("_load_in_8bit"):
            bits = "8-bit"
        elif bits:
            bits = f"{bits}-bit"
        group = qc.get("group_size") or qc.get("q_group_size")
        detail = ", ".join(str(x) for x in (bits, group and f"group {group}") if x)
        return f"{method} {detail}".strip() + f" ({'/'.join(odd)} tensors)"
    return f"pre-quantized ({'/'.join(odd)} tensors, no quantization_config)"


def exact_route_available() -> bool:
    """torch and transformers importable (the ``torch`` extra), checked without importing them."""
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))


def spec_for_config(
    cfg: Any, name: str, origin: str, **options: Any
) -> tuple[ModelSpec, list[str]]:
    """The mapped ModelSpec of a config.json; for a model_type no builder maps, the exact
    meta-device route (torch extra) or hf_config's refusal. `options` go to spec_from_config
    (an option that accepts a rough reading makes it not refuse: that reading is returned)."""
    from .hf_config import spec_from_config  # imported only when a config is read

    try:
        spec, notes = spec_from_config(cfg, name, origin, **options)
    except UnmappedArchitectureError as exc:
        return _exact_route(cfg, name, origin, exc)
    if spec.assumed_architecture is not None and exact_route_available():
        # --assume-llama with the torch extra: the exact route when it can build the config,
        # else the labelled rough reading the user accepted
        try:
            return _exact_route(cfg, name, origin, None)
        except VramcalcError:
            return spec, notes
    return spec, notes


def _exact_route(
    cfg: Any, name: str, origin: str, refusal: VramcalcError | None
) -> tuple[ModelSpec, list[str]]:
    if not exact_route_available():
        assert refusal is not None
        raise refusal
    from vramcalc.measure.meta import spec_from_meta

    try:
        return spec_from_meta(cfg, name, origin)
    except VramcalcError as exc:
        raise VramcalcError(
            f"{exc} (the exact meta-device route failed; --assume-llama accepts a labelled "
            "rough estimate)"
        ) from None


def _from_config(
    cfg: Any,
    name: str,
    origin: str,
    kind: SourceKind,
    tensors: list[TensorRecord] | None,
    tensors_origin: str,
    notes: list[str],
    assume_llama: bool = False,
) -> ModelSource:
    spec, more = spec_for_config(cfg, name, origin, assume_llama=assume_llama)
    checkpoint = None
    if tensors is not None:
        checkpoint = CheckpointInfo(
            format="safetensors",
            origin=tensors_origin,
            tensors=tuple(tensors),
            quantization=describe_quantization(cfg, tensors),
        )
        if checkpoint.quantization is None:
            notes = [*notes, *_check_against_config(checkpoint, spec)]
            # the header's tensors are the model's: every estimate (infer, train, LoRA, plans)
            # counts them, not the formula; a pre-quantized header stores packed shapes instead
            spec = spec.model_copy(update={"exact_tensors": exact_tensors_of(checkpoint)})
            more.append(
                f"tensors from the safetensors header ({len(tensors):,} tensors, "
                f"{checkpoint.numel:,} values) of {tensors_origin}"
            )
    elif spec.exact_tensors:  # no checkpoint, but the meta-device route counted the tensors
        notes = [
            re.sub(r"weights from the (config )?formula", "weights from the meta-device tensors", n)
            for n in notes
        ]
    return ModelSource(
        spec=spec,
        kind=kind,
        origin=origin,
        checkpoint=checkpoint,
        notes=(*more, *notes),
        config=cfg if isinstance(cfg, dict) else None,
    )


def _check_against_config(ck: CheckpointInfo, spec: ModelSpec) -> list[str]:
    """The checkpoint's element count against the config's: a header holding less than half of
    the parameters the config describes is not this model's checkpoint (refused); any other gap
    over 1% is reported (extra towers, tied weights stored twice, an unusual layout)."""
    formula = param_count(spec)
    if ck.numel * 2 < formula:
        raise VramcalcError(
            f"{ck.origin}: the safetensors header holds {ck.numel:,} parameters but the config "
            f"describes {formula:,}: not this model's checkpoint (or shards are missing)"
        )
    if abs(ck.numel - formula) > formula // 100:
        return [
            f"checkpoint holds {ck.numel:,} parameters, the config formula {formula:,} "
            f"({(ck.numel - formula) / formula:+.1%}): the checkpoint's tensors are used"
        ]
    return []


def load_path(path: Path, assume_llama: bool = False) -> ModelSource:
    """A config.json file, a model folder, or a .safetensors file beside its config.json (that
    file's tensors are read; the whole checkpoint when the folder's index names it as a shard)."""
    from .safetensors import INDEX_FILE, read_folder, read_json, read_tensors, shard_names

    if path.is_dir():
        folder = path
        config = folder / "config.json"
        if not os.path.lexists(config):  # present but not a regular file: read_json says so
            ggufs = sorted(folder.glob("*.gguf"))[:1]
            hint = f"; give a .gguf file instead, e.g. {ggufs[0]}" if ggufs else ""
            raise VramcalcError(f"{folder}: no config.json in this folder{hint}")
    else:
        folder = path.parent
        config = path if path.suffix == ".json" else folder / "config.json"
        if path.suffix not in (".json", ".safetensors"):
            raise VramcalcError(
                f"{path}: give a config.json, a model folder, a .safetensors file or a .gguf file"
            )
        if not os.path.lexists(config):
            raise VramcalcError(f"{path}: needs the model's config.json beside it")
    cfg = read_json(config)
    found: tuple[list[TensorRecord], str] | None
    if path.suffix == ".safetensors" and not path.is_dir():
        index = folder / INDEX_FILE
        sharded = index.is_file() and path.name in shard_names(read_json(index), str(index))
        found = read_folder(folder) if sharded else (read_tensors(path, str(path)), str(path))
    else:
        found = read_folder(folder)
    notes = (
        [] if found else ["no safetensors checkpoint beside config.json: weights from the formula"]
    )
    tensors, where = found if found else (None, "")
    name = folder.resolve().name or str(folder)
    return _from_config(cfg, name, str(config), "config", tensors, where, notes, assume_llama)


def load_gguf(path: Path) -> ModelSource:
    from .gguf import gguf_count, gguf_quantization, read_gguf, spec_from_gguf

    meta, tensors = read_gguf(path)
    parts = gguf_count(meta.get("split.count"), f"{path}: GGUF split.count") or 1
    if parts > 99_999:  # the part number is written with five digits
        raise VramcalcError(f"{path}: GGUF split.count {parts:,} is above 99,999")
    if parts > 1:  # llama.cpp gguf-split: NAME-00001-of-0000N.gguf, tensors spread over the parts
        match = re.fullmatch(r"(.*)-(\d{5})-of-(\d{5})\.gguf", path.name)
        if match is None:
            raise VramcalcError(
                f"{path}: split GGUF ({parts} parts) not named NAME-00001-of-{parts:05d}.gguf"
            )
        tensors = []
        for i in range(1, parts + 1):
            part = path.with_name(f"{match.group(1)}-{i:05d}-of-{parts:05d}.gguf")
            tensors += read_gguf(part)[1]
    general_name = meta.get("general.name")
    name = clean_text(general_name if isinstance(general_name, str) and general_name else path.stem)
    spec, notes = spec_from_gguf(meta, tensors, name, str(path))
    checkpoint = CheckpointInfo(
        format="gguf",
        origin=str(path),
        tensors=tuple(tensors),
        quantization=gguf_quantization(meta, tensors),
    )
    return ModelSource(
        spec=spec, kind="gguf", origin=str(path), checkpoint=checkpoint, notes=tuple(notes)
    )


def load_hub(
    repo_id: str, revision: str | None = None, offline: bool = False, assume_llama: bool = False
) -> ModelSource:
    from .hub import fetch_config, fetch_tensors

    cfg, _ = fetch_config(repo_id, revision, offline)
    tensors, where = fetch_tensors(repo_id, revision, offline)
    notes = [] if tensors is not None else [where]
    name = repo_id + (f"@{revision}" if revision else "")
    origin = f"https://huggingface.co/{repo_id}" + (f"/tree/{revision}" if revision else "")
    return _from_config(cfg, name, origin, "hub", tensors, where, notes, assume_llama)


# Suffixes of files a model is given as: a name ending so is a path, never a Hub id.
PATH_SUFFIXES = (".json", ".safetensors", ".gguf", ".bin", ".pt", ".pth", ".ckpt", ".toml", ".yaml")


def _exists(path: str | Path) -> bool:
    """Whether anything (a link too) is at `path`; a name the file system cannot take (too long,
    a NUL byte) raises instead of reading as absent."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


_DRIVE = re.compile(r"[A-Za-z]:[/\\]")  # compiled once: every model argument is checked


def looks_like_path(text: str) -> bool:
    """Written as a path: ./, ../, /, ~ or a drive/backslash, or a model file's suffix."""
    return (
        text.startswith((".", "/", "~", "\\"))
        or "\\" in text
        or bool(_DRIVE.match(text))
        or text.lower().endswith(PATH_SUFFIXES)
    )


def _missing_path(text: str) -> VramcalcError:
    """'no such file or folder', naming the deepest part of the path that does exist."""
    path = Path(text).expanduser()
    found = next((p for p in path.parents if str(p) not in ("", ".") and p.exists()), None)
    where = f" ({found} exists, {path.relative_to(found)} does not)" if found else ""
    return VramcalcError(f"{text}: no such file or folder{where}")


@lru_cache(maxsize=256)  # frozen: one source per preset (and note), not one per estimate
def _preset_source(spec: ModelSpec, note: str | None) -> ModelSource:
    notes = (note,) if note else ()
    return ModelSource(spec=spec, kind="preset", origin=spec.source or spec.name, notes=notes)


def resolve_model_source(
    text: str, revision: str | None = None, offline: bool = False, *, assume_llama: bool = False
) -> ModelSource:
    """Decide what `text` names (preset, path, GGUF file or Hub id) and load it. A config.json of
    an unmapped architecture takes the exact meta-device route (torch extra) or is refused, unless
    ``assume_llama`` (a labelled rough estimate).

    A path is a path: written as one (./, /, ~, a model file suffix), or whose first folder
    exists here, it fails as a missing path and is never retried as a Hub id (``hf:org/name``
    forces the Hub)."""
    text = text.strip()
    if not text:
        raise VramcalcError("empty model name")
    if text.startswith("hf:"):
        repo, _, rev = text[3:].partition("@")
        return load_hub(repo, revision or rev or None, offline, assume_llama)
    # a bare name (no separator, no ~) is already the path Path() would make: a preset name
    # (every estimate's case) checks the file system without building a Path
    bare = "/" not in text and "\\" not in text and "~" not in text
    try:
        if _exists(text if bare else expand_user(text)):  # a broken or looping link too
            path = expand_user(text)
            if text.lower().endswith(".gguf"):
                return load_gguf(path)
            return load_path(path, assume_llama)
    except (OSError, ValueError) as exc:  # name too long, permission denied, NUL byte
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "invalid path"
        shown = clean_text(text if len(text) <= 80 else text[:77] + "...")
        raise VramcalcError(f"{shown}: cannot read this path: {reason}") from None
    if looks_like_path(text):
        raise _missing_path(text)
    repo, _, rev = text.partition("@")
    preset_error: UnknownNameError | None = None
    if revision is None and not rev:
        try:
            return _preset_source(*resolve_model_name(text))
        except UnknownNameError as exc:
            preset_error = exc
    if "/" in repo and Path(repo.split("/", 1)[0]).is_dir():
        first = repo.split("/", 1)[0]
        raise VramcalcError(
            f"{text}: no such file or folder ({first}/ exists here, {repo[len(first) + 1 :]} does "
            f"not); for the Hub id write hf:{text}"
        )
    if _HUB_ID.fullmatch(repo):
        return load_hub(repo, revision or rev or None, offline, assume_llama)
    if preset_error is not None:
        raise preset_error
    raise VramcalcError(f"{text!r} is not a Hub id (org/name)")


def __getattr__(name: str) -> Any:
    if name == "SUPPORTED_MODEL_TYPES":  # loaded on first use, as spec_from_config is
        from .hf_config import SUPPORTED_MODEL_TYPES

        return SUPPORTED_MODEL_TYPES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SUPPORTED_MODEL_TYPES",
    "CheckpointInfo",
    "ModelSource",
    "TensorRecord",
    "checkpoint_weight_bytes",
    "exact_route_available",
    "load_gguf",
    "load_hub",
    "load_path",
    "resolve_model_source",
    "spec_for_config",
]
