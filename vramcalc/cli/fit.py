"""`vramcalc fit` and `vramcalc plan`: the largest job a GPU set holds, and the cheapest GPUs for a job."""

from __future__ import annotations

from typing import Annotated

import typer

from vramcalc.cli.common import (
    AssumeLlamaOpt,
    AttentionChoice,
    AttnOpt,
    CheckpointChoice,
    DtypeChoice,
    DtypeOpt,
    GpuMemOpt,
    GpuOpt,
    JsonOpt,
    KvOpt,
    MfuOpt,
    ModelArg,
    NumGpusOpt,
    PrecisionChoice,
    PriceSourceOpt,
    QuantOpt,
    SeqOpt,
    TaskChoice,
    TaskOpt,
    model_arg,
    print_json,
    use_gpus_file,
    workload_options,
)
from vramcalc.cli.options import CheckOpt, GpusFileOpt, exit_if_not_fit, size_option
from vramcalc.cli.serving import (
    ConcurrencyOpt,
    EngineArgs,
    EngineChoice,
    EngineOpt,
    EngineVersionOpt,
    MaxLenOpt,
    MaxSeqsOpt,
    MemFracOpt,
    NglOpt,
    PpOpt,
    TpOpt,
    UtilOpt,
    fit_engine,
    plan_engine,
    reject_hf_flags,
)
from vramcalc.cli.train_options import (
    ActOffloadOpt,
    AdapterDtypeOpt,
    BnbVersionOpt,
    CompileOpt,
    FitMethodChoice,
    FitOffloadChoice,
    FrameworkOpt,
    FsdpOpt,
    FullStateDictLoadOpt,
    GradAccumOpt,
    KbitUpcastOpt,
    LoraAlphaOpt,
    LoraDropoutOpt,
    LoraRankOpt,
    LoraTargetsOpt,
    LossChunksOpt,
    LossOpt,
    MethodOpt,
    OffloadOpt,
    OptInBackwardOpt,
    PackingOpt,
    PagedOpt,
    TrainCkptOpt,
    TrainOptimOpt,
    TrainPrecOpt,
    ZeroOpt,
    convention_flags,
    gpu_for_fit,
    train_option_values,
    train_workload,
)
from vramcalc.core.optimizers import Optimizer
from vramcalc.errors import VramcalcError


