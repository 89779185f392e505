"""The five stages, one function each: which terms are alive in which phase of an iteration.

Phases of one PPO iteration (the order of DeepSpeed-Chat's ``step3_rlhf_finetuning`` and OpenRLHF's
PPO trainer: make experience, then train actor, then critic):

1. ``rollout``: the actor generates responses for ``rollout_batch`` prompts (KV cache for prompt +
   response tokens of each, prefill workspace).
2. ``score actor`` / ``score ref`` / ``score critic`` / ``score reward``: one no-grad forward each
   over the generated sequences (actor and reference log-probs need logits of every position; the
   critic and the RM output a scalar per position).
3. ``train actor`` / ``train critic``: forward + backward + optimizer step on ``batch_size``
   sequences of the experience; the reference log-probs were stored in the experience buffer.

Between phases a trainable model keeps its resident state (weights, optimizer state; gradients are
freed by ``zero_grad(set_to_none=True)``), frozen models keep their weights unless offloaded, and
activations of a phase are gone by the next one.
"""

from __future__ import annotations

from vramcalc.core.rlhf.models import RoleComponent
from vramcalc.core.rlhf.roles import Job, with_part
from vramcalc.core.workloads import resolve_seq_len
from vramcalc.spec.model import ModelSpec


def sft(job: Job) -> None:
    """Supervised fine-tuning: one training step of the policy."""
    req, policy = job.req, job.policy
    seq = resolve_seq_len(policy, req.seq_len)
    est = job.train("policy", policy, req.batch_size, seq)
    job.add_phase("train", "SFT: forward + backward + step", job.training("policy", est))
    job.train_flops("train policy", "policy", policy, req.batch_size, seq)


def rm(job: Job, reward: ModelSpec) -> None:
    """Reward model: K responses per prompt scored once each (InstructGPT §3.5)."""
    req = job.req
    seq = resolve_seq_len(reward, req.seq_len)
    k = req.comparisons
    pairs = k * (k - 1) // 2
    sequences = req.batch_size * k
    est = job.train("reward", reward, sequences, seq)
    what = f"RM: {req.batch_size} prompts × K={k} responses, all {pairs} pairs per prompt"
    job.add_phase("train", what, job.training("reward", est))
    job.train_flops("train reward", "reward", reward, sequences, seq)
    job.assumptions.append(
        f"each of the K={k} responses is scored once; the C(K,2)={pairs} pairwise losses "
        "reuse the K scalar rewards (InstructGPT §3.5), so activations scale with K, not C(K,2)"
    )


def dpo(job: Job) -> None:
    """DPO: the policy trains on chosen + rejected against reference log-probs (Rafailov et al.)."""
    req, policy = job.req, job.policy
    seq = resolve_seq_len(policy, req.seq_len)
    sequences = 2 * req.batch_size  # chosen + rejected
    est = job.train("policy", policy, sequences, seq)
    stored = job.part(
        "reference",
        "reference_logps",
        sequences * 4,
        "fp32 summed log-prob of each chosen and rejected sequence",
    )
    train_what = "policy forward + backward on chosen and rejected"
    if req.reference == "precomputed":
        job.assumptions.append("reference log-probs precomputed offline: no reference model")
        job.add_phase("train policy", train_what, [*job.training("policy", est), stored])
    else:
        ref = job.frozen("reference", policy, job.shares_base())
        bpp = job.frozen_bpp(policy)
        fwd = job.forward(
            "reference", policy, sequences, seq, "log-probs of chosen and rejected", bpp
        )
        held = [] if req.offload_frozen else [ref]
        resident = job.resident("policy", est)
        job.add_phase(
            "score ref", "reference forward on chosen and rejected", [*resident, ref, *fwd]
        )
        job.add_phase("train policy", train_what, [*job.training("policy", est), *held, stored])
        job.fwd_flops("score ref", "reference", policy, sequences, seq)
    job.train_flops("train policy", "policy", policy, sequences, seq)


