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
    from vramcalc.core.inference import estimate_inference

    use_gpus_file(gpus_file)
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
