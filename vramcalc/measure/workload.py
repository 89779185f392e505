"""The workload an estimate describes, as something torch can run (trace on fake tensors, or live).

This module holds the torch-free description (:class:`Workload`) and, in functions that import
torch lazily, the pieces both the trace and the live measurement run: building the Hugging Face
reference model (from the config.json the spec was read from, else from
:func:`vramcalc.spec.hfconfig.hf_config_dict`) and running one inference prefill or
one training step exactly as the estimate describes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from vramcalc.core.results import Estimate
from vramcalc.core.workloads import resolve_seq_len, resolve_source
from vramcalc.errors import VramcalcError
from vramcalc.spec.model import ModelSpec

TORCH_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
# Optimizers the reference run can build from torch / transformers alone.
RUNNABLE_OPTIMIZERS = ("adamw", "adam", "adamw-fused", "sgd", "sgd-momentum", "adafactor")


@dataclass(frozen=True)
class Workload:
    """One inference prefill or one training step, with every knob the estimate takes."""

    kind: Literal["inference", "training"]
    spec: ModelSpec
    batch_size: int = 1
    seq_len: int = 512
    attention: str = "flash"
    # inference
    dtype: str = "bf16"
    logits: str = "last"
    # training
    precision: str = "bf16-mixed"
    optimizer: str = "adamw"
    grad_accum: int = 1
    grad_checkpointing: str = "none"
    extra: dict[str, Any] = field(default_factory=dict)
    # the config.json the spec was read from (a config file or Hub id): the reference model is
    # built from it; None for presets and spec files (built from hf_config_dict)
    hf_config: dict[str, Any] | None = None

    def estimate(self) -> Estimate:
        """The analytic estimate of this workload."""
        if self.kind == "inference":
            from vramcalc.core.inference import estimate_inference

            return estimate_inference(
                self.spec,
                dtype=self.dtype,
                batch_size=self.batch_size,
                seq_len=self.seq_len,
                logits=self.logits,
                attention=self.attention,
            )
        from vramcalc.core.training import estimate_training

        return estimate_training(
            self.spec,
            precision=self.precision,
            optimizer=self.optimizer,
            batch_size=self.batch_size,
            grad_accum=self.grad_accum,
            seq_len=self.seq_len,
            grad_checkpointing=self.grad_checkpointing,
            attention=self.attention,
        )

    def describe(self) -> dict[str, Any]:
        """A JSON-able description (the 'config' of a record)."""
        base: dict[str, Any] = {
            "kind": self.kind,
            "model": self.spec.name,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "attention": self.attention,
        }
        if self.kind == "inference":
            base |= {"dtype": self.dtype, "logits": self.logits}
        else:
            base |= {
                "precision": self.precision,
                "optimizer": self.optimizer,
                "grad_accum": self.grad_accum,
                "grad_checkpointing": self.grad_checkpointing,
            }
        return base

    @property
    def label(self) -> str:
        d = self.describe()
        if self.kind == "inference":
            tail = f"{self.dtype} logits={self.logits}"
        else:
            ckpt = " ckpt" if self.grad_checkpointing == "full" else ""
            acc = f" acc{self.grad_accum}" if self.grad_accum > 1 else ""
            tail = f"{self.precision} {self.optimizer}{ckpt}{acc}"
        att = "" if self.attention == "flash" else f" {self.attention}"
        return f"{d['model']} {self.kind[:5]} b{self.batch_size} s{self.seq_len} {tail}{att}"


MAX_GRAD_ACCUM = 64
MAX_BATCH = 4096


def make_workload(
    kind: str,
    model: str | ModelSpec,
    *,
    batch_size: int = 1,
    seq_len: int | None = None,
    attention: str = "flash",
    dtype: str = "bf16",
    logits: str = "last",
    precision: str = "bf16-mixed",
    optimizer: str = "adamw",
    grad_accum: int = 1,
    grad_checkpointing: str = "none",
) -> Workload:
    """Validate and resolve a workload (bad values raise VramcalcError with one line)."""
    # the reference run executes every micro-batch: bound the loop before resolving anything
    if not 1 <= grad_accum <= MAX_GRAD_ACCUM:
        raise VramcalcError(
            f"--grad-accum {grad_accum}: the reference run takes 1 to {MAX_GRAD_ACCUM} "
            "micro-batches (the peak is reached by the second; `vramcalc train` takes any count)"
        )
    if not 1 <= batch_size <= MAX_BATCH:
        raise VramcalcError(f"--batch-size {batch_size}: the reference run takes 1 to {MAX_BATCH}")
    if isinstance(model, ModelSpec):
        spec, hf_config = model, None
    else:
        source = resolve_source(model)
        spec, hf_config = source.spec, source.config
        if spec.assumed_architecture is not None:  # the rough Llama reading is what is estimated
            hf_config = None
    seq = resolve_seq_len(spec, seq_len)
    if kind not in ("inference", "training"):
        raise VramcalcError(f"kind {kind!r}: use inference or training")
    if kind == "inference" and dtype not in TORCH_DTYPES:
        raise VramcalcError(
            f"--dtype {dtype}: the reference run supports {', '.join(TORCH_DTYPES)} "
            "(quantized formats need their kernels; estimate them with `vramcalc infer`)"
        )
    if kind == "training" and optimizer not in RUNNABLE_OPTIMIZERS:
        raise VramcalcError(
            f"--optimizer {optimizer}: the reference run supports {', '.join(RUNNABLE_OPTIMIZERS)}"
        )
    wl = Workload(
        kind=kind,  # type: ignore[arg-type]
        spec=spec,
        batch_size=batch_size,
        seq_len=seq,
        attention=attention,
        dtype=dtype,
        logits=logits,
        precision=precision,
        optimizer=optimizer,
        grad_accum=grad_accum,
        grad_checkpointing=grad_checkpointing,
        hf_config=hf_config,
    )
    wl.estimate()  # validates every field the same way the estimate does
    return wl


# ---- torch side (imported lazily) ----------------------------------------------------------------

PhaseHook = Callable[[str], None]


def torch_dtype(name: str) -> Any:
    import torch

    return getattr(torch, TORCH_DTYPES[name])


def param_dtype_name(wl: Workload) -> str:
    """Weights' dtype: inference runs in its dtype; mixed precision keeps fp32 weights."""
    if wl.kind == "inference":
        return wl.dtype
    return {"fp32": "fp32", "bf16-mixed": "fp32", "fp16-mixed": "fp32"}.get(
        wl.precision, wl.precision
    )


