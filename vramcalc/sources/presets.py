"""Find, load and validate the preset files under ``presets/`` (shipped in the wheel).

Names resolve case-insensitively through a normalised key that ignores '-', '_', '.', '/' and
spaces, so ``llama-2-7b``, ``Llama2-7B`` and ``meta-llama/Llama-2-7b-hf`` all find the same file.

A model name that names no preset as written is tried once more as a variant of one
(:func:`resolve_model_name`): without a trailing ``-Instruct``, ``-it`` or ``-chat`` (the tuned
variants share their base model's architecture and tensors), and, written ``org/name``, only when
``org`` is the preset's own Hub organisation — so ``meta-llama/Llama-3.1-8B-Instruct``,
``Qwen/Qwen2.5-7B-Instruct`` and ``google/gemma-2-9b-it`` are presets, while another
organisation's ``name`` (a fine-tune, a re-quantization) goes to the Hub.
"""

from __future__ import annotations

import os
import re
import tomllib
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vramcalc.errors import PresetError, UnknownNameError
from vramcalc.safe_io import MAX_TOML_BYTES, expand_user, read_text
from vramcalc.spec.model import GPUSpec, ModelSpec

T = TypeVar("T", bound=BaseModel)


def presets_dir() -> Path:
    """The preset folder: inside the installed wheel, else the checkout's ``presets/``."""
    here = Path(__file__).resolve().parents[1]  # the vramcalc package
    for candidate in (here / "_presets", here.parent / "presets"):
        if candidate.is_dir():
            return candidate
    raise PresetError(f"preset folder not found next to {here}")


_SEPARATORS = re.compile(r"[\s\-_./]+")


@lru_cache(maxsize=1024)  # every preset lookup normalises the name it was given
def normalise(name: str) -> str:
    return _SEPARATORS.sub("", name.lower())


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


def _keys(name: str, aliases: tuple[str, ...], hf_id: str = "") -> dict[str, str]:
    """Lookup key → the spelling it came from (the name, an alias or the Hub id)."""
    spellings = [name, *aliases, *([hf_id, hf_id.split("/")[-1]] if hf_id else [])]
    keys: dict[str, str] = {}
    for spelling in spellings:
        keys.setdefault(normalise(spelling), spelling)
    return keys


class _Catalog:
    def __init__(self, folder: Path, model: type[Any]) -> None:
        self.items: dict[str, Any] = {}
        self.index: dict[str, str] = {}
        self.spelling: dict[str, tuple[str, str]] = {}  # lookup key → (as users write it, preset)
        for path in sorted(folder.glob("*.toml")):
            self.add(load_toml(path, model), str(path))

    def add(self, item: Any, where: str) -> None:
        if item.name in self.items:
            raise PresetError(f"{where}: duplicate preset name {item.name!r}")
        self.items[item.name] = item
        for key, spelling in _keys(item.name, item.aliases, getattr(item, "hf_id", "")).items():
            other = self.index.setdefault(key, item.name)
            if other != item.name:
                raise PresetError(f"{where}: alias {key!r} also names {other!r}")
            self.spelling.setdefault(key, (spelling, item.name))

    def get(self, kind: str, name: str) -> Any:
        found = self.index.get(normalise(name))
        if found is None:
            raise UnknownNameError(kind, name, self.spelling, normalise)
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
        fields = entry
        if found:
            base = catalog.items[found].model_dump()
            if "price_usd_per_hour" in entry:  # the old name of usd_per_gpu_hour: one of the two
                del base["usd_per_gpu_hour"]
            fields = {**base, **entry, "name": found}
        # the user's price (old key name too): not the set's market
        if found and ("usd_per_gpu_hour" in entry or "price_usd_per_hour" in entry):
            for key, value in (
                ("price_market", "user"),
                ("price_date", ""),
                ("price_source", str(path)),
            ):
                fields[key] = entry.get(key, value)
        try:
            gpu = GPUSpec.model_validate(fields)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "(entry)"
            raise PresetError(f"{where}: field {field!r}: {first['msg']}") from None
        if found:
            catalog.items[found] = gpu
            for key, spelling in _keys(gpu.name, gpu.aliases).items():
                other = catalog.index.setdefault(key, found)
                if other != found:
                    raise PresetError(f"{where}: alias {key!r} also names {other!r}")
                catalog.spelling.setdefault(key, (spelling, found))
        else:
            catalog.add(gpu, where)


# ---- prices: one set at a time (one provider, market and date), never mixed ------------------
DEFAULT_PRICE_SET = "runpod-on-demand"
_price_source: str | None = None


