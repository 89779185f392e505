"""Serving-engine options of `vramcalc infer` (and fit/plan): the engines' own flag names, turned
into the option values of vramcalc.core.serving."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vramcalc.cli.options import size_option
from vramcalc.errors import VramcalcError

if TYPE_CHECKING:  # pragma: no cover
    from vramcalc.core.cost import InferenceMemory


class EngineChoice(str, Enum):
    hf = "hf"
    vllm = "vllm"
    sglang = "sglang"
    llama_cpp = "llama.cpp"


class CacheTypeChoice(str, Enum):
    f32 = "f32"
    f16 = "f16"
    bf16 = "bf16"
    q8_0 = "q8_0"
    q5_0 = "q5_0"
    q4_0 = "q4_0"


_V = "vLLM: "
_S = "SGLang: "
_L = "llama.cpp: "

EngineOpt = Annotated[
    EngineChoice,
    typer.Option(
        "--engine",
        help="hf: transformers generate(); vllm, sglang, llama.cpp: that engine's start-up",
    ),
]
EngineVersionOpt = Annotated[
    str | None,
    typer.Option(
        "--engine-version", help="vLLM: v0 or v1 (default v1); SGLang: 0.4 or 0.5 (default 0.5)"
    ),
]
TpOpt = Annotated[
    int, typer.Option("--tp", min=1, max=1024, help="tensor-parallel GPUs (llama.cpp: row split)")
]
PpOpt = Annotated[
    int, typer.Option("--pp", min=1, max=1024, help="pipeline stages (llama.cpp: layer split)")
]
UtilOpt = Annotated[
    float | None,
    typer.Option(
        "--gpu-memory-utilization", min=0.01, max=1.0, help=_V + "fraction of GPU memory (0.9)"
    ),
]
MaxLenOpt = Annotated[
    int | None,
    size_option("--max-model-len", "--context-length", high=1 << 24, binary=True,
                help="vLLM/SGLang: tokens of one request (default: the model's)"),
]  # fmt: skip
MaxSeqsOpt = Annotated[
    int | None,
    size_option("--max-num-seqs", "--max-running-requests", high=1 << 20,
                help="vLLM/SGLang: most requests scheduled at once"),
]  # fmt: skip
BatchedOpt = Annotated[
    int | None,
    size_option("--max-num-batched-tokens", "--chunked-prefill-size", high=1 << 24, binary=True,
                help="vLLM/SGLang: tokens per step (the chunked prefill budget)"),
]  # fmt: skip
BlockOpt = Annotated[
    int | None, typer.Option("--block-size", min=1, max=4096, help=_V + "tokens per KV block (16)")
]
EagerOpt = Annotated[bool, typer.Option("--enforce-eager", help=_V + "no CUDA graphs")]
MemFracOpt = Annotated[
    float | None,
    typer.Option(
        "--mem-fraction-static", min=0.01, max=0.99, help=_S + "weights + KV pool fraction"
    ),
]
NglOpt = Annotated[
    int | None,
    typer.Option(
        "--gpu-layers",
        "--n-gpu-layers",
        "-ngl",
        min=0,
        max=100_000,
        help=_L + "layers on the GPU (all)",
    ),
]
CtxOpt = Annotated[
    int | None,
    size_option(
        "--ctx-size", "-c", high=1 << 24, binary=True, help=_L + "KV cells (the model's context)"
    ),
]
ParallelOpt = Annotated[
    int | None,
    typer.Option("--parallel", "-np", min=1, max=4096, help=_L + "slots sharing the context (1)"),
]
CtkOpt = Annotated[
    CacheTypeChoice | None, typer.Option("--cache-type-k", "-ctk", help=_L + "K cache type (f16)")
]
CtvOpt = Annotated[
    CacheTypeChoice | None, typer.Option("--cache-type-v", "-ctv", help=_L + "V cache type (f16)")
]
FaOpt = Annotated[bool, typer.Option("--flash-attn", "-fa", help=_L + "flash attention")]
UbatchOpt = Annotated[
    int | None,
    typer.Option("--ubatch-size", "-ub", min=1, max=1 << 16, help=_L + "physical batch (512)"),
]
GgufTypeOpt = Annotated[
    str | None,
    typer.Option(
        "--gguf-type",
        help=_L + "file type when MODEL is not a .gguf (Q4_K_M, Q5_K_M, Q8_0, IQ4_XS...)",
    ),
]
PrefillChunkOpt = Annotated[
    int | None,
    size_option("--prefill-chunk", high=1 << 24, binary=True, help="hf: prefill in chunks of this many tokens"),
]  # fmt: skip


@dataclass(frozen=True)
class EngineArgs:
    """The engine flags as given (None: not given)."""

    engine: EngineChoice
    engine_version: str | None = None
    gpu_memory_utilization: float | None = None
    max_model_len: int | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    block_size: int | None = None
    enforce_eager: bool = False
    mem_fraction_static: float | None = None
    gpu_layers: int | None = None
    ctx_size: int | None = None
    parallel: int | None = None
    cache_type_k: CacheTypeChoice | None = None
    cache_type_v: CacheTypeChoice | None = None
    flash_attn: bool = False
    ubatch_size: int | None = None
    gguf_type: str | None = None
    prefill_chunk: int | None = None


_OWNERS: dict[str, tuple[str, ...]] = {
    "engine_version": ("vllm", "sglang"),
    "gpu_memory_utilization": ("vllm",),
    "max_model_len": ("vllm", "sglang"),
    "max_num_seqs": ("vllm", "sglang"),
    "max_num_batched_tokens": ("vllm", "sglang"),
    "block_size": ("vllm",),
    "enforce_eager": ("vllm",),
    "mem_fraction_static": ("sglang",),
    "gpu_layers": ("llama.cpp",),
    "ctx_size": ("llama.cpp",),
    "parallel": ("llama.cpp",),
    "cache_type_k": ("llama.cpp",),
    "cache_type_v": ("llama.cpp",),
    "flash_attn": ("llama.cpp",),
    "ubatch_size": ("llama.cpp",),
    "gguf_type": ("llama.cpp",),
    "prefill_chunk": ("hf",),
}


def check_engine_args(args: EngineArgs) -> None:
    """An engine's flag given with another engine is a mistake: say which engine it belongs to."""
    engine = args.engine.value
    for name, owners in _OWNERS.items():
        value = getattr(args, name)
        if value not in (None, False) and engine not in owners:
            flag = "--" + name.replace("_", "-")
            raise VramcalcError(
                f"{flag} applies to --engine {' or '.join(owners)}, not --engine {engine}"
            )