def build_model(wl: Workload, device: str) -> Any:
    """The transformers reference model of `wl.spec`, random weights, on `device`."""
    import torch
    from transformers import AutoModelForCausalLM

    config = reference_config(wl)
    config.use_cache = wl.kind == "inference"
    impl = "eager" if wl.attention == "eager" else "sdpa"
    if wl.attention == "flash" and device == "cpu" and wl.spec.architecture in NO_SDPA:
        impl = _register_flash_stand_in()
    dtype = torch_dtype(param_dtype_name(wl))
    kwargs: dict[str, Any] = {"attn_implementation": impl, "dtype": dtype}
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, **kwargs)
    return model


def reference_config(wl: Workload) -> Any:
    """The transformers config of the reference model: the config.json the spec was read from
    when there is one (any architecture transformers ships, its decoder for a multimodal
    wrapper), else the one :func:`vramcalc.spec.hfconfig.hf_config_dict` writes for the mapped
    families; any other spec is refused rather than built as the wrong model."""
    from transformers import AutoConfig

    from vramcalc.spec.hfconfig import HF_CONFIG_ARCHITECTURES, hf_config_dict

    from .meta import build_config

    if wl.hf_config is not None:
        return build_config(wl.hf_config)[0]
    arch = wl.spec.architecture
    if arch not in HF_CONFIG_ARCHITECTURES:
        raise VramcalcError(
            f"{wl.spec.name}: the reference run rebuilds the model from its config.json, which "
            f"this {arch} spec does not carry; give the config.json (or its folder, or Hub id) "
            f"instead (rebuilt from a spec: {', '.join(sorted(HF_CONFIG_ARCHITECTURES))})"
        )
    cfg_dict = dict(hf_config_dict(wl.spec))
    model_type = cfg_dict.pop("model_type")
    cfg_dict.pop("architectures", None)
    return AutoConfig.for_model(model_type, **cfg_dict)


