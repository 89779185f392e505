"""Options and helpers shared by the command modules: the choice enums, the annotated options,
MODEL resolution and the one JSON/console emitter of an estimate."""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated, Any

import typer

from vramcalc.cli.options import (
    GpusPerNodeOpt,
    NodesOpt,
    TaskChoice,
    print_json,
    size_option,
    task_option,
    use_gpus_file,
    warn,
)
from vramcalc.core.optimizers import Optimizer
from vramcalc.spec.quant import DEFAULT_FORMAT, FORMATS, KV_BYTES

__all__ = ["GpusPerNodeOpt", "NodesOpt", "TaskChoice", "print_json", "use_gpus_file"]


DtypeChoice = Enum("DtypeChoice", {k: k for k in DEFAULT_FORMAT}, type=str)  # type: ignore[misc]
QuantChoice = Enum("QuantChoice", {k: k for k in FORMATS}, type=str)  # type: ignore[misc]
KvChoice = Enum("KvChoice", {k: k for k in KV_BYTES}, type=str)  # type: ignore[misc]


class UnitsChoice(str, Enum):
    GiB = "GiB"
    GB = "GB"


class PrecisionChoice(str, Enum):
    fp32 = "fp32"
    bf16_mixed = "bf16-mixed"
    fp16_mixed = "fp16-mixed"
    bf16 = "bf16"
    fp16 = "fp16"


class LogitsChoice(str, Enum):
    last = "last"
    all = "all"


class AttentionChoice(str, Enum):
    flash = "flash"
    eager = "eager"


class CheckpointChoice(str, Enum):
    none = "none"
    full = "full"


class MethodChoice(str, Enum):
    full = "full"
    lora = "lora"
    qlora = "qlora"


class FsdpChoice(str, Enum):
    full = "full"
    grad_op = "grad-op"
    no_shard = "no-shard"
    hybrid = "hybrid"


class OffloadChoice(str, Enum):
    none = "none"
    optimizer = "optimizer"
    params = "params"


SOURCE_HELP = "preset name, config.json, model folder, .gguf or Hub id org/name[@rev]"
ModelArg = Annotated[str, typer.Argument(help=SOURCE_HELP + " (see `vramcalc presets list`)")]
PresetArg = Annotated[
    str, typer.Argument(help="preset name or alias (see `vramcalc presets list`)")
]
SourceArg = Annotated[str, typer.Argument(help=SOURCE_HELP)]
RevisionOpt = Annotated[
    str | None, typer.Option("--revision", help="Hub revision (branch, tag, commit) of org/name")
]
OfflineOpt = Annotated[
    bool, typer.Option("--offline", help="Hub models from the local cache only (HF_HUB_OFFLINE)")
]
AssumeLlamaOpt = Annotated[
    bool,
    typer.Option(
        "--assume-llama",
        help="read an unmapped architecture as a Llama-style decoder: a labelled rough estimate "
        "(range ×2 either way, never 'fits')",
    ),
]
BatchOpt = Annotated[
    int, size_option("--batch-size", "-b", high=1_000_000, help="sequences per step")
]
_SEQ_HELP = "tokens per sequence{}; default min(4096, model max)"
SeqOpt = Annotated[
    int | None,
    size_option("--seq-len", "-s", high=1 << 24, binary=True, help=_SEQ_HELP.format("")),
]
InferSeqOpt = Annotated[
    int | None,
    size_option(
        "--seq-len", "-s", high=1 << 24, binary=True, help=_SEQ_HELP.format(" (prompt + generated)")
    ),
]
GpuOpt = Annotated[
    str | None,
    typer.Option(
        "--gpu",
        metavar="GPU",
        help="GPU (see `vramcalc gpus`): does it fit, with how much headroom",
    ),
]
GpuMemOpt = Annotated[
    float | None, typer.Option("--gpu-mem", min=0.001, max=1 << 20, help="GPU memory in GiB")
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="print the result as JSON (schema in README)")
]
UnitsOpt = Annotated[UnitsChoice, typer.Option("--units", help="GiB (2^30 bytes) or GB (10^9)")]
AttnOpt = Annotated[
    AttentionChoice,
    typer.Option("--attention", help="flash/memory-efficient SDPA or eager (keeps s×s scores)"),
]


def choice_value(choice: Any) -> Any:
    return choice.value if isinstance(choice, Enum) else choice


