"""`estimate_rlhf`: validate the request, build the stage's job, run its stage function."""

from __future__ import annotations

from typing import Any

from vramcalc.core.rlhf.assemble import finish
from vramcalc.core.rlhf.models import STAGE_ROLES, RlhfEstimate, RlhfRequest, TrainingOptions
from vramcalc.core.rlhf.roles import Job, reward_model_spec
from vramcalc.core.rlhf.stages import dpo, grpo, ppo, rm, sft
from vramcalc.core.workloads import (
    resolve_gpu,
    resolve_model,
    resolve_seq_len,
    resolve_source,
    validate,
)
from vramcalc.errors import VramcalcError, checked_keywords
from vramcalc.spec.model import ModelSpec


def check_role_gpus(req: RlhfRequest, role_gpus: dict[str, int]) -> None:
    """GPUs per model: only with separate placement, for the stage's roles, positive counts."""
    if not role_gpus:
        return
    valid = STAGE_ROLES[req.stage]
    if req.placement != "separate":
        raise VramcalcError(
            "GPUs per model need --placement separate (colocated models share GPUs)"
        )
    for role, n in role_gpus.items():
        if role not in valid:
            raise VramcalcError(
                f"no model {role!r} in the {req.stage} stage; give GPUs for: {', '.join(valid)}"
            )
        if not isinstance(n, int) or n < 1:
            raise VramcalcError(f"GPUs for {role} must be a positive integer (got {n!r})")


@checked_keywords
def estimate_rlhf(
    model: str | ModelSpec,
    *,
    stage: str,
    reward_model: str | ModelSpec | None = None,
    critic_model: str | ModelSpec | None = None,
    placement: str = "colocated",
    precision: str = "bf16-mixed",
    optimizer: str = "adamw",
    grad_checkpointing: str = "none",
    attention: str = "flash",
    batch_size: int = 1,
    seq_len: int | None = None,
    prompt_len: int = 256,
    response_len: int = 256,
    rollout_batch: int = 8,
    comparisons: int = 4,
    group_size: int = 8,
    frozen_dtype: str = "bf16",
    kv_dtype: str | None = None,
    offload_frozen: bool = False,
    reference: str = "model",
    reference_shares_base: bool | None = None,
    rollout_weights: str = "shared",
    rollout_tp: int = 1,
    ppo_epochs: int = 1,
    score_batch: int | None = None,
    iterations: int = 1,
    gpu: str | None = None,
    gpu_mem_gib: float | None = None,
    peak_tflops: float | None = None,
    mfu: float | None = None,
    usd_per_gpu_hour: float | None = None,
    role_gpus: dict[str, int] | None = None,
    **training_options: Any,
) -> RlhfEstimate:
    """Per-GPU peak memory (and FLOPs) of one RLHF stage of `model` (the policy / SFT model).

    ``training_options`` (the fields of :class:`TrainingOptions`: LoRA, ZeRO/FSDP sharding, GPU
    counts and parallel degrees) are forwarded to :func:`vramcalc.core.training.estimate_training`
    for every trainable model (actor, critic, policy, RM); another name is a VramcalcError. With
    ``placement="separate"`` each model gets its own group of that many GPUs, or of
    ``role_gpus[role]`` (e.g. ``{"critic": 8}``; the global batch stays that of the lead model's
    ranks); ``"colocated"`` puts all of them on one group. ``usd_per_gpu_hour`` is the price of one
    GPU for one hour; ``cost_usd`` of the result counts every GPU of every group.
    """
    req = validate(
        RlhfRequest,
        stage=stage,
        placement=placement,
        precision=precision,
        optimizer=optimizer,
        grad_checkpointing=grad_checkpointing,
        attention=attention,
        batch_size=batch_size,
        seq_len=seq_len,
        prompt_len=prompt_len,
        response_len=response_len,
        rollout_batch=rollout_batch,
        comparisons=comparisons,
        group_size=group_size,
        frozen_dtype=frozen_dtype,
        kv_dtype=kv_dtype,
        offload_frozen=offload_frozen,
        reference=reference,
        reference_shares_base=reference_shares_base,
        rollout_weights=rollout_weights,
        rollout_tp=rollout_tp,
        ppo_epochs=ppo_epochs,
        score_batch=score_batch,
        iterations=iterations,
        gpu=gpu,
        gpu_mem_gib=gpu_mem_gib,
        peak_tflops=peak_tflops,
        mfu=mfu,
        usd_per_gpu_hour=usd_per_gpu_hour,
    )
    assert isinstance(req, RlhfRequest)
    options = TrainingOptions.from_keywords(
        {k: v for k, v in training_options.items() if v is not None}
    )
    source = resolve_source(model)
    policy = source.spec
    fit = resolve_gpu(req.gpu, req.gpu_mem_gib)
    if req.stage in ("ppo", "grpo"):
        resolve_seq_len(policy, req.sequence_tokens)  # learned positions cap it
    gpus = dict(role_gpus or {})
    check_role_gpus(req, gpus)
    job = Job(req, options, policy, gpus)
    if source.kind not in ("preset", "spec"):  # a file or Hub id: how its weights were counted
        job.assumptions += [f"policy {policy.name}: {note}" for note in source.notes]

    if req.stage == "sft":
        sft(job)
    elif req.stage == "rm":
        rm(job, reward_model_spec(resolve_model(reward_model or policy)))
    elif req.stage == "dpo":
        dpo(job)
    elif req.stage == "grpo":
        grpo(job, reward_model_spec(resolve_model(reward_model)) if reward_model else None)
    else:
        reward = reward_model_spec(resolve_model(reward_model or policy))
        critic = reward_model_spec(resolve_model(critic_model)) if critic_model else reward
        ppo(job, reward, critic)
    return finish(job, fit)
