"""Stage one: run the 3D-CNN teacher once over every video and write the feature cache.

This module is the orchestration: the config and the summary, which videos to extract, the
teacher and how it runs, and the cache assembled at the end. The parts it drives:

* :mod:`teacher_extract.engine`: decoder *processes* (:mod:`teacher_extract.decoding`) decode
  each video once; the main process prepares the frames on the device and runs the teacher on
  fixed-size batches that mix clips across videos, each batch's outputs travelling back while
  the next one runs.
* :mod:`teacher_extract.journal`: each finished video saved at once (``<out>.partial/``, one
  atomic ``.npz`` each): a crash (even ``kill -9``) loses at most the videos in flight, and the
  next run picks the journal up. At the end the cache is assembled in dataset order into a
  temporary file and renamed into place, so the result equals that of an uninterrupted run.
* :mod:`teacher_extract.launch`: one process, a ``--shard`` job, or the ranks of ``torchrun``.

Incremental reruns: a video whose content fingerprint and feature-defining config (teacher,
weights, preprocessing, anchors, precision, mirroring) are unchanged is copied from the previous
cache, new or changed videos are extracted, and videos no longer listed are dropped
(:mod:`teacher_extract.plan`).
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pipeline.autotune import RunConfig, fastest_config
from pipeline.cache import CacheError, CacheInfo, FeatureCache, VideoEntry, read_info, write_cache
from pipeline.clips import parse_anchor_policy
from pipeline.config import check_choice, config_dict, option
from pipeline.datasets import DatasetIndex, VideoRecord, load_dataset
from pipeline.device import MEMORY_FORMATS, PRECISIONS, check_device, memory_format, resolve_device
from pipeline.errors import UserError
from pipeline.outputs import OutputLock, check_output_file
from pipeline.profile import count_gflops
from pipeline.version import code_version
from pipeline.video import fingerprint
from teacher_extract.engine import Extractor
from teacher_extract.journal import Journal
from teacher_extract.models import Teacher, build_teacher
from teacher_extract.options import shared
from teacher_extract.plan import Known, ReusePlan, plan_reuse
from teacher_extract.shard import parse_shard, select_shard, shard_path
from teacher_extract.teacher_checkpoint import trained_on

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractConfig:
    """Everything ``extract-teacher`` needs; params.yaml section ``extract_teacher``.

    ``teacher_weights`` null, like ``random``, is a seeded random init.
    """

    dataset: str = shared("dataset", "ucf101")
    root: str = shared("root", "data/synthetic")
    split: str = shared("split", "1")
    dataset_options: dict = field(default_factory=dict)
    teacher: str = shared("teacher", "r3d_18")
    teacher_weights: str | None = shared("teacher_weights", "DEFAULT")
    anchors: str = option("center", "Anchor frames per video: center, uniform:K or stride:S.")
    clip_len: int = shared("clip_len", 16)
    frame_step: int = shared("frame_step", 1)
    horizon: int = option(
        0,
        "Frames between the anchor and the start of its teacher clip (0: the clip starts at the anchor, as in "
        "the paper).",
    )
    image_size: int = option(128, "Side of the stored student frame (short side resized, centre-cropped).")
    mirror: bool = option(
        False,
        "Also run the teacher on each horizontally mirrored clip and cache those features and logits, so "
        "train-student can mirror frames with matching targets.",
    )
    batch_size: int = shared("batch_size", 8)
    workers: int | None = shared("workers", None)
    device: str = shared("device", "auto")
    precision: str = option(
        "auto",
        "auto (the faster of fp32 and bf16 for this teacher on this device, measured once and remembered; bf16 "
        "only where its outputs stay within 5% of fp32's), fp32 or bf16.",
        choices=PRECISIONS,
    )
    memory_format: str = option(
        "auto",
        "auto (measured with the precision), channels_last (channels_last_3d) or contiguous.",
        choices=MEMORY_FORMATS,
    )
    max_failed_fraction: float = option(0.1, "Exit non-zero when more than this fraction of videos fail.")
    seed: int = shared("seed", 0)
    shard: str = option(
        "",
        "Extract only shard i of N (i/N, e.g. 0/4) into <out stem>.shardII-of-NN.h5, for independent jobs such as "
        "a Slurm array; merge with merge-cache. Under torchrun, ranks shard and merge by themselves.",
    )
    # where train-student --cache looks by default
    out: str = option("data/features.h5", "Cache file to write or update.", path="file")

    def validate(self) -> None:
        parse_anchor_policy(self.anchors)
        parse_shard(self.shard)
        for name in ("clip_len", "frame_step", "image_size", "batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.horizon < 0 or (self.workers is not None and self.workers < 0):
            raise UserError(f"horizon and workers must be >= 0, got {self.horizon} and {self.workers}")
        check_device(self.device)
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("memory_format", self.memory_format, MEMORY_FORMATS)
        if not 0.0 <= self.max_failed_fraction <= 1.0:
            raise UserError(f"max_failed_fraction must be within [0, 1], got {self.max_failed_fraction}")

    def num_workers(self) -> int:
        return len(os.sched_getaffinity(0)) if self.workers is None else self.workers


@dataclass
class ExtractSummary:
    """What a run did; logged at the end and returned to callers and tests."""

    videos: int = 0
    extracted: int = 0
    skipped: int = 0
    failed: int = 0
    removed: int = 0
    clips: int = 0
    clips_extracted: int = 0
    frames_decoded: int = 0
    videos_decoded: int = 0
    header_mismatches: int = 0
    #: the whole call, and its decode-and-teacher loop alone (from starting the decoders to the
    #: last journal write: what the benchmarks time against the teacher and the decoders)
    seconds: float = 0.0
    loop_seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def clips_per_second(self) -> float:
        return self.clips_extracted / self.seconds if self.seconds else 0.0


class ExtractionFailed(RuntimeError):
    """More videos failed than ``max_failed_fraction`` allows (the cache is still written)."""

    def __init__(self, message: str, summary: ExtractSummary):
        super().__init__(message)
        self.summary = summary


def feature_key(cfg: ExtractConfig, teacher: Teacher, run: RunConfig) -> str:
    """Hash of everything that determines a clip's features and stored frame.

    Not the memory format: it changes only the order of a convolution's float sums (features
    agree to about 1e-6, tests/test_distributed.py), a speed choice each machine may make for
    itself, so ``--shard`` jobs timed on different machines still merge. The precision stays: bf16
    features differ from fp32's by about 1e-2.
    """
    spec = {
        "teacher": cfg.teacher,
        "weights": teacher.weights_id,
        "preset": config_dict(teacher.preset),
        "anchors": cfg.anchors,
        "clip_len": cfg.clip_len,
        "frame_step": cfg.frame_step,
        "horizon": cfg.horizon,
        "image_size": cfg.image_size,
        "mirror": cfg.mirror,
        "precision": run.precision,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _previous_cache(out: Path, key: str) -> FeatureCache | None:
    if not out.exists():
        return None
    cache = FeatureCache(out)  # check_output_file has made sure it is a cache
    if cache.info.config_key != key:
        logger.info("teacher or preprocessing changed since %s was written: none of its features are reused", out)
        cache.close()
        return None
    return cache


def is_cache_file(path: Path) -> bool:
    """Whether ``path`` is a feature cache (the only kind of file ``--out`` may replace)."""
    try:
        read_info(path)
    except CacheError:
        return False
    return True


def _fingerprints(root: Path, records: tuple[VideoRecord, ...], workers: int) -> list[str]:
    with cf.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(lambda r: fingerprint(root / r.path), records))


def check_no_leakage(weights: str | None, index: DatasetIndex, fingerprints: list[str]) -> None:
    """Refuse a teacher checkpoint that was trained on videos this cache evaluates on.

    ``fit-teacher`` records the content fingerprints of its training videos in its checkpoint;
    a test or val video among them would let the teacher's (and so the student's) test figures
    rest on videos it has seen.
    """
    if not weights or not Path(weights).is_file():
        return
    training = trained_on(weights)
    if training is None:
        return
    seen = {fp for _, fp in training["videos"]}
    leaked = [r.path for r, fp in zip(index.videos, fingerprints, strict=True) if r.split != "train" and fp in seen]
    if leaked:
        raise UserError(
            f"teacher {weights} was trained on {len(leaked)} of this dataset's evaluation videos "
            f"(e.g. {leaked[0]}): fit it on the train split of the split extracted here"
        )


@dataclass
class _Setup:
    """A run's resolved inputs: the dataset share, where it goes, and the teacher that runs."""

    index: DatasetIndex
    out: Path
    root: Path
    device: torch.device
    teacher: Teacher
    run: RunConfig
    key: str


