"""``predict-student`` and ``export-student``: a trained student on video files and frame folders, without teacher
or cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers import CLASSES, moving_square, truncated_avi, write_frames

from pipeline.clips import spread_frames
from pipeline.frames import student_images
from pipeline.video import decode, write_video
from student_train.cli_use import export_student, predict_student
from student_train.spec import load_student


def by_hand(checkpoint: Path, frames: np.ndarray) -> torch.Tensor:
    """Mean class probabilities of the student over ``frames``, prepared as extraction stores them."""
    model, spec, _ = load_student(checkpoint)
    with torch.no_grad():
        out, _ = model(spec.preset().eval(torch.from_numpy(student_images(frames, spec.image_size))))
    return torch.softmax(out.double(), 1).mean(0)


def run_predict(checkpoint: Path, video: Path, frames: int = 3) -> dict:
    result = CliRunner().invoke(
        predict_student, [str(video), "--checkpoint", str(checkpoint), "--frames", str(frames), "--json"]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def check_top(got: dict, probs: torch.Tensor) -> None:
    assert got["top"][0]["class"] == CLASSES[int(probs.argmax())]
    assert got["top"][0]["probability"] == pytest.approx(float(probs.max()), abs=1e-5)
    assert sum(p["probability"] for p in got["top"]) == pytest.approx(1.0, abs=1e-4)


def test_predict_on_a_video_equals_the_model_by_hand(trained_student: tuple[Path, Path], tmp_path: Path) -> None:
    checkpoint = trained_student[1] / "checkpoint.pt"
    video = write_video(tmp_path / "v.avi", moving_square(30, 48, 64), fps=25)
    got = run_predict(checkpoint, video)
    assert got["frames"] == spread_frames(30, 3) == [5, 15, 25]
    check_top(got, by_hand(checkpoint, decode(video, got["frames"]).frames))
    text = CliRunner().invoke(predict_student, [str(video), "--checkpoint", str(checkpoint), "--top-k", "2"])
    assert text.exit_code == 0 and f"{video} (8 frames)" in text.output and len(text.output.splitlines()) == 3


def test_predict_on_a_frame_folder(trained_student: tuple[Path, Path], tmp_path: Path) -> None:
    checkpoint = trained_student[1] / "checkpoint.pt"
    frames = moving_square(12, 48, 64, seed=4)
    write_frames(tmp_path / "clip", frames)
    got = run_predict(checkpoint, tmp_path / "clip", frames=4)
    assert got["frames"] == spread_frames(12, 4) == [1, 4, 7, 10]
    check_top(got, by_hand(checkpoint, frames[got["frames"]]))  # PNG is lossless: the frames themselves


def test_predict_spreads_over_the_frames_that_exist(trained_student: tuple[Path, Path], tmp_path: Path) -> None:
    checkpoint = trained_student[1] / "checkpoint.pt"
    video = truncated_avi(tmp_path / "cut.avi", moving_square(60, 32, 32), keep=20)  # the header claims 60
    assert run_predict(checkpoint, video, frames=2)["frames"] == spread_frames(20, 2) == [5, 15]


def test_export_student_equals_the_model(trained_student: tuple[Path, Path], tmp_path: Path) -> None:
    checkpoint = trained_student[1] / "checkpoint.pt"
    result = CliRunner().invoke(export_student, [str(checkpoint), "--out", str(tmp_path / "export"), "--format", "pt2"])
    assert result.exit_code == 0, result.output
    exported = torch.export.load(tmp_path / "export" / "student.pt2").module()
    model, _, _ = load_student(checkpoint)
    x = torch.rand(5, 3, 14, 14)
    with torch.no_grad():
        for a, b in zip(exported(x), model(x), strict=True):
            torch.testing.assert_close(a, b)
    assert json.loads((tmp_path / "export" / "student.json").read_text())["classes"] == list(CLASSES)


def test_predict_answers_every_readable_video_and_lists_the_rest(
    trained_student: tuple[Path, Path], tmp_path: Path
) -> None:
    """An unreadable file among good ones: the good ones are answered, the bad one named, exit 1."""
    checkpoint = trained_student[1] / "checkpoint.pt"
    good = [write_video(tmp_path / f"v{i}.avi", moving_square(12, 32, 32, seed=i)) for i in range(2)]
    bad = tmp_path / "broken.avi"
    bad.write_bytes(b"not a video at all")
    args = [str(good[0]), str(bad), str(good[1]), "--checkpoint", str(checkpoint), "--json"]
    result = CliRunner().invoke(predict_student, args)
    assert result.exit_code == 1, result.output
    answered = [json.loads(line)["video"] for line in result.stdout.splitlines()]
    assert answered == [str(good[0]), str(good[1])]
    assert f"1 of 3 videos could not be read: {bad}" in result.output