def fit_cmd(
    model: ModelArg,
    gpu: GpuOpt = None,
    task: TaskOpt = TaskChoice.infer,
    num_gpus: NumGpusOpt = 1,
    batch_size: Annotated[
        int | None,
        size_option("--batch-size", "-b", high=1_000_000, help="batch for the context search"),
    ] = None,
    seq_len: SeqOpt = None,
    dtype: DtypeOpt = DtypeChoice("bf16"),  # type: ignore[assignment]
    quant: QuantOpt = None,
    kv_dtype: KvOpt = None,
    precision: TrainPrecOpt = None,
    optimizer: TrainOptimOpt = None,
    grad_checkpointing: TrainCkptOpt = None,
    attention: AttnOpt = AttentionChoice.flash,
    as_json: JsonOpt = False,
    gpus_file: GpusFileOpt = None,
    price_source: PriceSourceOpt = None,
    check: CheckOpt = False,
    assume_llama: AssumeLlamaOpt = False,
    gpu_mem: GpuMemOpt = None,
    method: MethodOpt = FitMethodChoice.full,
    lora_rank: LoraRankOpt = None,
    lora_alpha: LoraAlphaOpt = None,
    lora_targets: LoraTargetsOpt = None,
    lora_dropout: LoraDropoutOpt = None,
    grad_accum: GradAccumOpt = 1,
    zero: ZeroOpt = None,
    fsdp: FsdpOpt = None,
    offload: OffloadOpt = FitOffloadChoice.none,
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
    engine: EngineOpt = EngineChoice.hf,
    engine_version: EngineVersionOpt = None,
    tp: TpOpt = 1,
    pp: PpOpt = 1,
    gpu_memory_utilization: UtilOpt = None,
    max_model_len: MaxLenOpt = None,
    max_num_seqs: MaxSeqsOpt = None,
    mem_fraction_static: MemFracOpt = None,
    gpu_layers: NglOpt = None,
) -> None:
    """The largest batch size and the longest context of MODEL that fit the GPU(s); for a
    training job that does not fit, the cheapest changes that would make it fit (--engine: the
    longest max_model_len the engine starts with, and its concurrency)."""
    from vramcalc.core.fitting import fit

    use_gpus_file(gpus_file, price_source)
    if engine is not EngineChoice.hf:  # serving engines: vramcalc.core.serving.planning
        reject_hf_flags(engine, {"--task train": task is not TaskChoice.infer, "--num-gpus":
                        num_gpus != 1, "--batch-size": batch_size is not None, "--seq-len":
                        seq_len is not None, "--gpu-mem": gpu_mem is not None,
                        "--method": method is not FitMethodChoice.full})  # fmt: skip
        flags_engine = EngineArgs(engine, engine_version, gpu_memory_utilization, max_model_len,
                                  max_num_seqs, mem_fraction_static=mem_fraction_static,
                                  gpu_layers=gpu_layers)  # fmt: skip
        if gpu is None:
            raise VramcalcError(
                f"fit --engine {engine.value} needs --gpu GPU (see `vramcalc gpus`)"
            )
        return fit_engine(model, gpu, flags_engine, tp, pp, kv_dtype, dtype, quant, as_json, check)
    flags = convention_flags(
        loss, loss_chunks, activation_offload, optimizer_in_backward, compile_,
        adapter_dtype, packing, paged_optimizer, bnb_version,
        kbit_fp32_upcast, full_state_dict_load,
    )  # fmt: skip
    options = train_option_values(
        method, lora_rank, lora_alpha, lora_targets, zero, fsdp, offload, grad_accum,
        precision, optimizer, grad_checkpointing, quant, seq_len, lora_dropout,
    )  # fmt: skip
    spec, train, stack = train_workload(
        model_arg(model, assume_llama), task.value, framework, flags, options
    )
    workload = workload_options(
        task, dtype, quant, kv_dtype, precision or PrecisionChoice.bf16_mixed,
        optimizer or Optimizer.adamw, grad_checkpointing or CheckpointChoice.none,
        attention, batch_size, seq_len,
    ) | train  # fmt: skip
    r = fit(spec, gpu_for_fit(gpu, gpu_mem), task=task.value, num_gpus=num_gpus, **workload)  # type: ignore[arg-type]
    if as_json:
        extra = {"conventions": stack.summary()} if stack is not None else {}
        print_json(r.model_dump(mode="json") | extra, "fit")
    else:
        from vramcalc.report import cost as report_cost
        from vramcalc.report import fit as report_fit

        report_cost.render_fit(r)
        report_fit.render_suggestions(r)
        if stack is not None and (framework != "hf" or any(flags.values())):
            report_fit.render_stack(stack.summary())
    # does not fit: the described job (--batch-size, default 1, at --seq-len) does not fit
    exit_if_not_fit(check, r.fits)