def engine_options(args: EngineArgs) -> Any:
    """The core option value of the chosen engine."""
    from vramcalc.core.serving import LlamaCppOptions, SglangOptions, VllmOptions

    check_engine_args(args)
    if args.engine is EngineChoice.vllm:
        return VllmOptions(
            version=args.engine_version or "v1",
            gpu_memory_utilization=args.gpu_memory_utilization,
            max_model_len=args.max_model_len,
            max_num_seqs=args.max_num_seqs,
            max_num_batched_tokens=args.max_num_batched_tokens,
            block_size=args.block_size,
            enforce_eager=args.enforce_eager,
        )
    if args.engine is EngineChoice.sglang:
        return SglangOptions(
            version=args.engine_version or "0.5",
            mem_fraction_static=args.mem_fraction_static,
            context_length=args.max_model_len,
            chunked_prefill_size=args.max_num_batched_tokens,
            max_running_requests=args.max_num_seqs,
        )
    if args.engine is EngineChoice.llama_cpp:
        return LlamaCppOptions(
            gpu_layers=args.gpu_layers,
            ctx_size=args.ctx_size,
            parallel=args.parallel or 1,
            cache_type_k=(args.cache_type_k or CacheTypeChoice.f16).value,
            cache_type_v=(args.cache_type_v or CacheTypeChoice.f16).value,
            flash_attn=args.flash_attn,
            ubatch_size=args.ubatch_size or 512,
        )
    return None


ConcurrencyOpt = Annotated[
    float | None,
    typer.Option(
        "--concurrency",
        min=0.001,
        help="plan --engine: requests of --max-model-len tokens to hold at once",
    ),
]


def _v(choice: Any) -> Any:
    return choice.value if isinstance(choice, Enum) else choice


def fit_engine(model: str, gpu: str, args: EngineArgs, tp: int, pp: int, kv_dtype: Any,
               dtype: Any, quant: Any, as_json: bool, check: bool) -> None:  # fmt: skip
    """`fit MODEL --gpu GPU --engine ...`: the longest context and the concurrency the GPU set
    holds (llama.cpp reads --max-model-len as its --ctx-size)."""
    from vramcalc.cli.options import exit_if_not_fit, print_json
    from vramcalc.core.serving.planning import engine_fit

    if args.engine is EngineChoice.llama_cpp:
        args = EngineArgs(args.engine, gpu_layers=args.gpu_layers, ctx_size=args.max_model_len)
    kv_dtype, dtype, quant = _v(kv_dtype), _v(dtype), _v(quant)

    r = engine_fit(model, args.engine.value, gpu, options=engine_options(args), tp=tp, pp=pp,
                   dtype=dtype, quant=quant, kv_dtype=kv_dtype,
                   gguf_type=args.gguf_type)  # fmt: skip
    if as_json:
        print_json(r.model_dump(mode="json"), "engine_fit")
    else:
        from vramcalc.report import serving as report_serving

        report_serving.render_engine_fit(r)
    exit_if_not_fit(check, r.max_model_len > 0)


