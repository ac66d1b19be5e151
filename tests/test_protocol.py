"""benchmarks/protocol.py: the val choice must be what params.yaml trains, and the knob table's rows."""

from __future__ import annotations

import pytest

from benchmarks.protocol import check_choice, knob_table

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