def load_teacher(cfg: ExtractConfig, device: torch.device) -> Teacher:
    weights = None if cfg.teacher_weights in (None, "", "random") else cfg.teacher_weights
    return build_teacher(cfg.teacher, weights, seed=cfg.seed).eval().to(device)


def choose_run_config(cfg: ExtractConfig, teacher: Teacher, device: torch.device) -> RunConfig:
    """``cfg``'s precision and memory format, ``auto`` resolved by timing the candidates here."""
    h, w = teacher.preset.crop_size
    example = torch.randn(cfg.batch_size, 3, cfg.clip_len, h, w, generator=torch.Generator().manual_seed(0))
    return fastest_config(
        f"teacher:{cfg.teacher}", teacher, example, device, precision=cfg.precision, fmt=cfg.memory_format
    )


def _share(cfg: ExtractConfig) -> tuple[DatasetIndex, Path]:
    """The videos this run extracts (the whole split, or its ``--shard``) and the file they go to."""
    index = load_dataset(cfg.dataset, cfg.root, cfg.split, **cfg.dataset_options)
    out = Path(cfg.out)
    shard, shards = parse_shard(cfg.shard)
    if shards > 1:
        index = select_shard(index, shard, shards)
        out = shard_path(cfg.out, shard, shards)
        logger.info("shard %d of %d: %d videos -> %s", shard, shards, len(index.videos), out)
    return index, out