def plan_cmd(
    model: ModelArg,
    task: TaskOpt = TaskChoice.infer,
    budget: Annotated[
        float | None,
        typer.Option(
            "--budget", min=0.0, help="train: USD for the run; infer: USD per hour of all GPUs"
        ),
    ] = None,
    tokens: Annotated[
        str | None,
        typer.Option("--tokens", metavar="SIZE", help="train: tokens to train on, e.g. 2T"),
    ] = None,
    max_hours: Annotated[
        float | None,
        typer.Option("--max-hours", min=0.001, help="train: add GPUs until the run fits in this"),
    ] = None,
    max_gpus: Annotated[
        int, typer.Option("--max-gpus", min=1, max=1 << 20, help="most GPUs to consider")
    ] = 16384,
    batch_size: Annotated[
        int | None,
        size_option(
            "--batch-size",
            "-b",
            high=1_000_000,
            help="infer: concurrent requests; train: micro-batch per GPU",
        ),
    ] = None,
    seq_len: SeqOpt = None,
    prompt: Annotated[
        int, size_option("--prompt", high=1 << 24, binary=True, help="infer: prompt tokens")
    ] = 1000,
    output: Annotated[
        int, size_option("--output", high=1 << 24, binary=True, help="infer: generated tokens")
    ] = 200,
    dtype: DtypeOpt = DtypeChoice("bf16"),  # type: ignore[assignment]
    quant: QuantOpt = None,
    kv_dtype: KvOpt = None,
    precision: TrainPrecOpt = None,
    optimizer: TrainOptimOpt = None,
    grad_checkpointing: TrainCkptOpt = None,
    attention: AttnOpt = AttentionChoice.flash,
    mfu: MfuOpt = None,
    as_json: JsonOpt = False,
    gpus_file: GpusFileOpt = None,
    price_source: PriceSourceOpt = None,
    check: CheckOpt = False,
    assume_llama: AssumeLlamaOpt = False,
    method: MethodOpt = FitMethodChoice.full,
    lora_rank: LoraRankOpt = None,
    lora_alpha: LoraAlphaOpt = None,
    lora_targets: LoraTargetsOpt = None,
    lora_dropout: LoraDropoutOpt = None,
    grad_accum: GradAccumOpt = 1,
    zero: ZeroOpt = None,
    fsdp: FsdpOpt = None,
    offload: OffloadOpt = FitOffloadChoice.none,
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
    engine: EngineOpt = EngineChoice.hf,
    engine_version: EngineVersionOpt = None,
    concurrency: ConcurrencyOpt = None,
    gpu_memory_utilization: UtilOpt = None,
    max_model_len: MaxLenOpt = None,
    max_num_seqs: MaxSeqsOpt = None,
    mem_fraction_static: MemFracOpt = None,
) -> None:
    """For every catalog GPU: the fewest that fit, the time and the price, cheapest first
    (--engine with --concurrency: the fewest tensor-parallel GPUs for that many requests)."""
    from vramcalc.core.fitting import plan

    use_gpus_file(gpus_file, price_source)
    if engine is not EngineChoice.hf:  # serving engines: vramcalc.core.serving.planning
        reject_hf_flags(engine, {"--task train": task is not TaskChoice.infer, "--batch-size":
                        batch_size is not None, "--budget": budget is not None,
                        "--method": method is not FitMethodChoice.full})  # fmt: skip
        flags_engine = EngineArgs(engine, engine_version, gpu_memory_utilization, max_model_len,
                                  max_num_seqs, mem_fraction_static=mem_fraction_static)  # fmt: skip
        return plan_engine(model, flags_engine, concurrency, kv_dtype, dtype, quant, as_json, check)
    flags = convention_flags(
        loss, loss_chunks, activation_offload, optimizer_in_backward, compile_,
        adapter_dtype, packing, paged_optimizer, bnb_version,
        kbit_fp32_upcast, full_state_dict_load,
    )  # fmt: skip
    options = train_option_values(
        method, lora_rank, lora_alpha, lora_targets, zero, fsdp, offload, grad_accum,
        precision, optimizer, grad_checkpointing, quant, seq_len, lora_dropout,
    )  # fmt: skip
    spec, train, stack = train_workload(
        model_arg(model, assume_llama), task.value, framework, flags, options
    )
    workload = workload_options(
        task, dtype, quant, kv_dtype, precision or PrecisionChoice.bf16_mixed,
        optimizer or Optimizer.adamw, grad_checkpointing or CheckpointChoice.none,
        attention, batch_size, seq_len if task is TaskChoice.train else None,
    ) | train  # fmt: skip
    p = plan(
        spec,
        task=task.value,  # type: ignore[arg-type]
        budget_usd=budget,
        max_gpus=max_gpus,
        tokens=tokens,
        max_hours=max_hours,
        prompt_tokens=prompt,
        output_tokens=output,
        mfu=mfu,
        **workload,
    )
    if as_json:
        extra = {"conventions": stack.summary()} if stack is not None else {}
        print_json(p.model_dump(mode="json") | extra)
    else:
        from vramcalc.report import cost as report_cost

        report_cost.render_plan(p)
        if stack is not None and (framework != "hf" or any(flags.values())):
            from vramcalc.report import fit as report_fit

            report_fit.render_stack(stack.summary())
    # does not fit: no GPU of the catalog holds it (within --budget when one is given)
    exit_if_not_fit(check, any(r.fits and r.within_budget is not False for r in p.rows))


def register(app: typer.Typer) -> None:
    app.command("fit")(fit_cmd)
    app.command("plan")(plan_cmd)
