"""Options that describe a training stack (`--framework` and one flag per convention) and the train
options `fit` and `plan` share with `train`; and the one place that turns them into estimator
keywords through the framework profile (vramcalc.sources.frameworks)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import typer

from vramcalc.cli.common import CheckpointChoice, PrecisionChoice
from vramcalc.core.optimizers import Optimizer
from vramcalc.sources.frameworks import AppliedStack


class LossChoice(str, Enum):
    standard = "standard"
    chunked = "chunked"
    fused = "fused"


class AdapterDtypeChoice(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"
    model = "model"


FrameworkOpt = Annotated[
    str,
    typer.Option(
        "--framework",
        metavar="NAME[@VERSION]",
        help="training stack whose conventions and defaults apply: hf, trl, litgpt, torchtune, "
        "unsloth, axolotl (docs/frameworks.md); NAME@0.4.0 for an older release",
    ),
]
LossOpt = Annotated[
    LossChoice | None,
    typer.Option(
        "--loss",
        help="standard (whole logits), chunked (cross-entropy in slices, torchtune), fused "
        "(linear + cross-entropy, Liger/Unsloth/cut-CE); default: the framework's",
    ),
]
LossChunksOpt = Annotated[
    int | None, typer.Option("--loss-chunks", min=1, max=4096, help="slices of --loss chunked")
]
ActOffloadOpt = Annotated[
    bool | None,
    typer.Option(
        "--activation-offload/--no-activation-offload",
        help="checkpointed activations kept in host memory",
        show_default=False,
    ),
]
OptInBackwardOpt = Annotated[
    bool | None,
    typer.Option(
        "--optimizer-in-backward/--no-optimizer-in-backward",
        help="step each parameter and free its gradient during backward (torchtune)",
        show_default=False,
    ),
]
CompileOpt = Annotated[
    bool | None,
    typer.Option("--compile/--no-compile", help="torch.compile on the model", show_default=False),
]
AdapterDtypeOpt = Annotated[
    AdapterDtypeChoice | None,
    typer.Option(
        "--adapter-dtype",
        help="LoRA weights' dtype: fp32 (PEFT), or the model's 16-bit dtype (LitGPT, torchtune)",
    ),
]
PackingOpt = Annotated[
    bool | None,
    typer.Option(
        "--packing/--no-packing", help="samples packed into full sequences", show_default=False
    ),
]
PagedOpt = Annotated[
    bool | None,
    typer.Option(
        "--paged-optimizer/--no-paged-optimizer",
        help="optimizer state in unified memory (bitsandbytes paged optimizers)",
        show_default=False,
    ),
]
BnbVersionOpt = Annotated[
    str | None,
    typer.Option(
        "--bnb-version",
        metavar="VERSION",
        help="bitsandbytes release of a QLoRA run: before 0.43.2 each 4-bit layer kept its input "
        "until backward (bitsandbytes PR #1270)",
    ),
]
KbitUpcastOpt = Annotated[
    bool | None,
    typer.Option(
        "--kbit-fp32-upcast/--no-kbit-fp32-upcast",
        help="QLoRA: PEFT's prepare_model_for_kbit_training casts the non-quantized parameters to "
        "fp32 (HF/TRL/Axolotl); --no-...: they stay 16-bit (torchtune, LitGPT, Unsloth)",
        show_default=False,
    ),
]
FullStateDictLoadOpt = Annotated[
    bool | None,
    typer.Option(
        "--full-state-dict-load/--no-full-state-dict-load",
        help="FSDP: the checkpoint is loaded as a full state dict, so each rank holds the whole "
        "16-bit model beside its shard while loading (Lit-GPT 2023)",
        show_default=False,
    ),
]


def convention_flags(
    loss: LossChoice | None,
    loss_chunks: int | None,
    activation_offload: bool | None,
    optimizer_in_backward: bool | None,
    compile_: bool | None,
    adapter_dtype: AdapterDtypeChoice | None,
    packing: bool | None,
    paged_optimizer: bool | None,
    bnb_version: str | None,
    kbit_fp32_upcast: bool | None = None,
    full_state_dict_load: bool | None = None,
) -> dict[str, Any]:
    """The convention flags as Conventions fields; None where the flag was not given."""
    return {
        "loss": loss.value if loss is not None else None,
        "loss_chunks": loss_chunks,
        "activation_offload": activation_offload,
        "optimizer_in_backward": optimizer_in_backward,
        "compile": compile_,
        "adapter_dtype": adapter_dtype.value if adapter_dtype is not None else None,
        "packing": packing,
        "paged_optimizer": paged_optimizer,
        "bnb_version": bnb_version,
        "kbit_prep_upcasts_to_fp32": kbit_fp32_upcast,
        "full_state_dict_load": full_state_dict_load,
    }


def resolve_stack(
    framework: str, spec: Any, options: dict[str, Any], flags: dict[str, Any]
) -> tuple[AppliedStack, Any]:
    """The profile named by --framework applied to the run; and the model as the stack builds it
    (LitGPT unties a tied head)."""
    from vramcalc.core.lora import valid_targets
    from vramcalc.core.workloads import resolve_seq_len
    from vramcalc.sources.frameworks import apply_framework, parse_framework, untied

    profile = parse_framework(framework)
    seq = resolve_seq_len(spec, options.get("seq_len"))
    stack = apply_framework(profile, options, flags, seq_len=seq, valid_targets=valid_targets(spec))
    return stack, untied(profile, spec)


# ---- train options fit and plan take as well ------------------------------------------------------
class FitMethodChoice(str, Enum):
    full = "full"
    lora = "lora"
    qlora = "qlora"


class FitFsdpChoice(str, Enum):
    full = "full"
    grad_op = "grad-op"
    no_shard = "no-shard"
    hybrid = "hybrid"


class FitOffloadChoice(str, Enum):
    none = "none"
    optimizer = "optimizer"
    params = "params"


MethodOpt = Annotated[
    FitMethodChoice,
    typer.Option("--method", help="train: full fine-tune, LoRA, or QLoRA (4-bit base)"),
]
LoraRankOpt = Annotated[
    int | None,
    typer.Option("--lora-rank", min=1, max=65536, help="train: LoRA rank r (default: framework's)"),
]
LoraAlphaOpt = Annotated[
    float | None, typer.Option("--lora-alpha", help="train: LoRA scaling (no memory effect)")
]
LoraTargetsOpt = Annotated[
    str | None,
    typer.Option(
        "--lora-targets",
        help="train: comma list of q,k,v,o,gate,up,down,experts or all-linear",
    ),
]
LoraDropoutOpt = Annotated[
    float | None,
    typer.Option(
        "--lora-dropout",
        min=0.0,
        max=0.999,
        help="train: adapter input dropout; > 0 saves a mask and a copy per adapted module "
        "[default: framework's, else 0.0 as PEFT]",
    ),
]
ZeroOpt = Annotated[
    int | None, typer.Option("--zero", min=0, max=3, help="train: DeepSpeed ZeRO stage 0-3")
]
FsdpOpt = Annotated[
    FitFsdpChoice | None,
    typer.Option("--fsdp", help="train: PyTorch FSDP sharding (default with -n > 1: full)"),
]
OffloadOpt = Annotated[
    FitOffloadChoice,
    typer.Option("--offload", help="train: optimizer state (or params too) on the CPU"),
]
GradAccumOpt = Annotated[
    int, typer.Option("--grad-accum", min=1, max=1_000_000, help="train: micro-batches per step")
]
TrainPrecOpt = Annotated[
    PrecisionChoice | None,
    typer.Option("--precision", help="train: precision [default: framework's, else bf16-mixed]"),
]
TrainOptimOpt = Annotated[
    Optimizer | None,
    typer.Option("--optimizer", help="train: optimizer [default: framework's, else adamw]"),
]
TrainCkptOpt = Annotated[
    CheckpointChoice | None,
    typer.Option(
        "--grad-checkpointing", help="train: none or full [default: framework's, else none]"
    ),
]


def train_workload(
    model: Any,
    task: str,
    framework: str,
    flags: dict[str, Any],
    options: dict[str, Any],
) -> tuple[Any, dict[str, Any], AppliedStack | None]:
    """fit/plan: the model (as the stack builds it) and the workload keywords of a train task
    described by `options` (train flags, None where not given) and the framework. An infer task
    refuses the train-only flags (bad input, exit 2)."""
    from vramcalc.core.workloads import resolve_model
    from vramcalc.errors import VramcalcError

    train_only = {k: v for k, v in options.items() if v is not None and k in _TRAIN_ONLY}
    if task != "train":
        given = [f"--{k.replace('_', '-')}" for k in train_only if options[k] != _NEUTRAL.get(k)]
        given += [f"--{k.replace('_', '-')}" for k, v in flags.items() if v is not None]
        if framework != "hf":
            given.append("--framework")
        if given:
            raise VramcalcError(f"{', '.join(given)}: train options; add --task train")
        return model, {}, None
    spec = resolve_model(model)
    stack, spec = resolve_stack(framework, spec, options, flags)
    kwargs = stack.estimator_kwargs
    for key in ("zero", "fsdp", "offload", "grad_accum", "quant"):
        if options.get(key) is not None:
            kwargs[key] = options[key]
    return spec, kwargs, stack


_TRAIN_ONLY = (
    "method", "lora_rank", "lora_alpha", "lora_targets", "lora_dropout", "zero", "fsdp", "offload",
    "grad_accum",
)  # fmt: skip
# values of the train-only options that say nothing (their defaults)
_NEUTRAL: dict[str, Any] = {"method": "full", "offload": "none", "grad_accum": 1}


def train_option_values(
    method: FitMethodChoice,
    lora_rank: int | None,
    lora_alpha: float | None,
    lora_targets: str | None,
    zero: int | None,
    fsdp: FitFsdpChoice | None,
    offload: FitOffloadChoice,
    grad_accum: int,
    precision: PrecisionChoice | None,
    optimizer: Optimizer | None,
    grad_checkpointing: CheckpointChoice | None,
    quant: Any,
    seq_len: int | None,
    lora_dropout: float | None = None,
) -> dict[str, Any]:
    """The train flags of fit/plan as estimate_training keywords (None where not given)."""

    def value(choice: Any) -> Any:
        return choice.value if isinstance(choice, Enum) else choice

    return {
        "method": method.value,
        "lora_rank": lora_rank,
        "lora_alpha": lora_alpha,
        "lora_targets": lora_targets,
        "lora_dropout": lora_dropout,
        "zero": zero,
        "fsdp": value(fsdp),
        "offload": offload.value if offload is not FitOffloadChoice.none else None,
        "grad_accum": grad_accum if grad_accum != 1 else None,
        "precision": value(precision),
        "optimizer": value(optimizer),
        "grad_checkpointing": value(grad_checkpointing),
        "quant": value(quant),
        "seq_len": seq_len,
    }


def gpu_for_fit(gpu: str | None, gpu_mem_gib: float | None) -> Any:
    """--gpu NAME or --gpu-mem GIB (a GPU of that memory, 1 MiB resolution), exactly one."""
    from vramcalc.errors import VramcalcError
    from vramcalc.spec.model import GPUSpec

    if (gpu is None) == (gpu_mem_gib is None):
        raise VramcalcError("give --gpu NAME (see `vramcalc gpus`) or --gpu-mem GIB, one of them")
    if gpu is not None:
        return gpu
    assert gpu_mem_gib is not None
    return GPUSpec(name=f"{gpu_mem_gib:g} GiB GPU", memory_mib=max(1, round(gpu_mem_gib * 1024)))


def stack_keywords(
    framework: str, flags: dict[str, Any], seq_len: int
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """rlhf: the conventions of --framework and the convention flags as estimator keywords
    ({} for the baseline, so the call is unchanged), and the JSON ``conventions`` object (None
    when neither a profile other than hf nor a flag is given); the profile's optimizer/LoRA
    defaults are not applied there (rlhf's own flags and defaults stand)."""
    from vramcalc.sources.frameworks import apply_framework, parse_framework

    stack = apply_framework(parse_framework(framework), {}, flags, seq_len=seq_len)
    conv = stack.estimator_kwargs.get("conventions")
    given = stack.profile.name != "hf" or any(v is not None for v in flags.values())
    return ({} if conv is None else {"conventions": conv}), (stack.summary() if given else None)