def _setup(cfg: ExtractConfig, index: DatasetIndex, out: Path) -> _Setup:
    """Build the teacher and choose how it runs (``auto`` times the candidates: seconds to minutes)."""
    device = resolve_device(cfg.device)
    teacher = load_teacher(cfg, device)
    run = choose_run_config(cfg, teacher, device)
    teacher.to(memory_format=memory_format(run.memory_format, 5))
    return _Setup(index, out, Path(cfg.root), device, teacher, run, feature_key(cfg, teacher, run))


def run_extraction(cfg: ExtractConfig, *, apply_threshold: bool = True) -> ExtractSummary:
    """Extract (or update) the feature cache ``cfg.out`` (or this shard's file) for one dataset split.

    Args:
        cfg: the run's config.
        apply_threshold: raise when too many videos failed. Off for a share of a larger run
            (a torchrun rank): the threshold applies to the whole run, once the shares are known.

    Returns:
        The run's summary.

    Raises:
        ExtractionFailed: more than ``max_failed_fraction`` of the videos failed (the cache,
            with the failures recorded, is written first).
    """
    t0 = time.perf_counter()
    index, out = _share(cfg)
    out.parent.mkdir(parents=True, exist_ok=True)
    inputs = [Path(cfg.root) / r.path for r in index.videos]
    if cfg.teacher_weights and Path(cfg.teacher_weights).is_file():
        inputs.append(Path(cfg.teacher_weights))
    check_output_file(out, kind="feature cache", accepts=is_cache_file, inputs=inputs)
    # The lock before the teacher: a second writer is refused in the time the listing takes,
    # not after building a teacher and timing it against the first writer's run.
    with OutputLock(out, "extract-teacher"):
        s = _setup(cfg, index, out)
        logger.info(
            "%s split %s: %d videos (%d listed but missing); teacher %s (%s, %d-d) on %s, %s + %s",
            s.index.name,
            s.index.split,
            len(s.index.videos),
            len(s.index.missing),
            cfg.teacher,
            s.teacher.weights_id,
            s.teacher.feature_dim,
            s.device,
            s.run.precision,
            s.run.memory_format,
        )
        fps = _fingerprints(s.root, s.index.videos, cfg.num_workers() or 1)
        check_no_leakage(cfg.teacher_weights, s.index, fps)
        previous = _previous_cache(s.out, s.key)
        journal = Journal(s.out, s.key)
        known = None
        if previous is not None:
            v = previous.videos
            known = {
                str(p): Known(str(f), st == "ok", i)
                for i, (p, f, st) in enumerate(zip(v.path, v.fingerprint, v.status, strict=True))
            }
        plan = plan_reuse(s.index.videos, fps, known, journal.known())
        summary = ExtractSummary(
            videos=len(s.index.videos), skipped=plan.reused, failed=plan.known_failed, removed=plan.removed
        )
        logger.info("%d to extract, %d unchanged, %d no longer listed", len(plan.todo), plan.reused, plan.removed)

        Extractor(cfg, s.teacher, s.device, s.run).run(s.root, plan.todo, journal, summary)
        summary.clips = _assemble(cfg, s, plan, previous, journal)
        if previous is not None:
            previous.close()
        journal.remove()
    summary.seconds = time.perf_counter() - t0
    logger.info(
        "wrote %s: %d videos (%d extracted, %d skipped, %d failed, %d removed), %d clips; "
        "%.1f s, %.2f clips/s extracted",
        s.out,
        summary.videos,
        summary.extracted,
        summary.skipped,
        summary.failed,
        summary.removed,
        summary.clips,
        summary.seconds,
        summary.clips_per_second,
    )
    if apply_threshold:
        check_failures(summary.failed, summary.videos, cfg.max_failed_fraction, s.out)
    return summary


