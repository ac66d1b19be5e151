"""``fit-teacher``: train or fine-tune a registry teacher on a dataset's train split.

Offline there are no Kinetics weights, so the embedded default needs a teacher that has
actually learnt the motions; with a network, the same command fine-tunes a Kinetics teacher on
the user's dataset, as the HalluciNet reference code's teacher was.

Every video is decoded once, up front, into the teacher's preprocessed frames (float16 in
memory), and each epoch samples random clips from them. That suits datasets of the size this
command is for (fine-tuning, the synthetic default); it is not a Kinetics-scale trainer.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as nnf
from tqdm import tqdm

from pipeline.checkpoint import save_atomic
from pipeline.config import config_dict
from pipeline.datasets import VideoRecord, load_dataset
from pipeline.device import DEVICES, resolve_device
from pipeline.profile import measure_cost
from pipeline.video import VideoError, clip_windows, decode
from teacher_extract.models import Teacher, build_teacher

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitConfig:
    """``fit-teacher`` settings; params.yaml section ``fit_teacher``."""

    dataset: str = "ucf101"
    root: str = "data/synthetic"
    split: str = "1"
    dataset_options: dict = field(default_factory=dict)
    teacher: str = "tiny3d"
    teacher_weights: str | None = None
    clip_len: int = 16
    frame_step: int = 1
    epochs: int = 8
    clips_per_video: int = 4
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    workers: int = 2
    device: str = "auto"
    seed: int = 0
    out: str = "models/teacher.pt"

    def validate(self) -> None:
        for name in ("clip_len", "frame_step", "epochs", "clips_per_video", "batch_size", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"invalid device {self.device!r}; choose from {', '.join(DEVICES)} or cuda:N")


def sample_starts(num_frames: int, span: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random clip starts in a video, uniform over the starts whose window fits.

    A video shorter than the window has the single start 0 (its window repeats the last frame,
    the same rule as :func:`pipeline.video.clip_windows`).
    """
    return rng.integers(0, max(num_frames - span, 0) + 1, size=count)


def clip_frames(start: int, num_frames: int, clip_len: int, frame_step: int) -> np.ndarray:
    """Frame indices of the window starting at ``start``, clamped to the last frame."""
    return np.minimum(start + np.arange(clip_len) * frame_step, num_frames - 1)


def _load(root: Path, record: VideoRecord, teacher: Teacher) -> torch.Tensor | None:
    """All frames of one video, preprocessed for the teacher: ``(T, C, h, w)`` float16."""
    try:
        video = decode(root / record.path, threads=1)
    except VideoError as err:
        logger.warning("skipping %s", err)
        return None
    return teacher.preset.frames(torch.from_numpy(video.frames).permute(0, 3, 1, 2)).half()


def _batch(videos: list[torch.Tensor], picks: list[tuple[int, np.ndarray]], flips: np.ndarray) -> torch.Tensor:
    """``(N, C, T, h, w)`` float32 clips from ``(video, frame indices)`` picks, flipped where asked."""
    clips = torch.stack([videos[v][torch.from_numpy(idx)] for v, idx in picks]).float()  # (N, T, C, h, w)
    if flips.any():
        clips[torch.from_numpy(flips)] = clips[torch.from_numpy(flips)].flip(-1)
    return clips.permute(0, 2, 1, 3, 4).contiguous()


@torch.inference_mode()
def evaluate_clips(teacher: Teacher, videos: list[torch.Tensor], labels: list[int], cfg: FitConfig, device) -> float:
    """Accuracy of the centre clip of each video (the anchor extraction uses by default)."""
    teacher.eval()
    correct = 0
    for i in range(0, len(videos), cfg.batch_size):
        chunk = range(i, min(i + cfg.batch_size, len(videos)))
        picks = [
            (v, np.array(clip_windows(len(videos[v]), "center", cfg.clip_len, cfg.frame_step)[0].frames)) for v in chunk
        ]
        clips = _batch(videos, picks, np.zeros(len(picks), bool)).to(device)
        _, logits = teacher(clips)
        correct += (logits.argmax(1).cpu() == torch.tensor([labels[v] for v in chunk])).sum().item()
    return correct / max(len(videos), 1)


