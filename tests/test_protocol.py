"""benchmarks/protocol.py: the val choice must be what params.yaml trains, the knob table's rows, runs side by side."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import make_cache

from benchmarks.protocol import check_choice, knob_table, train_runs

PARAMS = {"train_student": {"loss": "mse_sigmoid", "arms": {"hallucinet": {"lambda_weight": 50.0}}}}


def test_check_choice_stops_when_params_differ_from_the_val_choice() -> None:
    check_choice(PARAMS, {"chosen": {"loss": "mse_sigmoid", "lambda_weight": 50.0}})
    with pytest.raises(SystemExit, match="lambda_weight: 50.0 in params, 200.0 chosen"):
        check_choice(PARAMS, {"chosen": {"lambda_weight": 200.0}})


def test_knob_table_prints_every_row() -> None:
    row = {
        "setting": "neither",
        "teacher_beyond_label_r2": 0.01,
        "teacher_test_video_top1": 0.9,
        "ceiling": 0.73,
        "baseline": 0.5,
        "hallucinet": 0.55,
        "diff_mean": 0.05,
        "ci95": [-0.01, 0.11],
        "gap_closed": 0.22,
        "n": 5,
    }
    table = knob_table([row])
    assert (
        table.splitlines()[2]
        == "| neither | 0.010 | 0.900 | 0.730 | 0.500 | 0.550 | +0.050 [-0.010, +0.110] | 0.22 | 5 |"
    )


def test_train_runs_side_by_side_returns_each_runs_metrics_in_order(tmp_path) -> None:
    """Two real runs in two worker processes: each answers for its own folder, seed and arm."""
    cache = make_cache(tmp_path / "features.h5", val=True)
    section = dict(
        cache=str(cache),
        student="tiny",
        epochs=1,
        lr=3e-3,
        batch_size=8,
        crop_size=14,
        device="cpu",
        precision="fp32",
        eval_split="val",
        lambda_weight=50.0,
        arms={"hallucinet": {}, "baseline": {"lambda_weight": 0.0}},
    )
    runs = [("baseline", 3, tmp_path / "b3", {}), ("hallucinet", 4, tmp_path / "h4", {"lr": 1e-3})]
    got = train_runs({"train_student": section}, runs, jobs=2)
    for (arm, seed, out, overrides), metrics in zip(runs, got, strict=True):
        written = json.loads((out / "metrics.json").read_text())
        assert {k: metrics[k] for k in written} == written
        assert metrics["lambda"] == (0.0 if arm == "baseline" else 50.0)
        assert metrics["split"] == "val"
        config = torch.load(out / "checkpoint.pt", weights_only=False)["config"]
        assert config["seed"] == seed and config["lr"] == overrides.get("lr", 3e-3)