def model_arg(model: str, assume_llama: bool) -> Any:
    """MODEL as given, or with --assume-llama its spec read now (labelled rough), for the commands
    whose library call resolves a name itself."""
    if not assume_llama:
        return model
    spec = model_source(model, None, False, True).spec
    if spec.assumed_architecture is not None:
        sys.stderr.write(
            f"vramcalc: warning: architecture {spec.assumed_architecture!r} is not mapped, read "
            "as Llama (--assume-llama): a rough estimate\n"
        )
    return spec


def model_source(
    model: str, revision: str | None, offline: bool, assume_llama: bool = False
) -> Any:
    """Resolve MODEL once (preset, path, .gguf, Hub id) for every estimate of the command."""
    from vramcalc.sources import resolve_model_source

    return resolve_model_source(
        model, revision=revision, offline=offline, assume_llama=assume_llama
    )


def emit_estimate(est: Any, as_json: bool, units: UnitsChoice, explain: bool = False) -> None:
    warn(est.warnings)
    if as_json:
        print_json(est.model_dump(mode="json"))
        return
    from vramcalc.report import console as report

    report.render_estimate(est, units.value, explain=explain)


# ---- options shared by gpus, cost, fit and plan ----


class TrainDtypeChoice(str, Enum):
    bf16 = "bf16"
    fp16 = "fp16"
    fp8 = "fp8"
    tf32 = "tf32"
    fp32 = "fp32"


GpuArg = Annotated[
    str, typer.Option("--gpu", metavar="GPU", help="catalog GPU (see `vramcalc gpus`)")
]
NumGpusOpt = Annotated[
    int, typer.Option("--num-gpus", "-n", min=1, max=1_000_000, help="GPUs working together")
]
MfuOpt = Annotated[
    float | None,
    typer.Option(
        "--mfu", min=0.0001, max=1.0, help="model FLOPs utilisation (default: docs/cost.md)"
    ),
]
PriceSourceOpt = Annotated[
    str | None,
    typer.Option(
        "--price-source",
        metavar="SET|FILE",
        help="price set to use (default runpod-on-demand; see `vramcalc gpus`) or a TOML file "
        "of the same form",
    ),
]
PriceOpt = Annotated[
    float | None,
    typer.Option(
        "--price",
        min=0.0,
        help="USD for one GPU for one hour (usd_per_gpu_hour; default: the catalog's)",
    ),
]
PromptOpt = Annotated[
    int, size_option("--prompt", high=1 << 24, binary=True, help="prompt tokens per request")
]
OutputOpt = Annotated[
    int, size_option("--output", high=1 << 24, binary=True, help="generated tokens per request")
]


def workload_options(
    task: TaskChoice,
    dtype: Any,
    quant: Any,
    kv_dtype: Any,
    precision: PrecisionChoice,
    optimizer: Optimizer,
    grad_checkpointing: CheckpointChoice,
    attention: AttentionChoice,
    batch_size: int | None,
    seq_len: int | None,
) -> dict[str, Any]:
    common: dict[str, Any] = {"attention": attention.value}
    if batch_size is not None:
        common["batch_size"] = batch_size
    if seq_len is not None:
        common["seq_len"] = seq_len
    if task is TaskChoice.infer:
        return common | {
            "dtype": choice_value(dtype),
            "quant": choice_value(quant),
            "kv_dtype": choice_value(kv_dtype),
        }
    return common | {
        "precision": precision.value,
        "optimizer": optimizer.value,
        "grad_checkpointing": grad_checkpointing.value,
    }


TaskOpt = Annotated[TaskChoice, task_option("--task")]
DtypeOpt = Annotated[DtypeChoice, typer.Option("--dtype", help="infer: weight dtype")]
QuantOpt = Annotated[QuantChoice | None, typer.Option("--quant", help="infer: quant format")]
KvOpt = Annotated[KvChoice | None, typer.Option("--kv-dtype", help="infer: KV cache dtype")]
PrecOpt = Annotated[PrecisionChoice, typer.Option("--precision", help="train: precision")]
OptimOpt = Annotated[Optimizer, typer.Option("--optimizer", help="train: optimizer")]
CkptOpt = Annotated[
    CheckpointChoice, typer.Option("--grad-checkpointing", help="train: none or full")
]


def rough_label(model: Any) -> dict[str, Any]:
    """JSON keys that mark a cost made from an assumed architecture (--assume-llama)."""
    assumed = getattr(model, "assumed_architecture", None)
    return {} if assumed is None else {"assumed_architecture": assumed, "exact_architecture": False}
