"""`vramcalc rlhf MODEL --stage sft|rm|ppo|dpo|grpo`: memory per GPU and compute of an RLHF stage."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from vramcalc.cli.common import (
    AssumeLlamaOpt,
    AttentionChoice,
    AttnOpt,
    BatchOpt,
    CheckpointChoice,
    FsdpChoice,
    GpuMemOpt,
    GpuOpt,
    GpusPerNodeOpt,
    JsonOpt,
    KvChoice,
    MethodChoice,
    ModelArg,
    NodesOpt,
    OffloadChoice,
    PrecisionChoice,
    QuantChoice,
    UnitsChoice,
    UnitsOpt,
    _value,
    model_arg,
)
from vramcalc.cli.options import CheckOpt, exit_if_not_fit, size_option
from vramcalc.core.optimizers import Optimizer
from vramcalc.errors import VramcalcError


class StageChoice(str, Enum):
    sft = "sft"
    rm = "rm"
    ppo = "ppo"
    dpo = "dpo"
    grpo = "grpo"


class PlacementChoice(str, Enum):
    colocated = "colocated"
    separate = "separate"


class ReferenceChoice(str, Enum):
    model = "model"
    precomputed = "precomputed"


class RolloutWeightsChoice(str, Enum):
    shared = "shared"
    copy = "copy"


Tokens = Annotated[int, typer.Option(min=1, max=1 << 24)]


def rlhf(
    model: ModelArg,
    stage: Annotated[
        StageChoice, typer.Option("--stage", help="sft, rm (reward model), ppo, dpo or grpo")
    ],
    reward_model: Annotated[
        str | None,
        typer.Option(
            "--reward-model",
            help="reward model preset (scalar head replaces lm_head); default MODEL",
        ),
    ] = None,
    critic_model: Annotated[
        str | None, typer.Option("--critic-model", help="ppo value model; default the reward model")
    ] = None,
    placement: Annotated[
        PlacementChoice,
        typer.Option("--placement", help="all models on the same GPUs, or one GPU group each"),
    ] = PlacementChoice.colocated,
    precision: Annotated[
        PrecisionChoice, typer.Option("--precision", help="trainable models' precision")
    ] = PrecisionChoice.bf16_mixed,
    optimizer: Annotated[
        Optimizer, typer.Option("--optimizer", help="optimizer of trainable models")
    ] = Optimizer.adamw,
    grad_checkpointing: Annotated[
        CheckpointChoice, typer.Option("--grad-checkpointing", help="none or full")
    ] = CheckpointChoice.none,
    attention: AttnOpt = AttentionChoice.flash,
    batch_size: BatchOpt = 1,
    seq_len: Annotated[
        int | None,
        size_option(
            "--seq-len", "-s", high=1 << 24, binary=True, help="sft/rm/dpo tokens per sequence"
        ),
    ] = None,
    prompt_len: Annotated[
        int, size_option("--prompt-len", high=1 << 24, binary=True, help="ppo/grpo prompt tokens")
    ] = 256,
    response_len: Annotated[
        int,
        size_option("--response-len", high=1 << 24, binary=True, help="ppo/grpo generated tokens"),
    ] = 256,
    rollout_batch: Annotated[
        int, size_option("--rollout-batch", high=1_000_000, help="prompts generated at once")
    ] = 8,
    comparisons: Annotated[
        int, typer.Option("--comparisons", "-k", min=2, max=64, help="rm: responses per prompt")
    ] = 4,
    group_size: Annotated[
        int, typer.Option("--group-size", "-g", min=2, max=1024, help="grpo: responses per prompt")
    ] = 8,
    frozen_dtype: Annotated[
        str,
        typer.Option(
            "--frozen-dtype", help="reference/reward weights: bf16, fp8, int8, int4, nf4…"
        ),
    ] = "bf16",
    kv_dtype: Annotated[
        KvChoice | None, typer.Option("--kv-dtype", help="rollout KV cache dtype")
    ] = None,
    offload_frozen: Annotated[
        bool, typer.Option("--offload-frozen", help="reference/reward on CPU outside their forward")
    ] = False,
    reference: Annotated[
        ReferenceChoice,
        typer.Option("--reference", help="dpo: a reference model, or precomputed log-probs"),
    ] = ReferenceChoice.model,
    share_base: Annotated[
        bool | None,
        typer.Option(
            "--share-base/--no-share-base",
            help="LoRA: the reference is the actor's base with adapters off (default when colocated)",
        ),
    ] = None,
    rollout_weights: Annotated[
        RolloutWeightsChoice,
        typer.Option(
            "--rollout-weights", help="shared: generate with the training weights; copy: bf16 copy"
        ),
    ] = RolloutWeightsChoice.shared,
    rollout_tp: Annotated[
        int, typer.Option("--rollout-tp", min=1, max=1024, help="GPUs a rollout copy spans")
    ] = 1,
    ppo_epochs: Annotated[
        int, typer.Option("--ppo-epochs", min=1, max=1000, help="passes over each experience")
    ] = 1,
    score_batch: Annotated[
        int | None,
        size_option(
            "--score-batch",
            high=1_000_000,
            help="sequences per scoring forward (default: ppo the rollout, grpo --batch-size)",
        ),
    ] = None,
    iterations: Annotated[
        int, typer.Option("--iterations", min=1, max=10**9, help="iterations to cost")
    ] = 1,
    method: Annotated[
        MethodChoice | None,
        typer.Option("--method", help="actor/critic/policy: full, lora or qlora"),
    ] = None,
    lora_rank: Annotated[
        int | None, typer.Option("--lora-rank", min=1, max=65536, help="LoRA rank r")
    ] = None,
    lora_targets: Annotated[
        str | None, typer.Option("--lora-targets", help="q,k,v,o,gate,up,down or all-linear")
    ] = None,
    quant: Annotated[
        QuantChoice | None, typer.Option("--quant", help="frozen base format of --method qlora")
    ] = None,
    num_gpus: Annotated[
        int | None,
        typer.Option("--num-gpus", min=1, max=1_000_000, help="GPUs per model group"),
    ] = None,
    nodes: NodesOpt = None,
    gpus_per_node: GpusPerNodeOpt = None,
    zero: Annotated[
        int | None, typer.Option("--zero", min=0, max=3, help="DeepSpeed ZeRO stage (all models)")
    ] = None,
    fsdp: Annotated[
        FsdpChoice | None, typer.Option("--fsdp", help="PyTorch FSDP sharding strategy")
    ] = None,
    offload: Annotated[
        OffloadChoice | None,
        typer.Option("--offload", help="trainable models' optimizer state (or params) on CPU"),
    ] = None,
    tp: Annotated[
        int | None, typer.Option("--tp", min=1, max=4096, help="tensor-parallel degree")
    ] = None,
    role_gpus: Annotated[
        str | None,
        typer.Option(
            "--role-gpus",
            help="separate placement: GPUs per model, e.g. critic=8,reference=16,reward=8",
        ),
    ] = None,
    gpu: GpuOpt = None,
    gpu_mem: GpuMemOpt = None,
    peak_tflops: Annotated[
        float | None,
        typer.Option(
            "--peak-tflops",
            min=0.001,
            max=1e6,
            help="dense TFLOP/s per GPU [default: the --gpu catalog entry's]",
        ),
    ] = None,
    mfu: Annotated[
        float | None,
        typer.Option(
            "--mfu", min=0.001, max=1.0, help="FLOPs utilisation [default: the GPU generation's]"
        ),
    ] = None,
    usd_per_gpu_hour: Annotated[
        float | None, typer.Option("--usd-per-gpu-hour", min=0, max=1e5, help="price per GPU-hour")
    ] = None,
    assume_llama: AssumeLlamaOpt = False,
    as_json: JsonOpt = False,
    units: UnitsOpt = UnitsChoice.GiB,
    check: CheckOpt = False,
) -> None:
    """Memory per GPU, phase by phase, and compute of an RLHF stage: SFT, RM, PPO, DPO or GRPO.

    The InstructGPT stages (supervised fine-tuning, reward model on K-way comparisons, PPO with
    actor, critic, reference and reward models), plus DPO and GRPO; see docs/rlhf.md."""
    from vramcalc.core.rlhf import estimate_rlhf

    options = {
        "method": _value(method),
        "lora_rank": lora_rank,
        "lora_targets": lora_targets,
        "quant": _value(quant),
        "num_gpus": num_gpus,
        "nodes": nodes,
        "gpus_per_node": gpus_per_node,
        "zero": zero,
        "fsdp": _value(fsdp),
        "offload": _value(offload),
        "tp": tp,
    }
    est = estimate_rlhf(
        model_arg(model, assume_llama),
        stage=stage.value,
        reward_model=reward_model,
        critic_model=critic_model,
        placement=placement.value,
        precision=precision.value,
        optimizer=optimizer.value,
        grad_checkpointing=grad_checkpointing.value,
        attention=attention.value,
        batch_size=batch_size,
        seq_len=seq_len,
        prompt_len=prompt_len,
        response_len=response_len,
        rollout_batch=rollout_batch,
        comparisons=comparisons,
        group_size=group_size,
        frozen_dtype=frozen_dtype,
        kv_dtype=_value(kv_dtype),
        offload_frozen=offload_frozen,
        reference=reference.value,
        reference_shares_base=share_base,
        rollout_weights=rollout_weights.value,
        rollout_tp=rollout_tp,
        ppo_epochs=ppo_epochs,
        score_batch=score_batch,
        iterations=iterations,
        gpu=gpu,
        gpu_mem_gib=gpu_mem,
        peak_tflops=peak_tflops,
        mfu=mfu,
        usd_per_gpu_hour=usd_per_gpu_hour,
        role_gpus=parse_role_gpus(role_gpus),
        **{k: v for k, v in options.items() if v is not None},
    )
    if check and gpu is None and gpu_mem is None:
        raise VramcalcError("--check needs a GPU to check against: add --gpu or --gpu-mem")
    if as_json:
        from vramcalc.cli.common import _print_json

        _print_json(est.model_dump(mode="json"))
    else:
        from vramcalc.report.rlhf import render_rlhf

        render_rlhf(est, units.value)
    # does not fit: any GPU group's peak exceeds its GPU
    exit_if_not_fit(check, all(g.gpu is None or g.gpu.fits for g in est.groups))


def parse_role_gpus(text: str | None) -> dict[str, int] | None:
    """'critic=8,reference=16' → {'critic': 8, 'reference': 16}."""
    if not text:
        return None
    out: dict[str, int] = {}
    for item in text.split(","):
        role, sep, count = item.partition("=")
        # ASCII digits only: str.isdigit() accepts '²', which int() then refuses
        if not sep or not count.strip().isascii() or not count.strip().isdigit():
            raise VramcalcError(
                f"--role-gpus {text!r}: write role=count pairs, e.g. critic=8,reference=16"
            )
        out[role.strip()] = int(count)
    return out


def register(app: typer.Typer) -> None:
    app.command("rlhf")(rlhf)
