"""``evaluate-student``: metrics countable by hand, fidelity against the train-set mean, and which caches it accepts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import CLASSES, make_cache

from pipeline.cache import FeatureCache
from student_train.cli_use import evaluate_student
from student_train.evaluate import compute_metrics
from student_train.spec import StudentSpec


def spec_of(cache: FeatureCache) -> StudentSpec:
    return StudentSpec(
        student="tiny",
        task="classification",
        loss="mse_sigmoid",
        num_outputs=3,
        teacher_dim=8,
        relu=True,
        classes=CLASSES,
        image_size=16,
        crop_size=14,
        feature_mean=tuple(map(float, cache.feature_mean)),
        feature_std=tuple(map(float, cache.feature_std)),
    )


def test_metrics_on_hand_made_cache(tmp_path: Path) -> None:
    """Three test videos of two clips each; outputs chosen so every figure is countable by hand."""
    cache = FeatureCache(make_cache(tmp_path / "c.h5", videos_per_class=3, clips=2))
    rows = cache.clip_indices("test")  # one test video per class, 2 clips each: labels 0,0,1,1,2,2
    assert list(cache.clip_label[rows]) == [0, 0, 1, 1, 2, 2]
    outputs = np.array(
        [
            [5.0, 0.0, 0.0],  # video 0 (Red): right
            [0.0, 1.0, 0.0],  # wrong; mean softmax of video 0 is still Red
            [0.0, 0.0, 3.0],  # video 1 (Green): wrong
            [0.0, 0.5, 0.0],  # right; mean softmax of video 1 is Blue: wrong
            [0.0, 0.0, 1.0],  # video 2 (Blue): right
            [0.0, 0.0, 1.0],  # right
        ]
    )
    teacher = cache.features(rows)
    m = compute_metrics(cache, rows, outputs, teacher.copy(), spec_of(cache))
    assert m["clip_top1"] == pytest.approx(4 / 6)
    assert m["video_top1"] == pytest.approx(2 / 3)
    assert m["per_class"] == {"Red": 1.0, "Green": 0.0, "Blue": 1.0}
    assert m["confusion"] == [[1, 0, 0], [0, 0, 1], [0, 0, 1]]
    assert m["fidelity_cosine"] == pytest.approx(1.0) and m["fidelity_r2"] == pytest.approx(1.0)
    assert m["teacher_clip_top1"] == 1.0 and m["teacher_video_top1"] == 1.0
    assert m["chance"] == pytest.approx(1 / 3) and (m["num_clips"], m["num_videos"]) == (6, 3)


def test_fidelity_r2_is_against_the_train_set_mean(tmp_path: Path) -> None:
    cache = FeatureCache(make_cache(tmp_path / "c.h5", videos_per_class=3, clips=2))
    rows = cache.clip_indices("test")
    spec, outputs = spec_of(cache), np.zeros((len(rows), 3))
    teacher = cache.features(rows).astype(np.float64)
    train_mean = cache.features(cache.clip_indices("train")).astype(np.float64).mean(0)
    np.testing.assert_allclose(cache.feature_mean, train_mean, rtol=1e-6)
    m = compute_metrics(cache, rows, outputs, np.broadcast_to(train_mean, teacher.shape).copy(), spec)
    assert m["fidelity_r2"] == pytest.approx(0.0, abs=1e-6)  # the mean predictor is the zero of R²
    assert m["mean_feature_r2"] == pytest.approx(0.0, abs=1e-6)
    assert m["mean_feature_cosine"] == pytest.approx(m["fidelity_cosine"], rel=1e-6)
    # by hand: 1 - SSE / sum of squares around the train mean (not the test split's own mean)
    half = (teacher + train_mean) / 2
    hand = 1 - ((half - teacher) ** 2).sum() / ((teacher - train_mean) ** 2).sum()
    assert compute_metrics(cache, rows, outputs, half, spec)["fidelity_r2"] == pytest.approx(hand, rel=1e-5)
    test_mean = compute_metrics(cache, rows, outputs, np.broadcast_to(teacher.mean(0), teacher.shape).copy(), spec)
    assert test_mean["fidelity_r2"] > 0  # the split's own mean knows the answer a little: not the reference


def test_evaluate_student_reproduces_the_training_metrics(trained_student: tuple[Path, Path], tmp_path: Path) -> None:
    cache, run = trained_student
    result = CliRunner().invoke(
        evaluate_student, [str(run / "checkpoint.pt"), "--cache", str(cache), "--out", str(tmp_path / "e")]
    )
    assert result.exit_code == 0, result.output
    evaluated = json.loads(result.stdout)
    saved = json.loads((run / "metrics.json").read_text())
    for key in ("video_top1", "clip_top1", "clip_top5", "fidelity_cosine", "fidelity_r2", "mean_feature_r2"):
        assert evaluated[key] == pytest.approx(saved[key], rel=1e-6), key
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["video_top1"] == evaluated["video_top1"]
    assert "per_class" not in json.loads((tmp_path / "e" / "metrics.json").read_text())
    per_class = json.loads((tmp_path / "e" / "per_class.json").read_text())
    assert per_class == json.loads((run / "per_class.json").read_text())
    assert (tmp_path / "e" / "plots" / "confusion.png").is_file()


def test_another_teachers_cache_is_refused_unless_asked(trained_student: tuple[Path, Path], tmp_path: Path) -> None:
    _, run = trained_student
    other = make_cache(tmp_path / "other.h5", teacher="r3d_18", teacher_weights="KINETICS400_V1", config_key="o")
    args = [str(run / "checkpoint.pt"), "--cache", str(other)]
    result = CliRunner().invoke(evaluate_student, args)
    assert result.exit_code == 2 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "made by teacher r3d_18" in errors[0] and "--other-teacher" in errors[0]
    result = CliRunner().invoke(evaluate_student, [*args, "--other-teacher"])
    assert result.exit_code == 0, result.output
    warned = [line for line in result.output.splitlines() if "WARNING" in line]
    assert len(warned) == 1 and "made by teacher r3d_18" in warned[0] and "learnt from tiny3d" in warned[0]
    assert "fidelity_r2" in json.loads(result.stdout)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"classes": ("Red", "Blue", "Green")}, "other classes than the student was trained on"),
        ({"dim": 6}, "holds 6-d teacher features; the student hallucinates 8-d ones"),
        ({"task": "regression", "teacher_logits": False}, "holds a regression dataset"),
    ],
)
def test_caches_the_student_cannot_be_scored_on(
    trained_student: tuple[Path, Path], tmp_path: Path, overrides: dict, message: str
) -> None:
    _, run = trained_student
    cache = make_cache(tmp_path / "c.h5", **overrides)
    result = CliRunner().invoke(
        evaluate_student, [str(run / "checkpoint.pt"), "--cache", str(cache), "--other-teacher"]
    )
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
