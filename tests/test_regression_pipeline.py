"""The regression variant of the embedded dataset through the real stages: extract, train, evaluate, Spearman's rho."""

from __future__ import annotations

import math
from pathlib import Path

from helpers import extract_config, make_dataset, train_config

from pipeline.cache import FeatureCache
from pipeline.metric_schema import HEADLINE
from student_train.evaluate import evaluate_checkpoint
from student_train.train import train_student
from teacher_extract.extract import run_extraction


def test_scored_videos_extract_train_and_report_spearman(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "scores", videos_per_class=4, task="regression")
    out = tmp_path / "scores.h5"
    summary = run_extraction(extract_config(root, out, dataset="manifest", mirror=True))
    assert summary.failed == 0 and summary.extracted == 8
    cache = FeatureCache(out)
    assert cache.info.task == "regression" and cache.info.mirror_classes == ()  # a mirror keeps a score
    assert cache.has_mirror and not math.isnan(float(cache.videos.score[0]))

    metrics = train_student(train_config(out, tmp_path / "run", epochs=1, batch_size=4))
    assert HEADLINE["regression"] == "spearman"
    assert -1.0 <= metrics["spearman"] <= 1.0 and metrics["task"] == "regression"
    again = evaluate_checkpoint(tmp_path / "run" / "checkpoint.pt", out)
    assert again["spearman"] == metrics["spearman"] and "mae" in again and "video_top1" not in again
