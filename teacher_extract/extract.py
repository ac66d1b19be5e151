"""Stage one: run the 3D-CNN teacher once over every video and write the feature cache.

How the work flows (one process per GPU or CPU):

* Decoder *processes* (:mod:`teacher_extract.decoding`) each take a whole video, decode it once
  and hand over the distinct frames its windows need, as uint8, in dataset order.
* The main process copies those frames to the device (pinned, non-blocking, on a side stream on
  CUDA so the copy overlaps the running forward pass), resizes, crops, normalises and mirrors them
  there in one batch per video, gathers the clips, and runs the teacher on fixed-size batches
  that mix clips across videos. Each batch's outputs travel back while the next batch runs.
* A writer thread journals each finished video (``<out>.partial/``, one atomic ``.npz`` each):
  a crash (even ``kill -9``) loses at most the videos in flight, and the next run picks the
  journal up. At the end the cache is assembled in dataset order into a temporary file and
  renamed into place, so the result equals that of an uninterrupted run.

Incremental reruns: a video whose content fingerprint and feature-defining config (teacher,
weights, preprocessing, anchors, precision, mirroring) are unchanged is copied from the previous
cache, new or changed videos are extracted, and videos no longer listed are dropped
(:mod:`teacher_extract.plan`).
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.autotune import RunConfig, fastest_config
from pipeline.cache import CacheError, CacheInfo, FeatureCache, VideoEntry, read_info, write_cache
from pipeline.clips import parse_anchor_policy
from pipeline.config import check_choice, config_dict
from pipeline.datasets import DatasetIndex, VideoRecord, load_dataset
from pipeline.device import MEMORY_FORMATS, PRECISIONS, autocast, check_device, memory_format, resolve_device
from pipeline.distributed import (
    all_gather_objects,
    barrier,
    broadcast_object,
    device_for,
    process_group,
    world_from_env,
)
from pipeline.errors import UserError
from pipeline.outputs import OutputLock, check_output_file
from pipeline.profile import count_gflops
from pipeline.progress import progress
from pipeline.version import code_version
from pipeline.video import fingerprint
from teacher_extract.decoding import ClipDecoder, DecodedClips, decode_loader
from teacher_extract.models import Teacher, build_teacher
from teacher_extract.plan import Known, PlanItem, ReusePlan, plan_reuse
from teacher_extract.shard import find_shards, merge_shards, parse_shard, select_shard, shard_path
from teacher_extract.teacher_checkpoint import trained_on

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractConfig:
    """Everything ``extract-teacher`` needs; params.yaml section ``extract_teacher``.

    ``teacher_weights``: a torchvision weights name (``DEFAULT``, ``KINETICS400_V1``...), a
    checkpoint path (e.g. from ``fit-teacher``), or ``random`` / null for a seeded random init.
    ``workers``: decoder processes (``null``: one per CPU core; 0: decode in the main process).
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
    horizon: int = 0
    image_size: int = 128
    mirror: bool = False
    batch_size: int = 8
    workers: int | None = None
    device: str = "auto"
    precision: str = "auto"
    memory_format: str = "auto"
    max_failed_fraction: float = 0.1
    seed: int = 0
    shard: str = ""
    out: str = "features.h5"

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


@dataclass
class _InFlight:
    """Teacher outputs of one video, filled batch by batch."""

    item: PlanItem
    decoded: DecodedClips
    features: np.ndarray  # (n, D)
    logits: np.ndarray | None  # (n, C)
    features_mirror: np.ndarray | None
    logits_mirror: np.ndarray | None
    remaining: int

    def entry(self) -> VideoEntry:
        r, d = self.item.record, self.decoded
        return VideoEntry(
            path=r.path,
            label=r.label,
            score=r.score,
            split=r.split,
            num_frames=d.num_frames,
            fps=d.fps,
            fingerprint=self.item.fingerprint,
            status="ok",
            frames=d.anchors,
            features=self.features,
            images=d.images,
            logits=self.logits,
            features_mirror=self.features_mirror,
            logits_mirror=self.logits_mirror,
        )


