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
    choice_value,
    model_arg,
)
from vramcalc.cli.options import CheckOpt, exit_if_not_fit, size_option
from vramcalc.cli.train_options import (
    ActOffloadOpt,
    AdapterDtypeOpt,
    BnbVersionOpt,
    CompileOpt,
    FrameworkOpt,
    FullStateDictLoadOpt,
    KbitUpcastOpt,
    LoraDropoutOpt,
    LossChunksOpt,
    LossOpt,
    OptInBackwardOpt,
    PackingOpt,
    PagedOpt,
    convention_flags,
    stack_keywords,
)
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


# ---- options of `vramcalc rlhf` (module level: the command stays a short function) ----------
StageOpt = Annotated[
    StageChoice, typer.Option("--stage", help="sft, rm (reward model), ppo, dpo or grpo")
]
RewardModelOpt = Annotated[
    str | None,
    typer.Option(
        "--reward-model",
        help="reward model preset (scalar head replaces lm_head); default MODEL",
    ),
]
CriticModelOpt = Annotated[
    str | None, typer.Option("--critic-model", help="ppo value model; default the reward model")
]
PlacementOpt = Annotated[
    PlacementChoice,
    typer.Option("--placement", help="all models on the same GPUs, or one GPU group each"),
]
PrecisionOpt = Annotated[
    PrecisionChoice, typer.Option("--precision", help="trainable models' precision")
]
OptimizerOpt = Annotated[
    Optimizer, typer.Option("--optimizer", help="optimizer of trainable models")
]
GradCheckpointingOpt = Annotated[
    CheckpointChoice, typer.Option("--grad-checkpointing", help="none or full")
]
SeqLenOpt = Annotated[
    int | None,
    size_option(
        "--seq-len", "-s", high=1 << 24, binary=True, help="sft/rm/dpo tokens per sequence"
    ),
]
PromptLenOpt = Annotated[
    int, size_option("--prompt-len", high=1 << 24, binary=True, help="ppo/grpo prompt tokens")
]
ResponseLenOpt = Annotated[
    int,
    size_option("--response-len", high=1 << 24, binary=True, help="ppo/grpo generated tokens"),
]
RolloutBatchOpt = Annotated[
    int, size_option("--rollout-batch", high=1_000_000, help="prompts generated at once")
]
ComparisonsOpt = Annotated[
    int, typer.Option("--comparisons", "-k", min=2, max=64, help="rm: responses per prompt")
]
GroupSizeOpt = Annotated[
    int, typer.Option("--group-size", "-g", min=2, max=1024, help="grpo: responses per prompt")
]
FrozenDtypeOpt = Annotated[
    str,
    typer.Option("--frozen-dtype", help="reference/reward weights: bf16, fp8, int8, int4, nf4…"),
]
KvDtypeOpt = Annotated[KvChoice | None, typer.Option("--kv-dtype", help="rollout KV cache dtype")]
OffloadFrozenOpt = Annotated[
    bool, typer.Option("--offload-frozen", help="reference/reward on CPU outside their forward")
]
ReferenceOpt = Annotated[
    ReferenceChoice,
    typer.Option("--reference", help="dpo: a reference model, or precomputed log-probs"),
]
ShareBaseOpt = Annotated[
    bool | None,
    typer.Option(
        "--share-base/--no-share-base",
        help="LoRA: the reference is the actor's base with adapters off (default when colocated)",
    ),
]
RolloutWeightsOpt = Annotated[
    RolloutWeightsChoice,
    typer.Option(
        "--rollout-weights", help="shared: generate with the training weights; copy: bf16 copy"
    ),
]
RolloutTpOpt = Annotated[
    int, typer.Option("--rollout-tp", min=1, max=1024, help="GPUs a rollout copy spans")
]
PpoEpochsOpt = Annotated[
    int, typer.Option("--ppo-epochs", min=1, max=1000, help="passes over each experience")
]
ScoreBatchOpt = Annotated[
    int | None,
    size_option(
        "--score-batch",
        high=1_000_000,
        help="sequences per scoring forward (default: ppo the rollout, grpo --batch-size)",
    ),
]
IterationsOpt = Annotated[
    int, typer.Option("--iterations", min=1, max=10**9, help="iterations to cost")
]
MethodOpt = Annotated[
    MethodChoice | None,
    typer.Option("--method", help="actor/critic/policy: full, lora or qlora"),
]
LoraRankOpt = Annotated[
    int | None, typer.Option("--lora-rank", min=1, max=65536, help="LoRA rank r")
]
LoraTargetsOpt = Annotated[
    str | None, typer.Option("--lora-targets", help="q,k,v,o,gate,up,down or all-linear")
]
QuantOpt = Annotated[
    QuantChoice | None, typer.Option("--quant", help="frozen base format of --method qlora")
]
NumGpusOpt = Annotated[
    int | None,
    typer.Option("--num-gpus", min=1, max=1_000_000, help="GPUs per model group"),
]
ZeroOpt = Annotated[
    int | None, typer.Option("--zero", min=0, max=3, help="DeepSpeed ZeRO stage (all models)")
]
FsdpOpt = Annotated[
    FsdpChoice | None, typer.Option("--fsdp", help="PyTorch FSDP sharding strategy")
]
OffloadOpt = Annotated[
    OffloadChoice | None,
    typer.Option("--offload", help="trainable models' optimizer state (or params) on CPU"),
]
TpOpt = Annotated[int | None, typer.Option("--tp", min=1, max=4096, help="tensor-parallel degree")]
RoleGpusOpt = Annotated[
    str | None,
    typer.Option(
        "--role-gpus",
        help="separate placement: GPUs per model, e.g. critic=8,reference=16,reward=8",
    ),
]
PeakTflopsOpt = Annotated[
    float | None,
    typer.Option(
        "--peak-tflops",
        min=0.001,
        max=1e6,
        help="dense TFLOP/s per GPU [default: the --gpu catalog entry's]",
    ),
]
MfuOpt = Annotated[
    float | None,
    typer.Option(
        "--mfu", min=0.001, max=1.0, help="FLOPs utilisation [default: the GPU generation's]"
    ),
]
UsdPerGpuHourOpt = Annotated[
    float | None,
    typer.Option(
        "--usd-per-gpu-hour",
        min=0,
        max=1e5,
        help="USD for one GPU for one hour [default: the --gpu catalog entry's]",
    ),
]