def check_failures(failed: int, videos: int, max_fraction: float, out: Path | str, summary: Any = None) -> None:
    """Raise :class:`ExtractionFailed` when more than ``max_fraction`` of ``videos`` failed."""
    if videos and failed / videos > max_fraction:
        raise ExtractionFailed(
            f"{failed} of {videos} videos failed (more than max_failed_fraction={max_fraction}); "
            f"see the log and the 'status' column of {out}",
            summary if summary is not None else ExtractSummary(videos=videos, failed=failed),
        )


def _assemble(cfg: ExtractConfig, s: _Setup, plan: ReusePlan, previous: FeatureCache | None, journal: Journal) -> int:
    """Write the cache from the plan's sources in dataset order; returns its clip count."""

    def entries() -> Iterator[VideoEntry]:
        for item in plan.items:
            if item.previous_row is not None:
                entry = previous.entry(item.previous_row)
            else:
                entry = journal.load(item.record.path, item.fingerprint)
            if entry is None:
                raise RuntimeError(f"the journal entry of {item.record.path} vanished during the run")
            # Labels and splits come from the current annotations; features from the source.
            entry.label, entry.score, entry.split = item.record.label, item.record.score, item.record.split
            yield entry

    for item in plan.items:  # journal counts for the entries this run did not write itself
        if item.journaled and item.record.path not in journal.num_clips:
            journal.load(item.record.path, item.fingerprint)
    num_clips = sum(
        int(previous.videos.num_clips[item.previous_row])
        if item.previous_row is not None
        else journal.num_clips[item.record.path]
        for item in plan.items
    )
    h, w = s.teacher.preset.crop_size
    gflops = count_gflops(s.teacher, torch.zeros(1, 3, cfg.clip_len, h, w, device=s.device))
    resolved = {**config_dict(cfg), "precision": s.run.precision, "memory_format": s.run.memory_format}
    info = CacheInfo(
        dataset=s.index.name,
        dataset_root=str(cfg.root),
        split=s.index.split,
        task=s.index.task,
        classes=s.index.classes,
        teacher=cfg.teacher,
        teacher_weights=s.teacher.weights_id,
        feature_dim=s.teacher.feature_dim,
        clip_len=cfg.clip_len,
        frame_step=cfg.frame_step,
        anchors=cfg.anchors,
        image_size=cfg.image_size,
        # Where the file is written and how it was computed there are not part of its content:
        # copies, and runs with other worker counts or devices, compare equal.
        config={k: v for k, v in resolved.items() if k not in ("out", "workers", "device")},
        code_version=code_version(),
        config_key=s.key,
        teacher_classes=tuple(s.teacher.classes),
        teacher_preset=config_dict(s.teacher.preset),
        mirror_classes=s.index.mirror_map() if s.index.task == "classification" else (),
        horizon=cfg.horizon,
        teacher_gflops=round(gflops, 6),
    )
    write_cache(
        s.out,
        info,
        entries(),
        num_clips=num_clips,
        image_shape=(cfg.image_size, cfg.image_size, 3),
        num_logits=s.teacher.num_classes,
        mirror=cfg.mirror,
    )
    return num_clips
