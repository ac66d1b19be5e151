"""check-benchmark: the design checks that need no student, by hand and on a generated benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import extract_config, make_dataset

from pipeline.cli_design import check_benchmark
from pipeline.design import coarse_map, explained_variance
from teacher_extract.extract import run_extraction


def test_explained_variance_by_hand() -> None:
    cells = np.array([0, 0, 1, 1])
    targets = np.array([[1.0], [3.0], [5.0], [7.0]])  # cell means 2 and 6, grand mean 4
    # residual sum of squares 1+1+1+1 = 4 of a total 9+1+1+9 = 20
    assert explained_variance(targets, cells) == pytest.approx(1 - 4 / 20)
    assert explained_variance(targets, np.arange(4)) == pytest.approx(1.0)  # one cell per row
    assert explained_variance(targets, np.zeros(4, int)) == pytest.approx(0.0)  # one cell for all
    # finer cells never explain less: the R^2 gain of the design check is >= 0 by construction,
    # and 0 exactly when the finer cells add nothing (here: the second column copies the first)
    finer = np.array([0, 1, 2, 3])
    assert explained_variance(targets, finer) >= explained_variance(targets, cells)
    same = np.array([[1.0], [1.0], [5.0], [5.0]])
    assert explained_variance(same, finer) == explained_variance(same, cells) == pytest.approx(1.0)


def test_coarse_map_reads_the_pool_names() -> None:
    classes = ("MoveLeft", "MoveRight")
    fine = ("MoveLeftSpeed1", "MoveLeftSpeed2", "MoveRightSpeed1", "MoveRightSpeed2")
    assert coarse_map(fine, classes).tolist() == [0, 0, 1, 1]
    assert coarse_map(classes, classes).tolist() == [0, 1]
    assert coarse_map(("Jump",), classes) is None


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("design")
    data = make_dataset(root / "data", videos_per_class=8, groups=4, frames=16, speeds=(0.5, 1.5), val_groups=(2,))
    cache = root / "features.h5"
    run_extraction(extract_config(data, cache, dataset_options={"val_groups": [2]}))
    return root


def test_check_benchmark_writes_its_checks(benchmark: Path) -> None:
    out = benchmark / "design.json"
    args = ["--cache", str(benchmark / "features.h5"), "--videos", str(benchmark / "data/videos.csv")]
    args += ["--ceiling", str(benchmark / "data/ceiling.json"), "--out", str(out)]
    result = CliRunner().invoke(check_benchmark, args)
    assert result.exit_code == 0, result.output
    design = json.loads(out.read_text())
    assert 0 <= design["teacher_r2_class"] <= design["teacher_r2_class_speed_cue"] <= 1
    assert design["teacher_beyond_label_r2"] == pytest.approx(
        design["teacher_r2_class_speed_cue"] - design["teacher_r2_class"]
    )
    assert design["speeds"] == [0.5, 1.5] and design["scene_rate_train"] == 0.0
    ceiling = json.loads((benchmark / "data/ceiling.json").read_text())["achievable"]
    assert design["single_frame_ceiling"] == {s: v["video_top1"] for s, v in ceiling.items()}
    # a random-init teacher has no classes of its own: no accuracy to report
    assert design["teacher_video_top1"] == {"train": None, "val": None, "test": None}


def test_check_benchmark_refuses_a_videos_file_of_another_dataset(benchmark: Path, tmp_path: Path) -> None:
    other = tmp_path / "videos.csv"
    other.write_text("path,label,group,clip,speed,agrees,scene,split\nUCF-101/X/v_X_g01_c01.avi,0,1,1,1.0,1,0,train\n")
    args = ["--cache", str(benchmark / "features.h5"), "--videos", str(other), "--out", str(tmp_path / "d.json")]
    result = CliRunner().invoke(check_benchmark, args)
    assert result.exit_code == 2 and "does not describe" in result.output and "Traceback" not in result.output