def grpo(job: Job, reward: ModelSpec | None) -> None:
    """GRPO: G responses per prompt, group-mean baseline, no critic (Shao et al. 2024, §4.1)."""
    req, spec = job.req, job.policy
    seq, sequences = req.sequence_tokens, req.rollout_batch * req.group_size
    job.experience_group = "policy"
    # TRL's GRPOTrainer computes old and reference log-probs in chunks of the training batch
    chunk = min(req.score_batch or req.batch_size, sequences)
    est = job.train("policy", spec, req.batch_size, seq)
    resident = job.resident("policy", est)
    ref = job.frozen("reference", spec, job.shares_base())
    rm_weights = job.frozen("reward", reward) if reward is not None else None
    frozen = [ref] if rm_weights is None else [ref, rm_weights]
    held = [] if req.offload_frozen else frozen
    buf = job.experience(sequences)

    def score(
        name: str, role: str, model: ModelSpec, what: str, why: str, extra: list[RoleComponent]
    ) -> None:
        bpp = 2.0 if role == "policy" else job.frozen_bpp(model)
        fwd = job.forward(role, model, chunk, seq, what, bpp)
        job.add_phase(name, why, [*resident, *fwd, *extra, buf])
        job.fwd_flops(name, role, model, sequences, seq)

    what = f"policy generates G={req.group_size} responses for {req.rollout_batch} prompts"
    job.add_phase("rollout", what, [*job.rollout("policy", resident, sequences), *held, buf])
    job.fwd_flops("generate", "policy", spec, sequences, seq)
    if req.ppo_epochs > 1:  # old log-probs differ from the current ones only after an update
        score("score policy", "policy", spec, "old log-probs", "old log-probs", held)
    why = "reference log-probs for the KL term"
    score("score ref", "reference", spec, "reference log-probs", why, with_part(ref, held))
    if reward is not None and rm_weights is not None:
        why = "reward model scores each response"
        score("score reward", "reward", reward, "scalar reward", why, with_part(rm_weights, held))
    else:
        job.assumptions.append("rewards from rule-based functions (no reward model)")
    what = f"policy forward + backward on {req.batch_size} sequences, group-normalised advantages"
    job.add_phase("train policy", what, [*job.training("policy", est), *held, buf])
    job.train_flops("train policy", "policy", spec, sequences, seq, req.ppo_epochs)


def ppo(job: Job, reward: ModelSpec, critic: ModelSpec) -> None:
    """PPO (InstructGPT §3.5): actor and critic trained, reference and reward frozen."""
    req, spec = job.req, job.policy
    seq, sequences = req.sequence_tokens, req.rollout_batch
    # DeepSpeed-Chat's generate_experience scores the whole generation batch at once
    chunk = min(req.score_batch or sequences, sequences)
    actor_est = job.train("actor", spec, req.batch_size, seq)
    critic_est = job.train("critic", critic, req.batch_size, seq)
    actor, crit = job.resident("actor", actor_est), job.resident("critic", critic_est)
    ref = job.frozen("reference", spec, job.shares_base())
    rm_weights = job.frozen("reward", reward)
    held = [] if req.offload_frozen else [ref, rm_weights]
    buf = job.experience(sequences)

    def score(
        name: str, role: str, model: ModelSpec, what: str, extra: list[RoleComponent]
    ) -> None:
        bpp = job.frozen_bpp(model) if role in ("reference", "reward") else 2.0
        fwd = job.forward(role, model, chunk, seq, what, bpp)
        job.add_phase(name, what, [*actor, *crit, *fwd, *extra, buf])
        job.fwd_flops(name, role, model, sequences, seq)

    what = f"actor generates {req.response_len} tokens for {sequences} prompts of {req.prompt_len}"
    job.add_phase("rollout", what, [*job.rollout("actor", actor, sequences), *crit, *held, buf])
    job.fwd_flops("generate", "actor", spec, sequences, seq)
    score("score actor", "actor", spec, "old actor log-probs", held)
    score("score ref", "reference", spec, "reference log-probs (KL penalty)", with_part(ref, held))
    score("score critic", "critic", critic, "values", held)
    score("score reward", "reward", reward, "reward of each response", with_part(rm_weights, held))
    what = f"actor forward + backward on {req.batch_size} sequences (clipped PPO loss)"
    job.add_phase("train actor", what, [*job.training("actor", actor_est), *crit, *held, buf])
    what = f"critic forward + backward on {req.batch_size} sequences (value loss)"
    job.add_phase("train critic", what, [*actor, *job.training("critic", critic_est), *held, buf])
    job.train_flops("train actor", "actor", spec, sequences, seq, req.ppo_epochs)
    job.train_flops("train critic", "critic", critic, sequences, seq, req.ppo_epochs)
    job.assumptions.append(
        "experience made once per iteration (rollout_batch prompts), then trained in "
        "micro-batches of batch_size sequences"
    )
