"""Typer command tree: parse options, call the core, render. User errors: one stderr line, exit 2."""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated, Any

import typer

from .cli_types import (
    CheckOpt,
    ExplainOpt,
    GpusFileOpt,
    GpusPerNodeOpt,
    NodesOpt,
    VramcalcGroup,
    exit_if_not_fit,
    need_gpu_for_check,
    print_json,
    print_version,
    size_option,
    use_gpus_file,
    warn,
)
from .errors import VramcalcError
from .optimizers import Optimizer
from .quant import DEFAULT_FORMAT, FORMATS, KV_BYTES

app = typer.Typer(
    name="vramcalc",
    help="How much GPU memory does serving or training a large language model take?",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    cls=VramcalcGroup,
)
presets_app = typer.Typer(
    help="Model and GPU presets shipped with vramcalc.", no_args_is_help=True, cls=VramcalcGroup
)
app.add_typer(presets_app, name="presets")


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=print_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """How much GPU memory does serving or training a large language model take?"""


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


_SOURCE_HELP = "preset name, config.json, model folder, .gguf or Hub id org/name[@rev]"
ModelArg = Annotated[str, typer.Argument(help=_SOURCE_HELP + " (see `vramcalc presets list`)")]
PresetArg = Annotated[
    str, typer.Argument(help="preset name or alias (see `vramcalc presets list`)")
]
SourceArg = Annotated[str, typer.Argument(help=_SOURCE_HELP)]
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


def _value(choice: Any) -> Any:
    return choice.value if isinstance(choice, Enum) else choice


def model_arg(model: str, assume_llama: bool) -> Any:
    """MODEL as given, or with --assume-llama its spec read now (labelled rough), for the commands
    whose library call resolves a name itself."""
    if not assume_llama:
        return model
    spec = _source(model, None, False, True).spec
    if spec.assumed_architecture is not None:
        sys.stderr.write(
            f"vramcalc: warning: architecture {spec.assumed_architecture!r} is not mapped, read "
            "as Llama (--assume-llama): a rough estimate\n"
        )
    return spec


@app.command()
def infer(
    model: Annotated[str | None, typer.Argument(help=_SOURCE_HELP + "; omit with --params")] = None,
    params: Annotated[
        str | None,
        typer.Option(
            "--params", metavar="SIZE", help="model size only, e.g. 7B: weights-only estimate"
        ),
    ] = None,
    dtype: Annotated[
        DtypeChoice,
        typer.Option("--dtype", help="weight dtype; int8/int4 pick a documented default format"),
    ] = DtypeChoice("bf16"),  # type: ignore[assignment]
    quant: Annotated[
        QuantChoice | None,
        typer.Option("--quant", help="quantization format (overrides the dtype's default)"),
    ] = None,
    kv_dtype: Annotated[
        KvChoice | None, typer.Option("--kv-dtype", help="KV cache dtype (default: compute dtype)")
    ] = None,
    batch_size: BatchOpt = 1,
    seq_len: InferSeqOpt = None,
    logits: Annotated[
        LogitsChoice, typer.Option("--logits", help="last: generation; all: score whole sequences")
    ] = LogitsChoice.last,
    attention: AttnOpt = AttentionChoice.flash,
    gpu: GpuOpt = None,
    gpu_mem: GpuMemOpt = None,
    compare_dtypes: Annotated[
        bool, typer.Option("--compare-dtypes", help="one row per dtype")
    ] = False,
    as_json: JsonOpt = False,
    units: UnitsOpt = UnitsChoice.GiB,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    gpus_file: GpusFileOpt = None,
    check: CheckOpt = False,
    explain: ExplainOpt = False,
    assume_llama: AssumeLlamaOpt = False,
) -> None:
    """Memory to serve MODEL: weights + KV cache + prefill activations + runtime overhead."""
    from .inference import estimate_inference

    use_gpus_file(gpus_file)
    need_gpu_for_check(check, gpu, gpu_mem)
    if model is None and params is None:
        raise VramcalcError("give a MODEL (e.g. llama-2-7b) or --params (e.g. --params 7B)")
    if model is not None and params is not None:
        raise VramcalcError("give a MODEL or --params, not both")
    source = _source(model, revision, offline, assume_llama) if model is not None else None
    common = dict(
        params=params,
        kv_dtype=_value(kv_dtype),
        batch_size=batch_size,
        seq_len=seq_len,
        logits=_value(logits),
        attention=_value(attention),
        gpu=gpu,
        gpu_mem_gib=gpu_mem,
    )
    if compare_dtypes:
        dtypes = (
            ["fp32", "bf16", "int8", "int4"] if params else ["fp32", "bf16", "fp8", "int8", "int4"]
        )
        rows = [estimate_inference(source, dtype=d, **common) for d in dtypes]  # type: ignore[arg-type]
        warn([w for r in rows for w in r.warnings if "--seq-len" in w])
        if as_json:
            _print_json([r.model_dump(mode="json") for r in rows], "inference_comparison", "rows")
        else:
            from . import report

            render = report.render_weights_only_compare if params else report.render_compare
            render(rows, units.value)
        exit_if_not_fit(check, any(r.gpu is not None and r.gpu.fits for r in rows))
        return
    est = estimate_inference(source, dtype=_value(dtype), quant=_value(quant), **common)  # type: ignore[arg-type]
    _emit(est, as_json, units, explain)
    exit_if_not_fit(check, est.gpu is not None and est.gpu.fits)


