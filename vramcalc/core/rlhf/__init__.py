"""RLHF memory and compute: InstructGPT's three stages (SFT, reward model, PPO), DPO and GRPO.

InstructGPT (Ouyang et al. 2022, arXiv 2203.02155, §3.5) trains in three stages: supervised
fine-tuning (SFT) on demonstrations; a reward model (RM): the SFT model with its unembedding replaced
by a scalar head, trained on K = 4..9 ranked responses per prompt, all C(K,2) comparisons of a prompt
in one batch element; then PPO against the RM with a per-token KL penalty to the frozen SFT model,
the value function initialised from the RM. PPO holds four models: actor and critic (trained),
reference and reward (frozen). DPO (Rafailov et al. 2023, arXiv 2305.18290) trains the policy on
chosen/rejected pairs against a frozen reference (or its precomputed log-probs); GRPO (Shao et al.
2024, DeepSeekMath, arXiv 2402.03300, §4.1) samples G responses per prompt and uses the group's
mean reward as the baseline: no critic.

The package, in reading order:

* ``models``: the typed request (:class:`RlhfRequest`, :class:`TrainingOptions`) and result
  (:class:`RlhfEstimate`: phases, GPU groups, FLOP terms);
* ``roles``: what each model holds (training state, frozen weights, forwards, rollout, experience)
  and the FLOPs of its work, read from the memory and FLOPs modules, never re-derived;
* ``stages``: one function per stage saying which terms are alive in which phase;
* ``assemble``: runtime terms, each GPU group's peak and fit, time and price;
* ``estimate``: :func:`estimate_rlhf`, the entry point.
"""

from vramcalc.core.rlhf.estimate import estimate_rlhf
from vramcalc.core.rlhf.models import STAGES, RlhfEstimate, RlhfRequest, TrainingOptions
from vramcalc.core.rlhf.roles import reward_model_spec

__all__ = [
    "STAGES",
    "RlhfEstimate",
    "RlhfRequest",
    "TrainingOptions",
    "estimate_rlhf",
    "reward_model_spec",
]
