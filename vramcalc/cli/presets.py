"""`vramcalc presets list|show`: the shipped model and GPU presets."""

from __future__ import annotations

from typing import Annotated

import typer

from vramcalc.cli.common import JsonOpt, PresetArg, print_json
from vramcalc.cli.options import VramcalcGroup

presets_app = typer.Typer(
    help="Model and GPU presets shipped with vramcalc.", no_args_is_help=True, cls=VramcalcGroup
)


@presets_app.command("list")
def presets_list(
    as_json: JsonOpt = False,
    gpus: Annotated[
        bool, typer.Option("--gpus", help="list GPU presets instead of models")
    ] = False,
) -> None:
    """List the model (or GPU) presets."""
    from vramcalc.sources.presets import list_gpus, list_models
    from vramcalc.spec.params import param_count

    if gpus:
        if as_json:
            print_json(
                [g.model_dump(mode="json") | {"memory_bytes": g.memory_bytes} for g in list_gpus()],
                "gpu_list",
                "gpus",
            )
            return
        from vramcalc.report import console as report

        report.render_gpu_list(list_gpus())
        return
    models = list_models()
    counts = [param_count(m) for m in models]
    if as_json:
        print_json(
            [
                m.model_dump(mode="json", by_alias=True) | {"params": n}
                for m, n in zip(models, counts, strict=True)
            ],
            "model_list",
            "models",
        )
        return
    from vramcalc.report import console as report

    report.render_model_list(models, counts)


@presets_app.command("show")
def presets_show(name: PresetArg, as_json: JsonOpt = False) -> None:
    """Show one model preset with its source and exact parameter count."""
    from vramcalc.sources.presets import get_model
    from vramcalc.spec.params import active_param_count, param_count

    spec = get_model(name)
    if as_json:
        print_json(
            spec.model_dump(mode="json", by_alias=True)
            | {
                "params": param_count(spec),
                "active_params": active_param_count(spec),
                "head_dim": spec.head_dim,
            },
            "model_preset",
        )
        return
    from vramcalc.report import console as report

    report.render_model(spec, param_count(spec), active_param_count(spec))
