"""Options that describe a training stack (`--framework` and one flag per convention) and the train
options `fit` and `plan` share with `train`; and the one place that turns them into estimator
keywords through the framework profile (vramcalc.sources.frameworks)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

import typer

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
    }


def resolve_stack(
    framework: str, spec: Any, options: dict[str, Any], flags: dict[str, Any]
) -> tuple[AppliedStack, Any]:
    """The profile named by --framework applied to the run; and the model as the stack builds it
    (LitGPT unties a tied head)."""
    from vramcalc.core.workloads import resolve_seq_len
    from vramcalc.sources.frameworks import apply_framework, parse_framework, untied

    profile = parse_framework(framework)
    seq = resolve_seq_len(spec, options.get("seq_len"))
    return apply_framework(profile, options, flags, seq_len=seq), untied(profile, spec)


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
