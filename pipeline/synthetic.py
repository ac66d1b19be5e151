"""Synthetic action videos in the UCF101 layout: the embedded default dataset.

Each class is defined by *how the object moves* (direction, rotation sense, growth, orbit),
so a 16-frame clip identifies it. A single frame is only a partial cue, like a person's pose
hinting at what comes next: classes come in pairs that share an appearance and differ only in
the direction of motion, and the object's pose points the right way with probability
``cue_agreement`` (0.75 by default), the wrong way otherwise. Distractors: per-group textured
backgrounds and palettes, random object colours, clutter blobs wandering at random, and
camera-like jitter.

Three switches pose the paper's setting (README, "The default benchmark"):

* ``speeds``: each video moves at one of these speeds, and a frame shows it partly (the length
  of the motion-blur ghost or tail follows the speed), as a pose shows how fast an action goes.
  The class does not depend on it.
* ``pool_videos_per_class`` > 0 writes a separate pretraining pool under ``pool/`` (its own
  groups, never in the students' splits) whose classes are the finer ``class x speed`` labels:
  a teacher fitted on it must encode speed, which the students' labels do not name, as a
  Kinetics teacher encodes more than UCF101's class names.
* ``scene_bias``: the probability that a *training* video is shown in its class's own scene
  (a background texture per class) instead of its group's; val and test videos never are. A
  frame-only model can take the shortcut; a teacher that sees motion cannot.

The files follow UCF101 exactly (``UCF-101/<Class>/v_<Class>_gXX_cYY.avi`` and
``ucfTrainTestlist/`` with CRLF line ends and 1-based labels), so ``--dataset ucf101`` reads
them unchanged. Train, val (``val_groups``, read with the ucf101 adapter's option of that name)
and test never share a group, as in UCF101. ``videos.csv`` beside them records what each video
drew (speed, whether its cue agrees, whether it shows its class's scene): the ground truth the
design checks and the exact ceiling are computed from.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed

from pipeline.config import option, save_config
from pipeline.errors import UserError
from pipeline.progress import progress
from pipeline.video import write_video

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Motion:
    """How one class moves. Velocities are in units of the frame's short side per frame."""

    name: str
    shape: str  # "arrow" | "bar" | "disc" | "orbiter": shared by the two classes of a pair
    velocity: tuple[float, float] = (0.0, 0.0)
    spin: float = 0.0  # radians per frame (bar) or orbit angular speed (orbiter)
    growth: float = 0.0  # sign: grows (+) or shrinks (-)
    mirror: str = ""  # the class a horizontal mirror turns this one into ("": itself)


_V = 0.015
MOTIONS: tuple[Motion, ...] = (
    Motion("MoveLeft", "arrow", velocity=(-_V, 0.0), mirror="MoveRight"),
    Motion("MoveRight", "arrow", velocity=(_V, 0.0), mirror="MoveLeft"),
    Motion("RotateClockwise", "bar", spin=0.12, mirror="RotateCounterClockwise"),
    Motion("RotateCounterClockwise", "bar", spin=-0.12, mirror="RotateClockwise"),
    Motion("MoveUp", "arrow", velocity=(0.0, -_V)),
    Motion("MoveDown", "arrow", velocity=(0.0, _V)),
    Motion("Grow", "disc", growth=1.0),
    Motion("Shrink", "disc", growth=-1.0),
    Motion("OrbitClockwise", "orbiter", spin=0.15, mirror="OrbitCounterClockwise"),
    Motion("OrbitCounterClockwise", "orbiter", spin=-0.15, mirror="OrbitClockwise"),
)


