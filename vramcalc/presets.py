"""Find, load and validate the preset files under ``presets/`` (shipped in the wheel).

Names resolve case-insensitively through a normalised key that ignores '-', '_', '.', '/' and
spaces, so ``llama-2-7b``, ``Llama2-7B`` and ``meta-llama/Llama-2-7b-hf`` all find the same file.
"""

from __future__ import annotations

import os
import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import PresetError, UnknownNameError
from .safe_io import MAX_TOML_BYTES, expand_user, read_text
from .specs import GPUSpec, ModelSpec

T = TypeVar("T", bound=BaseModel)


def presets_dir() -> Path:
    """The preset folder: inside the installed wheel, else the checkout's ``presets/``."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_presets", here.parent / "presets"):
        if candidate.is_dir():
            return candidate
    raise PresetError(f"preset folder not found next to {here}")


def normalise(name: str) -> str:
    return re.sub(r"[\s\-_./]+", "", name.lower())


def load_toml(path: Path, model: type[T]) -> T:
    """Load one preset file into `model`; a broken file raises PresetError naming file and field."""
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"{path}: not valid TOML: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(file)"
        raise PresetError(f"{path}: field {field!r}: {first['msg']}") from None


def _keys(name: str, aliases: tuple[str, ...], hf_id: str = "") -> set[str]:
    keys = {normalise(name), *(normalise(a) for a in aliases)}
    if hf_id:
        keys |= {normalise(hf_id), normalise(hf_id.split("/")[-1])}
    return keys


class _Catalog:
    def __init__(self, folder: Path, model: type[Any]) -> None:
        self.items: dict[str, Any] = {}
        self.index: dict[str, str] = {}
        for path in sorted(folder.glob("*.toml")):
            self.add(load_toml(path, model), str(path))

    def add(self, item: Any, where: str) -> None:
        if item.name in self.items:
            raise PresetError(f"{where}: duplicate preset name {item.name!r}")
        self.items[item.name] = item
        for key in _keys(item.name, item.aliases, getattr(item, "hf_id", "")):
            other = self.index.setdefault(key, item.name)
            if other != item.name:
                raise PresetError(f"{where}: alias {key!r} also names {other!r}")

    def get(self, kind: str, name: str) -> Any:
        found = self.index.get(normalise(name))
        if found is None:
            raise UnknownNameError(kind, name, sorted(self.items) + sorted(self.index))
        return self.items[found]


@cache
def _models() -> _Catalog:
    return _Catalog(presets_dir() / "models", ModelSpec)


# ---- GPU catalog with the user's additions and overrides ---------------------------------------
GPUS_ENV = "VRAMCALC_GPUS"
_gpus_file: Path | None = None


def use_gpus_file(path: str | Path | None) -> None:
    """Merge `path` (a user GPU file) over the catalog from now on; None goes back to the default
    lookup (``$VRAMCALC_GPUS``, else ``~/.config/vramcalc/gpus.toml`` when it exists)."""
    global _gpus_file
    _gpus_file = expand_user(path) if path is not None else None


def user_gpus_path() -> Path | None:
    """The user GPU file in effect: `use_gpus_file`, ``$VRAMCALC_GPUS``, then the config file."""
    if _gpus_file is not None:
        return _gpus_file
    env = os.environ
    return _lookup_user_file(env.get(GPUS_ENV), env.get("XDG_CONFIG_HOME"), env.get("HOME"))


@cache
def _lookup_user_file(var: str | None, xdg: str | None, home: str | None) -> Path | None:
    """Resolved once per environment: estimates look GPUs up on every call."""
    if var:
        return expand_user(var)
    config = Path(xdg) if xdg else Path(home or Path.home()) / ".config"
    default = config / "vramcalc" / "gpus.toml"
    return default if default.is_file() else None


def _merge_user_gpus(catalog: _Catalog, path: Path) -> None:
    """Each ``[[gpu]]`` table of the user file either overrides fields of a catalog GPU (its
    ``name`` is a catalog name or alias) or adds a new GPU (validated like the shipped ones).
    The file is only read, never written."""
    try:
        if not os.path.lexists(path):
            raise PresetError(f"GPU file {path} not found")
        # a regular UTF-8 file of at most 1 MB: a FIFO, device or folder is refused, never read
        data = tomllib.loads(read_text(path, MAX_TOML_BYTES, "GPU file"))
    except OSError as exc:  # a name too long, a symlink loop
        raise PresetError(f"GPU file {path}: {exc.strerror or exc}") from None
    except RecursionError:  # tomllib recurses per nested array or inline table
        raise PresetError(f"{path}: not valid TOML: arrays or tables nested too deeply") from None
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"{path}: not valid TOML: {exc}") from None
    entries = data.get("gpu")
    if not isinstance(entries, list) or set(data) - {"gpu"}:
        raise PresetError(f"{path}: expected only [[gpu]] tables (name = ..., fields to set)")
    for i, entry in enumerate(entries):
        where = f"{path}: [[gpu]] #{i + 1}"
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name:
            raise PresetError(f"{where}: needs a name (a catalog GPU to override, or a new one)")
        found = catalog.index.get(normalise(name))
        fields = {**catalog.items[found].model_dump(), **entry, "name": found} if found else entry
        try:
            gpu = GPUSpec.model_validate(fields)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "(entry)"
            raise PresetError(f"{where}: field {field!r}: {first['msg']}") from None
        if found:
            catalog.items[found] = gpu
            for key in _keys(gpu.name, gpu.aliases):
                other = catalog.index.setdefault(key, found)
                if other != found:
                    raise PresetError(f"{where}: alias {key!r} also names {other!r}")
        else:
            catalog.add(gpu, where)


@cache
def _gpu_catalog(user_file: Path | None) -> _Catalog:
    catalog = _Catalog(presets_dir() / "gpus", GPUSpec)
    if user_file is not None:
        _merge_user_gpus(catalog, user_file)
    return catalog


def _gpus() -> _Catalog:
    return _gpu_catalog(user_gpus_path())


def get_model(name: str) -> ModelSpec:
    """The preset for `name` (any alias, any case); UnknownNameError suggests close names."""
    spec: ModelSpec = _models().get("model", name)
    return spec


def list_models() -> list[ModelSpec]:
    return list(_models().items.values())


def get_gpu(name: str) -> GPUSpec:
    gpu: GPUSpec = _gpus().get("GPU", name)
    return gpu


def list_gpus() -> list[GPUSpec]:
    return list(_gpus().items.values())


def _family(name: str) -> str:
    """'h100-sxm' → 'h100', 'rtx-4090' → '4090', 'a100-80gb' → 'a100', 'v100-16gb' → 'v100'."""
    return name.removeprefix("rtx-").split("-")[0]


def match_gpu(device_name: str, total_bytes: int) -> GPUSpec | None:
    """The catalog GPU an NVML device name (e.g. 'NVIDIA A100-SXM4-80GB', 'Tesla T4') denotes:
    the family must appear as a word of the name; PCIe and SXM parts are told apart by the word
    'pcie'; among the rest the closest total memory wins. None when nothing matches."""
    words = set(re.findall(r"[a-z0-9]+", device_name.lower()))
    candidates = [g for g in list_gpus() if _family(g.name) in words]
    if not candidates:
        return None
    pcie = "pcie" in words
    mib = total_bytes / 2**20
    return min(candidates, key=lambda g: (("pcie" in g.name) != pcie, abs(g.memory_mib - mib)))
