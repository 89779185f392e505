"""The task vocabulary, said once: a job is ``inference`` (serving) or ``training``.

These are the words of the library and of every JSON document (``Estimate.kind``). People also
type the command names ``infer`` and ``train`` (``vramcalc fit --task infer``): both spellings are
read, and :func:`parse_task` turns either into the one vocabulary.
"""

from __future__ import annotations

from typing import Literal, get_args

from vramcalc.errors import VramcalcError

Task = Literal["inference", "training"]
TASKS: tuple[Task, ...] = get_args(Task)
# what users type → the task it names (the command names are verbs)
TASK_ALIASES: dict[str, Task] = {
    "inference": "inference",
    "infer": "inference",
    "training": "training",
    "train": "training",
}
# the command-name spelling of each task (`vramcalc infer`, `cost train`, `--task infer`)
TASK_VERBS: dict[Task, str] = {"inference": "infer", "training": "train"}


def parse_task(text: str) -> Task:
    """'inference', 'infer', 'training' or 'train' (any case) as a Task; anything else is an
    error naming the valid spellings."""
    task = TASK_ALIASES.get(str(text).strip().lower())
    if task is None:
        raise VramcalcError(f"task {text!r}: use inference (infer) or training (train)")
    return task