class PriceSet(BaseModel):
    """GPU-hour prices of one market read on one date from one cited source."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    market: Literal["on-demand", "spot", "community", "reserved"]
    provider: str = Field(min_length=1)
    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="when the prices were read")
    source: str = Field(min_length=1, description="where the figures were read (URL)")
    prices: dict[str, float] = Field(description="GPU name or alias → USD per GPU-hour")

    @field_validator("prices")
    @classmethod
    def _finite(cls, prices: dict[str, float]) -> dict[str, float]:
        for gpu, usd in prices.items():
            if not 0 <= usd < 1e6:  # also refuses NaN and infinity
                raise ValueError(f"{gpu}: price {usd} is not a finite USD amount")
        return prices


def use_price_source(source: str | Path | None) -> None:
    """Price GPUs from `source` from now on: a set name under presets/prices/ or a TOML file of
    the same form; None goes back to the default set."""
    global _price_source
    if source is not None:
        _load_price_set(str(source))  # a bad name or file fails now, before any work
    _price_source = str(source) if source is not None else None


def list_price_sets() -> list[str]:
    return sorted(p.stem for p in (presets_dir() / "prices").glob("*.toml"))


def price_set(source: str | None = None) -> PriceSet:
    """The price set named `source` (or at that path); the current one when None."""
    return _load_price_set(source or _price_source or DEFAULT_PRICE_SET)


@cache
def _load_price_set(source: str) -> PriceSet:
    path = Path(source).expanduser()
    if not (source.endswith(".toml") or path.is_file()):
        path = presets_dir() / "prices" / f"{source}.toml"
        if not path.is_file():
            raise PresetError(
                f"unknown price set {source!r}; valid: {', '.join(list_price_sets())} "
                "or a TOML file of the same form"
            )
    return load_toml(path, PriceSet)


def _apply_prices(catalog: _Catalog, prices: PriceSet) -> None:
    """Give each GPU its price from `prices` (and its market, date and source); GPUs the set does
    not list stay unpriced."""
    priced: dict[str, float] = {}
    for key, usd in prices.prices.items():
        found = catalog.index.get(normalise(key))
        if found is None:
            raise UnknownNameError("GPU", f"{key} (price set {prices.name})", catalog.spelling)
        priced[found] = usd
    for name, usd in priced.items():
        catalog.items[name] = catalog.items[name].model_copy(
            update={
                "usd_per_gpu_hour": usd,
                "price_market": prices.market,
                "price_date": prices.date,
                "price_source": f"{prices.name}: {prices.provider} {prices.market}, {prices.source}",
            }
        )


@cache
def _gpu_catalog(user_file: Path | None, prices: str | None = None) -> _Catalog:
    catalog = _Catalog(presets_dir() / "gpus", GPUSpec)
    _apply_prices(catalog, price_set(prices))
    if user_file is not None:
        _merge_user_gpus(catalog, user_file)
    return catalog


def _gpus() -> _Catalog:
    return _gpu_catalog(user_gpus_path(), _price_source)


# Trailing words of a tuned variant's name: Meta/Qwen "-Instruct", Google "-it", "-chat" (Meta's
# Llama-2 repos put "-hf" after it: Llama-2-7b-chat-hf is the chat variant of Llama-2-7b-hf).
VARIANT_SUFFIX = re.compile(r"(?P<base>.+?)[-_](?:instruct|it|chat)(?P<hf>[-_]hf)?", re.IGNORECASE)


def resolve_model_name(name: str) -> tuple[ModelSpec, str | None]:
    """The preset `name` denotes and, when found through the variant rule (module docstring),
    a note saying so; UnknownNameError (with close names) otherwise."""
    catalog = _models()
    found = catalog.index.get(normalise(name))
    if found is not None:
        return catalog.items[found], None
    org, _, base = name.strip().rpartition("/")
    variant = VARIANT_SUFFIX.fullmatch(base)
    stem = variant.group("base") + (variant.group("hf") or "") if variant else base
    found = catalog.index.get(normalise(stem))
    spec: ModelSpec | None = catalog.items[found] if found is not None else None
    if spec is not None and org:
        preset_org = spec.hf_id.partition("/")[0]
        if not preset_org or preset_org.lower() != org.lower():
            spec = None  # another organisation's model of that name: not ours to assume
    if spec is None or (not variant and not org):
        raise UnknownNameError("model", name, catalog.spelling, normalise)
    what = "a tuned variant of" if variant else "the Hub id of"
    return spec, f"{name} read as {what} preset {spec.name} (same architecture and tensors)"


def get_model(name: str) -> ModelSpec:
    """The preset for `name` (any alias, any case, or a variant of one: resolve_model_name);
    UnknownNameError suggests close names."""
    return resolve_model_name(name)[0]


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
