"""make-synthetic: the UCF101 layout, group-disjoint splits, determinism, and what a frame shows."""

import csv
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.cli_synthetic import make_synthetic
from pipeline.datasets import load_dataset
from pipeline.datasets.base import SPLITS
from pipeline.synthetic import (
    MOTIONS,
    SCORE_SCALE,
    SPEEDS,
    SyntheticConfig,
    _object_masks,
    draw_params,
    generate,
    held_out_groups,
    object_state,
    render_video,
)
from pipeline.video import decode

SMALL = dict(classes=8, videos_per_class=4, groups=4, frames=16, height=32, width=48, workers=2)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(SyntheticConfig(out=str(tmp_path_factory.mktemp("syn") / "data"), **SMALL))


def test_ucf101_layout_with_crlf(dataset: Path) -> None:
    lists = dataset / "ucfTrainTestlist"
    class_ind = (lists / "classInd.txt").read_bytes()
    assert class_ind.startswith(b"1 MoveLeft\r\n2 MoveRight\r\n")
    assert b"\n" not in class_ind.replace(b"\r\n", b"")
    train = (lists / "trainlist01.txt").read_bytes().decode().split("\r\n")
    assert train[0].endswith(".avi 1") and "/v_" in train[0]
    assert len(list((dataset / "UCF-101").glob("*/*.avi"))) == 32
    index = load_dataset("ucf101", dataset, "1")
    assert len(index.classes) == 8 and len(index.videos) == 32 and not index.missing


@pytest.mark.parametrize("split", ["1", "2", "3"])
def test_train_and_test_never_share_a_group(dataset: Path, split: str) -> None:
    index = load_dataset("ucf101", dataset, split)
    groups = {s: {v.path.split("_g")[1][:2] for v in index.videos if v.split == s} for s in ("train", "test")}
    assert groups["train"] and groups["test"] and not groups["train"] & groups["test"]


def test_held_out_groups_follow_ucf101() -> None:
    assert [held_out_groups(s, 25) for s in (1, 2, 3)] == [set(range(1, 8)), set(range(8, 15)), set(range(15, 22))]
    assert [held_out_groups(s, 4) for s in (1, 2, 3)] == [{1}, {2}, {3}]


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    a = generate(SyntheticConfig(out=str(tmp_path / "a"), seed=3, **SMALL))
    b = generate(SyntheticConfig(out=str(tmp_path / "b"), seed=3, **SMALL))
    c = generate(SyntheticConfig(out=str(tmp_path / "c"), seed=4, **SMALL))
    name = "UCF-101/RotateClockwise/v_RotateClockwise_g02_c01.avi"
    assert (a / name).read_bytes() == (b / name).read_bytes()
    assert not np.array_equal(decode(a / name).frames, decode(c / name).frames)


def test_class_is_in_the_motion_not_the_frame() -> None:
    # Same appearance (arrow), opposite motion: the object's horizontal drift tells them apart.
    drifts = {}
    for motion in MOTIONS[:2]:
        values = []
        for seed in range(6):
            rng = np.random.default_rng(seed)
            frames = render_video(motion, frames=12, height=64, width=96, rng=rng, cue_agreement=0.5)
            steps = np.diff(_object_x(frames))
            # Under a pixel a frame: most steps round to 0, and a wrap around the stage jumps far.
            steps = steps[(steps != 0) & (np.abs(steps) < 8)]
            values.append(np.median(steps) if len(steps) else 0.0)
        drifts[motion.name] = np.array(values)
    assert (drifts["MoveLeft"] < 0).mean() >= 5 / 6 and (drifts["MoveRight"] > 0).mean() >= 5 / 6


