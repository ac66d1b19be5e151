"""Helpers the test modules share: tiny videos, tiny datasets, hand-made caches, tiny configs.

Test modules import from here (``from helpers import ...``), never from ``conftest`` or from one
another; ``conftest.py`` holds only fixtures.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.cache import CacheInfo, VideoEntry, write_cache
from pipeline.synthetic import SyntheticConfig, generate
from pipeline.video import write_video
from student_train.train import TrainConfig
from teacher_extract.extract import ExtractConfig

REPO = Path(__file__).resolve().parents[1]

# --- videos ----------------------------------------------------------------------------------


def moving_square(num_frames: int = 24, height: int = 32, width: int = 32, seed: int = 0) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 frames: a bright square sliding right, plus a frame-number stripe.

    The top 8 rows hold the frame index as 8 black/white bits, so tests can tell frames apart
    after lossy coding (:func:`frame_index_of`).
    """
    rng = np.random.default_rng(seed)
    frames = np.full((num_frames, height, width, 3), 40, np.uint8)
    frames[..., 2] = rng.integers(30, 60)
    for t in range(num_frames):
        x = (t * 2) % (width - 8)
        frames[t, 12:20, x : x + 8] = (230, 200, 40)
        bit = width // 8
        for b in range(8):
            frames[t, :8, b * bit : (b + 1) * bit] = 255 if (t >> b) & 1 else 0
    return frames