@app.command()
def train(
    model: SourceArg,
    precision: Annotated[
        PrecisionChoice, typer.Option("--precision", help="fp32, autocast mixed, or pure 16-bit")
    ] = PrecisionChoice.bf16_mixed,
    optimizer: Annotated[
        Optimizer, typer.Option("--optimizer", help="optimizer whose state is kept")
    ] = Optimizer.adamw,
    batch_size: BatchOpt = 1,
    grad_accum: Annotated[
        int,
        typer.Option("--grad-accum", min=1, max=1_000_000, help="micro-batches per optimizer step"),
    ] = 1,
    seq_len: SeqOpt = None,
    grad_checkpointing: Annotated[
        CheckpointChoice,
        typer.Option("--grad-checkpointing", help="none or full (recompute each layer)"),
    ] = CheckpointChoice.none,
    attention: AttnOpt = AttentionChoice.flash,
    gpu: GpuOpt = None,
    gpu_mem: GpuMemOpt = None,
    as_json: JsonOpt = False,
    units: UnitsOpt = UnitsChoice.GiB,
    method: Annotated[
        MethodChoice, typer.Option("--method", help="full fine-tune, LoRA, or QLoRA (4-bit base)")
    ] = MethodChoice.full,
    lora_rank: Annotated[
        int, typer.Option("--lora-rank", min=1, max=65536, help="LoRA rank r")
    ] = 8,
    lora_alpha: Annotated[
        float, typer.Option("--lora-alpha", help="LoRA scaling numerator (no memory effect)")
    ] = 8.0,
    lora_targets: Annotated[
        str,
        typer.Option(
            "--lora-targets", help="comma list of q,k,v,o,gate,up,down,experts or all-linear"
        ),
    ] = "all-linear",
    lora_dropout: Annotated[
        float, typer.Option("--lora-dropout", min=0.0, max=0.999, help="adapter input dropout")
    ] = 0.0,
    quant: Annotated[
        QuantChoice | None,
        typer.Option("--quant", help="frozen base format of --method qlora (nf4)"),
    ] = None,
    num_gpus: Annotated[
        int | None, typer.Option("--num-gpus", min=1, max=1_000_000, help="GPUs in the job")
    ] = None,
    nodes: NodesOpt = None,
    gpus_per_node: GpusPerNodeOpt = None,
    zero: Annotated[
        int | None, typer.Option("--zero", min=0, max=3, help="DeepSpeed ZeRO stage 0-3")
    ] = None,
    fsdp: Annotated[
        FsdpChoice | None, typer.Option("--fsdp", help="PyTorch FSDP sharding strategy")
    ] = None,
    offload: Annotated[
        OffloadChoice, typer.Option("--offload", help="move optimizer state (or params too) to CPU")
    ] = OffloadChoice.none,
    tp: Annotated[int, typer.Option("--tp", min=1, max=4096, help="tensor-parallel degree")] = 1,
    pp: Annotated[int, typer.Option("--pp", min=1, max=4096, help="pipeline stages (1F1B)")] = 1,
    sp: Annotated[
        bool, typer.Option("--sequence-parallel", help="Megatron sequence parallelism (needs --tp)")
    ] = False,
    ep: Annotated[int, typer.Option("--ep", min=1, max=4096, help="expert-parallel degree")] = 1,
    cp: Annotated[int, typer.Option("--cp", min=1, max=4096, help="context-parallel degree")] = 1,
    explain: ExplainOpt = False,
    revision: RevisionOpt = None,
    offline: OfflineOpt = False,
    gpus_file: GpusFileOpt = None,
    check: CheckOpt = False,
    assume_llama: AssumeLlamaOpt = False,
) -> None:
    """Peak memory per GPU of a training step of MODEL: full, LoRA or QLoRA; one GPU or many."""
    from .training import estimate_training

    use_gpus_file(gpus_file)
    need_gpu_for_check(check, gpu, gpu_mem)
    est = estimate_training(
        _source(model, revision, offline, assume_llama),
        precision=precision.value,
        optimizer=optimizer.value,
        batch_size=batch_size,
        grad_accum=grad_accum,
        seq_len=seq_len,
        grad_checkpointing=grad_checkpointing.value,
        attention=attention.value,
        gpu=gpu,
        gpu_mem_gib=gpu_mem,
        method=method.value,
        lora_rank=lora_rank,
        lora_alpha=lora_alpha,
        lora_targets=lora_targets,
        lora_dropout=lora_dropout,
        quant=_value(quant),
        num_gpus=num_gpus,
        nodes=nodes,
        gpus_per_node=gpus_per_node,
        zero=zero,
        fsdp=_value(fsdp),
        offload=offload.value,
        tp=tp,
        pp=pp,
        sp=sp,
        ep=ep,
        cp=cp,
        explain=explain,
    )
    if as_json or not (explain or est.parallel):
        _emit(est, as_json, units)
    else:
        from . import report_train

        report_train.render_training(est, units.value, explain=explain)
    exit_if_not_fit(check, est.gpu is not None and est.gpu.fits)