def _object_x(frames: np.ndarray) -> np.ndarray:
    """Per frame, the mean x of the most saturated pixels: the object (drawn in a saturated colour), not the clutter."""
    f = frames.astype(np.int16)
    sat = f.max(-1) - f.min(-1)
    xs = np.arange(frames.shape[2])
    out = []
    for s in sat:
        mask = s >= np.percentile(s, 99.0)
        out.append((mask * xs).sum() / mask.sum())
    return np.array(out)


def test_single_frame_cue_is_partial() -> None:
    # With cue_agreement 0 the arrow always points against the motion, with 1 always along it:
    # the first frames differ, so the pose really is a (tunable) cue.
    rng_a, rng_b = np.random.default_rng(0), np.random.default_rng(0)
    along = render_video(MOTIONS[1], frames=1, height=64, width=96, rng=rng_a, cue_agreement=1.0)
    against = render_video(MOTIONS[1], frames=1, height=64, width=96, rng=rng_b, cue_agreement=0.0)
    assert not np.array_equal(along, against)
    # Every class shares its shape with its pair: appearance alone never names the class.
    shapes = [m.shape for m in MOTIONS]
    assert len(MOTIONS) >= 8 and all(shapes.count(s) >= 2 for s in shapes)


def test_cli_help_and_run(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(make_synthetic, ["--help"])
    assert result.exit_code == 0
    for flag in (
        "--out",
        "--classes",
        "--videos-per-class",
        "--groups",
        "--frames",
        "--height",
        "--width",
        "--fps",
        "--seed",
        "--workers",
        "--cue-agreement",
        "--params",
        "--verbose",
    ):
        assert flag in result.output
    result = runner.invoke(
        make_synthetic,
        [
            "--out",
            str(tmp_path / "d"),
            "--classes",
            "2",
            "--videos-per-class",
            "2",
            "--groups",
            "2",
            "--frames",
            "16",
            "--height",
            "32",
            "--width",
            "32",
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "d/UCF-101").glob("*/*.avi"))) == 4


