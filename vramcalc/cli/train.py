"""`vramcalc train`: memory to train or fine-tune a model on one or many GPUs."""

from __future__ import annotations

from typing import Annotated, Any

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
    JsonOpt,
    MethodChoice,
    OfflineOpt,
    OffloadChoice,
    PrecisionChoice,
    QuantChoice,
    RevisionOpt,
    SeqOpt,
    SourceArg,
    UnitsChoice,
    UnitsOpt,
    choice_value,
    emit_estimate,
    model_source,
)
from vramcalc.cli.options import (
    CheckOpt,
    ExplainOpt,
    GpusFileOpt,
    GpusPerNodeOpt,
    NodesOpt,
    exit_if_not_fit,
    need_gpu_for_check,
    print_json,
    use_gpus_file,
    warn,
)
from vramcalc.cli.train_options import (
    ActOffloadOpt,
    AdapterDtypeOpt,
    BnbVersionOpt,
    CompileOpt,
    FrameworkOpt,
    FullStateDictLoadOpt,
    KbitUpcastOpt,
    LoraAlphaOpt,
    LoraDropoutOpt,
    LoraRankOpt,
    LoraTargetsOpt,
    LossChunksOpt,
    LossOpt,
    OptInBackwardOpt,
    PackingOpt,
    PagedOpt,
    convention_flags,
    resolve_stack,
)
from vramcalc.core.optimizers import Optimizer


def train(
    model: SourceArg,
    precision: Annotated[
        PrecisionChoice | None,
        typer.Option(
            "--precision", help="fp32, autocast mixed, or pure 16-bit [default: bf16-mixed]"
        ),
    ] = None,
    optimizer: Annotated[
        Optimizer | None,
        typer.Option(
            "--optimizer", help="optimizer whose state is kept [default: framework's, else adamw]"
        ),
    ] = None,
    batch_size: BatchOpt = 1,
    grad_accum: Annotated[
        int,
        typer.Option("--grad-accum", min=1, max=1_000_000, help="micro-batches per optimizer step"),
    ] = 1,
    seq_len: SeqOpt = None,
    grad_checkpointing: Annotated[
        CheckpointChoice | None,
        typer.Option(
            "--grad-checkpointing",
            help="none or full (recompute each layer) [default: framework's, else none]",
        ),
    ] = None,
    attention: AttnOpt = AttentionChoice.flash,
    gpu: GpuOpt = None,
    gpu_mem: GpuMemOpt = None,
    as_json: JsonOpt = False,
    units: UnitsOpt = UnitsChoice.GiB,
    method: Annotated[
        MethodChoice, typer.Option("--method", help="full fine-tune, LoRA, or QLoRA (4-bit base)")
    ] = MethodChoice.full,
    lora_rank: LoraRankOpt = None,
    lora_alpha: LoraAlphaOpt = None,
    lora_targets: LoraTargetsOpt = None,
    lora_dropout: LoraDropoutOpt = None,
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
    """Peak memory per GPU of a training step of MODEL: full, LoRA or QLoRA; one GPU or many."""
    from vramcalc.core.training import estimate_training

    use_gpus_file(gpus_file)
    need_gpu_for_check(check, gpu, gpu_mem)
    src = model_source(model, revision, offline, assume_llama)
    flags = convention_flags(
        loss, loss_chunks, activation_offload, optimizer_in_backward, compile_,
        adapter_dtype, packing, paged_optimizer, bnb_version,
        kbit_fp32_upcast, full_state_dict_load,
    )  # fmt: skip
    stack, spec = resolve_stack(
        framework,
        src.spec,
        {
            "precision": choice_value(precision),
            "optimizer": choice_value(optimizer),
            "grad_checkpointing": choice_value(grad_checkpointing),
            "lora_rank": lora_rank,
            "lora_alpha": lora_alpha,
            "lora_targets": lora_targets,
            "lora_dropout": lora_dropout,
            "method": method.value,
            "seq_len": seq_len,
        },
        flags,
    )
    est = estimate_training(
        spec if spec is not src.spec else src,
        **stack.estimator_kwargs,
        batch_size=batch_size,
        grad_accum=grad_accum,
        attention=attention.value,
        gpu=gpu,
        gpu_mem_gib=gpu_mem,
        quant=choice_value(quant),
        num_gpus=num_gpus,
        nodes=nodes,
        gpus_per_node=gpus_per_node,
        zero=zero,
        fsdp=choice_value(fsdp),
        offload=offload.value,
        tp=tp,
        pp=pp,
        sp=sp,
        ep=ep,
        cp=cp,
        explain=explain,
    )
    show_training(est, stack, any(v is not None for v in flags.values()), as_json, explain, units)
    exit_if_not_fit(check, est.gpu is not None and est.gpu.fits)


def show_training(
    est: Any, stack: Any, flags_given: bool, as_json: bool, explain: bool, units: UnitsChoice
) -> None:
    """The estimate as JSON (with its ``conventions`` object) or as tables, and, when a profile
    other than hf or a convention flag is in play, the line naming the values used."""
    if as_json:
        warn(est.warnings)
        print_json(est.model_dump(mode="json") | {"conventions": stack.summary()})
        return
    if not (explain or est.parallel):
        emit_estimate(est, as_json, units)
    else:
        from vramcalc.report import train as report_train

        report_train.render_training(est, units.value, explain=explain)
    if stack.profile.name != "hf" or flags_given:
        from vramcalc.report import fit as report_fit

        report_fit.render_stack(stack.summary())
