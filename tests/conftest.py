"""Fixtures only; shared helper functions live in ``helpers.py`` (test modules import them from there)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from helpers import make_cache, moving_square, train_config

from pipeline.video import write_video
from student_train.train import train_student

# One intra-op thread, here and in every subprocess (the CLI, torchrun): the tests run many tiny
# forward passes, which OpenMP's spinning threads slow down many times over on a shared CPU, and
# a run and its rerun in another process then compute with the same thread count.
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def session_run_config_store(tmp_path_factory: pytest.TempPathFactory):
    """Module- and session-scoped fixtures run before the per-test store exists: they get one of their own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HALLUCINET_CACHE_DIR", str(tmp_path_factory.mktemp("hallucinet-cache-session")))
        yield


@pytest.fixture(autouse=True)
def run_config_store(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test remembers measured run configurations (``fastest_config``) in a fresh folder of its own."""
    folder = tmp_path_factory.mktemp("hallucinet-cache")
    monkeypatch.setenv("HALLUCINET_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def video_file(tmp_path: Path) -> Path:
    """A 24-frame 32x32 mpeg4 AVI."""
    return write_video(tmp_path / "clip.avi", moving_square(), fps=25)


@pytest.fixture(scope="session")
def trained_student(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(cache, run folder)``: a tiny student trained one epoch on a hand-made 3-class cache (16 px, crop 14)."""
    tmp = tmp_path_factory.mktemp("student")
    cache = make_cache(tmp / "features.h5")
    train_student(train_config(cache, tmp / "run", epochs=1))
    return cache, tmp / "run"
