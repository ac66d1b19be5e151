"""Video probing and decoding with PyAV, and the pure rule that turns a frame count into clips.

Two facts shape this module:

* ``torchvision.io`` no longer decodes video, so we use PyAV directly. PyAV releases the GIL while
  decoding, so callers parallelise across files with threads.
* A frame's index comes from its presentation timestamp (pts), not from the decoder's counter:
  after a seek, or in a file whose stream does not start at pts 0, the counter is wrong while
  ``round((pts - start) * time_base * fps)`` is not. Gaps (dropped frames in variable-frame-rate
  files) are filled by repeating the previous frame and duplicates keep the first, so callers
  always see a constant-frame-rate video of ``num_frames`` frames.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np

logger = logging.getLogger(__name__)


class VideoError(Exception):
    """A video file could not be read: missing, empty, corrupt, or without a video stream.

    The one exception type callers catch to record a failed video and go on.
    """

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` learns from a file's headers (and, if needed, its packets)."""

    path: str
    num_frames: int
    fps: float
    width: int
    height: int
    codec: str


@dataclass(frozen=True)
class DecodedVideo:
    """Frames of one video, as returned by :func:`decode`.

    Attributes:
        frames: ``(len(indices), H, W, 3)`` uint8 RGB, row ``i`` is frame ``indices[i]``.
        indices: the frame index of each row.
        num_frames: frames in the video as far as decoding saw them (pts-based).
        fps: average frame rate of the stream.
        num_decoded: frames the decoder produced, to check that nothing is decoded twice.
    """

    frames: np.ndarray
    indices: tuple[int, ...]
    num_frames: int
    fps: float
    num_decoded: int


def _open(path: str | Path) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    path = Path(path)
    if not path.is_file():
        raise VideoError(path, "no such file")
    if path.stat().st_size == 0:
        raise VideoError(path, "empty file")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as err:
        raise VideoError(path, f"cannot open: {err}") from err
    if not container.streams.video:
        container.close()
        raise VideoError(path, "no video stream")
    return container, container.streams.video[0]


def _fps(stream: av.video.stream.VideoStream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return Fraction(rate) if rate else Fraction(25)


def probe(path: str | Path) -> VideoInfo:
    """Read frame count, fps, size and codec without decoding frames.

    The frame count comes from the stream header when the container has one (AVI, MP4);
    otherwise packets are counted, which demuxes but does not decode.

    Raises:
        VideoError: the file is missing, empty, not a video, or has no frames.
    """
    container, stream = _open(path)
    with container:
        fps = _fps(stream)
        num_frames = stream.frames
        if num_frames <= 0:
            try:
                num_frames = sum(1 for packet in container.demux(stream) if packet.size)
            except av.FFmpegError as err:
                raise VideoError(path, f"cannot demux: {err}") from err
        if num_frames <= 0:
            raise VideoError(path, "no frames")
        ctx = stream.codec_context
        return VideoInfo(str(path), int(num_frames), float(fps), ctx.width, ctx.height, ctx.name)


def decode(
    path: str | Path,
    indices: Sequence[int] | None = None,
    *,
    size: tuple[int, int] | None = None,
    threads: int = 0,
) -> DecodedVideo:
    """Decode a video once, front to back, keeping only the frames asked for.

    Decoding stops after the last wanted frame and starts from the keyframe before the first
    one, and only wanted frames are converted to RGB, so a 16-frame clip in the middle of a
    long video costs little more than 16 frames.

    Args:
        path: video file.
        indices: frames to return, in any order, repeats allowed; ``None`` means every frame.
            An index past the end of the stream gets the last frame (see :func:`clip_windows`).
        size: ``(height, width)`` to resize to while converting (swscale bilinear), or ``None``.
        threads: decoder threads; 0 lets FFmpeg choose.

    Returns:
        The frames and what decoding learnt about the video.

    Raises:
        VideoError: the file cannot be opened or yields no frame.
    """
    container, stream = _open(path)
    wanted = None if indices is None else set(int(i) for i in indices)
    if wanted is not None and (not wanted or min(wanted) < 0):
        container.close()
        raise ValueError(f"frame indices must be non-negative and not empty, got {indices}")
    first_wanted = 0 if wanted is None else min(wanted)
    last_wanted = None if wanted is None else max(wanted)
    stream.thread_type = "AUTO"
    stream.codec_context.thread_count = threads
    fps = _fps(stream)
    time_base = stream.time_base or Fraction(1, 1)
    start = stream.start_time or 0
    rgb_cache: dict[int, np.ndarray] = {}

    def rgb(index: int, frame: av.VideoFrame) -> np.ndarray:
        if index not in rgb_cache:
            if size is None:
                rgb_cache[index] = frame.to_ndarray(format="rgb24")
            else:
                rgb_cache[index] = frame.to_ndarray(format="rgb24", height=size[0], width=size[1])
        return rgb_cache[index]

    kept: dict[int, np.ndarray] = {}
    first: tuple[int, av.VideoFrame] | None = None
    prev: tuple[int, av.VideoFrame] | None = None
    num_decoded = 0
    with container:
        try:
            if first_wanted > 0:
                offset = math.floor(first_wanted / fps / time_base) + start
                container.seek(offset, stream=stream, backward=True, any_frame=False)
            for frame in _decode_from_keyframe(container, stream, start, time_base, fps, first_wanted):
                num_decoded += 1
                index = prev[0] + 1 if frame.pts is None else round((frame.pts - start) * time_base * fps)
                if prev is not None and index <= prev[0]:
                    continue  # duplicate timestamp: keep the first
                if prev is not None:
                    # A gap (dropped frame) repeats the previous frame, so indices stay dense.
                    for missing in range(prev[0] + 1, index):
                        if wanted is None or missing in wanted:
                            kept[missing] = rgb(*prev)
                if wanted is None or index in wanted:
                    kept[index] = rgb(index, frame)
                first = first or (index, frame)
                prev = (index, frame)
                if last_wanted is not None and index >= last_wanted:
                    break
        except av.FFmpegError as err:
            if prev is None:
                raise VideoError(path, f"cannot decode: {err}") from err
            logger.warning("%s: decoding stopped early after frame %d: %s", path, prev[0], err)
    if prev is None or first is None:
        raise VideoError(path, "no decodable frames")

    order = list(range(prev[0] + 1)) if indices is None else [int(i) for i in indices]
    rows = []
    for i in order:
        if i not in kept:  # before the first timestamp, or past the end of the stream
            kept[i] = rgb(*first) if i < first[0] else rgb(*prev)
        rows.append(kept[i])
    return DecodedVideo(np.stack(rows), tuple(order), prev[0] + 1, float(fps), num_decoded)


def _decode_from_keyframe(container, stream, start, time_base, fps, first_wanted):
    """Yield decoded frames; if a seek overshot the first wanted frame, restart from the top.

    Some AVI indexes place keyframes inexactly, so a backward seek can land after the frame we
    asked for. Detecting that from the first frame's pts and rewinding once keeps decoding exact.
    """
    frames = container.decode(stream)
    head = next(frames, None)
    if head is None:
        return
    if first_wanted > 0 and head.pts is not None and round((head.pts - start) * time_base * fps) > first_wanted:
        container.seek(start, stream=stream, backward=True, any_frame=False)
        frames = container.decode(stream)
        head = next(frames, None)
        if head is None:
            return
    yield head
    yield from frames


class ClipInfo(NamedTuple):
    """One clip: the frame the student sees and the frames the teacher sees.

    ``frames[0] == anchor``: the teacher's clip starts at the student's frame, so the student
    learns to hallucinate the motion that *follows* what it sees.
    """

    anchor: int
    frames: tuple[int, ...]


def parse_anchor_policy(policy: str) -> tuple[str, int]:
    """Split ``"center"``, ``"uniform:K"`` or ``"stride:S"`` into ``(kind, value)``.

    Raises:
        ValueError: naming the policy and the valid forms.
    """
    kind, _, value = policy.partition(":")
    if kind == "center" and not value:
        return kind, 1
    if kind in ("uniform", "stride") and value.isdigit() and int(value) > 0:
        return kind, int(value)
    raise ValueError(f"invalid anchor policy {policy!r}: use 'center', 'uniform:K' or 'stride:S' (K, S >= 1)")


def clip_windows(num_frames: int, policy: str, clip_len: int, frame_step: int = 1) -> list[ClipInfo]:
    """Anchor frames of a video and each anchor's future window.

    The teacher's window for anchor ``t`` is ``t, t+s, ..., t+(clip_len-1)*s``. Windows never
    run past the end: the rule for short videos is the reference code's, **shift the window
    back** (so the anchor moves earlier and still starts its window); a video shorter than one
    whole window gets a single anchor at frame 0 and its window repeats the last frame.

    Policies (over the valid starts ``0..last_start``, ``last_start = num_frames - span``):
        * ``center``: one anchor at the video's temporal centre (the paper's choice), shifted back.
        * ``uniform:K``: the centres of K equal segments of the valid starts (fewer if the
          video is too short for K distinct anchors).
        * ``stride:S``: every S-th valid start from 0.

    Returns:
        Clips sorted by anchor, without repeats.
    """
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    if clip_len <= 0 or frame_step <= 0:
        raise ValueError(f"clip_len and frame_step must be positive, got {clip_len} and {frame_step}")
    kind, value = parse_anchor_policy(policy)
    span = (clip_len - 1) * frame_step + 1
    last_start = max(num_frames - span, 0)
    if kind == "center":
        anchors = [min(num_frames // 2, last_start)]
    elif kind == "uniform":
        anchors = [((2 * i + 1) * (last_start + 1)) // (2 * value) for i in range(value)]
    else:
        anchors = list(range(0, last_start + 1, value))
    return [
        ClipInfo(t, tuple(min(t + i * frame_step, num_frames - 1) for i in range(clip_len)))
        for t in sorted(set(anchors))
    ]


#: Container suffix -> (codec, pixel format, encoder options) used by :func:`write_video`.
#: mpeg4 in AVI is what UCF101 and HMDB51 ship (at a generous bit rate, set below); the MP4
#: uses near-lossless H.264 when libx264 is available.
_WRITERS = {
    ".avi": ("mpeg4", "yuv420p", {}),
    ".mp4": ("libx264", "yuv420p", {"crf": "0", "preset": "ultrafast"}),
    ".mkv": ("ffv1", "yuv420p", {}),
}


def write_video(path: str | Path, frames: np.ndarray, fps: float = 25.0) -> Path:
    """Write ``(T, H, W, 3)`` uint8 RGB frames to a real video file with PyAV.

    The codec follows the suffix (``.avi``: mpeg4, ``.mp4``: H.264, ``.mkv``: lossless FFV1).
    Height and width must be even (yuv420p). Used by ``make-synthetic`` and the tests.
    """
    path = Path(path)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    if path.suffix not in _WRITERS:
        raise ValueError(f"unsupported video suffix {path.suffix!r}: use one of {sorted(_WRITERS)}")
    codec, pix_fmt, options = _WRITERS[path.suffix]
    if codec not in av.codecs_available:
        codec, options = "mpeg4", {}
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt
        stream.options = options
        if codec == "mpeg4":
            # FFmpeg's default 200 kb/s turns textured frames into blocks; 3 bits per pixel
            # per second keeps mpeg4 close to its source, like UCF101's own files.
            stream.bit_rate = int(3 * frames.shape[1] * frames.shape[2] * fps)
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
