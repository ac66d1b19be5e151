"""``fit-teacher``: train or fine-tune a registry teacher on a dataset's train split.

Offline there are no Kinetics weights, so the embedded default needs a teacher that has
actually learnt the motions; with a network, the same command fine-tunes a Kinetics teacher on
the user's dataset, as the HalluciNet reference code's teacher was.

Every video is decoded once, by the extractor's decoder processes, and kept in memory after the
teacher's resize and crop (uint8, a quarter of float32); each epoch samples random clips
(:func:`pipeline.clips.random_starts`), normalises them on the device with the same preset
extraction uses, and mirrors half of them **with their label mirrored too** (MoveLeft mirrored
is MoveRight: a dataset's mirror map says so; real action datasets keep their labels). That
suits datasets of the size this command is for (fine-tuning, the synthetic default); it is not
a Kinetics-scale trainer.

The checkpoint records which videos the teacher was trained on (paths and content
fingerprints), so ``extract-teacher`` can refuse to cache a test set the teacher has seen.

Outputs: the checkpoint (``--out``), its test metrics ``<out>.json``, and ``<out>.dvclive/``
(:mod:`pipeline.live`: train loss and test clip accuracy per epoch as DVC plots, the final
accuracies as DVC metrics).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as nnf
from torch.utils.data import Dataset

from pipeline.checkpoint import save_atomic
from pipeline.clips import clip_windows, random_starts, window
from pipeline.config import config_dict, option
from pipeline.datasets import DatasetIndex, VideoRecord, load_dataset
from pipeline.device import check_device, resolve_device
from pipeline.errors import UserError
from pipeline.live import pick, write_live
from pipeline.mirror import mirrored_labels
from pipeline.outputs import OutputLock, check_output_file
from pipeline.profile import measure_cost
from pipeline.progress import progress
from pipeline.video import VideoError, decode, fingerprint
from teacher_extract.decoding import decode_loader
from teacher_extract.models import Teacher, build_teacher
from teacher_extract.options import shared
from teacher_extract.teacher_checkpoint import is_teacher_checkpoint

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitConfig:
    """``fit-teacher`` settings; params.yaml section ``fit_teacher``."""

    dataset: str = shared("dataset", "ucf101")
    root: str = shared("root", "data/synthetic")
    split: str = shared("split", "1")
    dataset_options: dict = field(default_factory=dict)
    teacher: str = shared("teacher", "tiny3d")
    teacher_weights: str | None = shared("teacher_weights", None)
    clip_len: int = shared("clip_len", 16)
    frame_step: int = shared("frame_step", 1)
    epochs: int = option(8, "Training epochs.")
    clips_per_video: int = option(4, "Random clips drawn from each train video per epoch.")
    batch_size: int = shared("batch_size", 16)
    lr: float = option(1e-3, "AdamW learning rate (cosine schedule).")
    weight_decay: float = option(1e-4, "AdamW weight decay.")
    mirror: bool = option(True, "Mirror half of the training clips (with mirrored labels), the one augmentation.")
    workers: int | None = shared("workers", None)
    device: str = shared("device", "auto")
    seed: int = shared("seed", 0)
    out: str = option(
        "models/teacher.pt", "Checkpoint to write (extract-teacher --teacher-weights loads it).", path="file"
    )

    def validate(self) -> None:
        for name in ("clip_len", "frame_step", "epochs", "clips_per_video", "batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.workers is not None and self.workers < 0:
            raise UserError(f"workers must be >= 0, got {self.workers}")
        if self.lr <= 0:
            raise UserError(f"lr must be positive, got {self.lr}")
        check_device(self.device)


class WholeVideos(Dataset):
    """Item ``i``: ``(i, (T, H, W, 3) uint8 frames)`` of every frame of ``paths[i]``, or ``(i, reason)``."""

    def __init__(self, root: Path, paths: list[str]):
        self.root, self.paths = root, paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | str]:
        try:
            return i, torch.from_numpy(decode(self.root / self.paths[i], threads=1).frames)
        except VideoError as err:
            return i, err.reason


@dataclass
class Split:
    """Videos of one split in memory: frames after the teacher's resize and crop, and labels.

    ``videos[i]`` is ``(T_i, 3, h, w)`` uint8 on the CPU.
    """

    records: list[VideoRecord] = field(default_factory=list)
    videos: list[torch.Tensor] = field(default_factory=list)

    @property
    def labels(self) -> np.ndarray:
        return np.array([r.label for r in self.records], np.int64)


def load_splits(index: DatasetIndex, teacher: Teacher, device: torch.device, workers: int) -> dict[str, Split]:
    """Decode every train and test video once and keep it preprocessed (geometry only, uint8)."""
    wanted = [r for r in index.videos if r.split in ("train", "test")]
    splits = {"train": Split(), "test": Split()}
    loader = decode_loader(WholeVideos(index.root, [r.path for r in wanted]), workers=workers, pin_memory=False)
    with progress(total=len(wanted), desc="decode", unit="video", logger=logger) as bar:
        for i, frames in loader:
            bar.update(1)
            if isinstance(frames, str):
                logger.warning("skipping %s: %s", wanted[i].path, frames)
                continue
            x = teacher.preset.geometry(frames.to(device).permute(0, 3, 1, 2)).cpu()  # (T, 3, h, w) uint8
            splits[wanted[i].split].records.append(wanted[i])
            splits[wanted[i].split].videos.append(x)
    return splits


def clip_batch(
    split: Split, picks: list[tuple[int, tuple[int, ...]]], mirror: np.ndarray, teacher: Teacher, device: torch.device
) -> torch.Tensor:
    """``(N, 3, T, h, w)`` normalised clips of ``(video, frames)`` picks, mirrored where ``mirror`` ``(N,)``."""
    clips = torch.stack([split.videos[v][list(frames)] for v, frames in picks]).to(device)  # (N, T, 3, h, w) uint8
    x = teacher.preset.normalize(clips)
    flip = torch.from_numpy(mirror).to(device)
    x = torch.where(flip[:, None, None, None, None], x.flip(-1), x)
    return x.permute(0, 2, 1, 3, 4).contiguous()


@torch.inference_mode()
def centre_clip_accuracy(
    teacher: Teacher, split: Split, cfg: FitConfig, device: torch.device, mirror_map: np.ndarray, mirrored: bool
) -> float:
    """Accuracy on each video's centre clip (extraction's default anchor), optionally mirrored with its label."""
    teacher.eval()
    if not split.videos:
        return float("nan")
    correct = 0
    for start in range(0, len(split.videos), cfg.batch_size):
        chunk = range(start, min(start + cfg.batch_size, len(split.videos)))
        picks = [
            (v, clip_windows(len(split.videos[v]), "center", cfg.clip_len, cfg.frame_step)[0].frames) for v in chunk
        ]
        flags = np.full(len(picks), mirrored)
        _, logits = teacher(clip_batch(split, picks, flags, teacher, device))
        labels = split.labels[list(chunk)]
        labels = mirrored_labels(labels, mirrored, mirror_map)
        correct += int((logits.argmax(1).cpu().numpy() == labels).sum())
    return correct / len(split.videos)


def train_epoch(
    teacher: Teacher,
    train: Split,
    cfg: FitConfig,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    rng: np.random.Generator,
    mirror_map: np.ndarray,
    device: torch.device,
    desc: str,
) -> float:
    """One epoch of random clips (``clips_per_video`` per video); returns the mean training loss."""
    teacher.train()
    picks = [
        (v, window(int(s), len(train.videos[v]), cfg.clip_len, cfg.frame_step))
        for v in range(len(train.videos))
        for s in random_starts(len(train.videos[v]), cfg.clip_len, cfg.frame_step, cfg.clips_per_video, rng)
    ]
    order = rng.permutation(len(picks))
    mirror = (rng.random(len(picks)) < 0.5) & cfg.mirror
    labels = train.labels[[v for v, _ in picks]]
    labels = mirrored_labels(labels, mirror, mirror_map)
    steps = math.ceil(len(picks) / cfg.batch_size)
    total = 0.0
    with progress(total=steps, desc=desc, unit="batch", logger=logger) as bar:
        for step in range(steps):
            rows = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            clips = clip_batch(train, [picks[r] for r in rows], mirror[rows], teacher, device)
            _, logits = teacher(clips)
            loss = nnf.cross_entropy(logits, torch.from_numpy(labels[rows]).to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    return total / steps


#: The figures ``<out>.dvclive/metrics.json`` holds (what ``dvc exp show`` lists for the teacher).
LIVE_SUMMARY = ("test_clip_accuracy", "test_clip_accuracy_mirrored", "cost_gflops")


def live_dir(out: Path) -> Path:
    """The DVCLive folder of the checkpoint ``out``: ``models/teacher.pt`` -> ``models/teacher.dvclive``."""
    return out.with_suffix(".dvclive")


def fit_teacher_model(cfg: FitConfig) -> dict:
    """Train ``cfg.teacher`` on the train split, evaluate on test, save the checkpoint ``cfg.out``.

    Returns:
        The metrics written next to the checkpoint (``<out>.json``).
    """
    out = Path(cfg.out)
    index = load_dataset(cfg.dataset, cfg.root, cfg.split, **cfg.dataset_options)
    inputs = [index.root / r.path for r in index.videos]
    if cfg.teacher_weights and Path(cfg.teacher_weights).is_file():
        inputs.append(Path(cfg.teacher_weights))
    check_output_file(out, kind="fit-teacher checkpoint", accepts=is_teacher_checkpoint, inputs=inputs)
    with OutputLock(out, "fit-teacher"):
        return _fit(cfg, index, out)


def _fit(cfg: FitConfig, index: DatasetIndex, out: Path) -> dict:
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    if index.task != "classification":
        raise UserError(f"fit-teacher trains a classifier, but {index.name} is a {index.task} dataset")
    device = resolve_device(cfg.device)
    teacher = build_teacher(cfg.teacher, cfg.teacher_weights, num_classes=len(index.classes), seed=cfg.seed)
    teacher.to(device)
    workers = cfg.workers if cfg.workers is not None else len(os.sched_getaffinity(0))
    splits = load_splits(index, teacher, device, workers)
    train, test = splits["train"], splits["test"]
    if not train.videos:
        raise UserError(f"no decodable train videos in {index.name} split {index.split} under {index.root}")
    mirror_map = np.asarray(index.mirror_map(), np.int64)
    logger.info(
        "fitting %s on %d train videos, %d classes (%d mirror pairs); %d test videos",
        cfg.teacher,
        len(train.videos),
        len(index.classes),
        int((mirror_map != np.arange(len(mirror_map))).sum()) // 2,
        len(test.videos),
    )

    steps = math.ceil(len(train.videos) * cfg.clips_per_video / cfg.batch_size)
    optimizer = torch.optim.AdamW(teacher.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps, pct_start=0.15
    )
    history = []
    for epoch in range(cfg.epochs):
        desc = f"epoch {epoch + 1}/{cfg.epochs}"
        loss = train_epoch(teacher, train, cfg, optimizer, scheduler, rng, mirror_map, device, desc)
        accuracy = centre_clip_accuracy(teacher, test, cfg, device, mirror_map, mirrored=False)
        history.append({"epoch": epoch + 1, "train_loss": loss, "test_clip_accuracy": accuracy})
        write_live(live_dir(out), history)
        logger.info("epoch %d: train loss %.4f, test clip accuracy %.3f", epoch + 1, loss, accuracy)
    mirrored = centre_clip_accuracy(teacher, test, cfg, device, mirror_map, mirrored=True)

    teacher.eval().cpu()
    checkpoint = {
        "teacher": cfg.teacher,
        "state_dict": teacher.model.state_dict(),
        "classes": list(index.classes),
        "config": config_dict(cfg),
        "epoch": cfg.epochs,
        "trained_on": {
            "dataset": index.name,
            "split": index.split,
            "videos": [[r.path, fingerprint(index.root / r.path)] for r in train.records],
        },
    }
    # Test metrics go to <out>.json, not into the checkpoint: adding a test video then leaves
    # the checkpoint byte-identical, so extract-teacher does not re-extract everything.
    save_atomic(checkpoint, out)
    h, w = teacher.preset.crop_size
    metrics = {
        "teacher": cfg.teacher,
        "test_clip_accuracy": history[-1]["test_clip_accuracy"],
        "test_clip_accuracy_mirrored": mirrored,
        "chance": 1 / len(index.classes),
        "epochs": cfg.epochs,
        "train_videos": len(train.videos),
        "test_videos": len(test.videos),
        "history": history,
        "cost_per_clip": measure_cost(teacher, torch.zeros(1, 3, cfg.clip_len, h, w)),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    out.with_suffix(".json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    summary = {**metrics, "cost_gflops": metrics["cost_per_clip"]["gflops"]}
    write_live(live_dir(out), history, pick(summary, LIVE_SUMMARY))
    logger.info(
        "saved %s: test clip accuracy %.3f (mirrored clips with mirrored labels %.3f; chance %.3f)",
        out,
        metrics["test_clip_accuracy"],
        mirrored,
        metrics["chance"],
    )
    return metrics