def rlhf(
    model: ModelArg,
    stage: StageOpt,
    reward_model: RewardModelOpt = None,
    critic_model: CriticModelOpt = None,
    placement: PlacementOpt = PlacementChoice.colocated,
    precision: PrecisionOpt = PrecisionChoice.bf16_mixed,
    optimizer: OptimizerOpt = Optimizer.adamw,
    grad_checkpointing: GradCheckpointingOpt = CheckpointChoice.none,
    attention: AttnOpt = AttentionChoice.flash,
    batch_size: BatchOpt = 1,
    seq_len: SeqLenOpt = None,
    prompt_len: PromptLenOpt = 256,
    response_len: ResponseLenOpt = 256,
    rollout_batch: RolloutBatchOpt = 8,
    comparisons: ComparisonsOpt = 4,
    group_size: GroupSizeOpt = 8,
    frozen_dtype: FrozenDtypeOpt = "bf16",
    kv_dtype: KvDtypeOpt = None,
    offload_frozen: OffloadFrozenOpt = False,
    reference: ReferenceOpt = ReferenceChoice.model,
    share_base: ShareBaseOpt = None,
    rollout_weights: RolloutWeightsOpt = RolloutWeightsChoice.shared,
    rollout_tp: RolloutTpOpt = 1,
    ppo_epochs: PpoEpochsOpt = 1,
    score_batch: ScoreBatchOpt = None,
    iterations: IterationsOpt = 1,
    method: MethodOpt = None,
    lora_rank: LoraRankOpt = None,
    lora_targets: LoraTargetsOpt = None,
    lora_dropout: LoraDropoutOpt = None,
    quant: QuantOpt = None,
    num_gpus: NumGpusOpt = None,
    nodes: NodesOpt = None,
    gpus_per_node: GpusPerNodeOpt = None,
    zero: ZeroOpt = None,
    fsdp: FsdpOpt = None,
    offload: OffloadOpt = None,
    tp: TpOpt = None,
    role_gpus: RoleGpusOpt = None,
    gpu: GpuOpt = None,
    gpu_mem: GpuMemOpt = None,
    peak_tflops: PeakTflopsOpt = None,
    mfu: MfuOpt = None,
    usd_per_gpu_hour: UsdPerGpuHourOpt = None,
    assume_llama: AssumeLlamaOpt = False,
    as_json: JsonOpt = False,
    units: UnitsOpt = UnitsChoice.GiB,
    check: CheckOpt = False,
    framework: FrameworkOpt = "hf",
    loss: LossOpt = None,
    loss_chunks: LossChunksOpt = None,
    activation_offload: ActOffloadOpt = None,
    optimizer_in_backward: OptInBackwardOpt = None,
    compile_: CompileOpt = None,
    adapter_dtype: AdapterDtypeOpt = None,
    packing: PackingOpt = None,
    paged_optimizer: PagedOpt = None,
    bnb_version: BnbVersionOpt = None,
    kbit_fp32_upcast: KbitUpcastOpt = None,
    full_state_dict_load: FullStateDictLoadOpt = None,
) -> None:
    """Memory per GPU, phase by phase, and compute of an RLHF stage: SFT, RM, PPO, DPO or GRPO.

    The InstructGPT stages (supervised fine-tuning, reward model on K-way comparisons, PPO with
    actor, critic, reference and reward models), plus DPO and GRPO; see docs/rlhf.md."""
    from vramcalc.core.rlhf import estimate_rlhf

    options = {
        "method": choice_value(method),
        "lora_rank": lora_rank,
        "lora_targets": lora_targets,
        "lora_dropout": lora_dropout,
        "quant": choice_value(quant),
        "num_gpus": num_gpus,
        "nodes": nodes,
        "gpus_per_node": gpus_per_node,
        "zero": zero,
        "fsdp": choice_value(fsdp),
        "offload": choice_value(offload),
        "tp": tp,
    }
    conv_kw, conv_json = stack_keywords(
        framework,
        convention_flags(
            loss, loss_chunks, activation_offload, optimizer_in_backward, compile_,
            adapter_dtype, packing, paged_optimizer, bnb_version,
        kbit_fp32_upcast, full_state_dict_load,
        ),
        seq_len or prompt_len + response_len,
    )  # fmt: skip
    options |= conv_kw
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
        kv_dtype=choice_value(kv_dtype),
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
        from vramcalc.cli.common import print_json

        print_json(est.model_dump(mode="json") | ({"conventions": conv_json} if conv_json else {}))
    else:
        from vramcalc.report.rlhf import render_rlhf

        render_rlhf(est, units.value)
        if conv_json:
            from vramcalc.report.fit import render_stack

            render_stack(conv_json)
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
