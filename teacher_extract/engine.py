"""The extraction loop: decoded videos in, teacher outputs of every clip out, batched across videos.

Decoder processes (:mod:`teacher_extract.decoding`) hand over each video's distinct frames; the
:class:`Extractor` moves them to the device, runs the preset's geometry there once per frame
(unless a decoder already did), and queues them as uint8. Each batch is built straight from the
queue: one conversion copy per clip into the teacher's layout, one normalisation of the batch in
place. The teacher runs on fixed-size batches that mix clips of several videos, and each batch's
outputs travel back while the next one runs. A finished video goes to the crash journal
(:mod:`teacher_extract.journal`) on a writer thread. What to extract, and the cache built from
the journal afterwards, is :mod:`teacher_extract.extract`'s business.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from pipeline.autotune import RunConfig
from pipeline.cache import VideoEntry
from pipeline.device import autocast, memory_format
from pipeline.progress import progress
from teacher_extract.decoding import ClipDecoder, DecodedClips, decode_loader
from teacher_extract.journal import Journal
from teacher_extract.models import Teacher
from teacher_extract.plan import PlanItem
from teacher_extract.presets import VideoPreset

if TYPE_CHECKING:
    from teacher_extract.extract import ExtractConfig, ExtractSummary

logger = logging.getLogger(__name__)


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
        d = self.decoded
        return VideoEntry(
            **_identity(self.item),
            num_frames=d.num_frames,
            fps=d.fps,
            status="ok",
            frames=d.anchors,
            features=self.features,
            images=d.images,
            logits=self.logits,
            features_mirror=self.features_mirror,
            logits_mirror=self.logits_mirror,
        )


class _ClipQueue:
    """Clips waiting for a batch, kept as their video's uint8 frames and the rows making each clip.

    Chunks are ``(frames (U, 3, h, w) uint8 on the device, gather (k, T) on the host, owner,
    mirrored, first row)``. :meth:`take` builds a batch straight from them: one conversion copy per
    clip into the batch, laid out as the teacher reads it, then one normalisation in place.
    """

    def __init__(self) -> None:
        self.chunks: collections.deque = collections.deque()
        self.size = 0

    def add(self, frames: torch.Tensor, gather: torch.Tensor, owner: _InFlight, mirrored: bool) -> None:
        self.chunks.append((frames, gather, owner, mirrored, 0))
        self.size += gather.shape[0]

    def take(
        self, count: int, size: int, preset: VideoPreset, memory_format: torch.memory_format
    ) -> tuple[torch.Tensor, list[tuple[_InFlight, int, bool]]]:
        """The next ``count`` clips as a ``(size, 3, T, h, w)`` float32 batch (zero rows after them), their owners."""
        frames, gather = self.chunks[0][:2]
        t, (c, h, w) = gather.shape[1], frames.shape[1:]
        batch = torch.empty((size, c, t, h, w), device=frames.device, memory_format=memory_format)
        owners, row = [], 0
        while row < count:
            frames, gather, owner, mirrored, first = self.chunks.popleft()
            k = min(count - row, gather.shape[0])
            for i, rows in enumerate(gather[:k].tolist()):
                # (T, 3, h, w) uint8: a view when the clip's frames are consecutive rows (frame_step 1)
                start = rows[0]
                clip = frames[start : start + t] if rows == list(range(start, start + t)) else frames[rows]
                batch[row + i].copy_(clip.transpose(0, 1))
            owners += [(owner, first + i, mirrored) for i in range(k)]
            if k < gather.shape[0]:
                self.chunks.appendleft((frames, gather[k:], owner, mirrored, first + k))
            row += k
        self.size -= count
        preset.normalize_clips_(batch[:count])
        batch[count:].zero_()
        return batch, owners


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

    def prepare(self, frames: torch.Tensor, mirrored: bool, prepared: bool) -> torch.Tensor:
        """Frames on the device -> ``(U, 3, h, w)`` uint8 as the teacher's preset crops them.

        ``frames`` are ``(U, H, W, 3)`` uint8 as decoded, or ``(U, 3, h, w)`` when the decoder
        already ran the preset's geometry (``prepared``, a teacher on the CPU). Mirroring flips the
        decoded frames *before* the preset, so a mirrored clip is exactly the preset applied to
        the mirrored video (a centre crop of an odd margin is not symmetric); prepared frames
        arrive mirrored by the decoder. Normalising waits for the batch (:meth:`_ClipQueue.take`).
        """
        if prepared:
            return frames
        x = frames.permute(0, 3, 1, 2)  # (U, 3, H, W), channels-last strides
        return self.teacher.preset.geometry(x.flip(-1) if mirrored else x)  # once per distinct frame

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher outputs of the first ``n`` clips of a ``(batch_size, 3, T, h, w)`` device batch, as float32.

        Every call has the same shape (a short batch is padded with zero clips): a clip's features
        then do not depend on which other clips shared its batch, and a resumed run reproduces an
        uninterrupted one.
        """
        x = batch.contiguous(memory_format=self.memory_format)  # built in this format: no copy
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
                    writes.append(writer.submit(journal.save, failed_entry(item, decoded.error, cfg.image_size)))
                    summary.failed += 1
                    summary.failures.append(item.record.path)
                    bar.update(1)
                    continue
                self._note_header(item, decoded, summary)
                video = self._in_flight(item, decoded)
                frames = self.to_device(decoded.frames)
                gather = decoded.gather  # stays on the host: batches are built from it row by row
                queue.add(self.prepare(frames, False, decoded.prepared), gather, video, False)
                if cfg.mirror:
                    if decoded.prepared:
                        frames = self.to_device(decoded.frames_mirror)
                    queue.add(self.prepare(frames, True, decoded.prepared), gather, video, True)
                decoded.frames = decoded.frames_mirror = None  # the device holds the frames now
                while queue.size >= bs:
                    self._launch(bs, *self._next_batch(queue, bs), returning)
                    self._collect(returning, keep=1, done=done, summary=summary)
            while queue.size:
                n = min(bs, queue.size)
                self._launch(n, *self._next_batch(queue, n), returning)
            self._collect(returning, keep=0, done=done, summary=summary)
            for write in writes:
                write.result()  # re-raise a failed journal write here
        summary.loop_seconds += time.perf_counter() - start

    def _next_batch(self, queue: _ClipQueue, n: int) -> tuple[torch.Tensor, list]:
        """The next ``n`` queued clips as a padded batch; on a CPU built on one thread.

        Building a batch is a few milliseconds of copies, where the intra-op pool's other threads
        cost more CPU (waking, spinning) than they save, CPU the decoder processes need: measured
        with a null teacher, 8 clips per video, the main process spent 2.5-3.4 ms of CPU per clip
        with two threads, 1.6-1.8 ms with one. The teacher's forward keeps every thread.
        """
        take = functools.partial(queue.take, n, self.cfg.batch_size, self.teacher.preset, self.memory_format)
        if self.device.type != "cpu":
            return take()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return take()
        finally:
            torch.set_num_threads(threads)

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

    def _launch(self, n: int, batch: torch.Tensor, owners: list, returning: collections.deque) -> None:
        """Run one batch (``n`` clips) and start copying its outputs back without waiting for them."""
        features, logits = self.forward(batch, n)
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


def _identity(item: PlanItem) -> dict:
    """The entry fields that come from the annotations and the file, whatever the extraction did."""
    r = item.record
    return {"path": r.path, "label": r.label, "score": r.score, "split": r.split, "fingerprint": item.fingerprint}


def failed_entry(item: PlanItem, reason: str, image_size: int) -> VideoEntry:
    return VideoEntry(
        **_identity(item),
        num_frames=0,
        fps=0.0,
        status=f"failed: {reason}",
        frames=np.zeros(0, np.int64),
        features=np.zeros((0, 0), np.float32),
        images=np.zeros((0, image_size, image_size, 3), np.uint8),
    )