@dataclass(frozen=True)
class SyntheticConfig:
    """``make-synthetic`` settings; params.yaml section ``make_synthetic``."""

    out: str = option("data/synthetic", "Dataset root to write (UCF-101/ and ucfTrainTestlist/ inside).", path="any")
    classes: int = option(8, f"Number of motion classes (2-{len(MOTIONS)}).")
    videos_per_class: int = option(96, "Videos per class, spread over the groups.")
    groups: int = option(16, "Groups (like UCF101's gXX: one background/palette each); test groups differ per split.")
    frames: int = option(32, "Frames per video (at least 16).")
    height: int = option(64, "Frame height in pixels (even).")
    width: int = option(64, "Frame width in pixels (even).")
    fps: float = option(25.0, "Frame rate written into the files.")
    cue_agreement: float = option(0.75, "Probability that a single frame's pose points along the true motion.")
    speeds: tuple[float, ...] = option(
        (1.0,), "Comma-separated speeds; each video moves at one of them (its ghost's length shows it)."
    )
    scene_bias: float = option(0.0, "Probability that a training video is shown in its class's own scene (a shortcut).")
    val_groups: tuple[int, ...] = option(
        (), "Comma-separated groups whose training videos form the val split (the ucf101 option of that name)."
    )
    pool_videos_per_class: int = option(
        0, "Videos per class x speed of a pretraining pool written to OUT/pool (0: none)."
    )
    pool_groups: int = option(8, "Groups of the pool (its own backgrounds, never in the students' splits).")
    task: str = option(
        "classification",
        "classification (the UCF101 layout: class = motion) or regression (the manifest layout: score = how fast "
        "the motion goes, as an action-quality score).",
        choices=("classification", "regression"),
    )
    seed: int = option(0, "Seed: the same seed writes the same videos.")
    workers: int = option(2, "Processes rendering and encoding videos in parallel (joblib).")

    def validate(self) -> None:
        if self.task not in ("classification", "regression"):
            raise UserError(f"task must be classification or regression, got {self.task!r}")
        if not 2 <= self.classes <= len(MOTIONS):
            raise UserError(f"classes must be between 2 and {len(MOTIONS)}, got {self.classes}")
        if not 1 <= self.groups <= 99:
            raise UserError(f"groups must be between 1 and 99, got {self.groups}")
        if self.groups < 2:
            raise UserError("groups must be at least 2, so train and test get different groups")
        if self.videos_per_class < self.groups:
            raise UserError(f"videos_per_class ({self.videos_per_class}) must be at least groups ({self.groups})")
        if self.frames < 16:
            raise UserError(f"frames must be at least 16 (one teacher clip), got {self.frames}")
        for name in ("height", "width"):
            value = getattr(self, name)
            if value < 32 or value % 2:
                raise UserError(f"{name} must be even and at least 32 (yuv420p video), got {value}")
        if self.fps <= 0:
            raise UserError(f"fps must be positive, got {self.fps}")
        if not 0.0 <= self.cue_agreement <= 1.0:
            raise UserError(f"cue_agreement must be within [0, 1], got {self.cue_agreement}")
        if not 0.0 <= self.scene_bias <= 1.0:
            raise UserError(f"scene_bias must be within [0, 1], got {self.scene_bias}")
        if not self.speeds or any(not 0.1 <= v <= 3.0 for v in self.speeds) or len(set(self.speeds)) < len(self.speeds):
            raise UserError(f"speeds must be distinct values within [0.1, 3], got {list(self.speeds)}")
        test = held_out_groups(1, self.groups)
        bad = sorted(g for g in self.val_groups if g in test or not 1 <= g <= self.groups)
        if bad or len(set(self.val_groups)) < len(self.val_groups):
            raise UserError(
                f"val_groups must be distinct groups in 1..{self.groups} outside the test groups "
                f"{sorted(test)}; got {list(self.val_groups)}"
            )
        if len(self.val_groups) + len(test) >= self.groups:
            raise UserError(f"val_groups {list(self.val_groups)} leave no training group of {self.groups}")
        if self.pool_videos_per_class < 0 or (self.pool_videos_per_class and self.pool_groups < 2):
            raise UserError("pool_videos_per_class must be >= 0, and a pool needs at least 2 pool_groups")
        if self.task == "regression" and (self.pool_videos_per_class or self.scene_bias or self.val_groups):
            raise UserError("the regression variant has no pool, scene_bias or val_groups")
        if self.workers < 1:
            raise UserError(f"workers must be at least 1, got {self.workers}")


