"""`vramcalc inspect MODEL`: what vramcalc read from a preset, config.json, GGUF file or Hub id."""

from __future__ import annotations

from typing import Annotated, Any

import typer


def source_summary(source: Any) -> dict[str, Any]:
    """The JSON of `inspect`: the mapped ModelSpec, exact counts and the checkpoint's tensors."""
    from vramcalc.spec.params import param_count

    spec = source.spec
    data: dict[str, Any] = {
        "source": source.kind,
        "origin": source.origin,
        "params": source.params,
        "active_params": source.active_params,
        "spec_params": param_count(spec),
        "head_dim": spec.head_dim,
        "kv_cache_values_per_token_layer": spec.kv_cache_width,
        "notes": list(source.notes),
        "spec": spec.model_dump(mode="json", by_alias=True),
        "checkpoint": None,
    }
    ck = source.checkpoint
    if ck is not None:
        data["checkpoint"] = {
            "format": ck.format,
            "origin": ck.origin,
            "quantization": ck.quantization,
            "tensors": len(ck.tensors),
            "stored_bytes": ck.stored_bytes,
            "bytes_by_dtype": ck.bytes_by_dtype(),
        }
    return data


def register(app: typer.Typer) -> None:
    @app.command()
    def inspect(
        model: Annotated[
            str,
            typer.Argument(
                help="preset, config.json or model folder, .gguf file, or Hugging Face id org/name"
            ),
        ],
        revision: Annotated[
            str | None, typer.Option("--revision", help="Hub revision (branch, tag, commit)")
        ] = None,
        offline: Annotated[
            bool, typer.Option("--offline", help="Hub models from the local cache only")
        ] = False,
        as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
        assume_llama: Annotated[
            bool, typer.Option("--assume-llama", help="read an unmapped architecture as Llama")
        ] = False,
    ) -> None:
        """Show how MODEL was read: mapped architecture fields, exact parameters, checkpoint dtypes."""
        from vramcalc.sources import resolve_model_source

        source = resolve_model_source(
            model, revision=revision, offline=offline, assume_llama=assume_llama
        )
        data = source_summary(source)
        if as_json:
            from vramcalc.cli.options import print_json

            print_json(data, "model_source")
            return
        from vramcalc.report.sources import render_source

        render_source(source, data)
