"""Training-stack profiles: ``presets/frameworks/<name>.toml`` read into a :class:`FrameworkProfile`.

A profile is the stack's memory conventions (:class:`vramcalc.spec.conventions.Conventions`: adapter
dtype, fused q/k/v adapter, quantized head, loss implementation, activation offload, ...) plus the
defaults a user of that stack gets without asking (optimizer, LoRA rank/alpha/targets,
checkpointing flavour), each with the source the preset file cites.

File format (one file per stack; docs/frameworks.md): top-level fields are the latest release's
values; ``inherits = "hf"`` starts from another profile; ``unknown = [...]`` lists fields whose value
was not traced (they keep the inherited/default value and are reported as unknown);
``[[versions]]`` entries with ``since = "X.Y.Z"`` record a release that changed a value, so
``--framework torchtune@0.4`` takes each field from the newest entry at or before 0.4 (entries whose
``since`` is not a plain version, e.g. ``peft-0.12.0``, name another package: informational);
``[sources]`` maps a field to ``{url, quote}``. Fields the loader does not read (``fsdp_keeps``,
``multi_gpu_strategy``, ...) are kept as ``notes``: documentation, no memory effect.

The ``hf`` profile is vramcalc's baseline: its conventions are the :class:`Conventions` defaults and
its stack defaults are the CLI's own (all-linear LoRA, rank 8, AdamW), so ``--framework hf`` (the
default) gives the numbers vramcalc gave before profiles existed.
"""

from __future__ import annotations

import math
import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vramcalc.errors import PresetError, VramcalcError
from vramcalc.sources.presets import presets_dir
from vramcalc.spec.conventions import DEFAULT_CONVENTIONS, Conventions

BASELINE = "hf"
Checkpointing = Literal["none", "full"]

# Convention fields a preset file may set at top level or in a [[versions]] entry.
_CONVENTION_KEYS = frozenset(Conventions.model_fields) - {"framework"}
# Stack defaults a preset file may set (file key -> profile field).
_DEFAULT_KEYS = {
    "default_optimizer": "optimizer",
    "qlora_optimizer": "qlora_optimizer",
    "default_precision": "precision",
    "default_lora_rank": "lora_rank",
    "default_lora_alpha": "lora_alpha",
    "default_lora_targets": "lora_targets",
    "default_lora_dropout": "lora_dropout",
}
# The checkpointing flavours the files name -> (grad_checkpointing, activation_offload).
_CHECKPOINTING = {
    "none": ("none", False),
    "full": ("full", False),
    "offloaded": ("full", True),  # Unsloth use_gradient_checkpointing="unsloth"
    "offload": ("full", True),  # Axolotl gradient_checkpointing: offload
}
# Framework module names -> vramcalc LoRA targets (core/lora.py TARGETS; HF names it reads itself).
_TARGET_NAMES = {
    "query": ("q",),  # LitGPT lora_query / lora_key / lora_value / lora_projection / lora_mlp
    "key": ("k",),
    "value": ("v",),
    "projection": ("o",),
    "mlp": ("gate", "up", "down"),
    "output_proj": (
        "o",
    ),  # torchtune lora_attn_modules / apply_lora_to_mlp (w1 gate, w3 up, w2 down)
    "w1": ("gate",),
    "w2": ("down",),
    "w3": ("up",),
}
_VERSION = re.compile(r"^\d+(\.\d+)*$")