class _ClipQueue:
    """Clips on the device waiting for a batch: ``(clips (k, 3, T, h, w), owner, mirrored, first row)`` chunks."""

    def __init__(self) -> None:
        self.chunks: collections.deque = collections.deque()
        self.size = 0

    def add(self, clips: torch.Tensor, owner: _InFlight, mirrored: bool) -> None:
        self.chunks.append((clips, owner, mirrored, 0))
        self.size += clips.shape[0]

    def take(self, count: int) -> tuple[torch.Tensor, list[tuple[_InFlight, int, bool]]]:
        parts, owners = [], []
        while count:
            clips, owner, mirrored, first = self.chunks.popleft()
            k = min(count, clips.shape[0])
            parts.append(clips[:k])
            owners += [(owner, first + i, mirrored) for i in range(k)]
            if k < clips.shape[0]:
                self.chunks.appendleft((clips[k:], owner, mirrored, first + k))
            count -= k
            self.size -= k
        return torch.cat(parts), owners


class Extractor:
    """Runs the teacher over decoded videos; one instance per run.

    Args:
        cfg: the run's config.
        teacher: a built teacher in eval mode on ``device``, in ``run``'s memory format.
        device: where the teacher runs.
        run: resolved precision and memory format.
    """

    def __init__(self, cfg: ExtractConfig, teacher: Teacher, device: torch.device, run: RunConfig):
        self.cfg, self.teacher, self.device, self.run_config = cfg, teacher, device, run
        self.memory_format = memory_format(run.memory_format, 5)
        self.copy_stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    def to_device(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames to the device; on CUDA on a side stream, so the copy overlaps the running batch."""
        if self.copy_stream is None:
            return frames.to(self.device)
        with torch.cuda.stream(self.copy_stream):
            out = frames.to(self.device, non_blocking=True)
        torch.cuda.current_stream(self.device).wait_stream(self.copy_stream)
        out.record_stream(torch.cuda.current_stream(self.device))
        return out

    def clips(self, frames: torch.Tensor, gather: torch.Tensor, mirrored: bool, prepared: bool) -> torch.Tensor:
        """Frames on the device -> ``(n, 3, T, h, w)`` float clips of ``gather`` ``(n, T)``.

        ``frames`` are ``(U, H, W, 3)`` uint8 as decoded, or ``(U, 3, h, w)`` uint8 when the decoder
        already ran the preset's geometry (``prepared``, a teacher on the CPU). Mirroring flips the
        decoded frames *before* the preset, so a mirrored clip is exactly the preset applied to
        the mirrored video (a centre crop of an odd margin is not symmetric); prepared frames
        arrive mirrored by the decoder.
        """
        preset = self.teacher.preset
        if prepared:
            x = preset.normalize(frames)  # (U, 3, h, w)
        else:
            x = frames.permute(0, 3, 1, 2)  # (U, 3, H, W), channels-last strides
            x = preset.normalize(preset.geometry(x.flip(-1) if mirrored else x))  # once per distinct frame
        return x[gather.to(self.device)].permute(0, 2, 1, 3, 4)  # (n, 3, T, h, w)

    @torch.inference_mode()
    def forward(self, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher outputs for ``(n, 3, T, h, w)`` device clips, ``n <= batch_size``, as float32 (on the device).

        The batch is padded to ``batch_size`` so every call has the same shape: a clip's
        features then do not depend on which other clips shared its batch, and a resumed run
        reproduces an uninterrupted one.
        """
        n = clips.shape[0]
        if n < self.cfg.batch_size:
            clips = torch.cat([clips, clips.new_zeros((self.cfg.batch_size - n, *clips.shape[1:]))])
        x = clips.contiguous(memory_format=self.memory_format)
        with autocast(self.device, self.run_config.precision):
            features, logits = self.teacher(x)
        return features[:n].float(), None if logits is None else logits[:n].float()

    def run(self, root: Path, todo: list[PlanItem], journal: Journal, summary: ExtractSummary) -> None:
        """Extract every item of ``todo`` into the journal."""
        cfg, bs = self.cfg, self.cfg.batch_size
        on_cpu = self.device.type == "cpu" and cfg.num_workers() > 0
        dataset = ClipDecoder(
            root,
            [item.record.path for item in todo],
            anchors=cfg.anchors,
            clip_len=cfg.clip_len,
            frame_step=cfg.frame_step,
            horizon=cfg.horizon,
            image_size=cfg.image_size,
            preset=self.teacher.preset if on_cpu else None,
            mirror=cfg.mirror,
            needed_short_side=max(self.teacher.preset.short_side, cfg.image_size),
        )
        loader = decode_loader(dataset, workers=cfg.num_workers(), pin_memory=self.device.type == "cuda")
        queue, returning = _ClipQueue(), collections.deque()
        start = time.perf_counter()
        with (
            cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal") as writer,
            progress(total=len(todo), desc="extract", unit="video", logger=logger) as bar,
        ):
            writes: list[cf.Future] = []

            def done(video: _InFlight) -> None:
                writes.append(writer.submit(journal.save, video.entry()))
                summary.extracted += 1
                bar.update(1)
                rate = summary.clips_extracted / max(time.perf_counter() - start, 1e-9)
                bar.set_postfix(clips_s=f"{rate:.2f}", failed=summary.failed)

            for decoded in loader:
                item = todo[decoded.index]
                if decoded.error is not None:
                    logger.error("failed: %s: %s", item.record.path, decoded.error)
                    writes.append(writer.submit(journal.save, _failed_entry(item, decoded.error, cfg.image_size)))
                    summary.failed += 1
                    summary.failures.append(item.record.path)
                    bar.update(1)
                    continue
                self._note_header(item, decoded, summary)
                video = self._in_flight(item, decoded)
                frames = self.to_device(decoded.frames)
                queue.add(self.clips(frames, decoded.gather, False, decoded.prepared), video, False)
                if cfg.mirror:
                    if decoded.prepared:
                        frames = self.to_device(decoded.frames_mirror)
                    queue.add(self.clips(frames, decoded.gather, True, decoded.prepared), video, True)
                decoded.frames = decoded.frames_mirror = None  # the device holds the frames now
                while queue.size >= bs:
                    self._launch(*queue.take(bs), returning)
                    self._collect(returning, keep=1, done=done, summary=summary)
            while queue.size:
                self._launch(*queue.take(min(bs, queue.size)), returning)
            self._collect(returning, keep=0, done=done, summary=summary)
            for write in writes:
                write.result()  # re-raise a failed journal write here

    def _in_flight(self, item: PlanItem, decoded: DecodedClips) -> _InFlight:
        n, d, c = len(decoded.anchors), self.teacher.feature_dim, self.teacher.num_classes
        mirror = self.cfg.mirror
        return _InFlight(
            item,
            decoded,
            features=np.zeros((n, d), np.float32),
            logits=np.zeros((n, c), np.float32) if c else None,
            features_mirror=np.zeros((n, d), np.float32) if mirror else None,
            logits_mirror=np.zeros((n, c), np.float32) if mirror and c else None,
            remaining=n * (2 if mirror else 1),
        )

    def _note_header(self, item: PlanItem, decoded: DecodedClips, summary: ExtractSummary) -> None:
        summary.frames_decoded += decoded.num_decoded
        summary.videos_decoded += 1
        if decoded.header_frames != decoded.num_frames:
            summary.header_mismatches += 1
            off_by_one = abs(decoded.header_frames - decoded.num_frames) <= 1
            logger.log(
                logging.DEBUG if off_by_one else logging.WARNING,
                "%s: the header claims %d frames but %d decode; windows are placed on the %d",
                item.record.path,
                decoded.header_frames,
                decoded.num_frames,
                decoded.num_frames,
            )

    def _launch(self, clips: torch.Tensor, owners: list, returning: collections.deque) -> None:
        """Run one batch and start copying its outputs back without waiting for them."""
        features, logits = self.forward(clips)
        event = None
        if self.device.type == "cuda":
            features = _to_host_async(features)
            logits = None if logits is None else _to_host_async(logits)
            event = torch.cuda.Event()
            event.record()
        returning.append((event, features, logits, owners))

    def _collect(self, returning: collections.deque, *, keep: int, done, summary: ExtractSummary) -> None:
        """Hand the outputs of all but the ``keep`` newest batches to their videos."""
        while len(returning) > keep:
            event, features, logits, owners = returning.popleft()
            if event is not None:
                event.synchronize()
            features = features.cpu().numpy()
            logits = None if logits is None else logits.cpu().numpy()
            summary.clips_extracted += len(owners)  # before done(): its progress line reads the count
            for i, (video, row, mirrored) in enumerate(owners):
                (video.features_mirror if mirrored else video.features)[row] = features[i]
                target = video.logits_mirror if mirrored else video.logits
                if target is not None and logits is not None:
                    target[row] = logits[i]
                video.remaining -= 1
                if video.remaining == 0:
                    done(video)


def _to_host_async(x: torch.Tensor) -> torch.Tensor:
    out = torch.empty(x.shape, dtype=x.dtype, pin_memory=True)
    out.copy_(x, non_blocking=True)
    return out


def _failed_entry(item: PlanItem, reason: str, image_size: int) -> VideoEntry:
    r = item.record
    return VideoEntry(
        path=r.path,
        label=r.label,
        score=r.score,
        split=r.split,
        num_frames=0,
        fps=0.0,
        fingerprint=item.fingerprint,
        status=f"failed: {reason}",
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

    def known(self) -> dict[str, Known]:
        """``{path: Known(fingerprint, ok)}`` of every readable entry (only its metadata is read)."""
        found = {}
        for file in sorted(self.dir.glob("*.npz")):
            try:
                with np.load(file) as data:
                    meta = json.loads(str(data["meta"]))
            except (OSError, ValueError, KeyError) as err:  # renames are atomic, but disks fill up
                logger.warning("ignoring unreadable journal entry %s: %s", file, err)
                continue
            if self._file(meta["path"]) == file:
                found[meta["path"]] = Known(meta["fingerprint"], meta["status"] == "ok")
        return found

    def load(self, path: str, fp: str) -> VideoEntry | None:
        """The journal's entry for ``path`` if it was made from content ``fp``."""
        file = self._file(path)
        if not file.is_file():
            return None
        try:
            entry = VideoEntry.load(file)
        except (OSError, ValueError, KeyError) as err:
            logger.warning("ignoring unreadable journal entry %s: %s", file, err)
            return None
        if entry.path != path or entry.fingerprint != fp:
            return None
        self.num_clips[path] = len(entry.frames) if entry.ok else 0
        return entry

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


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


def _teacher(cfg: ExtractConfig, device: torch.device) -> Teacher:
    weights = None if cfg.teacher_weights in (None, "", "random") else cfg.teacher_weights
    return build_teacher(cfg.teacher, weights, seed=cfg.seed).eval().to(device)


def _run_config(cfg: ExtractConfig, teacher: Teacher, device: torch.device) -> RunConfig:
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
    teacher = _teacher(cfg, device)
    run = _run_config(cfg, teacher, device)
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


def extract(cfg: ExtractConfig) -> ExtractSummary:
    """``extract-teacher``: one process, one ``--shard i/N`` job, or every rank of a ``torchrun`` launch.

    Under torchrun each rank extracts shard ``rank/world_size`` (on ``cuda:<local rank>`` where
    GPUs exist), then rank 0 merges the shards into ``cfg.out`` while the others wait; the failure
    threshold then applies to the whole run's count, as it does in a single process. A ``--shard``
    job leaves the threshold to ``merge-cache``, which sees every shard. Returns this process's
    summary (rank 0's covers the merged cache's totals).
    """
    world = world_from_env()
    if not world.distributed:
        sharded = parse_shard(cfg.shard)[1] > 1
        if sharded and cfg.precision == "auto":
            raise UserError(
                "--shard jobs must agree on the teacher's precision, and each machine would time it by itself "
                "(the precision is part of the cache key, so merge-cache would refuse the shards): set "
                "--precision fp32 or bf16 (extract-teacher without --shard logs what auto picks on a machine)"
            )
        summary = run_extraction(cfg, apply_threshold=not sharded)
        if sharded:
            logger.info("when every shard is done: merge-cache --out %s", cfg.out)
        return summary
    if cfg.shard:
        raise UserError("--shard is for independent jobs; under torchrun every rank takes its shard by itself")
    cfg = replace(cfg, shard=f"{world.rank}/{world.size}", device=device_for(world, cfg.device))
    with process_group(world, resolve_device(cfg.device)):
        if "auto" in (cfg.precision, cfg.memory_format):
            # One decision for every rank: timings on a busy machine differ between ranks, and
            # shards extracted with different choices cannot be merged.
            run = None
            if world.main:
                device = resolve_device(cfg.device)
                run = _run_config(cfg, _teacher(cfg, device), device)
                logger.info("rank 0 chose %s + %s for every rank", run.precision, run.memory_format)
            run = broadcast_object(run)
            cfg = replace(cfg, precision=run.precision, memory_format=run.memory_format)
        summary = run_extraction(cfg, apply_threshold=False)
        barrier()
        summaries = all_gather_objects(summary)
        total = ExtractSummary(
            **{k: sum(getattr(s, k) for s in summaries) for k in ("videos", "extracted", "skipped", "failed")}
        )
        if world.main:
            merge_shards(find_shards(cfg.out), cfg.out)
            logger.info(
                "all %d ranks: %d videos (%d extracted, %d skipped, %d failed)",
                world.size,
                total.videos,
                total.extracted,
                total.skipped,
                total.failed,
            )
        barrier()
    check_failures(total.failed, total.videos, cfg.max_failed_fraction, cfg.out, total)
    return total if world.main else summary