def held_out_groups(split: int, groups: int) -> set[int]:
    """1-based groups held out for testing in split 1, 2 or 3.

    As UCF101 (25 groups, 7 test groups per split: 1-7, 8-14, 15-21): about 28% of the groups,
    a different block for each split.
    """
    n = max(1, round(groups * 7 / 25))
    start = (split - 1) * n
    return {(start + i) % groups + 1 for i in range(n)}


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random-colour texture, ``(H, W, 3)`` float32 in [0, 255]."""
    coarse = rng.uniform(30, 200, size=(4, 5, 3))
    ys = np.linspace(0, 3, height)
    xs = np.linspace(0, 4, width)
    y0, x0 = np.floor(ys).astype(int).clip(0, 2), np.floor(xs).astype(int).clip(0, 3)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    c = coarse
    smooth = (
        c[y0][:, x0] * (1 - fy) * (1 - fx)
        + c[y0 + 1][:, x0] * fy * (1 - fx)
        + c[y0][:, x0 + 1] * (1 - fy) * fx
        + c[y0 + 1][:, x0 + 1] * fy * fx
    )
    return (smooth + rng.normal(0, 12, size=(height, width, 3))).clip(0, 255).astype(np.float32)


@dataclass(frozen=True)
class VideoParams:
    """Everything one video draws at random, once (the rest follows from the class and the frame).

    Attributes:
        agrees: the object's pose cue points along the true motion (probability ``cue_agreement``).
        x0, y0: arrows: start position anywhere on the stage (motion wraps around within it, so
            the position at any frame is uniform whatever the direction); others: the pivot,
            in the middle of the frame.
        angle0: start angle (bar, orbiter), uniform.
        phase: disc: where in its growth cycle the video starts, uniform over the cycle.
        size: object size, in units of the frame's short side.
        color: object colour.
        speed: multiplies the class's velocity, spin and growth (1 for classification; the
            score of the regression variant, which a frame hints at through its cue's offset).
    """

    agrees: bool
    x0: float
    y0: float
    angle0: float
    phase: float
    size: float
    color: tuple[float, float, float]
    speed: float = 1.0


#: Frames of one disc growth (or shrink) cycle: radius x e^(0.025 x 24) = x1.8 over a cycle, then it restarts.
DISC_PERIOD = 24
DISC_RATE = 0.025
#: Objects (with their cues) stay this fraction of the short side away from every edge of the
#: frame's centre square: the student's evaluation crop (7/8 of its stored square) and the
#: teacher's (56 of 64 for tiny3d) both keep the middle 87.5%, so every frame a model sees shows
#: the whole object.
MARGIN = 0.1
#: Radius of the orbiters' circle, in sides.
ORBIT = 0.12
#: An arrow's motion-blur streak: this many radii per unit of speed (a speed of at most 1.5
#: keeps it within one radius of the centre, on the stage).
ARROW_STREAK = 0.45


def draw_params(
    motion: Motion, rng: np.random.Generator, height: int, width: int, cue_agreement: float, speed: float = 1.0
) -> VideoParams:
    """A video's random parameters, drawn in a fixed order from its own generator."""
    color = rng.uniform(180, 255, size=3) * rng.permutation([1.0, 0.6, 0.2])
    agrees = bool(rng.random() < cue_agreement)
    size = float(rng.uniform(0.15, 0.19))
    (x_lo, x_hi), (y_lo, y_hi) = stage(height, width)
    if motion.shape == "arrow":  # anywhere on the stage it wraps around in (uniform, so at any frame too)
        r = size * min(height, width)
        x0, y0 = rng.uniform(x_lo + r, x_hi - r), rng.uniform(y_lo + r, y_hi - r)
    else:  # the pivot, within 0.15 of a side from the centre
        x0 = (x_lo + x_hi) / 2 + rng.uniform(-0.15, 0.15) * min(height, width)
        y0 = (y_lo + y_hi) / 2 + rng.uniform(-0.15, 0.15) * min(height, width)
    angle0 = rng.uniform(0, 2 * math.pi)
    phase = rng.uniform(0, DISC_PERIOD)
    color = tuple(map(float, color))
    return VideoParams(agrees, float(x0), float(y0), float(angle0), float(phase), size, color, speed)