class Source(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    quote: str = ""


class FrameworkProfile(BaseModel):
    """One stack's conventions and defaults, as the CLI and the evidence test apply them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    display_name: str
    version: str | None = Field(None, description="release the values are for (None: latest)")
    conventions: Conventions
    loss_chunk_tokens: int | None = Field(
        None, ge=1, description="chunked loss by chunk length (LitGPT: 128 tokens), not count"
    )
    grad_checkpointing: Checkpointing = "none"
    optimizer: str | None = None
    qlora_optimizer: str | None = None
    precision: str | None = None
    lora_rank: int | None = None
    lora_alpha: float | None = None
    lora_targets: tuple[str, ...] | None = None
    lora_dropout: float | None = Field(None, ge=0.0, lt=1.0)
    untie_embeddings: tuple[str, ...] = Field(
        (), description="model_types whose tied head the stack unties on conversion (LitGPT)"
    )
    fused_qkv_architectures: tuple[str, ...] = ()
    unknown: tuple[str, ...] = Field((), description="fields the preset could not pin down")
    sources: dict[str, Source] = Field(default_factory=dict)
    notes: dict[str, Any] = Field(default_factory=dict, description="informational fields")

    def conventions_for(self, seq_len: int) -> Conventions:
        """The conventions of a run at `seq_len` tokens: a chunk length (LitGPT's 128-token
        chunked cross-entropy) becomes the chunk count ⌈seq_len / chunk⌉."""
        if self.loss_chunk_tokens is None or self.conventions.loss != "chunked":
            return self.conventions
        chunks = min(4096, max(1, math.ceil(seq_len / self.loss_chunk_tokens)))
        return self.conventions.model_copy(update={"loss_chunks": chunks})

    def summary(self) -> dict[str, Any]:
        """JSON of the profile as applied: name, version, conventions, defaults, unknowns."""
        return {
            "framework": self.name,
            "display_name": self.display_name,
            "version": self.version,
            **self.conventions.model_dump(exclude={"framework"}),
            "loss_chunk_tokens": self.loss_chunk_tokens,
            "unknown": list(self.unknown),
        }


def lora_targets_of(names: tuple[str, ...] | list[str], valid: list[str] | None = None) -> str:
    """A stack's target module names as vramcalc's --lora-targets list ('q,v'); names vramcalc
    already reads (q_proj, 'q', 'all-linear') pass through; 'lm_head'/'head' is not an adapter
    target vramcalc counts and is dropped (its memory is the head's own). A group name ('mlp':
    every MLP linear) keeps only the parts the model has when `valid` (its targets) is given:
    a non-gated MLP has no 'gate'."""
    out: list[str] = []
    for n in names:
        key = n.strip().lower()
        if key in ("lm_head", "head"):
            continue
        parts = _TARGET_NAMES.get(key, (key,))
        if valid is not None and len(parts) > 1:
            parts = tuple(p for p in parts if p in valid)
        for t in parts:
            if t not in out:
                out.append(t)
    return ",".join(out)


def frameworks_dir() -> Path:
    return presets_dir() / "frameworks"


@cache
def _raw(name: str) -> dict[str, Any]:
    path = frameworks_dir() / f"{name}.toml"
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise PresetError(f"{path}: not valid TOML: {exc}") from None
    if data.get("name", name) != name:
        raise PresetError(f"{path}: name {data.get('name')!r} differs from the file name")
    return data


def list_frameworks() -> list[str]:
    """The profile names: one per presets/frameworks/*.toml, hf always present."""
    found = (
        {p.stem for p in frameworks_dir().glob("*.toml")} if frameworks_dir().is_dir() else set()
    )
    return sorted(found | {BASELINE})


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split("."))


def _apply(values: dict[str, Any], entry: dict[str, Any]) -> None:
    for key, val in entry.items():
        if key in ("since", "source"):
            continue
        values[key] = val


def _resolved(name: str, version: str | None, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The file's fields merged over its parent's (``inherits``), with versions applied."""
    if name in seen:
        raise PresetError(f"framework {name}: inherits loop through {', '.join(seen)}")
    data: dict[str, Any] = (
        _raw(name) if (frameworks_dir() / f"{name}.toml").is_file() else {"name": name}
    )
    parent = data.get("inherits")
    values: dict[str, Any] = (
        {k: v for k, v in _resolved(parent, None, (*seen, name)).items() if k != "unknown"}
        if parent
        else {}
    )
    values.update({k: v for k, v in data.items() if k not in ("versions", "inherits")})
    if version is not None:
        wanted = _version_key(version)
        entries: list[dict[str, Any]] = [
            e
            for e in data.get("versions", [])
            if _VERSION.match(str(e.get("since", ""))) and _version_key(e["since"]) <= wanted
        ]
        for e in sorted(entries, key=lambda e: _version_key(e["since"])):
            _apply(values, e)
    return values


def _build(name: str, version: str | None, values: dict[str, Any]) -> FrameworkProfile:
    conv: dict[str, Any] = {k: values[k] for k in _CONVENTION_KEYS if k in values}
    unknown = tuple(values.get("unknown", ()))
    for k in unknown:  # not traced: the baseline value stands, reported as unknown
        conv.pop(k, None)
    ckpt = str(values.get("checkpointing", "none"))
    if ckpt not in _CHECKPOINTING:
        raise PresetError(
            f"framework {name}: checkpointing {ckpt!r}; valid: {', '.join(_CHECKPOINTING)}"
        )
    grad_ckpt, offload = _CHECKPOINTING[ckpt]
    if offload:
        conv.setdefault("activation_offload", True)
    defaults = {field: values[key] for key, field in _DEFAULT_KEYS.items() if key in values}
    for key, field in _DEFAULT_KEYS.items():
        if key in unknown:
            defaults.pop(field, None)
    if "lora_targets" in defaults:
        defaults["lora_targets"] = tuple(defaults["lora_targets"])
    read = (
        _CONVENTION_KEYS
        | set(_DEFAULT_KEYS)
        | {"name", "display_name", "checkpointing", "unknown", "sources"}
        | {"loss_chunk_tokens", "untie_embeddings", "fused_qkv_architectures"}
    )
    try:
        return FrameworkProfile(
            name=name,
            display_name=str(values.get("display_name", name)),
            version=version,
            conventions=Conventions(framework=name, **conv),
            loss_chunk_tokens=values.get("loss_chunk_tokens"),
            grad_checkpointing=grad_ckpt,  # type: ignore[arg-type]
            untie_embeddings=tuple(values.get("untie_embeddings", ())),
            fused_qkv_architectures=tuple(values.get("fused_qkv_architectures", ())),
            unknown=unknown,
            sources=values.get("sources", {}),
            notes={k: v for k, v in values.items() if k not in read},
            **defaults,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise PresetError(f"framework {name}: field {field!r}: {first['msg']}") from None


@cache
def get_framework(name: str, version: str | None = None) -> FrameworkProfile:
    """The profile of `name` (``hf``, ``litgpt``, ...), optionally as of release `version`.

    The baseline ``hf`` keeps the :class:`Conventions` defaults and no stack defaults whatever its
    file says about PEFT's own defaults (docs/frameworks.md: vramcalc's defaults stand)."""
    key = name.strip().lower()
    if key not in list_frameworks():
        raise VramcalcError(f"unknown framework {name!r}; valid: {', '.join(list_frameworks())}")
    if version is not None and not _VERSION.match(version):
        raise VramcalcError(f"framework version {version!r}: expected a release number like 0.4.0")
    if key == BASELINE:
        base = _build(key, version, _resolved(key, version))
        return base.model_copy(
            update={
                "conventions": DEFAULT_CONVENTIONS,
                "grad_checkpointing": "none",
                "optimizer": None,
                "qlora_optimizer": None,
                "precision": None,
                "lora_rank": None,
                "lora_alpha": None,
                "lora_targets": None,
                "lora_dropout": None,
            }
        )
    return _build(key, version, _resolved(key, version))


def parse_framework(value: str) -> FrameworkProfile:
    """'torchtune' or 'torchtune@0.4.0' → its profile."""
    name, _, version = value.partition("@")
    return get_framework(name, version or None)


# ---- applying a profile to a run ------------------------------------------------------------------
# Optimizer names the stacks use -> (vramcalc optimizer, paged). bitsandbytes' paged optimizers keep
# the same state in unified memory (bitsandbytes docs, "Paged optimizers").
_OPTIMIZERS = {
    "paged-adamw-32bit": ("adamw", True),
    "paged-adamw": ("adamw", True),
    "paged-adamw-8bit": ("adamw-8bit", True),
    "adamw-torch-fused": ("adamw-fused", False),
}
BNB_INPUT_FIX = "0.43.2"  # bitsandbytes PR #1270: 4-bit layers stop keeping their input


def optimizer_of(name: str) -> tuple[str, bool]:
    """A stack's optimizer name → (vramcalc optimizer, paged)."""
    key = name.strip().lower().replace("_", "-")
    return _OPTIMIZERS.get(key, (key, False))


def bnb_keeps_inputs(version: str) -> bool:
    """True for a bitsandbytes release before 0.43.2 (each 4-bit layer's input kept to backward)."""
    if not _VERSION.match(version):
        raise VramcalcError(f"--bnb-version {version!r}: expected a release number like 0.43.1")
    return _version_key(version) < _version_key(BNB_INPUT_FIX)


class AppliedStack(BaseModel):
    """A run described by a profile plus the user's flags: what the estimator is given and why."""

    model_config = ConfigDict(frozen=True)

    profile: FrameworkProfile
    conventions: Conventions
    train_options: dict[str, Any] = Field(description="estimate_training keywords")
    from_profile: tuple[str, ...] = Field((), description="values the profile supplied")
    from_flags: tuple[str, ...] = Field((), description="values given explicitly")

    @property
    def estimator_kwargs(self) -> dict[str, Any]:
        """The keywords for estimate_training: the train options, plus ``conventions`` unless
        they are the baseline's (so the baseline is today's call, byte for byte)."""
        base = DEFAULT_CONVENTIONS.model_dump(exclude={"framework"})
        same = self.conventions.model_dump(exclude={"framework"}) == base
        return dict(self.train_options) | ({} if same else {"conventions": self.conventions})

    def summary(self) -> dict[str, Any]:
        """The JSON ``conventions`` object: profile, the values used and where each came from."""
        values = self.conventions.model_dump()
        return {
            "framework": self.profile.name,
            "version": self.profile.version,
            "values": values,
            "defaults": {k: v for k, v in self.train_options.items() if k in self.from_profile},
            "from_profile": list(self.from_profile),
            "from_flags": list(self.from_flags),
            "unknown_in_profile": list(self.profile.unknown),
        }


_BASELINE_OPTIONS: dict[str, Any] = {
    "optimizer": "adamw",
    "grad_checkpointing": "none",
    "lora_rank": 8,
    "lora_alpha": 8.0,
    "lora_targets": "all-linear",
    "lora_dropout": 0.0,  # PEFT LoraConfig's default (nn.Identity: nothing saved)
    "precision": "bf16-mixed",
}


def apply_framework(
    profile: FrameworkProfile,
    options: dict[str, Any],
    flags: dict[str, Any],
    *,
    seq_len: int,
    valid_targets: list[str] | None = None,
) -> AppliedStack:
    """Merge a profile with a run's options. `options` are estimate_training keywords, None where
    the user gave no value (the profile's default, else vramcalc's, fills it); `flags` are
    Conventions fields, None where not given (the profile's value stands). ``bnb_version`` in
    `flags` sets bnb_keeps_4bit_inputs; `valid_targets` are the model's LoRA targets (for the
    profile's group names). Explicit values always win."""
    opts = {k: v for k, v in options.items() if v is not None}
    given = set(opts)
    defaults: dict[str, Any] = {
        "optimizer": (
            profile.qlora_optimizer
            if options.get("method") == "qlora" and profile.qlora_optimizer
            else profile.optimizer
        ),
        "grad_checkpointing": profile.grad_checkpointing if profile.name != BASELINE else None,
        "lora_rank": profile.lora_rank,
        "lora_alpha": profile.lora_alpha,
        "lora_targets": (
            lora_targets_of(profile.lora_targets, valid_targets) if profile.lora_targets else None
        ),
        "precision": profile.precision,
        "lora_dropout": profile.lora_dropout,
    }
    from_profile: list[str] = []
    for key, baseline in _BASELINE_OPTIONS.items():
        if key in opts:
            continue
        value = defaults.get(key)
        if value is not None:
            from_profile.append(key)
        opts[key] = value if value is not None else baseline
    optimizer, paged = optimizer_of(str(opts["optimizer"]))
    opts["optimizer"] = optimizer
    conv = profile.conventions_for(seq_len).model_dump()
    if profile.name != BASELINE:
        from_profile += [k for k in conv if conv[k] != DEFAULT_CONVENTIONS.model_dump()[k]]
    if paged:
        conv["paged_optimizer"] = True
    flag_values = {k: v for k, v in flags.items() if v is not None}
    bnb = flag_values.pop("bnb_version", None)
    if bnb is not None:
        flag_values["bnb_keeps_4bit_inputs"] = bnb_keeps_inputs(str(bnb))
    conv.update(flag_values)
    try:
        conventions = Conventions(**conv)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise VramcalcError(f"{first['loc'][0]}: {first['msg']}") from None
    return AppliedStack(
        profile=profile,
        conventions=conventions,
        train_options=opts,
        from_profile=tuple(dict.fromkeys(k for k in from_profile if k not in flag_values)),
        from_flags=tuple(sorted((given & set(_BASELINE_OPTIONS)) | set(flag_values))),
    )


def untied(profile: FrameworkProfile, spec: Any) -> Any:
    """`spec` as the stack builds it: LitGPT copies a tied embedding into its own lm_head on
    conversion (convert_hf_checkpoint.py), so the head is a second matrix there."""
    if spec.tie_word_embeddings and spec.architecture in profile.untie_embeddings:
        return spec.model_copy(update={"tie_word_embeddings": False})
    return spec
