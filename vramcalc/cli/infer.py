"""`vramcalc infer`: memory to serve a model."""

from __future__ import annotations

from typing import Annotated

import typer

from vramcalc.cli.common import (
    SOURCE_HELP,
    AssumeLlamaOpt,
    AttentionChoice,
    AttnOpt,
    BatchOpt,
    DtypeChoice,
    GpuMemOpt,
    GpuOpt,
    InferSeqOpt,
    JsonOpt,
    KvChoice,
    LogitsChoice,
    OfflineOpt,
    QuantChoice,
    RevisionOpt,
    UnitsChoice,
    UnitsOpt,
    choice_value,
    emit_estimate,
    model_source,
    print_json,
)
from vramcalc.cli.options import (
    CheckOpt,
    ExplainOpt,
    GpusFileOpt,
    exit_if_not_fit,
    need_gpu_for_check,
    use_gpus_file,
    warn,
)
from vramcalc.cli.serving import (
    BatchedOpt,
    BlockOpt,
    CtkOpt,
    CtvOpt,
    CtxOpt,
    EagerOpt,
    EngineArgs,
    EngineChoice,
    EngineOpt,
    EngineVersionOpt,
    FaOpt,
    GgufTypeOpt,
    MaxLenOpt,
    MaxSeqsOpt,
    MemFracOpt,
    NglOpt,
    ParallelOpt,
    PpOpt,
    PrefillChunkOpt,
    TpOpt,
    UbatchOpt,
    UtilOpt,
    check_engine_args,
    reject_hf_flags,
)
from vramcalc.errors import VramcalcError


def infer(
    model: Annotated[str | None, typer.Argument(help=SOURCE_HELP + "; omit with --params")] = None,
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
        KvChoice | None,
        typer.Option(
            "--kv-dtype", "--kv-cache-dtype", help="KV cache dtype (default: compute dtype)"
        ),
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
    engine: EngineOpt = EngineChoice.hf,
    engine_version: EngineVersionOpt = None,
    tp: TpOpt = 1,
    pp: PpOpt = 1,
    gpu_memory_utilization: UtilOpt = None,
    max_model_len: MaxLenOpt = None,
    max_num_seqs: MaxSeqsOpt = None,
    max_num_batched_tokens: BatchedOpt = None,
    block_size: BlockOpt = None,
    enforce_eager: EagerOpt = False,
    mem_fraction_static: MemFracOpt = None,
    gpu_layers: NglOpt = None,
    ctx_size: CtxOpt = None,
    parallel: ParallelOpt = None,
    cache_type_k: CtkOpt = None,
    cache_type_v: CtvOpt = None,
    flash_attn: FaOpt = False,
    ubatch_size: UbatchOpt = None,
    gguf_type: GgufTypeOpt = None,
    prefill_chunk: PrefillChunkOpt = None,
) -> None:
    """Memory to serve MODEL: weights + KV cache + prefill activations + runtime overhead
    (--engine vllm|sglang|llama.cpp: that engine's start-up layout and KV pool)."""
    from vramcalc.core.inference import estimate_inference

    use_gpus_file(gpus_file)
    args = EngineArgs(
        engine, engine_version, gpu_memory_utilization, max_model_len, max_num_seqs,
        max_num_batched_tokens, block_size, enforce_eager, mem_fraction_static, gpu_layers,
        ctx_size, parallel, cache_type_k, cache_type_v, flash_attn, ubatch_size, gguf_type,
        prefill_chunk,
    )  # fmt: skip
    check_engine_args(args)
    reject_hf_flags(engine, {"--seq-len": seq_len is not None, "--batch-size": batch_size != 1,
                             "--logits": logits is not LogitsChoice.last,
                             "--attention": attention is not AttentionChoice.flash})  # fmt: skip
    if engine is not EngineChoice.hf:
        _serve(model, args, dtype, quant, kv_dtype, tp, pp, gpu, gpu_mem, as_json, units,
               explain, check, revision, offline, assume_llama, params, compare_dtypes)  # fmt: skip
        return
    need_gpu_for_check(check, gpu, gpu_mem)
    if model is None and params is None:
        raise VramcalcError("give a MODEL (e.g. llama-2-7b) or --params (e.g. --params 7B)")
    if model is not None and params is not None:
        raise VramcalcError("give a MODEL or --params, not both")
    source = model_source(model, revision, offline, assume_llama) if model is not None else None
    common = dict(
        params=params,
        kv_dtype=choice_value(kv_dtype),
        batch_size=batch_size,
        seq_len=seq_len,
        logits=choice_value(logits),
        attention=choice_value(attention),
        gpu=gpu,
        gpu_mem_gib=gpu_mem,
        tp=tp,
        pp=pp,
        prefill_chunk=prefill_chunk,
    )
    if compare_dtypes:
        dtypes = (
            ["fp32", "bf16", "int8", "int4"] if params else ["fp32", "bf16", "fp8", "int8", "int4"]
        )
        rows = [estimate_inference(source, dtype=d, **common) for d in dtypes]  # type: ignore[arg-type]
        warn([w for r in rows for w in r.warnings if "--seq-len" in w])
        if as_json:
            print_json([r.model_dump(mode="json") for r in rows], "inference_comparison", "rows")
        else:
            from vramcalc.report import console as report

            render = report.render_weights_only_compare if params else report.render_compare
            render(rows, units.value)
        exit_if_not_fit(check, any(r.gpu is not None and r.gpu.fits for r in rows))
        return
    est = estimate_inference(source, dtype=choice_value(dtype), quant=choice_value(quant), **common)  # type: ignore[arg-type]
    emit_estimate(est, as_json, units, explain)
    exit_if_not_fit(check, est.gpu is not None and est.gpu.fits)


def _serve(
    model: str | None,
    args: EngineArgs,
    dtype: object,
    quant: object,
    kv_dtype: object,
    tp: int,
    pp: int,
    gpu: str | None,
    gpu_mem: float | None,
    as_json: bool,
    units: UnitsChoice,
    explain: bool,
    check: bool,
    revision: str | None,
    offline: bool,
    assume_llama: bool,
    params: str | None,
    compare_dtypes: bool,
) -> None:
    """`infer --engine vllm|sglang|llama.cpp`: the engine's per-GPU layout and its KV pool."""
    from vramcalc.cli.serving import engine_options
    from vramcalc.core.serving import estimate_serving

    if model is None or params is not None:
        raise VramcalcError(f"--engine {args.engine.value} needs a MODEL (not --params)")
    if compare_dtypes:
        raise VramcalcError("--compare-dtypes works with --engine hf only")
    need_gpu_for_check(check, gpu, gpu_mem)
    est = estimate_serving(
        model_source(model, revision, offline, assume_llama),
        args.engine.value,
        options=engine_options(args),
        dtype=str(choice_value(dtype)),
        quant=choice_value(quant),  # type: ignore[arg-type]
        kv_dtype=choice_value(kv_dtype),  # type: ignore[arg-type]
        gguf_type=args.gguf_type,
        tp=tp,
        pp=pp,
        gpu=gpu,
        gpu_mem_gib=gpu_mem,
    )
    warn(est.warnings)
    if as_json:
        print_json(est.model_dump(mode="json"))
    else:
        from vramcalc.report import serving as report_serving

        report_serving.render_serving(est, units.value, explain=explain)
    exit_if_not_fit(check, est.gpu is not None and est.gpu.fits)
