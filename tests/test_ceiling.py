"""The synthetic dataset's single-frame ceiling against brute force, and the exact figure of fixed videos.

``single_frame_ceiling(p) = max(p, 1 - p)`` holds only if a frame shows nothing about the class
besides its pose cue: the object's position, angle and size at an anchor frame must be
distributed alike for both classes of a pair, the cue must agree with the motion with
probability ``p``, and the object with its cue must lie inside the crops the models see.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pipeline import synthetic
from pipeline.clips import clip_windows
from pipeline.synthetic import (
    MARGIN,
    MOTIONS,
    SyntheticConfig,
    achievable_ceiling,
    draw_params,
    generate,
    mirror_pairs,
    object_state,
    render_video,
    single_frame_ceiling,
)

#: The classes of a pair share a shape and differ in the direction of motion.
PAIRS = [(MOTIONS[i], MOTIONS[i + 1]) for i in range(0, len(MOTIONS), 2)]
P = 0.75  # params.yaml's cue_agreement
SPEEDS = (0.5, 1.0, 1.5)  # params.yaml's speeds
SIZE = 96  # params.yaml's frames: 96x96, 32 frames, anchors uniform:2
ANCHORS = [c.anchor for c in clip_windows(32, "uniform:2", 16)]
BINS = 10


def test_pairs_share_a_shape() -> None:
    assert all(a.shape == b.shape and a.name != b.name for a, b in PAIRS)
    assert mirror_pairs(MOTIONS) == [
        ("MoveLeft", "MoveRight"),
        ("RotateClockwise", "RotateCounterClockwise"),
        ("OrbitClockwise", "OrbitCounterClockwise"),
    ]
    assert single_frame_ceiling(0.75) == 0.75 and single_frame_ceiling(0.2) == 0.8 and single_frame_ceiling(0.5) == 0.5


def frame_states(pair, t: int, n: int, seed: int) -> tuple[list[tuple], np.ndarray, np.ndarray]:
    """``n`` videos per class of ``pair`` at frame ``t``: quantised (x, y, angle mod pi, radius), speed, label, cue."""
    rng = np.random.default_rng(seed)
    shown, labels, cues = [], [], []
    for label, motion in enumerate(pair):
        for _ in range(n):
            speed = float(rng.choice(SPEEDS))  # each video's speed, which its ghost shows
            s = object_state(motion, draw_params(motion, rng, SIZE, SIZE, P, speed), t, SIZE, SIZE)
            q = (
                int(s.x / SIZE * BINS),
                int(s.y / SIZE * BINS),
                int((s.angle % math.pi) / math.pi * BINS),
                int(s.radius / (0.3 * SIZE) * BINS),
                speed,
            )
            shown.append(q)
            labels.append(label)
            cues.append(label if s.cue_sign > 0 else 1 - label)  # the class the pose points to
    return shown, np.array(labels), np.array(cues)


def plug_in_accuracy(features: list, labels: np.ndarray) -> float:
    """Fit a plug-in Bayes classifier (class counts per feature value) on even rows, score it on odd rows."""
    counts: dict = {0: Counter(), 1: Counter()}
    for f, y in zip(features[::2], labels[::2], strict=True):
        counts[int(y)][f] += 1
    pred = np.array([int(counts[1][f] > counts[0][f]) for f in features[1::2]])
    return float((pred == labels[1::2]).mean())


@pytest.mark.parametrize("t", ANCHORS)
@pytest.mark.parametrize(
    "pair",
    PAIRS,
    ids=lambda p: f"{p[0].name}-{p[1].name}",
)
def test_a_frame_shows_nothing_of_the_class_but_its_cue(pair, t: int) -> None:
    n = 6000
    shown, labels, cues = frame_states(pair, t, n, seed=t)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(labels))  # fit and score halves mix both classes
    shown, labels, cues = [shown[i] for i in order], labels[order], cues[order]
    se = math.sqrt(0.25 / n)  # of an accuracy over the n scored frames
    # the cue agrees with the motion with probability p: the cue alone reaches the ceiling
    assert abs((cues == labels).mean() - P) < 3 * math.sqrt(P * (1 - P) / (2 * n))
    # what else a frame shows (position, angle, size) carries nothing: chance, within noise
    without_cue = plug_in_accuracy(shown, labels)
    assert without_cue < 0.5 + 3 * se, (
        f"{pair[0].name}/{pair[1].name} at frame {t}: the object's state alone gives {without_cue:.3f} > chance"
    )
    # and all of it together does no better than the cue: the ceiling is max(p, 1 - p)
    with_cue = plug_in_accuracy([(*f, c) for f, c in zip(shown, cues, strict=True)], labels)
    assert with_cue < single_frame_ceiling(P) + 3 * se


def test_cue_agreement_rate_is_p() -> None:
    for p in (0.3, 0.75):
        rng = np.random.default_rng(1)
        agrees = np.array([draw_params(MOTIONS[0], rng, SIZE, SIZE, p).agrees for _ in range(4000)])
        assert abs(agrees.mean() - p) < 3 * math.sqrt(p * (1 - p) / 4000)


def crop_box(height: int, width: int) -> tuple[float, float, float, float]:
    """``(top, bottom, left, right)`` in video pixels of what both models see.

    The stored student frame is the centre square of the short side; the student's evaluation
    crop and tiny3d's crop keep its middle 7/8 (56 of 64).
    """
    side = min(height, width)
    y0, x0 = (height - side) / 2, (width - side) / 2
    inset = side / 16
    return y0 + inset, y0 + side - inset, x0 + inset, x0 + side - inset


@pytest.mark.parametrize(
    ("height", "width"),
    [
        (64, 64),  # params.yaml
        (96, 128),  # a wide frame: the stage is its centre square
    ],
)
def test_object_and_cue_lie_inside_the_crop(monkeypatch: pytest.MonkeyPatch, height: int, width: int) -> None:
    drawn = []
    real = synthetic._object_masks

    def spy(*args):
        mask, ghost = real(*args)
        drawn.append(mask | ghost)
        return mask, ghost

    monkeypatch.setattr(synthetic, "_object_masks", spy)
    top, bottom, left, right = crop_box(height, width)
    for motion in MOTIONS:
        for seed in range(6):
            render_video(
                motion, frames=32, height=height, width=width, rng=np.random.default_rng(seed), speed=SPEEDS[-1]
            )
    assert len(drawn) == len(MOTIONS) * 6 * 32
    jitter = 1  # render_video shifts every frame by up to one pixel
    for pixels in drawn:
        ys, xs = np.nonzero(pixels)
        assert len(ys), "the object is drawn"
        assert ys.min() - jitter >= top and ys.max() + jitter < bottom
        assert xs.min() - jitter >= left and xs.max() + jitter < right
    assert MARGIN * min(height, width) - jitter > min(height, width) / 16


def test_generate_writes_the_achievable_ceiling_and_the_mirror_pairs(tmp_path: Path) -> None:
    cfg = SyntheticConfig(
        out=str(tmp_path / "d"),
        classes=4,
        videos_per_class=8,
        groups=4,
        frames=16,
        height=32,
        width=32,
        cue_agreement=0.3,
        val_groups=(2,),
    )
    out = generate(cfg)
    ceiling = json.loads((out / "ceiling.json").read_text())
    assert ceiling["expected"] == {"video_top1": 0.7}
    # The achievable figure of the fixed videos: with p < 0.5 the best rule goes against the cue,
    # right on the videos whose cue disagrees (what videos.csv says each drew).
    with open(out / "videos.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for split in ("val", "test"):
        chosen = [r for r in rows if r["split"] == split]
        exact = sum(r["agrees"] == "0" for r in chosen) / len(chosen)
        assert ceiling["achievable"][split] == {"video_top1": exact}
    assert ceiling["single_frame_ceiling"] == {"video_top1": ceiling["achievable"]["test"]["video_top1"]}
    assert achievable_ceiling([True, True, False], 0.75) == 2 / 3 and achievable_ceiling([True, False], 0.2) == 0.5
    pairs = (out / "ucfTrainTestlist" / "mirror_pairs.txt").read_bytes()
    assert pairs == b"MoveLeft MoveRight\r\nRotateClockwise RotateCounterClockwise\r\n"


def test_the_recorded_cue_is_the_one_rendered(tmp_path: Path) -> None:
    """videos.csv's ``agrees`` (what the ceiling is computed from) is what the video's own draws gave."""
    cfg = SyntheticConfig(
        out=str(tmp_path / "d"), classes=2, videos_per_class=6, groups=2, frames=16, height=32, width=32
    )
    out = generate(cfg)
    with open(out / "videos.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        motion = MOTIONS[int(r["label"])]
        rng = np.random.default_rng([cfg.seed, int(r["label"]), int(r["group"]), int(r["clip"])])
        assert draw_params(motion, rng, 32, 32, cfg.cue_agreement, float(r["speed"])).agrees == (r["agrees"] == "1")
