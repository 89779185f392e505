"""One task vocabulary (spec/task.py): inference and training, with the command names infer and
train read as the same task wherever a task is typed."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from vramcalc.cli.app import app, main
from vramcalc.errors import VramcalcError
from vramcalc.spec.task import TASK_VERBS, TASKS, parse_task

runner = CliRunner()


@pytest.mark.parametrize(
    "text, task",
    [
        ("inference", "inference"),
        ("infer", "inference"),
        ("INFER", "inference"),
        (" Training ", "training"),
        ("train", "training"),
    ],
)
def test_both_spellings_name_one_task(text: str, task: str) -> None:
    assert parse_task(text) == task


@pytest.mark.parametrize("text", ["serve", "", "inferences", "fine-tune"])
def test_anything_else_is_refused_naming_the_valid_words(text: str) -> None:
    with pytest.raises(VramcalcError, match=r"inference \(infer\) or training \(train\)"):
        parse_task(text)


def test_the_verbs_are_the_command_names() -> None:
    assert TASKS == ("inference", "training")
    assert TASK_VERBS == {"inference": "infer", "training": "train"}


@pytest.mark.parametrize(
    "args",
    [
        ["fit", "llama-2-7b", "--gpu", "h100"],
        ["plan", "llama-2-7b", "--tokens", "1B"],
        ["sweep", "gpt2", "--batch-size", "1,2", "--format", "json"],
    ],
)
def test_task_option_reads_either_spelling(args: list[str]) -> None:
    """--task training and --task train (and inference / infer) give the same document."""
    outputs = {}
    for spelling in ("train", "training", "Training", "infer", "inference"):
        extra = ["--json"] if args[0] != "sweep" else []
        result = runner.invoke(app, [*args, "--task", spelling, *extra])
        assert result.exit_code == 0, result.output
        outputs[spelling] = json.loads(result.stdout)
    assert outputs["train"] == outputs["training"] == outputs["Training"]
    assert outputs["infer"] == outputs["inference"]
    assert outputs["train"] != outputs["infer"]


@pytest.mark.parametrize("command", ["fit", "plan", "sweep", "compare"])
def test_bad_task_is_one_line_naming_both_words(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "llama-2-7b", "--task", "serve"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'serve'" in err
    assert "inference (infer) or training (train)" in err


def test_library_reads_either_spelling() -> None:
    """vramcalc.fit/plan/sweep/compare take task="training" as task="train" (the same job)."""
    import vramcalc

    by_verb = vramcalc.fit("gpt2", "h100", task="train", seq_len=1024)
    by_noun = vramcalc.fit("gpt2", "h100", task="training", seq_len=1024)
    assert by_noun == by_verb and by_noun.task == "train"
    assert vramcalc.plan("llama-2-7b", task="Inference") == vramcalc.plan("llama-2-7b")
    # positional, as the sweep command passes it
    assert vramcalc.sweep("gpt2", "training", batch_size=[1, 2]).task == "train"
    with pytest.raises(VramcalcError, match=r"task 'serve': use inference \(infer\)"):
        vramcalc.compare("gpt2", task="serve")