def plan_engine(model: str, args: EngineArgs, concurrency: float | None, kv_dtype: Any,
                dtype: Any, quant: Any, as_json: bool, check: bool) -> None:  # fmt: skip
    """`plan MODEL --engine ... --concurrency N`: for each catalog GPU, the fewest GPUs."""
    from vramcalc.cli.options import exit_if_not_fit, print_json
    from vramcalc.core.serving.planning import engine_plan
    from vramcalc.sources.presets import list_gpus

    kv_dtype, dtype, quant = _v(kv_dtype), _v(dtype), _v(quant)
    if args.engine is EngineChoice.llama_cpp:  # --max-model-len: the tokens of one slot
        args = EngineArgs(args.engine, ctx_size=args.max_model_len)
    if concurrency is None:
        raise VramcalcError(
            "plan --engine needs --concurrency (requests of --max-model-len tokens)"
        )
    gpus = [g.name for g in list_gpus() if g.vendor.lower() in ("nvidia", "amd", "")]
    p = engine_plan(model, args.engine.value, gpus, concurrency, options=engine_options(args),
                    dtype=dtype, quant=quant, kv_dtype=kv_dtype)  # fmt: skip
    if as_json:
        print_json(p.model_dump(mode="json"), "engine_plan")
    else:
        from vramcalc.report import serving as report_serving

        report_serving.render_engine_plan(p)
    exit_if_not_fit(check, any(r.num_gpus is not None for r in p.rows))


def engine_batch(model: Any, engine: EngineChoice, gpu: str, num_gpus: int, length: int,
                 dtype: str, quant: str | None, kv_dtype: str | None,
                 rough: bool = False) -> tuple[int, str, InferenceMemory]:  # fmt: skip
    """`cost infer --engine`: the batch the engine holds at `length` tokens per request on
    `num_gpus` tensor-parallel GPUs (core.cost.engine_batch_size); an engine that cannot hold one
    request is an error. Also the memory per GPU as the engine lays it out."""
    from vramcalc.core.cost import InferenceMemory, engine_batch_size
    from vramcalc.core.serving import estimate_serving

    if (
        engine is EngineChoice.llama_cpp
    ):  # its decode reads GGUF mixes the cost model has no format for
        raise VramcalcError(
            "cost infer --engine llama.cpp: the cost model reads 16-bit or --quant weights, not "
            "GGUF mixes; use --engine vllm or sglang, or cost infer with --quant for a 4-bit model"
        )
    args = EngineArgs(engine, max_model_len=length)
    est = estimate_serving(model, engine.value, options=engine_options(args), dtype=dtype,
                           quant=quant, kv_dtype=kv_dtype, tp=num_gpus, gpu=gpu)  # fmt: skip
    assert est.serving is not None
    if est.serving.refused:
        raise VramcalcError(
            f"--engine {engine.value} refuses {length} tokens per request: {est.serving.refused}"
        )
    batch, why = engine_batch_size(est.serving)
    if batch < 1:
        raise VramcalcError(
            f"--engine {engine.value}: the KV pool does not hold one request of {length} tokens"
        )
    # the memory verdict of the engine's own layout (core.serving), as cost infer reports it
    memory = InferenceMemory.of(
        est.total_bytes,
        est.gpu.memory_bytes if est.gpu else 0,
        f"{engine.value} TP={est.serving.tp}",
        rough=rough,
    )
    return batch, why, memory


def reject_hf_flags(engine: EngineChoice, given: dict[str, bool]) -> None:
    """Flags of the HF model that an engine does not read: an error naming the engine's own."""
    if engine is EngineChoice.hf:
        return
    for flag, is_given in given.items():
        if is_given:
            raise VramcalcError(
                f"{flag} applies to --engine hf; {engine.value} takes its own flags "
                "(--max-model-len / -c for the context, --tp for GPUs, --max-num-seqs / -np for requests)"
            )
