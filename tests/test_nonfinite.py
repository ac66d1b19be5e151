"""Numbers that are not finite never train to exit 0: refused up front, or the run stops and says why."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers import make_cache, train_config

from pipeline.config import ConfigError, load_config
from pipeline.errors import UserError
from student_train.cli import train_student as train_student_cli
from student_train.train import TrainConfig, Trainer, TrainingDiverged

NON_FINITE = [("--lr", "nan"), ("--lr", "inf"), ("--lambda", "nan"), ("--lambda", "-inf")]


@pytest.mark.parametrize(("flag", "value"), NON_FINITE)
def test_cli_refuses_non_finite_numbers_in_one_line(tmp_path: Path, flag: str, value: str) -> None:
    cache = make_cache(tmp_path / "c.h5")
    result = CliRunner().invoke(train_student_cli, ["--cache", str(cache), "--out", str(tmp_path / "r"), flag, value])
    assert result.exit_code == 2, result.output
    assert "must be a finite number" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "r" / "metrics.json").exists()


def test_params_file_refuses_non_finite_numbers() -> None:
    with pytest.raises(ConfigError, match="weight_decay must be a finite number, got nan"):
        load_config(TrainConfig, {"weight_decay": float("nan")})


def test_a_yaml_bomb_is_quoted_short_and_fast(tmp_path: Path) -> None:
    """~400 bytes of nested aliases under a typed key: the error quotes a prefix, not the expansion."""
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for p, n in zip("abcdefgh", "bcdefghi", strict=True):
        bomb.append(f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]")
    (tmp_path / "params.yaml").write_text("train_student:\n  lr: &lr\n" + "\n".join(f"    {b}" for b in bomb) + "\n")
    t0 = time.perf_counter()
    result = CliRunner().invoke(train_student_cli, ["--params", str(tmp_path / "params.yaml")])
    assert result.exit_code == 2 and "lr must be float" in result.output
    assert len(result.output) < 400 and time.perf_counter() - t0 < 10


def test_non_finite_cached_targets_are_refused(tmp_path: Path) -> None:
    cache = make_cache(tmp_path / "c.h5")
    with h5py.File(cache, "r+") as f:
        f["clips/features"][3, 0] = np.nan
    with pytest.raises(UserError, match="1 training targets are not finite numbers"):
        Trainer(train_config(cache, tmp_path / "r"))


class DivergingTrainer(Trainer):
    """Its weights blow up early in the second epoch, as a too-high learning rate makes them."""

    def train_step(self, batch):
        if (self.epoch, self.step) == (1, 1):
            with torch.no_grad():
                next(self.model.parameters()).fill_(float("inf"))
        return super().train_step(batch)


def test_a_diverging_loss_stops_the_run_and_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    cache = make_cache(tmp_path / "c.h5")
    out = tmp_path / "r"
    expected = r"the training loss became (nan|inf) in epoch 2 .*after epoch 1\) is kept"
    with pytest.raises(TrainingDiverged, match=expected):
        DivergingTrainer(train_config(cache, out, epochs=3)).fit()
    saved = torch.load(out / "checkpoint.pt", weights_only=False)
    assert saved["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in saved["state_dict"].values() if v.is_floating_point())
    assert not (out / "metrics.json").exists()


def test_a_huge_learning_rate_exits_non_zero_in_one_line(tmp_path: Path) -> None:
    cache = make_cache(tmp_path / "c.h5")
    args = ["--cache", str(cache), "--out", str(tmp_path / "r"), "--student", "tiny", "--crop-size", "14"]
    result = CliRunner().invoke(train_student_cli, [*args, "--lr", "1e30", "--epochs", "2", "--device", "cpu"])
    assert result.exit_code == 2 and "the training loss became" in result.output, result.output
    assert not (tmp_path / "r" / "metrics.json").exists()


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_143(tmp_path: Path) -> None:
    cache = make_cache(tmp_path / "c.h5")
    out = tmp_path / "r"
    main = "from student_train.cli import train_student; train_student()"
    cmd = [sys.executable, "-c", main, "--cache", str(cache), "--out", str(out)]
    cmd += ["--student", "tiny", "--epochs", "100000", "--batch-size", "8", "--crop-size", "14", "--device", "cpu"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    for line in proc.stderr:
        if "epoch 2:" in line:  # the first epoch's checkpoint is written
            break
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 143, rest
    assert "terminated" in rest and "--resume" in rest
    assert torch.load(out / "checkpoint.pt", weights_only=False)["epoch"] >= 2


def test_a_student_that_cannot_take_the_crop_is_refused_in_one_line(tmp_path: Path) -> None:
    cache = make_cache(tmp_path / "c.h5")
    args = ["--cache", str(cache), "--out", str(tmp_path / "r"), "--crop-size", "14", "--device", "cpu"]
    result = CliRunner().invoke(train_student_cli, [*args, "--student", "vit_b_16"])
    assert result.exit_code == 2 and "cannot take 14x14 frames" in result.output, result.output
    errors = [line for line in result.output.splitlines() if " INFO " not in line and " WARNING " not in line]
    assert len(errors) == 1 and "Traceback" not in result.output


def test_init_from_another_students_checkpoint_is_one_line(tmp_path: Path) -> None:
    cache = make_cache(tmp_path / "c.h5")
    args = ["--cache", str(cache), "--crop-size", "14", "--device", "cpu", "--epochs", "1"]
    assert (
        CliRunner().invoke(train_student_cli, [*args, "--student", "tiny", "--out", str(tmp_path / "a")]).exit_code == 0
    )
    init = ["--init", str(tmp_path / "a" / "checkpoint.pt")]
    result = CliRunner().invoke(train_student_cli, [*args, "--student", "small", "--out", str(tmp_path / "b"), *init])
    assert result.exit_code == 2 and "does not fit this student" in result.output and "Traceback" not in result.output
