"""`vramcalc gpus`: the GPU catalog with prices."""

from __future__ import annotations

from typing import Annotated

import typer

from vramcalc.cli.common import (
    JsonOpt,
    PriceSourceOpt,
    print_json,
    use_gpus_file,
)
from vramcalc.cli.options import GpusFileOpt


def register(app: typer.Typer) -> None:
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

        use_gpus_file(gpus_file, price_source)
        if local:
            from vramcalc.nvml import local_gpus

            found = [(d, match_gpu(d.name, d.total_bytes)) for d in local_gpus()]
            if as_json:
                print_json(
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
            print_json(
                [g.model_dump(mode="json") | {"memory_bytes": g.memory_bytes} for g in catalog],
                "gpu_list",
                "gpus",
            )
            return
        from vramcalc.sources.presets import price_set

        report_cost.render_gpu_catalog(catalog, price_set())