# transformers refuses SDPA for these (Gemma-2's logit soft-capping); on a GPU they run
# FlashAttention-2, which the trace models through a registered attention function.
NO_SDPA = {"gemma2"}
FLASH_STAND_IN = "vramcalc_gpu_attention"


def _register_flash_stand_in() -> str:
    """Register an attention function that calls ``F.scaled_dot_product_attention`` (which the
    trace replaces by its flash stand-in) without transformers' SDPA checks, with FA2's masks."""
    import torch.nn.functional as F
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, flash_attention_mask

    def attention(
        module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **kwargs: Any
    ) -> tuple[Any, None]:
        out = F.scaled_dot_product_attention(query, key, value, enable_gqa=True)
        return out.transpose(1, 2), None

    AttentionInterface.register(FLASH_STAND_IN, attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(FLASH_STAND_IN, flash_attention_mask)
    return FLASH_STAND_IN


def make_optimizer(wl: Workload, params: list[Any]) -> Any:
    import torch

    opt = wl.optimizer
    if opt == "adamw":
        return torch.optim.AdamW(params, lr=1e-5, foreach=True)
    if opt == "adam":
        return torch.optim.Adam(params, lr=1e-5, foreach=True)
    if opt == "adamw-fused":
        return torch.optim.AdamW(params, lr=1e-5, fused=True)
    if opt == "sgd":
        return torch.optim.SGD(params, lr=1e-3, foreach=True)
    if opt == "sgd-momentum":
        return torch.optim.SGD(params, lr=1e-3, momentum=0.9, foreach=True)
    if opt == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(params, lr=1e-3, relative_step=False, scale_parameter=False)
    raise VramcalcError(f"--optimizer {opt}: not runnable")  # pragma: no cover


def run_inference(model: Any, wl: Workload, device: str, phase: PhaseHook) -> Any:
    """One no-grad prefill with a KV cache (logits of the last position, or of all of them),
    then the fp32 copy of the kept logits that generate() makes before sampling
    (``outputs.logits[:, -1, :].to(copy=True, dtype=torch.float32)``) or a scorer makes before
    log_softmax. Returns (model output, fp32 logits)."""
    import torch

    ids = torch.randint(0, wl.spec.vocab_size, (wl.batch_size, wl.seq_len), device=device)
    phase("prefill")
    model.eval()
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1 if wl.logits == "last" else 0)
        scores = out.logits.to(dtype=torch.float32, copy=True)
    return out, scores


def run_training(
    model: Any,
    wl: Workload,
    device: str,
    phase: PhaseHook,
    steps: int = 2,
    on_step_end: Callable[[Any, list[Any]], None] | None = None,
) -> None:
    """`steps` optimizer steps of `grad_accum` micro-batches each; the caller measures the last one
    (the steady state: optimizer state exists, gradients were set to None after the previous step).
    Phases are announced as "step N: forward", "forward", "backward", "optimizer step";
    `on_step_end(optimizer, params)` runs after each step(), before zero_grad."""
    import torch

    model.train()
    if wl.grad_checkpointing == "full":
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(wl, params)
    autocast = wl.precision in ("bf16-mixed", "fp16-mixed")
    ac_dtype = torch.bfloat16 if wl.precision == "bf16-mixed" else torch.float16
    for step in range(steps):
        phase(f"step {step}: forward")
        for _ in range(wl.grad_accum):
            ids = torch.randint(0, wl.spec.vocab_size, (wl.batch_size, wl.seq_len), device=device)
            phase("forward")
            with torch.autocast(device_type=device, dtype=ac_dtype, enabled=autocast):
                loss = model(input_ids=ids, labels=ids).loss
            phase("backward")
            loss.backward()
            del loss
        phase("optimizer step")
        opt.step()
        if on_step_end is not None:
            on_step_end(opt, params)
        opt.zero_grad(set_to_none=True)
        phase("between steps")
