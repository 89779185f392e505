"""`vramcalc cost train|infer`: compute, time and price of a job."""

from __future__ import annotations

from typing import Annotated

import typer

from vramcalc.cli.common import (
    AssumeLlamaOpt,
    BatchOpt,
    CheckpointChoice,
    DtypeChoice,
    GpuArg,
    JsonOpt,
    KvChoice,
    MfuOpt,
    ModelArg,
    NumGpusOpt,
    OutputOpt,
    PriceOpt,
    PriceSourceOpt,
    PromptOpt,
    QuantChoice,
    SeqOpt,
    TrainDtypeChoice,
    choice_value,
    model_arg,
    print_json,
    rough_label,
    use_gpus_file,
)
from vramcalc.cli.options import CheckOpt, GpusFileOpt, VramcalcGroup, exit_if_not_fit
from vramcalc.cli.serving import EngineChoice, EngineOpt


def register(app: typer.Typer) -> None:
    cost_app = typer.Typer(
        help="Compute, time and price of training or serving a model.",
        no_args_is_help=True,
        cls=VramcalcGroup,
    )
    app.add_typer(cost_app, name="cost")

    @cost_app.command("train")
    def cost_train(
        model: ModelArg,
        tokens: Annotated[
            str, typer.Option("--tokens", metavar="SIZE", help="tokens to train on, e.g. 2T, 300B")
        ],
        gpu: GpuArg,
        num_gpus: NumGpusOpt = 1,
        mfu: MfuOpt = None,
        seq_len: SeqOpt = None,
        grad_checkpointing: Annotated[
            CheckpointChoice,
            typer.Option("--grad-checkpointing", help="full: recompute the forward (×4/3 FLOPs)"),
        ] = CheckpointChoice.none,
        dtype: Annotated[
            TrainDtypeChoice, typer.Option("--dtype", help="math dtype whose peak is used")
        ] = TrainDtypeChoice.bf16,
        price: PriceOpt = None,
        as_json: JsonOpt = False,
        gpus_file: GpusFileOpt = None,
        price_source: PriceSourceOpt = None,
        assume_llama: AssumeLlamaOpt = False,
    ) -> None:
        """FLOPs, GPU-hours, wall time, price and energy of training MODEL on TOKENS tokens."""
        from vramcalc.core.cost import estimate_training_cost

        use_gpus_file(gpus_file, price_source)
        model = model_arg(model, assume_llama)
        c = estimate_training_cost(
            model,
            tokens=tokens,
            gpu=gpu,
            num_gpus=num_gpus,
            mfu=mfu,
            seq_len=seq_len,
            grad_checkpointing=grad_checkpointing.value,
            dtype=dtype.value,
            usd_per_gpu_hour=price,
        )
        if as_json:
            print_json(c.model_dump(mode="json") | rough_label(model))
            return
        from vramcalc.report import cost as report_cost

        report_cost.render_training_cost(c)

    @cost_app.command("infer")
    def cost_infer(
        model: ModelArg,
        gpu: GpuArg,
        dtype: Annotated[
            DtypeChoice,
            typer.Option("--dtype", help="weight dtype (fp8: FP8 GEMMs where supported)"),
        ] = DtypeChoice("bf16"),  # type: ignore[assignment]
        quant: Annotated[
            QuantChoice | None, typer.Option("--quant", help="quantization format")
        ] = None,
        kv_dtype: Annotated[
            KvChoice | None, typer.Option("--kv-dtype", help="KV cache dtype (default: 16-bit)")
        ] = None,
        batch_size: BatchOpt = 1,
        prompt: PromptOpt = 1000,
        output: OutputOpt = 200,
        num_gpus: NumGpusOpt = 1,
        mfu: MfuOpt = None,
        mbu: Annotated[
            float | None,
            typer.Option("--mbu", min=0.0001, max=1.0, help="memory bandwidth utilisation"),
        ] = None,
        price: PriceOpt = None,
        as_json: JsonOpt = False,
        gpus_file: GpusFileOpt = None,
        price_source: PriceSourceOpt = None,
        check: CheckOpt = False,
        assume_llama: AssumeLlamaOpt = False,
        engine: EngineOpt = EngineChoice.hf,
    ) -> None:
        """Prefill time, decode speed, latency, throughput and price per million tokens
        (--engine: the batch is the requests the engine's KV pool holds at prompt + output)."""
        from vramcalc.core.cost import estimate_inference_cost

        use_gpus_file(gpus_file, price_source)
        model = model_arg(model, assume_llama)
        engine_note, engine_memory = None, None
        if engine is not EngineChoice.hf:
            from vramcalc.cli.serving import engine_batch, reject_hf_flags

            reject_hf_flags(engine, {"--batch-size": batch_size != 1})
            batch_size, engine_note, engine_memory = engine_batch(model, engine, gpu, num_gpus, prompt + output,
                                                   choice_value(dtype), choice_value(quant), choice_value(kv_dtype),
                                                   rough=assume_llama)  # fmt: skip
        c = estimate_inference_cost(
            model,
            gpu=gpu,
            dtype=choice_value(dtype),
            quant=choice_value(quant),
            kv_dtype=choice_value(kv_dtype),
            batch_size=batch_size,
            prompt_tokens=prompt,
            output_tokens=output,
            num_gpus=num_gpus,
            mfu=mfu,
            mbu=mbu,
            usd_per_gpu_hour=price,
        )
        if engine_memory is not None:  # the engine's own layout (core.serving) decides the fit
            c = c.model_copy(update={"memory": engine_memory})
        if as_json:
            extra = {"engine_batch": engine_note} if engine_note else {}
            print_json(c.model_dump(mode="json") | rough_label(model) | extra)
        else:
            from vramcalc.report import cost as report_cost

            report_cost.render_inference_cost(c)
            if engine_note:
                from vramcalc.report.serving import print_note

                print_note(f"batch from the engine's KV pool: {engine_note}")
        exit_if_not_fit(check, c.memory is not None and c.memory.fits)
