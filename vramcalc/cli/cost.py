"""CLI commands for the GPU catalog, cost and planners: `gpus`, `cost train|infer`, `fit`, `plan`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from vramcalc.cli.common import (
    AssumeLlamaOpt,
    AttentionChoice,
    AttnOpt,
    BatchOpt,
    CheckpointChoice,
    DtypeChoice,
    JsonOpt,
    KvChoice,
    ModelArg,
    PrecisionChoice,
    QuantChoice,
    SeqOpt,
    _value,
    model_arg,
)
from vramcalc.cli.options import CheckOpt, GpusFileOpt, VramcalcGroup, exit_if_not_fit, size_option
from vramcalc.core.optimizers import Optimizer


class TaskChoice(str, Enum):
    infer = "infer"
    train = "train"


class TrainDtypeChoice(str, Enum):
    bf16 = "bf16"
    fp16 = "fp16"
    fp8 = "fp8"
    tf32 = "tf32"
    fp32 = "fp32"


GpuArg = Annotated[
    str, typer.Option("--gpu", metavar="GPU", help="catalog GPU (see `vramcalc gpus`)")
]
NumGpusOpt = Annotated[
    int, typer.Option("--num-gpus", "-n", min=1, max=1_000_000, help="GPUs working together")
]
MfuOpt = Annotated[
    float | None,
    typer.Option(
        "--mfu", min=0.0001, max=1.0, help="model FLOPs utilisation (default: docs/cost.md)"
    ),
]
PriceSourceOpt = Annotated[
    str | None,
    typer.Option(
        "--price-source",
        metavar="SET|FILE",
        help="price set to use (default runpod-on-demand; see `vramcalc gpus`) or a TOML file "
        "of the same form",
    ),
]
PriceOpt = Annotated[
    float | None, typer.Option("--price", min=0.0, help="USD per GPU-hour (default: the catalog's)")
]
PromptOpt = Annotated[
    int, size_option("--prompt", high=1 << 24, binary=True, help="prompt tokens per request")
]
OutputOpt = Annotated[
    int, size_option("--output", high=1 << 24, binary=True, help="generated tokens per request")
]


def workload_options(
    task: TaskChoice,
    dtype: Any,
    quant: Any,
    kv_dtype: Any,
    precision: PrecisionChoice,
    optimizer: Optimizer,
    grad_checkpointing: CheckpointChoice,
    attention: AttentionChoice,
    batch_size: int | None,
    seq_len: int | None,
) -> dict[str, Any]:
    common: dict[str, Any] = {"attention": attention.value}
    if batch_size is not None:
        common["batch_size"] = batch_size
    if seq_len is not None:
        common["seq_len"] = seq_len
    if task is TaskChoice.infer:
        return common | {
            "dtype": _value(dtype),
            "quant": _value(quant),
            "kv_dtype": _value(kv_dtype),
        }
    return common | {
        "precision": precision.value,
        "optimizer": optimizer.value,
        "grad_checkpointing": grad_checkpointing.value,
    }


TaskOpt = Annotated[TaskChoice, typer.Option("--task", help="infer or train")]
DtypeOpt = Annotated[DtypeChoice, typer.Option("--dtype", help="infer: weight dtype")]
QuantOpt = Annotated[QuantChoice | None, typer.Option("--quant", help="infer: quant format")]
KvOpt = Annotated[KvChoice | None, typer.Option("--kv-dtype", help="infer: KV cache dtype")]
PrecOpt = Annotated[PrecisionChoice, typer.Option("--precision", help="train: precision")]
OptimOpt = Annotated[Optimizer, typer.Option("--optimizer", help="train: optimizer")]
CkptOpt = Annotated[
    CheckpointChoice, typer.Option("--grad-checkpointing", help="train: none or full")
]


def _print_json(data: object, kind: str | None = None, key: str = "items") -> None:
    from vramcalc.cli.options import print_json

    print_json(data, kind, key)


def _rough_label(model: Any) -> dict[str, Any]:
    """JSON keys that mark a cost made from an assumed architecture (--assume-llama)."""
    assumed = getattr(model, "assumed_architecture", None)
    return {} if assumed is None else {"assumed_architecture": assumed, "exact_architecture": False}


def _use_gpus_file(path: Path | None, price_source: str | None = None) -> None:
    """Each command starts from the default lookup and price set, then `--gpus-file` and
    `--price-source` if given (so one invocation's choice never leaks into the next in the same
    process, e.g. under CliRunner)."""
    from vramcalc.sources.presets import use_gpus_file, use_price_source

    use_gpus_file(path)
    use_price_source(price_source)


def register(app: typer.Typer) -> None:
    cost_app = typer.Typer(
        help="Compute, time and price of training or serving a model.",
        no_args_is_help=True,
        cls=VramcalcGroup,
    )
    app.add_typer(cost_app, name="cost")

    @app.command()
    def gpus(
        local: Annotated[
            bool, typer.Option("--local", help="the NVIDIA GPUs of this machine (NVML)")
        ] = False,
        as_json: JsonOpt = False,
        gpus_file: GpusFileOpt = None,
        price_source: PriceSourceOpt = None,
    ) -> None:
        """The GPU catalog: memory, dense peaks, bandwidth, interconnect, power and price."""
        from vramcalc.report import cost as report_cost
        from vramcalc.sources.presets import list_gpus, match_gpu

        _use_gpus_file(gpus_file, price_source)
        if local:
            from vramcalc.nvml import local_gpus

            found = [(d, match_gpu(d.name, d.total_bytes)) for d in local_gpus()]
            if as_json:
                _print_json(
                    [
                        {
                            "index": d.index,
                            "name": d.name,
                            "total_bytes": d.total_bytes,
                            "free_bytes": d.free_bytes,
                            "used_bytes": d.used_bytes,
                            "driver_version": d.driver_version,
                            "catalog": m.name if m else None,
                        }
                        for d, m in found
                    ],
                    "local_gpus",
                    "gpus",
                )
                return
            report_cost.render_local_gpus(found)
            return
        catalog = list_gpus()
        if as_json:
            _print_json(
                [g.model_dump(mode="json") | {"memory_bytes": g.memory_bytes} for g in catalog],
                "gpu_list",
                "gpus",
            )
            return
        from vramcalc.sources.presets import price_set

        report_cost.render_gpu_catalog(catalog, price_set())

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

        _use_gpus_file(gpus_file, price_source)
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
            price_usd_per_hour=price,
        )
        if as_json:
            _print_json(c.model_dump(mode="json") | _rough_label(model))
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
    ) -> None:
        """Prefill time, decode speed, latency, throughput and price per million tokens."""
        from vramcalc.core.cost import estimate_inference_cost
        from vramcalc.core.fitting import simple_placement
        from vramcalc.core.workloads import resolve_model
        from vramcalc.sources.presets import get_gpu

        _use_gpus_file(gpus_file, price_source)
        model = model_arg(model, assume_llama)
        c = estimate_inference_cost(
            model,
            gpu=gpu,
            dtype=_value(dtype),
            quant=_value(quant),
            kv_dtype=_value(kv_dtype),
            batch_size=batch_size,
            prompt_tokens=prompt,
            output_tokens=output,
            num_gpus=num_gpus,
            mfu=mfu,
            mbu=mbu,
            price_usd_per_hour=price,
        )
        workload = {
            "dtype": _value(dtype),
            "quant": _value(quant),
            "kv_dtype": _value(kv_dtype),
            "batch_size": batch_size,
            "seq_len": prompt + output,
        }
        placement = simple_placement(resolve_model(model), "infer", workload, num_gpus)
        memory = get_gpu(gpu).memory_bytes
        fits = {
            "per_gpu_bytes": placement.per_gpu_bytes,
            "memory_bytes": memory,
            "fits": placement.per_gpu_bytes <= memory,
            "parallelism": placement.parallelism,
        }
        if assume_llama:  # a rough estimate never says "fits" (results.gpu_fit)
            fits["verdict"] = "may fit" if fits["fits"] else "does not fit"
        if as_json:
            _print_json(c.model_dump(mode="json") | {"memory": fits} | _rough_label(model))
        else:
            from vramcalc.report import cost as report_cost

            report_cost.render_inference_cost(c, fits)
        exit_if_not_fit(check, bool(fits["fits"]))

    @app.command("fit")
    def fit_cmd(
        model: ModelArg,
        gpu: GpuArg,
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
        precision: PrecOpt = PrecisionChoice.bf16_mixed,
        optimizer: OptimOpt = Optimizer.adamw,
        grad_checkpointing: CkptOpt = CheckpointChoice.none,
        attention: AttnOpt = AttentionChoice.flash,
        as_json: JsonOpt = False,
        gpus_file: GpusFileOpt = None,
        price_source: PriceSourceOpt = None,
        check: CheckOpt = False,
        assume_llama: AssumeLlamaOpt = False,
    ) -> None:
        """The largest batch size and the longest context of MODEL that fit the GPU(s)."""
        from vramcalc.core.fitting import fit

        _use_gpus_file(gpus_file, price_source)
        workload = workload_options(
            task, dtype, quant, kv_dtype, precision, optimizer, grad_checkpointing, attention,
            batch_size, seq_len,
        )  # fmt: skip
        r = fit(model_arg(model, assume_llama), gpu, task=task.value, num_gpus=num_gpus, **workload)  # type: ignore[arg-type]
        if as_json:
            _print_json(r.model_dump(mode="json"), "fit")
        else:
            from vramcalc.report import cost as report_cost

            report_cost.render_fit(r)
        # does not fit: not one sequence of the context searched (--seq-len) fits
        exit_if_not_fit(check, r.max_batch_size > 0)

    @app.command("plan")
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
            typer.Option(
                "--max-hours", min=0.001, help="train: add GPUs until the run fits in this"
            ),
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
        precision: PrecOpt = PrecisionChoice.bf16_mixed,
        optimizer: OptimOpt = Optimizer.adamw,
        grad_checkpointing: CkptOpt = CheckpointChoice.none,
        attention: AttnOpt = AttentionChoice.flash,
        mfu: MfuOpt = None,
        as_json: JsonOpt = False,
        gpus_file: GpusFileOpt = None,
        price_source: PriceSourceOpt = None,
        check: CheckOpt = False,
        assume_llama: AssumeLlamaOpt = False,
    ) -> None:
        """For every catalog GPU: the fewest that fit, the time and the price, cheapest first."""
        from vramcalc.core.fitting import plan

        _use_gpus_file(gpus_file, price_source)
        workload = workload_options(
            task, dtype, quant, kv_dtype, precision, optimizer, grad_checkpointing, attention,
            batch_size, seq_len if task is TaskChoice.train else None,
        )  # fmt: skip
        p = plan(
            model_arg(model, assume_llama),
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
            _print_json(p.model_dump(mode="json"))
        else:
            from vramcalc.report import cost as report_cost

            report_cost.render_plan(p)
        # does not fit: no GPU of the catalog holds it (within --budget when one is given)
        exit_if_not_fit(check, any(r.fits and r.within_budget is not False for r in p.rows))
