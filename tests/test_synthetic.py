"""make-synthetic: the UCF101 layout, group-disjoint splits, determinism, and what a frame shows."""

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.cli import make_synthetic
from pipeline.datasets import load_dataset
from pipeline.synthetic import MOTIONS, SCORE_SCALE, SPEEDS, SyntheticConfig, generate, held_out_groups, render_video
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