@dataclass(frozen=True)
class ObjectState:
    """What one frame shows of the object: where it is, its angle and radius, and where its cue points.

    ``cue_sign`` is the direction the pose cue points (+1 or -1): the true motion's when the
    video's cue agrees, its mirror-pair partner's otherwise (same shape, opposite motion).
    """

    x: float
    y: float
    angle: float
    radius: float
    cue_sign: float
    speed: float = 1.0


def object_state(motion: Motion, p: VideoParams, t: int, height: int, width: int) -> ObjectState:
    """The object at frame ``t``: the single source of what a frame shows (rendering and the ceiling use it)."""
    side = min(height, width)
    cue_sign = 1.0 if p.agrees else -1.0
    t = t * p.speed  # a faster video covers more of the same motion per frame
    if motion.shape == "arrow":
        r = p.size * side
        (x_lo, x_hi), (y_lo, y_hi) = stage(height, width)
        x = _wrap(p.x0 + motion.velocity[0] * side * t, x_lo + r, x_hi - r)
        y = _wrap(p.y0 + motion.velocity[1] * side * t, y_lo + r, y_hi - r)
        return ObjectState(x, y, 0.0, r, cue_sign, p.speed)
    if motion.shape == "disc":
        # A sawtooth in log-radius: the disc grows (or shrinks) steadily and restarts every cycle.
        # With a uniform phase the radius at any frame has the same distribution for both
        # directions, so a single frame's size says nothing about the motion.
        u = (p.phase + math.copysign(1.0, motion.growth) * t) % DISC_PERIOD
        return ObjectState(p.x0, p.y0, 0.0, p.size * 0.4 * side * math.exp(DISC_RATE * u), cue_sign, p.speed)
    a = p.angle0 + motion.spin * t
    if motion.shape == "bar":
        return ObjectState(p.x0, p.y0, a, p.size * side, cue_sign, p.speed)
    radius = side * ORBIT  # orbiter: a square circling the pivot
    x, y = p.x0 + radius * math.cos(a), p.y0 + radius * math.sin(a)
    return ObjectState(x, y, a, p.size * side, cue_sign, p.speed)


def stage(height: int, width: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """``((x_lo, x_hi), (y_lo, y_hi))``: where objects may be drawn, whole, with their cues.

    The centre square of the frame (what a model cropping a square sees) less ``MARGIN`` of its
    side on every edge (what a centre crop of 7/8 cuts off).
    """
    side = min(height, width)
    x0, y0 = (width - side) / 2, (height - side) / 2
    m = MARGIN * side
    return (x0 + m, x0 + side - m), (y0 + m, y0 + side - m)


def _wrap(value: float, lo: float, hi: float) -> float:
    """``value`` wrapped into ``[lo, hi)``: an arrow leaving the stage on one side re-enters on the other."""
    return lo + (value - lo) % (hi - lo)


def render_video(
    motion: Motion,
    *,
    frames: int,
    height: int,
    width: int,
    rng: np.random.Generator,
    background: np.ndarray | None = None,
    cue_agreement: float = 0.75,
    speed: float = 1.0,
    params: VideoParams | None = None,
) -> np.ndarray:
    """Render one video of ``motion``.

    Args:
        motion: the class.
        frames, height, width: size of the video.
        rng: the video's own generator (parameters, clutter, jitter).
        background: ``(H, W, 3)`` float texture shared by a group, or ``None`` for a fresh one.
        cue_agreement: probability that the object's pose points along its true motion.
        speed: how fast the motion goes (a frame shows it through its ghost's length).
        params: the video's parameters, when the caller drew them (with
            :func:`draw_params` from ``rng``, which is then the first draw of the video, as here).

    Returns:
        ``(frames, height, width, 3)`` uint8 RGB.
    """
    side = min(height, width)
    bg = _background(rng, height, width) if background is None else background
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    params = params or draw_params(motion, rng, height, width, cue_agreement, speed)
    color = np.array(params.color)
    # Clutter: blobs on random walks, same colours family as objects so colour is no cue.
    n_clutter = int(rng.integers(1, 4))
    clutter_pos = rng.uniform(0, 1, size=(n_clutter, 2)) * (width, height)
    clutter_vel = rng.normal(0, side * 0.015, size=(n_clutter, 2))
    clutter_col = rng.uniform(80, 255, size=(n_clutter, 3))
    clutter_r = rng.uniform(0.03, 0.05, size=n_clutter) * side
    jitter = rng.integers(-1, 2, size=(frames, 2))

    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        img = bg.copy()
        clutter_pos += clutter_vel + rng.normal(0, side * 0.01, size=(n_clutter, 2))
        clutter_pos %= (width, height)
        for (px, py), col, r in zip(clutter_pos, clutter_col, clutter_r, strict=True):
            img[(xx - px) ** 2 + (yy - py) ** 2 <= r * r] = col * 0.7
        mask, ghost = _object_masks(motion, object_state(motion, params, t, height, width), xx, yy, width, height)
        img[ghost] = 0.5 * img[ghost] + 0.5 * color
        img[mask] = color
        out[t] = np.roll(img, tuple(jitter[t]), axis=(0, 1)).clip(0, 255).astype(np.uint8)
    return out


def _object_masks(motion: Motion, s: ObjectState, xx, yy, width: int, height: int):
    """Boolean masks ``(H, W)`` of the object and of its pose cue (a ghost or halo)."""
    if motion.shape == "arrow":
        direction = np.array(motion.velocity, np.float32)
        ux, uy = direction / np.linalg.norm(direction) * s.cue_sign  # the arrow points along (ux, uy)
        dx, dy = xx - s.x, yy - s.y
        u = dx * ux + dy * uy
        v = -dx * uy + dy * ux
        mask = (u >= -s.radius * 0.3) & (u <= s.radius) & (np.abs(v) <= (s.radius - u) * 0.55)
        # A motion-blur streak behind the point, longer the faster the arrow goes (within r of
        # the centre, so it stays on the stage).
        tail = -s.radius * (0.3 + ARROW_STREAK * s.speed)
        ghost = (u < -s.radius * 0.3) & (u >= tail) & (np.abs(v) <= s.radius * 0.2)
        return mask, ghost
    if motion.shape == "bar":
        mask = _bar(xx, yy, s.x, s.y, s.angle, s.radius * 1.2, s.radius * 0.25)
        # A motion-blur ghost trailing behind the rotation (on the wrong side if the cue disagrees).
        back = s.angle - s.cue_sign * math.copysign(0.35 * s.speed, motion.spin)
        ghost = _bar(xx, yy, s.x, s.y, back, s.radius * 1.2, s.radius * 0.25)
        return mask, ghost & ~mask
    if motion.shape == "disc":
        d2 = (xx - s.x) ** 2 + (yy - s.y) ** 2
        mask = d2 <= s.radius**2
        grows = (motion.growth > 0) == (s.cue_sign > 0)
        # A halo (growing) or a hole (shrinking) whose size follows the speed.
        halo, hole = 1.0 + 0.3 * s.speed, 0.2 + 0.2 * s.speed
        ghost = (d2 <= (s.radius * halo) ** 2) & ~mask if grows else (d2 <= (s.radius * hole) ** 2)
        if not grows:
            mask = mask & ~ghost
        return mask, ghost
    # orbiter: a square, with a ghost where it was (on the wrong side if the cue disagrees)
    half = s.radius * 0.6
    mask = (np.abs(xx - s.x) <= half) & (np.abs(yy - s.y) <= half)
    radius = min(height, width) * ORBIT
    cx, cy = s.x - radius * math.cos(s.angle), s.y - radius * math.sin(s.angle)
    back = s.angle - s.cue_sign * math.copysign(0.35 * s.speed, motion.spin)
    gx, gy = cx + radius * math.cos(back), cy + radius * math.sin(back)
    ghost = (np.abs(xx - gx) <= half) & (np.abs(yy - gy) <= half)
    return mask, ghost & ~mask


def _bar(xx, yy, cx, cy, angle, half_length, half_width):
    u = (xx - cx) * math.cos(angle) + (yy - cy) * math.sin(angle)
    v = -(xx - cx) * math.sin(angle) + (yy - cy) * math.cos(angle)
    return (np.abs(u) <= half_length) & (np.abs(v) <= half_width)


def mirror_pairs(motions: tuple[Motion, ...]) -> list[tuple[str, str]]:
    """The classes a horizontal mirror swaps (each pair once): left/right, the two rotation senses, the two orbits."""
    names = {m.name for m in motions}
    return [(m.name, m.mirror) for m in motions if m.mirror in names and m.name < m.mirror]


def single_frame_ceiling(cue_agreement: float) -> float:
    """The best *expected* video top-1 any classifier of single frames can reach, by construction.

    A frame shows the object's shape, which names the class's pair (arrows also show their axis),
    and its pose cue, which points to one class of the pair: the true one with probability
    ``cue_agreement``, drawn once per video, so every anchor of a video shows the same cue.
    Nothing else in a val or test frame depends on the class (positions, angles, sizes, disc
    phases and speeds are drawn so that their distribution at every frame is the same for both
    classes of a pair; colours, clutter, group backgrounds and jitter ignore the class; class
    scenes appear in training videos only). Per-frame outputs averaged over a video's anchors
    are thus a function of (pair, cue): the best rule follows the cue, right with probability
    ``max(p, 1 - p)``. For a fixed set of videos, :func:`achievable_ceiling` is the exact figure.
    """
    return max(cue_agreement, 1.0 - cue_agreement)


def achievable_ceiling(agrees: list[bool], cue_agreement: float) -> float:
    """The video top-1 the best single-frame rule scores on these videos: the share it gets right.

    The rule (see :func:`single_frame_ceiling`) follows the cue when ``cue_agreement >= 0.5``
    (right on the videos whose cue agrees) and goes against it otherwise.
    """
    if not agrees:
        return float("nan")
    right = sum(agrees) if cue_agreement >= 0.5 else len(agrees) - sum(agrees)
    return right / len(agrees)


def video_name(motion: Motion, group: int, clip: int) -> str:
    return f"{motion.name}/v_{motion.name}_g{group:02d}_c{clip:02d}.avi"


def _write_lines(path: Path, lines: list[str]) -> None:
    # CRLF, as the official UCF101 split files.
    path.write_bytes("".join(f"{line}\r\n" for line in lines).encode())


#: Scores of the regression variant: ``SCORE_SCALE x speed``, speed uniform in ``SPEEDS``.
SPEEDS = (0.5, 1.5)
SCORE_SCALE = 10.0

#: Columns of ``videos.csv``: what each video drew.
VIDEO_COLUMNS = ("path", "label", "group", "clip", "speed", "agrees", "scene", "split")


@dataclass(frozen=True)
class Job:
    """One video to write: its class, place and the draws that decide what it shows."""

    label: int
    motion: Motion
    group: int
    clip: int
    speed: float
    scene: bool  # shown in its class's scene instead of its group's background
    split: str
    rng_key: tuple[int, ...]


def fine_motions(motions: tuple[Motion, ...], speeds: tuple[float, ...]) -> tuple[Motion, ...]:
    """The pool's classes: each motion at each speed (``MoveLeftSpeed1``...), mirrors kept within a speed."""
    return tuple(
        dataclasses.replace(m, name=f"{m.name}Speed{k + 1}", mirror=f"{m.mirror}Speed{k + 1}" if m.mirror else "")
        for m in motions
        for k in range(len(speeds))
    )


def _student_jobs(cfg: SyntheticConfig, motions: tuple[Motion, ...]) -> list[Job]:
    regression = cfg.task == "regression"
    test, val = held_out_groups(1, cfg.groups), set(cfg.val_groups)
    jobs = []
    for label, motion in enumerate(motions):
        for i in range(cfg.videos_per_class):
            group, clip = i % cfg.groups + 1, i // cfg.groups + 1
            draw = np.random.default_rng([cfg.seed, label, group, clip, 1])
            speed = float(draw.uniform(*SPEEDS)) if regression else float(cfg.speeds[draw.integers(len(cfg.speeds))])
            split = "test" if group in test else "val" if group in val else "train"
            scene = split == "train" and bool(
                np.random.default_rng([cfg.seed, label, group, clip, 2]).random() < cfg.scene_bias
            )
            jobs.append(Job(label, motion, group, clip, speed, scene, split, (cfg.seed, label, group, clip)))
    return jobs


def _pool_jobs(cfg: SyntheticConfig, motions: tuple[Motion, ...]) -> list[Job]:
    """The pretraining pool: ``pool_videos_per_class`` videos of each (motion, speed), in groups of its own."""
    test = held_out_groups(1, cfg.pool_groups)
    jobs = []
    for label, motion in enumerate(fine_motions(motions, cfg.speeds)):
        speed = cfg.speeds[label % len(cfg.speeds)]
        for i in range(cfg.pool_videos_per_class):
            group, clip = i % cfg.pool_groups + 1, i // cfg.pool_groups + 1
            split = "test" if group in test else "train"
            jobs.append(Job(label, motion, group, clip, speed, False, split, (cfg.seed, 5003, label, group, clip)))
    return jobs


def _write_one(folder: Path, job: Job, background: np.ndarray, cfg: SyntheticConfig) -> tuple[tuple, bool]:
    """Render and encode one video into ``folder``; return its RNG key and whether its cue agrees."""
    rng = np.random.default_rng(list(job.rng_key))
    params = draw_params(job.motion, rng, cfg.height, cfg.width, cfg.cue_agreement, job.speed)
    frames = render_video(
        job.motion,
        frames=cfg.frames,
        height=cfg.height,
        width=cfg.width,
        rng=rng,
        background=background,
        cue_agreement=cfg.cue_agreement,
        speed=job.speed,
        params=params,
    )
    write_video(folder / video_name(job.motion, job.group, job.clip), frames, fps=cfg.fps)
    return job.rng_key, params.agrees


def generate(cfg: SyntheticConfig) -> Path:
    """Write the dataset to ``cfg.out`` and return it.

    ``task: classification`` writes the UCF101 layout (class = motion), plus the pretraining
    pool under ``pool/`` (the same layout, classes ``class x speed``) when
    ``pool_videos_per_class`` > 0. ``task: regression`` writes the ``manifest`` layout
    (``videos/<Motion>/<name>.avi`` and ``manifest.csv`` with ``path,score,split``) whose score
    is how fast the motion goes (``SCORE_SCALE x speed``): a frame hints at it (the ghost's
    length grows with speed), the motion reveals it, like the judges' scores of an
    action-quality dataset. The videos are written to a temporary sibling folder and moved into
    place at the end, so a crash never leaves half a dataset, and a rerun replaces (never mixes
    with) an old one.
    """
    cfg.validate()
    t0 = time.perf_counter()
    out = Path(cfg.out)
    if out.exists() and any(out.iterdir()) and not (out / "synthetic.yaml").is_file():
        raise UserError(f"{out} exists and was not written by make-synthetic; choose a new or empty folder")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    motions = MOTIONS[: cfg.classes]
    regression = cfg.task == "regression"
    videos = Path("videos" if regression else "UCF-101")
    jobs = _student_jobs(cfg, motions)
    pool = _pool_jobs(cfg, motions) if cfg.pool_videos_per_class else []
    texture = lambda *key: _background(np.random.default_rng([cfg.seed, *key]), cfg.height, cfg.width)  # noqa: E731
    backgrounds = {g: texture(7919, g) for g in range(1, cfg.groups + 1)}
    pool_backgrounds = {g: texture(7919, 100 + g) for g in range(1, cfg.pool_groups + 1)}
    scenes = {label: texture(104729, label) for label in range(len(motions))}
    items = [(tmp, j, scenes[j.label] if j.scene else backgrounds[j.group]) for j in jobs]
    items += [(tmp / "pool", j, pool_backgrounds[j.group]) for j in pool]
    # Processes, not threads: drawing a 64x64 frame is many small numpy calls that hold the GIL
    # (joblib's processes wrote 480 videos in 3.9-4.2 s where 2 threads took 6.0-6.6 s, 2 cores).
    written = Parallel(n_jobs=cfg.workers, batch_size=8, return_as="generator")(
        delayed(_write_one)(root / videos, job, background, cfg) for root, job, background in items
    )
    agrees = dict(progress(written, total=len(items), desc="make-synthetic", unit="video", logger=logger))

    _write_annotations(tmp, cfg, motions, videos, jobs, pool, agrees)
    save_config(cfg, tmp / "synthetic.yaml")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    logger.info(
        "wrote %d %s videos of %d motions (%d frames, %dx%d)%s to %s in %.1f s",
        len(jobs),
        cfg.task,
        len(motions),
        cfg.frames,
        cfg.width,
        cfg.height,
        f" and a pool of {len(pool)} videos" if pool else "",
        out,
        time.perf_counter() - t0,
    )
    return out


def _write_annotations(
    root: Path,
    cfg: SyntheticConfig,
    motions: tuple[Motion, ...],
    videos: Path,
    jobs: list[Job],
    pool: list[Job],
    agrees: dict[tuple, bool],
) -> None:
    """Everything beside the videos: the manifest (regression) or the UCF101 split lists and the
    exact ceiling (classification), the pool's lists, and ``videos.csv`` (what each video drew)."""
    if cfg.task == "regression":
        rows = ["path,score,split"] + [
            f"{videos / video_name(j.motion, j.group, j.clip)},{SCORE_SCALE * j.speed:.4f},{j.split}" for j in jobs
        ]
        (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    else:
        _write_ucf101_lists(root / "ucfTrainTestlist", cfg.groups, motions, jobs)
        _write_ceiling(root / "ceiling.json", cfg, jobs, agrees)
        if pool:
            _write_ucf101_lists(
                root / "pool" / "ucfTrainTestlist", cfg.pool_groups, fine_motions(motions, cfg.speeds), pool
            )
            _write_videos_csv(root / "pool" / "videos.csv", videos, pool, agrees)
    _write_videos_csv(root / "videos.csv", videos, jobs, agrees)


def _write_videos_csv(path: Path, videos: Path, jobs: list[Job], agrees: dict[tuple, bool]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(VIDEO_COLUMNS)
        for j in jobs:
            name = videos / video_name(j.motion, j.group, j.clip)
            writer.writerow(
                [name.as_posix(), j.label, j.group, j.clip, j.speed, int(agrees[j.rng_key]), int(j.scene), j.split]
            )


def _write_ceiling(path: Path, cfg: SyntheticConfig, jobs: list[Job], agrees: dict[tuple, bool]) -> None:
    """``ceiling.json``: the exact single-frame ceiling of the test videos (the headline), and of val."""
    achievable = {
        split: achievable_ceiling([agrees[j.rng_key] for j in jobs if j.split == split], cfg.cue_agreement)
        for split in ("val", "test")
        if any(j.split == split for j in jobs)
    }
    ceiling = {
        "single_frame_ceiling": {"video_top1": achievable["test"]},
        "expected": {"video_top1": single_frame_ceiling(cfg.cue_agreement)},
        "achievable": {split: {"video_top1": value} for split, value in achievable.items()},
    }
    path.write_text(json.dumps(ceiling, indent=2) + "\n")


def _write_ucf101_lists(lists: Path, groups: int, motions: tuple[Motion, ...], jobs: list[Job]) -> None:
    """classInd, the three train/test lists (CRLF, 1-based; val videos are in the train lists), our mirror pairs."""
    lists.mkdir(parents=True, exist_ok=True)
    _write_lines(lists / "classInd.txt", [f"{i + 1} {m.name}" for i, m in enumerate(motions)])
    # Not part of UCF101 (a real copy lacks it and keeps every label under a mirror): which of
    # our classes a horizontal mirror swaps, read by the ucf101 adapter when present.
    _write_lines(lists / "mirror_pairs.txt", [f"{a} {b}" for a, b in mirror_pairs(motions)])
    for split in (1, 2, 3):
        held_out = held_out_groups(split, groups)
        train = [f"{video_name(j.motion, j.group, j.clip)} {j.label + 1}" for j in jobs if j.group not in held_out]
        test = [video_name(j.motion, j.group, j.clip) for j in jobs if j.group in held_out]
        _write_lines(lists / f"trainlist0{split}.txt", train)
        _write_lines(lists / f"testlist0{split}.txt", test)
