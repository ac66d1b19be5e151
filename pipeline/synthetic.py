"""Synthetic action videos in the UCF101 layout: the embedded default dataset.

Each class is defined by *how the object moves* (direction, rotation sense, growth, orbit),
so a 16-frame clip identifies it. A single frame is only a partial cue, like a person's pose
hinting at what comes next: classes come in pairs that share an appearance and differ only in
the direction of motion, and the object's pose points the right way with probability
``cue_agreement`` (0.65 by default), the wrong way otherwise. Distractors: per-group textured
backgrounds and palettes, random object colours, clutter blobs wandering at random, and
camera-like jitter.

The files follow UCF101 exactly (``UCF-101/<Class>/v_<Class>_gXX_cYY.avi`` and
``ucfTrainTestlist/`` with CRLF line ends and 1-based labels), so ``--dataset ucf101`` reads
them unchanged. Train and test never share a group, as in UCF101.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.config import save_config
from pipeline.video import write_video

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Motion:
    """How one class moves. Velocities are in units of the frame's short side per frame."""

    name: str
    shape: str  # "arrow" | "bar" | "disc" | "orbiter": shared by the two classes of a pair
    velocity: tuple[float, float] = (0.0, 0.0)
    spin: float = 0.0  # radians per frame (bar) or orbit angular speed (orbiter)
    growth: float = 0.0  # d log(size) / frame


_V = 0.022
MOTIONS: tuple[Motion, ...] = (
    Motion("MoveLeft", "arrow", velocity=(-_V, 0.0)),
    Motion("MoveRight", "arrow", velocity=(_V, 0.0)),
    Motion("RotateClockwise", "bar", spin=0.12),
    Motion("RotateCounterClockwise", "bar", spin=-0.12),
    Motion("MoveUp", "arrow", velocity=(0.0, -_V)),
    Motion("MoveDown", "arrow", velocity=(0.0, _V)),
    Motion("Grow", "disc", growth=0.025),
    Motion("Shrink", "disc", growth=-0.025),
    Motion("OrbitClockwise", "orbiter", spin=0.15),
    Motion("OrbitCounterClockwise", "orbiter", spin=-0.15),
)


@dataclass(frozen=True)
class SyntheticConfig:
    """``make-synthetic`` settings; params.yaml section ``make_synthetic``."""

    out: str = "data/synthetic"
    classes: int = 8
    videos_per_class: int = 12
    groups: int = 4
    frames: int = 48
    height: int = 96
    width: int = 128
    fps: float = 25.0
    cue_agreement: float = 0.65
    seed: int = 0
    workers: int = 2

    def validate(self) -> None:
        if not 2 <= self.classes <= len(MOTIONS):
            raise ValueError(f"classes must be between 2 and {len(MOTIONS)}, got {self.classes}")
        if not 1 <= self.groups <= 99:
            raise ValueError(f"groups must be between 1 and 99, got {self.groups}")
        if self.groups < 2:
            raise ValueError("groups must be at least 2, so train and test get different groups")
        if self.videos_per_class < self.groups:
            raise ValueError(f"videos_per_class ({self.videos_per_class}) must be at least groups ({self.groups})")
        if self.frames < 16:
            raise ValueError(f"frames must be at least 16 (one teacher clip), got {self.frames}")
        for name in ("height", "width"):
            value = getattr(self, name)
            if value < 32 or value % 2:
                raise ValueError(f"{name} must be even and at least 32 (yuv420p video), got {value}")
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        if not 0.0 <= self.cue_agreement <= 1.0:
            raise ValueError(f"cue_agreement must be within [0, 1], got {self.cue_agreement}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")


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


def render_video(
    motion: Motion,
    *,
    frames: int,
    height: int,
    width: int,
    rng: np.random.Generator,
    background: np.ndarray | None = None,
    cue_agreement: float = 0.65,
) -> np.ndarray:
    """Render one video of ``motion``.

    Args:
        motion: the class.
        frames, height, width: size of the video.
        rng: the video's own generator (start position, colours, cue, clutter, jitter).
        background: ``(H, W, 3)`` float texture shared by a group, or ``None`` for a fresh one.
        cue_agreement: probability that the object's pose points along its true motion.

    Returns:
        ``(frames, height, width, 3)`` uint8 RGB.
    """
    side = min(height, width)
    bg = _background(rng, height, width) if background is None else background
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    color = rng.uniform(180, 255, size=3) * rng.permutation([1.0, 0.6, 0.2])
    agrees = rng.random() < cue_agreement
    size = side * rng.uniform(0.09, 0.13)
    cx, cy = rng.uniform(0.25, 0.75) * width, rng.uniform(0.25, 0.75) * height
    angle0 = rng.uniform(0, 2 * math.pi)
    # Clutter: blobs on random walks, same colours family as objects so colour is no cue.
    n_clutter = int(rng.integers(2, 5))
    clutter_pos = rng.uniform(0, 1, size=(n_clutter, 2)) * (width, height)
    clutter_vel = rng.normal(0, side * 0.015, size=(n_clutter, 2))
    clutter_col = rng.uniform(80, 255, size=(n_clutter, 3))
    clutter_r = rng.uniform(0.03, 0.06, size=n_clutter) * side
    jitter = rng.integers(-1, 2, size=(frames, 2))

    # The pose cue: direction (unit vector or rotation sense) the shape points to.
    direction = np.array(motion.velocity, np.float32)
    if np.linalg.norm(direction) > 0:
        direction /= np.linalg.norm(direction)
    cue_sign = 1.0 if agrees else -1.0

    out = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        img = bg.copy()
        clutter_pos += clutter_vel + rng.normal(0, side * 0.01, size=(n_clutter, 2))
        clutter_pos %= (width, height)
        for (px, py), col, r in zip(clutter_pos, clutter_col, clutter_r, strict=True):
            img[(xx - px) ** 2 + (yy - py) ** 2 <= r * r] = col * 0.7
        mask, ghost = _object_masks(motion, t, xx, yy, cx, cy, size, angle0, direction, cue_sign, width, height, side)
        img[ghost] = 0.5 * img[ghost] + 0.5 * color
        img[mask] = color
        out[t] = np.roll(img, tuple(jitter[t]), axis=(0, 1)).clip(0, 255).astype(np.uint8)
    return out


def _object_masks(motion, t, xx, yy, cx, cy, size, angle0, direction, cue_sign, width, height, side):
    """Boolean masks ``(H, W)`` of the object at frame ``t`` and of its pose cue (a ghost/halo)."""
    if motion.shape == "arrow":
        x = (cx + motion.velocity[0] * side * t) % width
        y = (cy + motion.velocity[1] * side * t) % height
        ux, uy = direction * cue_sign  # the arrow points along (ux, uy)
        u = (xx - x) * ux + (yy - y) * uy
        v = -(xx - x) * uy + (yy - y) * ux
        mask = (u >= -size * 0.6) & (u <= size) & (np.abs(v) <= (size - u) * 0.55)
        ghost = np.zeros_like(mask)
        return mask, ghost
    if motion.shape == "bar":
        a = angle0 + motion.spin * t
        mask = _bar(xx, yy, cx, cy, a, size * 1.6, size * 0.25)
        # A motion-blur ghost trailing behind the rotation (on the wrong side if the cue disagrees).
        ghost = _bar(xx, yy, cx, cy, a - cue_sign * math.copysign(0.35, motion.spin), size * 1.6, size * 0.25)
        return mask, ghost & ~mask
    if motion.shape == "disc":
        # Size breathes around the start size within the video, growing or shrinking throughout.
        r = size * math.exp(motion.growth * (t - 24))
        d2 = (xx - cx) ** 2 + (yy - cy) ** 2
        mask = d2 <= r * r
        grows = (motion.growth > 0) == (cue_sign > 0)
        ghost = (d2 <= (r * 1.45) ** 2) & ~mask if grows else (d2 <= (r * 0.5) ** 2)
        if not grows:
            mask = mask & ~ghost
        return mask, ghost
    # orbiter: a square circling the start point
    radius = side * 0.22
    a = angle0 + motion.spin * t
    x, y = cx + radius * math.cos(a), cy + radius * math.sin(a)
    mask = (np.abs(xx - x) <= size * 0.6) & (np.abs(yy - y) <= size * 0.6)
    back = a - cue_sign * math.copysign(0.35, motion.spin)
    gx, gy = cx + radius * math.cos(back), cy + radius * math.sin(back)
    ghost = (np.abs(xx - gx) <= size * 0.6) & (np.abs(yy - gy) <= size * 0.6)
    return mask, ghost & ~mask


def _bar(xx, yy, cx, cy, angle, half_length, half_width):
    u = (xx - cx) * math.cos(angle) + (yy - cy) * math.sin(angle)
    v = -(xx - cx) * math.sin(angle) + (yy - cy) * math.cos(angle)
    return (np.abs(u) <= half_length) & (np.abs(v) <= half_width)


def video_name(motion: Motion, group: int, clip: int) -> str:
    return f"{motion.name}/v_{motion.name}_g{group:02d}_c{clip:02d}.avi"


def _write_lines(path: Path, lines: list[str]) -> None:
    # CRLF, as the official UCF101 split files.
    path.write_bytes("".join(f"{line}\r\n" for line in lines).encode())


def generate(cfg: SyntheticConfig) -> Path:
    """Write the dataset to ``cfg.out`` and return it.

    The videos are written to a temporary sibling folder and moved into place at the end, so
    a crash never leaves half a dataset, and a rerun replaces (never mixes with) an old one.
    """
    cfg.validate()
    t0 = time.perf_counter()
    out = Path(cfg.out)
    if out.exists() and any(out.iterdir()) and not (out / "synthetic.yaml").is_file():
        raise ValueError(f"{out} exists and was not written by make-synthetic; choose a new or empty folder")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "ucfTrainTestlist").mkdir(parents=True)
    motions = MOTIONS[: cfg.classes]
    jobs = []
    for label, motion in enumerate(motions):
        for i in range(cfg.videos_per_class):
            group, clip = i % cfg.groups + 1, i // cfg.groups + 1
            jobs.append((label, motion, group, clip))
    backgrounds = {
        g: _background(np.random.default_rng([cfg.seed, 7919, g]), cfg.height, cfg.width)
        for g in range(1, cfg.groups + 1)
    }

    def write(job: tuple[int, Motion, int, int]) -> None:
        label, motion, group, clip = job
        rng = np.random.default_rng([cfg.seed, label, group, clip])
        frames = render_video(
            motion,
            frames=cfg.frames,
            height=cfg.height,
            width=cfg.width,
            rng=rng,
            background=backgrounds[group],
            cue_agreement=cfg.cue_agreement,
        )
        write_video(tmp / "UCF-101" / video_name(motion, group, clip), frames, fps=cfg.fps)

    with cf.ThreadPoolExecutor(max_workers=cfg.workers) as pool:
        list(tqdm(pool.map(write, jobs), total=len(jobs), desc="make-synthetic", unit="video", disable=None))

    lists = tmp / "ucfTrainTestlist"
    _write_lines(lists / "classInd.txt", [f"{i + 1} {m.name}" for i, m in enumerate(motions)])
    for split in (1, 2, 3):
        held_out = held_out_groups(split, cfg.groups)
        train = [f"{video_name(m, g, c)} {label + 1}" for label, m, g, c in jobs if g not in held_out]
        test = [video_name(m, g, c) for _, m, g, c in jobs if g in held_out]
        _write_lines(lists / f"trainlist0{split}.txt", train)
        _write_lines(lists / f"testlist0{split}.txt", test)
    save_config(cfg, tmp / "synthetic.yaml")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    logger.info(
        "wrote %d videos of %d classes (%d frames, %dx%d) to %s in %.1f s",
        len(jobs),
        len(motions),
        cfg.frames,
        cfg.width,
        cfg.height,
        out,
        time.perf_counter() - t0,
    )
    return out