def fit_teacher_model(cfg: FitConfig) -> dict:
    """Train ``cfg.teacher`` on the train split, evaluate on test, save the checkpoint ``cfg.out``.

    Returns:
        The metrics written next to the checkpoint (``<out>.json``).
    """
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    index = load_dataset(cfg.dataset, cfg.root, cfg.split, **cfg.dataset_options)
    if index.task != "classification":
        raise ValueError(f"fit-teacher trains a classifier, but {index.name} is a {index.task} dataset")
    device = resolve_device(cfg.device)
    teacher = build_teacher(cfg.teacher, cfg.teacher_weights, num_classes=len(index.classes), seed=cfg.seed)
    teacher.to(device)
    root = Path(cfg.root)
    with cf.ThreadPoolExecutor(max_workers=cfg.workers) as pool:
        loaded = list(
            tqdm(
                pool.map(lambda r: _load(root, r, teacher), index.videos),
                total=len(index.videos),
                desc="decode",
                unit="video",
                disable=None,
            )
        )
    split = {"train": ([], []), "test": ([], [])}
    for record, frames in zip(index.videos, loaded, strict=True):
        if frames is not None and record.split in split:
            split[record.split][0].append(frames)
            split[record.split][1].append(record.label)
    (train_videos, train_labels), (test_videos, test_labels) = split["train"], split["test"]
    if not train_videos:
        raise ValueError(f"no decodable train videos in {index.name} split {index.split} under {root}")
    logger.info(
        "fitting %s on %d train videos, %d classes; %d test videos",
        cfg.teacher,
        len(train_videos),
        len(index.classes),
        len(test_videos),
    )

    span = (cfg.clip_len - 1) * cfg.frame_step + 1
    steps_per_epoch = math.ceil(len(train_videos) * cfg.clips_per_video / cfg.batch_size)
    optimizer = torch.optim.AdamW(teacher.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.15
    )
    history = []
    for epoch in range(cfg.epochs):
        teacher.train()
        picks = [
            (v, clip_frames(int(s), len(train_videos[v]), cfg.clip_len, cfg.frame_step))
            for v in range(len(train_videos))
            for s in sample_starts(len(train_videos[v]), span, cfg.clips_per_video, rng)
        ]
        order = rng.permutation(len(picks))
        flips = rng.random(len(picks)) < 0.5
        total, bar = 0.0, tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=None)
        for step in bar:
            rows = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            clips = _batch(train_videos, [picks[r] for r in rows], flips[rows]).to(device)
            labels = torch.tensor([train_labels[picks[r][0]] for r in rows], device=device)
            _, logits = teacher(clips)
            loss = nnf.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        accuracy = evaluate_clips(teacher, test_videos, test_labels, cfg, device) if test_videos else float("nan")
        history.append({"epoch": epoch + 1, "train_loss": total / steps_per_epoch, "test_clip_accuracy": accuracy})
        logger.info("epoch %d: train loss %.4f, test clip accuracy %.3f", epoch + 1, total / steps_per_epoch, accuracy)

    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    teacher.eval().cpu()
    checkpoint = {
        "teacher": cfg.teacher,
        "state_dict": teacher.model.state_dict(),
        "classes": list(index.classes),
        "config": config_dict(cfg),
        "epoch": cfg.epochs,
    }
    # Test metrics go to <out>.json, not into the checkpoint: adding a test video then leaves
    # the checkpoint byte-identical, so extract-teacher does not re-extract everything.
    save_atomic(checkpoint, out)
    h, w = teacher.preset.crop_size
    cost = measure_cost(teacher, torch.zeros(1, 3, cfg.clip_len, h, w))
    metrics = {
        "teacher": cfg.teacher,
        "test_clip_accuracy": history[-1]["test_clip_accuracy"],
        "chance": 1 / len(index.classes),
        "epochs": cfg.epochs,
        "train_videos": len(train_videos),
        "test_videos": len(test_videos),
        "history": history,
        "cost_per_clip": cost,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    out.with_suffix(".json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    logger.info(
        "saved %s: test clip accuracy %.3f (chance %.3f)", out, metrics["test_clip_accuracy"], metrics["chance"]
    )
    return metrics