def textured_video(num_frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 frames of coloured noise, smoothed over 3 pixels, drifting 2 pixels a frame.

    Every pixel is an edge: where resizes that round differently disagree most.
    """
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (height, width + 2 * num_frames, 3)).astype(np.float32)
    smooth = (noise + np.roll(noise, 1, 0) + np.roll(noise, 1, 1)) / 3
    return np.stack([smooth[:, 2 * t : 2 * t + width] for t in range(num_frames)]).astype(np.uint8)


def frame_index_of(image: np.ndarray) -> int:
    """Recover the frame index :func:`moving_square` encoded in the top stripe."""
    bit = image.shape[1] // 8
    return sum(1 << b for b in range(8) if image[2:6, b * bit + 1 : (b + 1) * bit - 1].mean() > 128)


def write_frames(folder: Path, frames: np.ndarray, pattern: str = "img_{:05d}.png", start: int = 1) -> list[Path]:
    """Write ``(T, H, W, 3)`` frames as lossless PNGs named ``pattern.format(start + t)`` (a frame folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for t, frame in enumerate(frames):
        paths.append(folder / pattern.format(start + t))
        Image.fromarray(frame).save(paths[-1])
    return paths


# --- stage one -------------------------------------------------------------------------------


def make_dataset(root: Path, videos_per_class: int = 2, frames: int = 24, **overrides) -> Path:
    """A 2-class synthetic UCF101-layout dataset of 32x48 videos (half train, half test)."""
    values = dict(classes=2, videos_per_class=videos_per_class, groups=2, frames=frames, height=32, width=48)
    values.update(overrides)
    return generate(SyntheticConfig(out=str(root), **values))


def extract_config(root: Path, out: Path, **overrides) -> ExtractConfig:
    """A tiny3d extraction on the CPU, fp32 and contiguous (fixed: no timing probe), decoded in this process."""
    values = dict(
        dataset="ucf101",
        root=str(root),
        teacher="tiny3d",
        teacher_weights=None,
        anchors="uniform:2",
        image_size=16,
        batch_size=4,
        workers=0,
        device="cpu",
        precision="fp32",
        memory_format="contiguous",
        out=str(out),
    )
    values.update(overrides)
    return ExtractConfig(**values)


def add_video(root: Path, name: str, label: int, frames: np.ndarray, split: str = "train") -> Path:
    """Add one video to a ucf101-layout dataset (file + train or test list line); returns its path."""
    classes = (root / "ucfTrainTestlist/classInd.txt").read_text().split()
    cls = classes[2 * label + 1]
    path = write_video(root / "UCF-101" / cls / name, frames)
    line = f"{cls}/{name} {label + 1}" if split == "train" else f"{cls}/{name}"
    with open(root / f"ucfTrainTestlist/{split}list01.txt", "ab") as fh:
        fh.write(f"{line}\r\n".encode())
    return path


# --- stage two -------------------------------------------------------------------------------

CLASSES = ("Red", "Green", "Blue")
#: The hand-made caches' mirror map: a mirror swaps Red and Green, Blue keeps its label.
MIRROR = (1, 0, 2)


def _split(i: int, n: int, val: bool) -> str:
    if not val:
        return "train" if i < n * 2 // 3 else "test"
    return "train" if i < n // 2 else "val" if i < n * 3 // 4 else "test"


def make_cache(
    path: Path,
    *,
    task: str = "classification",
    videos_per_class: int = 6,
    clips: int = 4,
    size: int = 16,
    dim: int = 8,
    teacher_logits: bool = True,
    mirror: bool = False,
    seed: int = 0,
    val: bool = False,
    **info_overrides,
) -> Path:
    """A cache whose frames are tinted by class and whose features depend on class and clip.

    Two thirds of each class's videos are train, the rest test (with ``val``: half train, a
    quarter val, the rest test); a regression cache scores each
    video by its class plus noise. With ``mirror``, the cache holds mirrored targets: features
    and logits of the mirrored clip are those of the class :data:`MIRROR` maps to (and the map).
    """
    rng = np.random.default_rng(seed)
    classes = CLASSES if task == "classification" else ()
    entries = []
    for c in range(len(CLASSES)):
        for i in range(videos_per_class):
            images = rng.integers(0, 80, size=(clips, size, size, 3), dtype=np.uint8)
            images[..., c] += 120
            features = np.abs(rng.normal(size=(clips, dim))).astype(np.float32)
            features[:, c] += 2.0
            logits = np.zeros((clips, len(CLASSES)), np.float32)
            logits[:, c] = 1.0
            mirrored = features + 0.5  # distinct from the plain ones, and class-tied like the mirrored class's
            mirrored[:, :3] = features[:, list(MIRROR)] + 0.5
            entries.append(
                VideoEntry(
                    path=f"{CLASSES[c]}/v{i}.avi",
                    label=c if task == "classification" else -1,
                    score=float("nan") if task == "classification" else float(c + rng.normal(0, 0.1)),
                    split=_split(i, videos_per_class, val),
                    num_frames=40,
                    fps=25.0,
                    fingerprint=f"fp{c}{i}",
                    status="ok",
                    frames=np.arange(clips, dtype=np.int64) * 8,
                    features=features,
                    images=images,
                    logits=logits if teacher_logits else None,
                    features_mirror=mirrored if mirror else None,
                    logits_mirror=logits[:, list(MIRROR)] if mirror and teacher_logits else None,
                )
            )
    values = dict(
        dataset="ucf101" if task == "classification" else "manifest",
        dataset_root="data",
        split="1",
        task=task,
        classes=classes,
        teacher="tiny3d",
        teacher_weights="random:0",
        feature_dim=dim,
        clip_len=16,
        frame_step=1,
        anchors=f"uniform:{clips}",
        image_size=size,
        config={},
        code_version="test",
        config_key="k",
        teacher_classes=CLASSES if teacher_logits else (),
        mirror_classes=MIRROR if mirror and task == "classification" else (),
    )
    values.update(info_overrides)
    n = sum(len(e.frames) for e in entries)
    return write_cache(
        path,
        CacheInfo(**values),
        entries,
        num_clips=n,
        image_shape=(size, size, 3),
        num_logits=3 if teacher_logits else 0,
        mirror=mirror,
    )


def train_config(cache: Path, out: Path, **overrides) -> TrainConfig:
    """A tiny student on the CPU, fp32, two epochs of batches of 8."""
    values = dict(
        cache=str(cache),
        out=str(out),
        student="tiny",
        epochs=2,
        batch_size=8,
        lr=3e-3,
        crop_size=14,
        device="cpu",
        precision="fp32",
    )
    values.update(overrides)
    return TrainConfig(**values)


def truncated_avi(path: Path, frames: np.ndarray, keep: int) -> Path:
    """An mpeg4 AVI of ``frames`` cut just before packet ``keep``: its header still claims ``len(frames)``.

    A truncated download looks like this: ``keep`` frames decode, the index at the end is gone.
    """
    import av

    write_video(path, frames, fps=25)
    with av.open(str(path)) as container:
        positions = [p.pos for p in container.demux(container.streams.video[0]) if p.size]
    path.write_bytes(path.read_bytes()[: positions[keep]])
    return path


def copy_project_files(dest: Path) -> Path:
    """This project's files (tracked and new, not ignored) copied under ``dest``, without any dvc.lock.

    What the DVC tests start from: the code and pipeline as they stand, with every stage unrun.
    """
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file() and Path(name).name != "dvc.lock":
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest
