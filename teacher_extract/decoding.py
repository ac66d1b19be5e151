"""The producer side of stage one: decode videos in worker processes, hand over uint8 frames.

Each item is one whole video, decoded once by one worker (a DataLoader worker *process*: PyAV's
decoding and the RGB conversion then run on every core without contending for one GIL, and torch
gives each worker a single intra-op thread, so workers never fight the teacher for cores). An
item carries only what the device needs: the distinct frames the video's windows touch, as
uint8, and which of them make each clip. Resizing, cropping, normalising and mirroring happen on
the device, in batches (:class:`teacher_extract.engine.Extractor`).

Why DataLoader workers rather than joblib: tensors cross from a worker to the main process
through shared memory (joblib pickles arrays through a pipe: one more copy of every frame), the
loader already keeps a bounded, *ordered* queue of prefetched items per worker, pins them for a
non-blocking copy to the GPU in a background thread, and re-raises a worker's exception (a bug)
in the main process with its traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from pipeline.clips import ClipInfo, clip_windows
from pipeline.frames import student_images
from pipeline.video import DecodedVideo, VideoError, count_frames, decode, probe
from teacher_extract.presets import VideoPreset

logger = logging.getLogger(__name__)


@dataclass
class DecodedClips:
    """One video decoded for the teacher, or the reason it failed.

    Attributes:
        index: the video's position in the list the loader was given.
        frames: ``(U, H, W, 3)`` uint8: the distinct frames the video's windows need; or, when the
            decoder ran the teacher's geometry (``prepared``), ``(U, 3, h, w)`` uint8 resized and cropped.
        frames_mirror: with ``prepared`` and mirroring, the same of the horizontally mirrored frames.
        gather: ``(n, T)`` int64: rows of ``frames`` making each clip.
        anchors: ``(n,)`` int64 anchor frame of each clip.
        images: ``(n, S, S, 3)`` uint8: each anchor frame as the student sees it.
        num_frames: frames that decode (what windows were placed on).
        header_frames: frames the container's header claims.
        fps: average frame rate.
        num_decoded: frames the decoder produced (over all passes).
        error: why the video failed (then every array is empty).
    """

    index: int
    frames: torch.Tensor
    gather: torch.Tensor
    anchors: np.ndarray
    images: np.ndarray
    num_frames: int = 0
    header_frames: int = 0
    fps: float = 0.0
    num_decoded: int = 0
    error: str | None = None
    prepared: bool = False
    frames_mirror: torch.Tensor | None = None

    def pin_memory(self) -> DecodedClips:
        """Pinned copies of the frames, so the copy to the GPU does not block (DataLoader calls this)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["frames"] = self.frames.pin_memory()
        if self.frames_mirror is not None:
            values["frames_mirror"] = self.frames_mirror.pin_memory()
        return DecodedClips(**values)


#: Sources whose short side exceeds this many times the largest side their consumers need are
#: downscaled while decoding (see :func:`decode_size`).
OVERSIZE = 8


def decode_size(width: int, height: int, needed_short_side: int | None) -> tuple[int, int] | None:
    """``(h, w)`` to decode an oversized source at, or ``None`` to keep its own size.

    A 4K phone clip holds 25 MB per RGB frame; a worker keeping the frames of a few clips at full
    size needs gigabytes, for a teacher that sees 128x171. A source whose short side is more than
    :data:`OVERSIZE` times ``needed_short_side`` (the teacher's resize, the student's frame) is
    scaled by swscale while converting, short side to ``OVERSIZE * needed_short_side``, even sizes
    kept: memory per decoded frame is then bounded by the consumers' sizes, not the source's.
    The preset's own resize follows, from 8x its size: features stay within cosine 0.996 of the
    preset applied to full-size frames even on pixel noise at 1080p (r3d_18), and ordinary
    sources (UCF101's 320x240 for every registry teacher) are not touched at all.
    """
    if needed_short_side is None:
        return None
    limit = OVERSIZE * needed_short_side
    short = min(width, height)
    if short <= limit:
        return None
    scale = limit / short
    return max(2, round(height * scale / 2) * 2), max(2, round(width * scale / 2) * 2)


def decode_windows(
    path: Path, policy: str, clip_len: int, frame_step: int, horizon: int = 0, needed_short_side: int | None = None
) -> tuple[DecodedVideo, list[ClipInfo], int]:
    """Decode the frames of a video's windows, placing the windows on the frames the file really holds.

    The frame count comes from the stream's packets (:func:`pipeline.video.count_frames`, a cheap
    demux), not from the header, which overstates for truncated files; decoding then stops after
    the last window. If decoding ends earlier (corrupt data), the windows are placed again on the
    frames that decoded and those are decoded once more. Nearly every file costs one demux and one
    partial decode.

    Returns:
        The decoded frames (``indices`` = the distinct frames needed, sorted; ``num_frames`` = the
        video's frame count), the windows, and the header's frame count.

    Raises:
        VideoError: the video cannot be read.
    """
    info = probe(path)
    header, size = info.num_frames, decode_size(info.width, info.height, needed_short_side)
    count = count_frames(path)
    windows = clip_windows(count, policy, clip_len, frame_step, horizon)
    needed = _needed(windows)
    video = decode(path, needed, threads=1, size=size)
    decoded = video.num_decoded
    if video.num_frames <= needed[-1]:  # decoding ended before the last window: trust what decoded
        count = video.num_frames
        truth = clip_windows(count, policy, clip_len, frame_step, horizon)
        if truth != windows:
            windows = truth
            video = decode(path, _needed(truth), threads=1, size=size)
            decoded += video.num_decoded
    return DecodedVideo(video.frames, video.indices, count, video.fps, decoded), windows, header


def _needed(windows: list[ClipInfo]) -> list[int]:
    return sorted({f for clip in windows for f in clip.frames} | {clip.anchor for clip in windows})


class ClipDecoder(Dataset):
    """Map-style dataset over videos: item ``i`` is video ``paths[i]`` as :class:`DecodedClips`.

    Args:
        root: the dataset root ``paths`` are relative to.
        paths: the videos, in the order items are wanted.
        anchors, clip_len, frame_step, horizon: the windowing (see :func:`pipeline.clips.clip_windows`).
        image_size: side of the student's stored frame.
        preset: run this teacher preset's geometry (resize, crop) here, in the decoder process; for
            a teacher on the CPU, where the main process is busy running it (on a GPU the device
            does it faster, in batches).
        mirror: with ``preset``, also prepare the horizontally mirrored frames.
        needed_short_side: the largest short side the frames are used at (the teacher's resize,
            the student's frame): oversized sources are decoded smaller (:func:`decode_size`).
    """

    def __init__(
        self,
        root: Path,
        paths: Sequence[str],
        *,
        anchors: str,
        clip_len: int,
        frame_step: int,
        horizon: int,
        image_size: int,
        preset: VideoPreset | None = None,
        mirror: bool = False,
        needed_short_side: int | None = None,
    ):
        self.root, self.paths = Path(root), list(paths)
        self.anchors, self.clip_len, self.frame_step, self.horizon = anchors, clip_len, frame_step, horizon
        self.image_size, self.preset, self.mirror = image_size, preset, mirror
        self.needed_short_side = needed_short_side

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> DecodedClips:
        try:
            video, windows, header = decode_windows(
                self.root / self.paths[index],
                self.anchors,
                self.clip_len,
                self.frame_step,
                self.horizon,
                self.needed_short_side,
            )
        except VideoError as err:
            return DecodedClips(
                index,
                torch.zeros(0, 0, 0, 3, dtype=torch.uint8),
                torch.zeros(0, self.clip_len, dtype=torch.int64),
                np.zeros(0, np.int64),
                np.zeros((0, self.image_size, self.image_size, 3), np.uint8),
                error=err.reason,
            )
        row = {frame: i for i, frame in enumerate(video.indices)}
        anchors = np.array([clip.anchor for clip in windows], np.int64)
        frames, mirrored = torch.from_numpy(video.frames), None  # (U, H, W, 3) uint8
        if self.preset is not None:
            raw = frames.permute(0, 3, 1, 2)
            frames = self.preset.geometry(raw)  # (U, 3, h, w) uint8
            mirrored = self.preset.geometry(raw.flip(-1)) if self.mirror else None
        return DecodedClips(
            index,
            frames=frames,
            gather=torch.tensor([[row[f] for f in clip.frames] for clip in windows], dtype=torch.int64),
            anchors=anchors,
            images=student_images(video.frames[[row[a] for a in anchors]], self.image_size),
            num_frames=video.num_frames,
            header_frames=header,
            fps=video.fps,
            num_decoded=video.num_decoded,
            prepared=self.preset is not None,
            frames_mirror=mirrored,
        )


def _identity(item):
    return item


def decode_loader(dataset: Dataset, *, workers: int, pin_memory: bool) -> DataLoader:
    """Items of ``dataset`` in order, decoded by ``workers`` processes (0: in this process), 4 ahead each."""
    return DataLoader(
        dataset,
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        collate_fn=_identity,
        pin_memory=pin_memory,
        prefetch_factor=4 if workers else None,
    )