@pytest.mark.parametrize(
    "args,message",
    [(["--height", "33"], "height must be even"), (["--classes", "100"], "classes must be between 2 and")],
)
def test_cli_bad_values(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(make_synthetic, ["--out", str(tmp_path / "d"), *args])
    assert result.exit_code == 2
    assert result.output.startswith("Error: ") and message in result.output
    assert "Traceback" not in result.output


def test_refuses_to_overwrite_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(ValueError, match="not written by make-synthetic"):
        generate(SyntheticConfig(out=str(tmp_path), **SMALL))
    assert (tmp_path / "mine.txt").exists()


def test_regression_variant_scores_the_speed(tmp_path: Path) -> None:
    cfg = SyntheticConfig(out=str(tmp_path / "r"), task="regression", **{**SMALL, "classes": 2})
    index = load_dataset("manifest", generate(cfg), "1")
    assert index.task == "regression" and len(index.videos) == 8
    scores = np.array([v.score for v in index.videos])
    assert ((scores >= SCORE_SCALE * SPEEDS[0]) & (scores <= SCORE_SCALE * SPEEDS[1])).all() and scores.std() > 0
    assert {v.split for v in index.videos} == {"train", "test"}


BENCH = dict(classes=4, videos_per_class=8, groups=8, frames=16, height=32, width=32, workers=2)


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The benchmark's three ingredients on: speeds, a scene shortcut in train, a pool; val groups."""
    cfg = SyntheticConfig(
        out=str(tmp_path_factory.mktemp("bench") / "data"),
        speeds=(0.5, 1.5),
        scene_bias=0.5,
        val_groups=(4, 5),
        pool_videos_per_class=4,
        pool_groups=4,
        **BENCH,
    )
    return generate(cfg)


def read_videos(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_val_groups_become_the_val_split(benchmark: Path) -> None:
    index = load_dataset("ucf101", benchmark, "1", val_groups=[4, 5])
    groups = {s: {int(v.path.split("_g")[1][:2]) for v in index.videos if v.split == s} for s in SPLITS}
    assert groups == {"train": {3, 6, 7, 8}, "val": {4, 5}, "test": held_out_groups(1, 8)}
    rows = read_videos(benchmark / "videos.csv")
    assert {(r["path"], r["split"]) for r in rows} == {(v.path, v.split) for v in index.videos}
    with pytest.raises(ValueError, match="val_groups must be a list of group numbers"):
        load_dataset("ucf101", benchmark, "1", val_groups="4")
    with pytest.raises(ValueError, match="no video of .* is in those groups"):
        load_dataset("ucf101", benchmark, "1", val_groups=[77])


def test_only_training_videos_show_their_class_scene(benchmark: Path) -> None:
    rows = read_videos(benchmark / "videos.csv")
    scene = [r for r in rows if r["scene"] == "1"]
    assert scene and all(r["split"] == "train" for r in scene)
    assert 0.2 < len(scene) / sum(r["split"] == "train" for r in rows) < 0.8
    # A scene is its class's own background, the same in every group: two scene videos of one
    # class share it (first frames equal where the object and clutter are absent, most pixels).
    by_class: dict[str, list[Path]] = {}
    for r in scene:
        by_class.setdefault(r["label"], []).append(benchmark / r["path"])
    a, b = next(v for v in by_class.values() if len(v) >= 2)[:2]
    fa, fb = decode(a).frames[0].astype(int), decode(b).frames[0].astype(int)
    assert (np.abs(fa - fb).max(-1) < 40).mean() > 0.5


def test_speeds_are_drawn_per_video_and_shown_by_the_ghost(benchmark: Path) -> None:
    rows = read_videos(benchmark / "videos.csv")
    assert {float(r["speed"]) for r in rows} == {0.5, 1.5}
    # The same video parameters at two speeds: the faster one's ghost (streak, halo) is larger.
    for motion in MOTIONS[:8:2]:
        drawn = []
        for speed in (0.5, 1.5):
            rng = np.random.default_rng(3)
            params = draw_params(motion, rng, 64, 64, 1.0, speed)
            state = object_state(motion, params, 0, 64, 64)
            yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
            drawn.append(_object_masks(motion, state, xx, yy, 64, 64)[1].sum())
        assert drawn[1] > drawn[0], motion.name


def test_the_pool_has_finer_labels_and_groups_of_its_own(benchmark: Path) -> None:
    pool = load_dataset("ucf101", benchmark / "pool", "1")
    assert pool.classes[:4] == ("MoveLeftSpeed1", "MoveLeftSpeed2", "MoveRightSpeed1", "MoveRightSpeed2")
    assert len(pool.classes) == 4 * 2 and len(pool.videos) == 8 * 4
    assert pool.mirror[:4] == (2, 3, 0, 1)  # a mirror keeps the speed
    assert {v.split for v in pool.videos} == {"train", "test"}
    pool_rows = read_videos(benchmark / "pool" / "videos.csv")
    assert all(r["scene"] == "0" for r in pool_rows)
    assert {float(r["speed"]) for r in pool_rows if "Speed2" in r["path"]} == {1.5}
    # Its backgrounds are its own: no first frame of the pool equals one of the students' data.
    students = {decode(benchmark / r["path"]).frames[0].tobytes() for r in read_videos(benchmark / "videos.csv")[:8]}
    assert not students & {decode(benchmark / "pool" / r["path"]).frames[0].tobytes() for r in pool_rows[:8]}


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"val_groups": (1,)}, "outside the test groups"),
        ({"val_groups": (3, 4, 5, 6, 7, 8)}, "leave no training group"),
        ({"scene_bias": 1.5}, "scene_bias must be within"),
        ({"speeds": (1.0, 1.0)}, "speeds must be distinct"),
    ],
)
def test_bad_benchmark_settings_are_refused(tmp_path: Path, overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate(SyntheticConfig(out=str(tmp_path / "d"), **{**BENCH, **overrides}))
