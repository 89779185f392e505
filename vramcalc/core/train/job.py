"""What every pipeline stage of a training job shares (built once per estimate)."""

from __future__ import annotations

from dataclasses import dataclass

from vramcalc.core import parallel as par
from vramcalc.core.train.terms import Finetune
from vramcalc.spec.conventions import Conventions
from vramcalc.spec.model import ModelSpec
from vramcalc.spec.precision import Precision


@dataclass(slots=True)  # built per estimate: a plain slots class is the cheapest
class StageJob:
    """The job: model, precision, optimizer, batch, what is trained, the plan and the stack."""

    spec: ModelSpec
    precision: Precision
    optimizer: str
    batch_size: int
    seq_len: int
    grad_accum: int
    checkpointing: bool
    attention: str
    ft: Finetune
    plan: par.ParallelPlan
    conv: Conventions