@presets_app.command("list")
def presets_list(
    as_json: JsonOpt = False,
    gpus: Annotated[
        bool, typer.Option("--gpus", help="list GPU presets instead of models")
    ] = False,
) -> None:
    """List the model (or GPU) presets."""
    from .params import param_count
    from .presets import list_gpus, list_models

    if gpus:
        if as_json:
            _print_json(
                [g.model_dump(mode="json") | {"memory_bytes": g.memory_bytes} for g in list_gpus()],
                "gpu_list",
                "gpus",
            )
            return
        from . import report

        report.render_gpu_list(list_gpus())
        return
    models = list_models()
    counts = [param_count(m) for m in models]
    if as_json:
        _print_json(
            [
                m.model_dump(mode="json", by_alias=True) | {"params": n}
                for m, n in zip(models, counts, strict=True)
            ],
            "model_list",
            "models",
        )
        return
    from . import report

    report.render_model_list(models, counts)


@presets_app.command("show")
def presets_show(name: PresetArg, as_json: JsonOpt = False) -> None:
    """Show one model preset with its source and exact parameter count."""
    from .params import active_param_count, param_count
    from .presets import get_model

    spec = get_model(name)
    if as_json:
        _print_json(
            spec.model_dump(mode="json", by_alias=True)
            | {
                "params": param_count(spec),
                "active_params": active_param_count(spec),
                "head_dim": spec.head_dim,
            },
            "model_preset",
        )
        return
    from . import report

    report.render_model(spec, param_count(spec), active_param_count(spec))


from .cli_cost import register as _register_cost  # noqa: E402

_register_cost(app)


def _source(model: str, revision: str | None, offline: bool, assume_llama: bool = False) -> Any:
    """Resolve MODEL once (preset, path, .gguf, Hub id) for every estimate of the command."""
    from .sources import resolve_model_source

    return resolve_model_source(
        model, revision=revision, offline=offline, assume_llama=assume_llama
    )


from .cli_sources import register as _register_sources  # noqa: E402

_register_sources(app)


from .cli_measure import register as _register_measure  # noqa: E402

_register_measure(app)


from .cli_rlhf import register as _register_rlhf  # noqa: E402

_register_rlhf(app)


from .cli_sweep import register as _register_sweep  # noqa: E402

_register_sweep(app)


def _print_json(data: object, kind: str | None = None, key: str = "items") -> None:
    print_json(data, kind, key)


def _emit(est: Any, as_json: bool, units: UnitsChoice, explain: bool = False) -> None:
    warn(est.warnings)
    if as_json:
        _print_json(est.model_dump(mode="json"))
        return
    from . import report

    report.render_estimate(est, units.value, explain=explain)


def _click_class(name: str) -> type[Exception]:
    """Typer vendors click in recent releases: find its exception classes through typer's own."""
    for cls in typer.BadParameter.__mro__:
        if cls.__name__ == name:
            return cls
    raise LookupError(name)  # pragma: no cover


_UsageError = _click_class("UsageError")
_ClickException = _click_class("ClickException")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line on stderr and exit code 2."""
    from .cli_guard import LAST_RESORT, hardened_command, one_line, safe_streams

    safe_streams()
    command = hardened_command(app, argv)
    try:
        code = command.main(args=argv, prog_name="vramcalc", standalone_mode=False)
    except VramcalcError as exc:
        _fail(str(exc))
    except _UsageError as exc:
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__.startswith("NoArgsIsHelp") and ctx is not None:
            sys.stdout.write(ctx.get_help() + "\n")
            sys.exit(0)
        _fail(exc.format_message())  # type: ignore[attr-defined]
    except _ClickException as exc:
        _fail(exc.format_message())  # type: ignore[attr-defined]
    except typer.Abort:
        sys.exit(130)
    except BrokenPipeError:  # `vramcalc ... | head`
        sys.exit(0)
    except LAST_RESORT as exc:  # input-driven failures not caught where they arise
        _fail(one_line(exc))
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str) -> None:
    from .safe_io import clean_text

    # One line: click lists choices on tab-indented lines, pydantic prefixes "Value error, ";
    # file data never reaches the terminal raw.
    message = " ".join(clean_text(message).replace("Value error, ", "").split())
    sys.stderr.write(f"vramcalc: error: {message}\n")
    sys.exit(2)
