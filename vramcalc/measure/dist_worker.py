"""One rank of a distributed run, started by torch's launcher (``python -m torch.distributed.run``).

``python -m torch.distributed.run --standalone --nproc-per-node N -m vramcalc.measure.dist_worker
RUNS.json OUTDIR``: every rank reads the same list of runs (dist.py writes it), runs them one after
the other with the real engine — FSDP2 ``fully_shard``, DTensor ``parallelize_module``, TP×FSDP on a
2-D mesh, DeepSpeed ZeRO, DistributedDataParallel — for two optimizer steps on random weights, and
writes ``OUTDIR/rank{R}.json`` with the readings of the second step (the steady state: optimizer
state exists). On the CPU (gloo) the reading is the peak of live tensor bytes (livebytes.py); on
CUDA (NCCL) it is ``torch.cuda.max_memory_allocated`` / ``max_memory_reserved`` and NVML's figure.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from .livebytes import LiveBytes

TP_PLAN_COLWISE = (
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
)
TP_PLAN_ROWWISE = ("self_attn.o_proj", "mlp.down_proj")


def _build(run: dict[str, Any], device: str) -> Any:
    """The transformers model of the run, random weights; LoRA wraps it with PEFT."""
    import torch

    from vramcalc.spec.model import ModelSpec

    from .workload import Workload, build_model

    spec = ModelSpec(**run["spec"])
    # a LoRA base is stored in the compute dtype (bf16 under bf16-mixed), as the estimate assumes
    precision = run["precision"]
    if run["method"] == "lora" and precision.endswith("-mixed"):
        precision = precision.split("-")[0]
    if run["engine"] == "zero" and precision.endswith("-mixed"):
        precision = "fp32"  # DeepSpeed casts the module to bf16 itself
    wl = Workload("training", spec, run["batch_size"], run["seq_len"], precision=precision)
    torch.manual_seed(0)
    model = build_model(wl, device)
    if run["grad_checkpointing"] == "full":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if run["method"] == "lora":
        from peft import LoraConfig, get_peft_model

        cfg = LoraConfig(
            r=run["lora_rank"], lora_alpha=2 * run["lora_rank"], target_modules="all-linear"
        )
        model = get_peft_model(model, cfg)  # adapters in fp32 (autocast_adapter_dtype=True)
        if run["grad_checkpointing"] == "full":
            model.enable_input_require_grads()
    return model


def _layers(model: Any) -> Any:
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inner.model.layers, inner


def _tp(model: Any, mesh: Any) -> Any:
    """Megatron-style tensor parallelism with DTensor: q/k/v/gate/up column-wise, o/down row-wise,
    the embedding row-wise (vocab split), lm_head column-wise with a vocab-parallel loss."""
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor.parallel import (
        ColwiseParallel,
        RowwiseParallel,
        parallelize_module,
    )

    layers, inner = _layers(model)
    for layer in layers:
        plan: dict[str, Any] = dict.fromkeys(TP_PLAN_COLWISE, ColwiseParallel())
        plan |= dict.fromkeys(TP_PLAN_ROWWISE, RowwiseParallel())
        parallelize_module(layer, mesh, plan)
    parallelize_module(
        inner,
        mesh,
        {
            "model.embed_tokens": RowwiseParallel(input_layouts=Replicate()),
            "lm_head": ColwiseParallel(output_layouts=Shard(-1), use_local_output=False),
        },
    )
    return model


def _wrap(run: dict[str, Any], model: Any, device: str) -> tuple[Any, Any, dict[str, Any]]:
    """(model to call, optimizer, flags) for the run's engine."""
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    world = dist.get_world_size()
    dev_type = device.split(":")[0]
    engine, mixed = run["engine"], run["precision"].endswith("-mixed")
    flags = {"autocast": False, "loss_parallel": False, "deepspeed": False}
    params = lambda m: [p for p in m.parameters() if p.requires_grad]  # noqa: E731
    if engine in ("fsdp", "tp-fsdp"):
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        if engine == "tp-fsdp":
            mesh2 = init_device_mesh(
                dev_type, (world // run["tp"], run["tp"]), mesh_dim_names=("dp", "tp")
            )
            _tp(model, mesh2["tp"])
            mesh, flags["loss_parallel"] = mesh2["dp"], True
        else:
            mesh = init_device_mesh(dev_type, (world,))
        mp = (
            MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
            if mixed
            else MixedPrecisionPolicy()
        )
        reshard = run["fsdp"] == "full"
        layers, _ = _layers(model)
        for layer in layers:
            fully_shard(layer, mesh=mesh, reshard_after_forward=reshard, mp_policy=mp)
        fully_shard(model, mesh=mesh, reshard_after_forward=reshard, mp_policy=mp)
        return model, torch.optim.AdamW(params(model), lr=1e-4, foreach=True), flags
    if engine == "tp":
        mesh = init_device_mesh(dev_type, (world,))
        _tp(model, mesh)
        flags["loss_parallel"] = True
        flags["autocast"] = mixed
        # norms stay plain tensors beside DTensor weights: foreach kernels refuse the mixed list
        return model, torch.optim.AdamW(params(model), lr=1e-4, foreach=False), flags
    if engine == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        ddp = DDP(model, device_ids=None if dev_type == "cpu" else [torch.device(device).index])
        flags["autocast"] = mixed
        return ddp, torch.optim.AdamW(params(model), lr=1e-4, foreach=True), flags
    if engine == "zero":
        import deepspeed

        conf: dict[str, Any] = {
            "train_micro_batch_size_per_gpu": run["batch_size"],
            "gradient_accumulation_steps": 1,
            "zero_optimization": {"stage": run["zero"]},
            "bf16": {"enabled": mixed},
        }
        opt = torch.optim.AdamW(params(model), lr=1e-4, foreach=True)
        eng, ds_opt, _, _ = deepspeed.initialize(model=model, optimizer=opt, config=conf)
        flags["deepspeed"] = True
        return eng, ds_opt, flags
    raise ValueError(f"engine {engine!r}")


def _optimizer_tensors(opt: Any) -> tuple[list[Any], list[Any]]:
    """(optimizer state, fp32 master partitions) of a torch or DeepSpeed optimizer."""
    inner = getattr(opt, "optimizer", opt)
    state = [t for s in inner.state.values() for t in s.values()]
    masters = [p for g in inner.param_groups for p in g["params"]] if inner is not opt else []
    return state, masters


def run_one(run: dict[str, Any], device: str) -> dict[str, Any]:
    """Two optimizer steps of `run`; the readings of the second."""
    import torch

    cuda = device.startswith("cuda")
    tracker = LiveBytes()
    mode = contextlib.nullcontext() if cuda else tracker.mode()
    t0 = time.perf_counter()
    out: dict[str, Any] = {"label": run["label"], "error": None}
    with mode:
        model = _build(run, device)
        model, opt, flags = _wrap(run, model, device)
        tracker.mark("parameters", [getattr(p, "ds_tensor", p) for p in model.parameters()])
        saved = tracker.sets["activations"]

        def pack(t: Any) -> Any:
            uid = tracker.add(t)
            if uid is not None:
                saved.add(uid)
            return t

        vocab = run["spec"]["vocab_size"]
        for step in range(2):
            if step == 1:
                gc.collect()
                if cuda:
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                tracker.start()
            ids = torch.randint(0, vocab, (run["batch_size"], run["seq_len"]), device=device)
            ctx = contextlib.ExitStack()
            if flags["loss_parallel"]:
                from torch.distributed.tensor.parallel import loss_parallel

                ctx.enter_context(loss_parallel())
            ctx.enter_context(
                torch.autocast(device.split(":")[0], torch.bfloat16, enabled=flags["autocast"])
            )
            with ctx, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                tracker.phase = "forward"
                loss = model(input_ids=ids, labels=ids).loss
                tracker.phase = "backward"
                if flags["deepspeed"]:
                    model.backward(loss)
                else:
                    loss.backward()
            del loss
            tracker.phase = "optimizer step"
            if flags["deepspeed"]:
                model.step()
            else:
                opt.step()
            state, masters = _optimizer_tensors(opt)
            tracker.mark("optimizer_state", state)
            tracker.mark("master_weights", masters)
            tracker.mark("gradients", [p.grad for p in model.parameters() if p.grad is not None])
            if not flags["deepspeed"]:
                opt.zero_grad(set_to_none=True)
            tracker.phase = "between steps"
        tracker.measuring = False
    out["peak_bytes"] = tracker.peak_bytes if not cuda else None
    out["phase"] = tracker.peak_phase
    out["by_category"] = tracker.breakdown() if not cuda else {}
    if cuda:
        out["max_memory_allocated_bytes"] = int(torch.cuda.max_memory_allocated())
        out["max_memory_reserved_bytes"] = int(torch.cuda.max_memory_reserved())
        from vramcalc import nvml as gpu

        out["nvml_process_bytes"] = gpu.process_used_bytes(os.getpid(), torch.cuda.current_device())
    out["seconds"] = round(time.perf_counter() - t0, 3)
    del model, opt
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return out


def main(argv: list[str]) -> int:
    import torch
    import torch.distributed as dist

    runs_path, out_dir = Path(argv[0]), Path(argv[1])
    spec = json.loads(runs_path.read_text(encoding="utf-8"))
    backend = spec["backend"]
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = "cpu"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    dist.init_process_group(backend)
    rank = dist.get_rank()
    results = []
    import torch.nn.functional as F

    linear = F.linear
    for run in spec["runs"]:
        try:
            results.append(run_one(run, device))
        except Exception as exc:  # one failed configuration is a result; the launch goes on
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            results.append({"label": run["label"], "error": f"{type(exc).__name__}: {first}"})
        # DeepSpeed ZeRO-3 replaces F.linear for the whole process ("This will persist unless
        # manually reset", partition_parameters.py _enable_mem_efficient_linear): the next run
        # must get torch's own
        F.linear = linear
        dist.barrier()
    (out_dir / f"rank{rank}.json").write_text(json.dumps(results), encoding="utf-8")
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":  # pragma: no cover - started by torch.distributed.run
    sys.exit(main(sys.argv[1:]))
