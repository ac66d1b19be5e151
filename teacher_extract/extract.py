"""Stage one: run the 3D-CNN teacher once over every video and write the feature cache.

How the work flows (one process):

* Decoder threads (PyAV releases the GIL) each take a whole video, decode only the frames its
  clips need, once, apply the teacher's per-frame preset once, and gather the clips.
* The main thread batches clips *across* videos, runs the teacher under ``inference_mode``
  (bf16 autocast and channels_last_3d where they pay off), and hands each finished video to
  the journal.
* The journal (``<out>.partial/``) holds one ``.npz`` per finished video, written atomically.
  A crash (even ``kill -9``) loses at most the videos in flight; the next run picks the
  journal up. At the end the cache is assembled in dataset order into a temporary file and
  renamed into place, so the result equals that of an uninterrupted run.

Incremental reruns: a video whose content fingerprint and feature-defining config (teacher,
weights, preprocessing, anchors) are unchanged is copied from the previous cache, new or changed
videos are extracted, and videos no longer listed are dropped.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from pipeline.cache import CacheError, CacheInfo, FeatureCache, VideoEntry, write_cache
from pipeline.config import config_dict
from pipeline.datasets import DatasetIndex, VideoRecord, load_dataset
from pipeline.device import DEVICES, PRECISIONS, autocast, resolve_device, resolve_precision
from pipeline.distributed import all_gather_objects, barrier, device_for, process_group, world_from_env
from pipeline.frames import student_images
from pipeline.video import VideoError, clip_windows, decode, parse_anchor_policy, probe
from teacher_extract.models import Teacher, build_teacher
from teacher_extract.shard import find_shards, merge_shards, parse_shard, select_shard, shard_path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractConfig:
    """Everything ``extract-teacher`` needs; params.yaml section ``extract_teacher``.

    ``teacher_weights``: a torchvision weights name (``DEFAULT``, ``KINETICS400_V1``...), a
    checkpoint path (e.g. from ``fit-teacher``), or ``random`` / null for a seeded random init.
    """

    dataset: str = "ucf101"
    root: str = "data/synthetic"
    split: str = "1"
    dataset_options: dict = field(default_factory=dict)
    teacher: str = "r3d_18"
    teacher_weights: str | None = "DEFAULT"
    anchors: str = "center"
    clip_len: int = 16
    frame_step: int = 1
    image_size: int = 128
    batch_size: int = 8
    workers: int = 2
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool = True
    max_failed_fraction: float = 0.1
    seed: int = 0
    shard: str = ""
    out: str = "features.h5"

    def validate(self) -> None:
        parse_anchor_policy(self.anchors)
        parse_shard(self.shard)
        for name in ("clip_len", "frame_step", "image_size", "batch_size", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.device not in DEVICES and not self.device.startswith("cuda:"):
            raise ValueError(f"invalid device {self.device!r}; choose from {', '.join(DEVICES)} or cuda:N")
        if self.precision not in PRECISIONS:
            raise ValueError(f"invalid precision {self.precision!r}; choose from {', '.join(PRECISIONS)}")
        if not 0.0 <= self.max_failed_fraction <= 1.0:
            raise ValueError(f"max_failed_fraction must be within [0, 1], got {self.max_failed_fraction}")


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
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def clips_per_second(self) -> float:
        return self.clips_extracted / self.seconds if self.seconds else 0.0


class ExtractionFailed(RuntimeError):
    """More videos failed than ``max_failed_fraction`` allows (the cache is still written)."""

    def __init__(self, message: str, summary: ExtractSummary):
        super().__init__(message)
        self.summary = summary


def fingerprint(path: Path) -> str:
    """Content hash of a video file: survives copies, clones and ``dvc checkout`` (mtimes don't)."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return f"blake2b:{h.hexdigest()}"


def code_version() -> str:
    try:
        return f"hallucinet {metadata.version('hallucinet')}"
    except metadata.PackageNotFoundError:
        return "hallucinet (not installed)"


@dataclass
class _Prepared:
    """A decoded video ready for the teacher, or the reason it failed."""

    record: VideoRecord
    fingerprint: str
    num_frames: int = 0
    fps: float = 0.0
    anchors: np.ndarray | None = None  # (n,) int64
    clips: torch.Tensor | None = None  # (n, C, T, h, w) float32
    images: np.ndarray | None = None  # (n, S, S, 3) uint8
    num_decoded: int = 0
    error: str | None = None


@dataclass
class _InFlight:
    """Teacher outputs of one video, filled batch by batch."""

    prepared: _Prepared
    features: np.ndarray
    logits: np.ndarray | None
    remaining: int


class Extractor:
    """Decodes, batches and runs the teacher; one instance per run.

    Args:
        cfg: the run's config.
        teacher: a built teacher in eval mode on ``device``.
        device: where the teacher runs.
        precision: ``"fp32"`` or ``"bf16"`` (already resolved).
    """

    def __init__(self, cfg: ExtractConfig, teacher: Teacher, device: torch.device, precision: str):
        self.cfg = cfg
        self.teacher = teacher
        self.device = device
        self.precision = precision
        self.memory_format = torch.channels_last_3d if cfg.channels_last else torch.contiguous_format

    def prepare(self, root: Path, record: VideoRecord, fp: str) -> _Prepared:
        """Decode one video once and turn it into teacher clips and student frames (thread-safe)."""
        out = _Prepared(record, fp)
        try:
            info = probe(root / record.path)
            windows = clip_windows(info.num_frames, self.cfg.anchors, self.cfg.clip_len, self.cfg.frame_step)
            needed = sorted({f for clip in windows for f in clip.frames})
            video = decode(root / record.path, needed, threads=1)
        except VideoError as err:
            out.error = err.reason
            return out
        row = {frame: i for i, frame in enumerate(needed)}
        frames = torch.from_numpy(video.frames).permute(0, 3, 1, 2)  # (U, 3, H, W) uint8
        per_frame = self.teacher.preset.frames(frames)  # (U, 3, h, w) float32, once per frame
        gather = torch.tensor([[row[f] for f in clip.frames] for clip in windows])  # (n, T)
        out.clips = per_frame[gather].permute(0, 2, 1, 3, 4).contiguous()  # (n, 3, T, h, w)
        anchors = [clip.anchor for clip in windows]
        out.anchors = np.array(anchors, np.int64)
        out.images = student_images(video.frames[[row[a] for a in anchors]], self.cfg.image_size)
        out.num_frames, out.fps, out.num_decoded = info.num_frames, info.fps, video.num_decoded
        return out

    @torch.inference_mode()
    def forward(self, clips: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        """Teacher outputs for ``(n, C, T, h, w)`` clips, ``n <= batch_size``.

        The batch is padded to ``batch_size`` so every call has the same shape: a clip's
        features then do not depend on which other clips shared its batch, and a resumed run
        reproduces an uninterrupted one.
        """
        n = clips.shape[0]
        if n < self.cfg.batch_size:
            pad = clips.new_zeros((self.cfg.batch_size - n, *clips.shape[1:]))
            clips = torch.cat([clips, pad])
        x = clips.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        with autocast(self.device, self.precision):
            features, logits = self.teacher(x)
        features = features[:n].float().cpu().numpy()
        return features, (None if logits is None else logits[:n].float().cpu().numpy())

    def run(self, root: Path, todo: list[tuple[VideoRecord, str]], journal: Journal, summary: ExtractSummary) -> None:
        """Extract every ``(record, fingerprint)`` of ``todo`` into the journal."""
        bs = self.cfg.batch_size
        queue: list[tuple[_InFlight, int]] = []  # (video, clip row) waiting for a batch
        queued_clips: list[torch.Tensor] = []
        start = time.perf_counter()
        bar = tqdm(total=len(todo), desc="extract", unit="video", dynamic_ncols=True, disable=None)

        def finish(item: _InFlight) -> None:
            p = item.prepared
            journal.save(
                VideoEntry(
                    path=p.record.path,
                    label=p.record.label,
                    score=p.record.score,
                    split=p.record.split,
                    num_frames=p.num_frames,
                    fps=p.fps,
                    fingerprint=p.fingerprint,
                    status="ok",
                    frames=p.anchors,
                    features=item.features,
                    images=p.images,
                    logits=item.logits,
                )
            )
            summary.extracted += 1
            bar.update(1)
            elapsed = time.perf_counter() - start
            bar.set_postfix(clips_s=f"{summary.clips_extracted / elapsed:.2f}", failed=summary.failed)

        def flush(count: int) -> None:
            batch, owners = torch.cat(queued_clips[:count]), queue[:count]
            del queued_clips[:count], queue[:count]
            features, logits = self.forward(batch)
            for i, (item, clip) in enumerate(owners):
                item.features[clip] = features[i]
                if item.logits is not None and logits is not None:
                    item.logits[clip] = logits[i]
                item.remaining -= 1
                if item.remaining == 0:
                    finish(item)
            summary.clips_extracted += count

        with cf.ThreadPoolExecutor(max_workers=self.cfg.workers, thread_name_prefix="decode") as pool:
            for prepared in _prefetch(pool, self.prepare, root, todo, depth=2 * self.cfg.workers):
                if prepared.error is not None:
                    logger.error("failed: %s: %s", prepared.record.path, prepared.error)
                    journal.save(_failed_entry(prepared, self.cfg.image_size))
                    summary.failed += 1
                    summary.failures.append(prepared.record.path)
                    bar.update(1)
                    continue
                summary.frames_decoded += prepared.num_decoded
                summary.videos_decoded += 1
                n = len(prepared.anchors)
                num_logits = self.teacher.num_classes
                item = _InFlight(
                    prepared,
                    np.zeros((n, self.teacher.feature_dim), np.float32),
                    np.zeros((n, num_logits), np.float32) if num_logits else None,
                    n,
                )
                for clip in range(n):
                    queue.append((item, clip))
                    queued_clips.append(prepared.clips[clip : clip + 1])
                prepared.clips = None  # the queue holds the clips now
                while len(queue) >= bs:
                    flush(bs)
            while queue:
                flush(min(bs, len(queue)))
        bar.close()


def _prefetch(pool: cf.Executor, fn: Any, root: Path, todo: list, depth: int) -> Iterator[_Prepared]:
    """``fn`` over ``todo`` in order, keeping ``depth`` videos decoding ahead of the consumer."""
    futures: list[cf.Future] = []
    items = iter(todo)
    for record, fp in items:
        futures.append(pool.submit(fn, root, record, fp))
        if len(futures) >= depth:
            break
    while futures:
        result = futures.pop(0).result()
        nxt = next(items, None)
        if nxt is not None:
            futures.append(pool.submit(fn, root, *nxt))
        yield result


def _failed_entry(p: _Prepared, image_size: int) -> VideoEntry:
    return VideoEntry(
        path=p.record.path,
        label=p.record.label,
        score=p.record.score,
        split=p.record.split,
        num_frames=0,
        fps=0.0,
        fingerprint=p.fingerprint,
        status=f"failed: {p.error}",
        frames=np.zeros(0, np.int64),
        features=np.zeros((0, 0), np.float32),
        images=np.zeros((0, image_size, image_size, 3), np.uint8),
    )


class Journal:
    """Finished videos of an interrupted or running extraction, one atomic ``.npz`` each.

    Lives in ``<out>.partial/`` and belongs to one feature-defining config (``key``); a journal
    of another config is discarded, since its features would be wrong for this run.
    """

    def __init__(self, out: Path, key: str):
        self.dir = out.with_name(out.name + ".partial")
        stamp = self.dir / "config_key"
        if self.dir.exists() and (not stamp.is_file() or stamp.read_text() != key):
            logger.info("discarding %s: it was written with another teacher or preprocessing", self.dir)
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        stamp.write_text(key)
        self.num_clips: dict[str, int] = {}  # clips per entry saved or loaded by this run

    def _file(self, path: str) -> Path:
        return self.dir / f"{hashlib.sha1(path.encode()).hexdigest()[:20]}.npz"

    def save(self, entry: VideoEntry) -> None:
        entry.save(self._file(entry.path))
        self.num_clips[entry.path] = len(entry.frames) if entry.ok else 0

    def load(self, path: str, fp: str) -> VideoEntry | None:
        """The journal's entry for ``path`` if it was made from content ``fp``."""
        file = self._file(path)
        if not file.is_file():
            return None
        try:
            entry = VideoEntry.load(file)
        except (OSError, ValueError, KeyError) as err:  # renames are atomic, but disks fill up
            logger.warning("ignoring unreadable journal entry %s: %s", file, err)
            return None
        if entry.path != path or entry.fingerprint != fp:
            return None
        self.num_clips[path] = len(entry.frames) if entry.ok else 0
        return entry

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def feature_key(cfg: ExtractConfig, teacher: Teacher, precision: str) -> str:
    """Hash of everything that determines a clip's features and stored frame."""
    spec = {
        "teacher": cfg.teacher,
        "weights": teacher.weights_id,
        "preset": config_dict(teacher.preset),
        "anchors": cfg.anchors,
        "clip_len": cfg.clip_len,
        "frame_step": cfg.frame_step,
        "image_size": cfg.image_size,
        "precision": precision,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _previous_cache(out: Path, key: str) -> FeatureCache | None:
    if not out.exists():
        return None
    try:
        cache = FeatureCache(out)
    except CacheError as err:
        logger.warning("not reusing %s: %s", out, err)
        return None
    if cache.info.config_key != key:
        logger.info("teacher or preprocessing changed since %s was written: re-extracting every video", out)
        return None
    return cache


def _fingerprints(root: Path, records: tuple[VideoRecord, ...], workers: int) -> list[str]:
    with cf.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(lambda r: fingerprint(root / r.path), records))


def run_extraction(cfg: ExtractConfig) -> ExtractSummary:
    """Extract (or update) the feature cache ``cfg.out`` for one dataset split.

    Returns:
        The run's summary.

    Raises:
        ExtractionFailed: more than ``max_failed_fraction`` of the videos failed (the cache,
            with the failures recorded, is written first).
    """
    t0 = time.perf_counter()
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    index: DatasetIndex = load_dataset(cfg.dataset, cfg.root, cfg.split, **cfg.dataset_options)
    shard, shards = parse_shard(cfg.shard)
    if shards > 1:
        index = select_shard(index, shard, shards)
        out = shard_path(cfg.out, shard, shards)
        logger.info("shard %d of %d: %d videos -> %s", shard, shards, len(index.videos), out)
    root = Path(cfg.root)
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    weights = None if cfg.teacher_weights in (None, "", "random") else cfg.teacher_weights
    teacher = build_teacher(cfg.teacher, weights, seed=cfg.seed).eval().to(device)
    if cfg.channels_last:
        teacher = teacher.to(memory_format=torch.channels_last_3d)
    key = feature_key(cfg, teacher, precision)
    logger.info(
        "%s split %s: %d videos (%d listed but missing); teacher %s (%s, %d-d) on %s, %s",
        index.name,
        index.split,
        len(index.videos),
        len(index.missing),
        cfg.teacher,
        teacher.weights_id,
        teacher.feature_dim,
        device,
        precision,
    )

    fps = _fingerprints(root, index.videos, cfg.workers)
    previous = _previous_cache(out, key)
    journal = Journal(out, key)
    summary = ExtractSummary(videos=len(index.videos))
    old_rows = {}
    if previous is not None:
        old_rows = {str(p): i for i, p in enumerate(previous.videos["path"])}
        listed = {r.path for r in index.videos}
        summary.removed = sum(1 for p in old_rows if p not in listed)

    # Where each video's entry comes from: its row in the previous cache, or the journal
    # (entries left by an interrupted run, or written by the teacher below).
    plan: list[tuple[VideoRecord, str, int | None]] = []
    todo: list[tuple[VideoRecord, str]] = []
    for record, fp in zip(index.videos, fps, strict=True):
        row = old_rows.get(record.path)
        if row is not None and previous.videos["fingerprint"][row] == fp:
            plan.append((record, fp, row))
            summary.skipped += 1
            summary.failed += previous.videos["status"][row] != "ok"
            continue
        plan.append((record, fp, None))
        entry = journal.load(record.path, fp)
        if entry is not None:
            summary.skipped += 1
            summary.failed += not entry.ok
        else:
            todo.append((record, fp))
    logger.info("%d to extract, %d unchanged, %d no longer listed", len(todo), summary.skipped, summary.removed)

    Extractor(cfg, teacher, device, precision).run(root, todo, journal, summary)

    def entries() -> Iterator[VideoEntry]:
        for record, fp, row in plan:
            entry = previous.entry(row) if row is not None else journal.load(record.path, fp)
            if entry is None:
                raise RuntimeError(f"the journal entry of {record.path} vanished during the run")
            # Labels and splits come from the current annotations; features from the source.
            entry.label, entry.score, entry.split = record.label, record.score, record.split
            yield entry

    summary.clips = sum(
        int(previous.videos["num_clips"][row]) if row is not None else journal.num_clips[record.path]
        for record, _, row in plan
    )
    info = CacheInfo(
        dataset=index.name,
        dataset_root=str(cfg.root),
        split=index.split,
        task=index.task,
        classes=index.classes,
        teacher=cfg.teacher,
        teacher_weights=teacher.weights_id,
        feature_dim=teacher.feature_dim,
        clip_len=cfg.clip_len,
        frame_step=cfg.frame_step,
        anchors=cfg.anchors,
        image_size=cfg.image_size,
        # Where the file is written is not part of its content: copies compare equal.
        config={k: v for k, v in config_dict(cfg).items() if k != "out"},
        code_version=code_version(),
        config_key=key,
        teacher_classes=tuple(teacher.classes),
        teacher_preset=config_dict(teacher.preset),
    )
    write_cache(
        out,
        info,
        entries(),
        num_clips=summary.clips,
        image_shape=(cfg.image_size, cfg.image_size, 3),
        num_logits=teacher.num_classes,
    )
    if previous is not None:
        previous.close()
    journal.remove()
    summary.seconds = time.perf_counter() - t0
    logger.info(
        "wrote %s: %d videos (%d extracted, %d skipped, %d failed, %d removed), %d clips; "
        "%.1f s, %.2f clips/s extracted",
        out,
        summary.videos,
        summary.extracted,
        summary.skipped,
        summary.failed,
        summary.removed,
        summary.clips,
        summary.seconds,
        summary.clips_per_second,
    )
    if summary.videos and summary.failed / summary.videos > cfg.max_failed_fraction:
        raise ExtractionFailed(
            f"{summary.failed} of {summary.videos} videos failed (more than max_failed_fraction="
            f"{cfg.max_failed_fraction}); see the log and the 'status' column of {out}",
            summary,
        )
    return summary


def extract(cfg: ExtractConfig) -> ExtractSummary:
    """``extract-teacher``: one process, one ``--shard i/N`` job, or every rank of a ``torchrun`` launch.

    Under torchrun each rank extracts shard ``rank/world_size`` (on ``cuda:<local rank>`` where
    GPUs exist), then rank 0 merges the shards into ``cfg.out`` while the others wait. Returns
    this process's summary (rank 0's covers the merged cache's totals).
    """
    world = world_from_env()
    if not world.distributed:
        summary = run_extraction(cfg)
        if parse_shard(cfg.shard)[1] > 1:
            logger.info("when every shard is done: merge-cache --out %s", cfg.out)
        return summary
    if cfg.shard:
        raise ValueError("--shard is for independent jobs; under torchrun every rank takes its shard by itself")
    cfg = replace(cfg, shard=f"{world.rank}/{world.size}", device=device_for(world, cfg.device))
    with process_group(world, resolve_device(cfg.device)):
        failed: ExtractionFailed | None = None
        try:
            summary = run_extraction(cfg)
        except ExtractionFailed as err:  # the shard file is written; finish the merge, then report
            failed, summary = err, err.summary
        barrier()
        summaries = all_gather_objects(summary)
        if world.main:
            merge_shards(find_shards(cfg.out), cfg.out)
            total = ExtractSummary(
                **{k: sum(getattr(s, k) for s in summaries) for k in ("videos", "extracted", "skipped", "failed")}
            )
            logger.info(
                "all %d ranks: %d videos (%d extracted, %d skipped, %d failed)",
                world.size,
                total.videos,
                total.extracted,
                total.skipped,
                total.failed,
            )
            summary = total
        barrier()
    if failed is not None:
        raise failed
    return summary
