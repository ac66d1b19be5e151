"""Checkpoints load with ``weights_only=True``: our own files round-trip, code-running pickles are refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from pipeline.checkpoint import read_state_dict, save_atomic
from pipeline.errors import UserError

REPO = Path(__file__).resolve().parents[1]


class _WritesMarker:
    """Unpickling this calls ``open(marker, "w")``: harmless, but proof that code from the file ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_project_checkpoint_round_trips(tmp_path: Path) -> None:
    model = nn.Linear(3, 2)
    path = save_atomic(
        {
            "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()},
            "classes": ["run", "jump"],
            "config": {"lr": 1e-3, "out": "runs/a", "sizes": [1, 2]},
            "history": [{"epoch": 1, "loss": 0.5, "task_loss": None}],
        },
        tmp_path / "ckpt.pt",
    )
    state, classes = read_state_dict(path)
    assert classes == ("run", "jump")
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_pickled_full_model_is_refused_with_how_to_convert(tmp_path: Path) -> None:
    torch.save(nn.Linear(3, 2), tmp_path / "model.pt")
    with pytest.raises(UserError) as info:
        read_state_dict(tmp_path / "model.pt")
    message = str(info.value)
    assert "torch.nn.modules.linear.Linear" in message
    assert "torch.save(model.state_dict(), path)" in message and "environment that made it" in message
    assert "\n" not in message


def test_code_running_pickle_is_refused_and_does_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _WritesMarker(marker)}, evil)
    # The payload is real: an unrestricted load runs it.
    torch.load(evil, weights_only=False)
    assert marker.exists()
    marker.unlink()

    with pytest.raises(UserError, match="pickled Python objects .*io.open"):
        read_state_dict(evil)
    assert not marker.exists()

    # The student's own loaders refuse it too, without running it.
    from student_train.spec import load_student

    with pytest.raises(UserError, match="pickled Python objects .*io.open"):
        load_student(evil)
    assert not marker.exists()


def test_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="notes.txt is not a PyTorch checkpoint"):
        read_state_dict(tmp_path / "notes.txt")
    # text that happens to start like a pickle is not mistaken for pickled Python objects
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(UserError, match=r"junk.pt is not a PyTorch checkpoint \(") as info:
        read_state_dict(tmp_path / "junk.pt")
    assert "\n" not in str(info.value) and "pickled Python objects" not in str(info.value)
    torch.save({"epoch": 3}, tmp_path / "no_state.pt")
    with pytest.raises(UserError, match="holds no state_dict"):
        read_state_dict(tmp_path / "no_state.pt")


def test_no_unrestricted_torch_load_outside_tests() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{number}"
        for package in ("pipeline", "student_train", "teacher_extract")
        for path in sorted((REPO / package).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"weights_only\s*=\s*False", line)
    ]
    assert offenders == []
