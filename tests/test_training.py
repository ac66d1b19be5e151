"""``train-student`` on tiny hand-made caches: learning, outputs, resume, recipes, small data, refusals."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from helpers import CLASSES, make_cache, train_config

from pipeline.cache import CacheError
from pipeline.errors import UserError
from pipeline.metric_schema import EPOCH_COLUMNS
from student_train.cli import train_student as train_student_cli
from student_train.data import make_loader
from student_train.spec import load_student
from student_train.train import Trainer, TrainingInterrupted, apply_arm, fit_batch_size, train_student


@pytest.fixture(scope="module")
def cache_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_cache(tmp_path_factory.mktemp("cache") / "features.h5")


def train_loss(trainer: Trainer) -> float:
    """Mean loss over the train clips without augmentation, in eval mode."""
    trainer.model.eval()
    loader = make_loader(trainer.cache, trainer.train_rows, trainer.preset, batch_size=8, train=False, seed=0)
    total = 0.0
    with torch.no_grad():
        for batch in loader:
            out, h = trainer.model(trainer.preset.apply(batch.images, batch.views))
            total += trainer.loss(out, h, batch.labels, batch.features).total.item() * len(batch.rows)
    return total / len(trainer.train_rows)


def test_one_epoch_lowers_the_training_loss(cache_file: Path, tmp_path: Path) -> None:
    trainer = Trainer(train_config(cache_file, tmp_path / "run", epochs=1))
    before = train_loss(trainer)
    trainer.fit()
    assert train_loss(trainer) < 0.9 * before


def test_training_writes_its_outputs(cache_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    metrics = train_student(train_config(cache_file, out, epochs=2))
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["video_top1"] == pytest.approx(metrics["video_top1"])
    assert saved["num_videos"] == 6 and saved["num_clips"] == 24 and saved["lambda"] == 50.0
    assert saved["cache_key"] == "k" and saved["cost_gflops"] > 0
    assert 0 <= saved["video_top1"] <= 1 and "per_class" not in saved and "confusion" not in saved  # confusion: a PNG
    assert not any(isinstance(v, dict | list) for v in saved.values())  # flat: one dvc metrics column each
    per_class = json.loads((out / "per_class.json").read_text())
    assert [r["class"] for r in per_class] == list(CLASSES) and sum(r["videos"] for r in per_class) == 6
    assert [r["accuracy"] for r in per_class] == [metrics["per_class"][c] for c in CLASSES]
    log = (out / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,loss,task_loss,hallucination_loss") and len(log) == 3
    assert set(EPOCH_COLUMNS) <= set(log[0].split(","))
    for png in ("curves.png", "confusion.png"):
        assert (out / "plots" / png).read_bytes()[:4] == b"\x89PNG"
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and ckpt["cache"]["config_key"] == "k" and tuple(ckpt["spec"]["classes"]) == CLASSES
    config = yaml.safe_load((out / "config.yaml").read_text())  # the run as resolved, readable without torch
    assert config["epochs"] == 2 and config["out"] == str(out) and config == ckpt["config"]


class InterruptedTrainer(Trainer):
    """Raises KeyboardInterrupt (as Ctrl-C would) before a given global step."""

    def __init__(self, cfg, stop_at: int):
        super().__init__(cfg)
        self.stop_at, self.done = stop_at, 0

    def train_step(self, batch):
        if self.done == self.stop_at:
            raise KeyboardInterrupt
        self.done += 1
        return super().train_step(batch)


@pytest.mark.parametrize(
    ("student", "stop_at"),
    [("mobilenet_v3_small", 1), ("tiny", 3)],  # mid-epoch; exactly at an epoch boundary (3 steps/epoch)
)
def test_resume_is_bit_exact(tmp_path: Path, student: str, stop_at: int) -> None:
    # 2 train videos per class, 4 clips each: 24 train clips, 3 steps of 8 per epoch. mobilenet has
    # BatchNorm and dropout, so the RNG state and running statistics must come back too.
    cache = make_cache(tmp_path / "c.h5", videos_per_class=3)

    def cfg(out: str):
        return train_config(cache, tmp_path / out, epochs=2, student=student, crop_size=16)

    full = Trainer(cfg("full"))
    full.fit()
    with pytest.raises(TrainingInterrupted, match="--resume"):
        InterruptedTrainer(cfg("cut"), stop_at).fit()
    resumed = Trainer(cfg("cut"))
    assert resumed.resume()
    assert (resumed.epoch, resumed.step) == divmod(stop_at, 3)
    resumed.fit()
    assert [row["loss"] for row in resumed.history] == [row["loss"] for row in full.history]
    for key, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    # DVCLive's files are rewritten from the history: the resumed run's equal the uninterrupted one's.
    live = {
        run: {p.relative_to(tmp_path / run): p.read_bytes() for p in (tmp_path / run / "dvclive").rglob("*.*")}
        for run in ("full", "cut")
    }
    assert live["full"] == live["cut"] and len(live["full"]) > 3


def test_resume_refuses_another_recipe(cache_file: Path, tmp_path: Path) -> None:
    Trainer(train_config(cache_file, tmp_path / "run", epochs=1)).fit()
    with pytest.raises(UserError, match=r"other settings \(lr=0.003\)"):
        Trainer(train_config(cache_file, tmp_path / "run", lr=1e-3)).resume()
    assert Trainer(train_config(cache_file, tmp_path / "run", epochs=2, workers=1)).resume()  # may change


def test_pretraining_then_init(cache_file: Path, tmp_path: Path) -> None:
    pre = train_student(train_config(cache_file, tmp_path / "pre", task="none", epochs=1))
    assert "video_top1" not in pre and pre["fidelity_cosine"] > 0
    trainer = Trainer(train_config(cache_file, tmp_path / "ft", init=str(tmp_path / "pre" / "checkpoint.pt")))
    pre_model, _, _ = load_student(tmp_path / "pre" / "checkpoint.pt")
    assert torch.equal(trainer.model.hallucination_head[0].weight, pre_model.hallucination_head[0].weight)


def test_regression_cache(tmp_path: Path) -> None:
    cache = make_cache(tmp_path / "scores.h5", task="regression", teacher_logits=False)
    metrics = train_student(train_config(cache, tmp_path / "run", epochs=2, loss="mse", lambda_weight=1.0))
    assert {"spearman", "pearson", "mae"} <= set(metrics) and "video_top1" not in metrics
    with pytest.raises(CacheError, match="regression dataset .* cannot train task 'classification'"):
        Trainer(train_config(cache, tmp_path / "x", task="classification"))


def test_arms_override_the_recipe() -> None:
    section = {"lr": 0.1, "lambda_weight": 50.0, "arms": {"baseline": {"lambda_weight": 0.0}}}
    assert apply_arm(section, None) == {"lr": 0.1, "lambda_weight": 50.0}
    assert apply_arm(section, "baseline") == {"lr": 0.1, "lambda_weight": 0.0}
    with pytest.raises(UserError, match="unknown arm 'teacher'; the params section lists: baseline"):
        apply_arm(section, "teacher")


def test_batch_size_fits_the_data(caplog: pytest.LogCaptureFixture) -> None:
    assert fit_batch_size(100, 32, 1, "c.h5") == 32
    with caplog.at_level(logging.WARNING, logger="student_train.train"):
        assert fit_batch_size(9, 32, 1, "c.h5") == 9
        assert fit_batch_size(9, 32, 2, "c.h5") == 4  # per process
    assert "fewer than --batch-size 32: training with batches of 9" in caplog.text
    for clips, world in ((1, 1), (3, 2)):
        with pytest.raises(UserError, match="at least 2 per process") as info:
            fit_batch_size(clips, 32, world, "c.h5")
        assert "\n" not in str(info.value)


def test_nine_training_clips_train_with_the_default_batch(tmp_path: Path) -> None:
    # 2 videos per class, 1 of them train, 3 clips each: 9 training clips, fewer than one batch of 32
    cache = make_cache(tmp_path / "c.h5", videos_per_class=2, clips=3)
    args = ["--cache", str(cache), "--out", str(tmp_path / "run"), "--student", "tiny", "--epochs", "1"]
    result = CliRunner().invoke(train_student_cli, [*args, "--crop-size", "14", "--device", "cpu", "--lambda", "0"])
    assert result.exit_code == 0, result.output
    assert "training with batches of 9" in result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["num_clips"] == 9 and metrics["lambda"] == 0.0  # the 3 test videos; the baseline arm


def test_too_few_training_clips_are_refused_in_one_line(tmp_path: Path) -> None:
    cache = make_cache(tmp_path / "c.h5", videos_per_class=1)  # no train video at all
    result = CliRunner().invoke(train_student_cli, ["--cache", str(cache), "--out", str(tmp_path / "r")])
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert result.exit_code == 2 and len(errors) == 1 and "at least 2 per process are needed" in errors[0]
    assert "Traceback" not in result.output and not (tmp_path / "r" / "checkpoint.pt").exists()


def test_training_a_torchvision_student_outside_the_old_list(tmp_path: Path) -> None:
    cache = make_cache(tmp_path / "c.h5", size=32, videos_per_class=3, clips=2)
    out = tmp_path / "run"
    metrics = train_student(
        train_config(cache, out, student="shufflenet_v2_x0_5", crop_size=32, epochs=1, batch_size=4)
    )
    assert 0 <= metrics["video_top1"] <= 1 and metrics["num_clips"] == 6
    model, spec, _ = load_student(out / "checkpoint.pt")
    assert spec.student == "shufflenet_v2_x0_5" and model.hallucination_head[0].in_features == 1024


def test_cli_refuses_bad_caches_in_one_line(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    runner = CliRunner()
    result = runner.invoke(train_student_cli, ["--cache", str(tmp_path / "other.h5"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "is not a HalluciNet feature cache" in result.output and "Traceback" not in result.output
    regression = make_cache(tmp_path / "scores.h5", task="regression", teacher_logits=False)
    out = ["--out", str(tmp_path / "r")]
    result = runner.invoke(train_student_cli, ["--cache", str(regression), "--task", "classification", *out])
    assert result.exit_code == 2 and "cannot train task 'classification'" in result.output
    result = runner.invoke(train_student_cli, ["--cache", str(tmp_path / "missing.h5"), *out])
    assert result.exit_code == 2 and "no such file" in result.output
