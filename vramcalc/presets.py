"""Find, load and validate the preset files under ``presets/`` (shipped in the wheel).

Names resolve case-insensitively through a normalised key that ignores '-', '_', '.', '/' and
spaces, so ``llama-2-7b``, ``Llama2-7B`` and ``meta-llama/Llama-2-7b-hf`` all find the same file.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import PresetError, UnknownNameError
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
            item = load_toml(path, model)
            if item.name in self.items:
                raise PresetError(f"{path}: duplicate preset name {item.name!r}")
            self.items[item.name] = item
            for key in _keys(item.name, item.aliases, getattr(item, "hf_id", "")):
                other = self.index.setdefault(key, item.name)
                if other != item.name:
                    raise PresetError(f"{path}: alias {key!r} also names {other!r}")

    def get(self, kind: str, name: str) -> Any:
        found = self.index.get(normalise(name))
        if found is None:
            raise UnknownNameError(kind, name, sorted(self.items) + sorted(self.index))
        return self.items[found]


@cache
def _models() -> _Catalog:
    return _Catalog(presets_dir() / "models", ModelSpec)


@cache
def _gpus() -> _Catalog:
    return _Catalog(presets_dir() / "gpus", GPUSpec)


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
