"""`vramcalc train`: memory to train or fine-tune a model on one or many GPUs."""

from __future__ import annotations

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
    _emit,
    _source,
    _value,
)
from vramcalc.cli.options import (
    CheckOpt,
    ExplainOpt,
    GpusFileOpt,
    GpusPerNodeOpt,
    NodesOpt,
    exit_if_not_fit,
    need_gpu_for_check,
    use_gpus_file,
)
from vramcalc.core.optimizers import Optimizer


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
    from vramcalc.core.training import estimate_training

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
        from vramcalc.report import train as report_train

        report_train.render_training(est, units.value, explain=explain)
    exit_if_not_fit(check, est.gpu is not None and est.gpu.fits)
