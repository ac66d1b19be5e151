"""Video probing, decoding and writing with PyAV (which frames to decode is :mod:`pipeline.clips`'s job).

Two facts shape this module:

* ``torchvision.io`` no longer decodes video, so we use PyAV directly. Decoding is parallelised across
  files in worker processes (one video per worker, one codec thread each).
* A frame's index comes from its presentation timestamp (pts), not from the decoder's counter:
  after a seek, or in a file whose stream does not start at pts 0, the counter is wrong while
  ``round((pts - start) * time_base * fps)`` is not. Gaps (dropped frames in variable-frame-rate
  files) are filled by repeating the previous frame and duplicates keep the first, so callers
  always see a constant-frame-rate video of ``num_frames`` frames.
"""

from __future__ import annotations

import hashlib
import logging
import math
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from pipeline.errors import UserError

logger = logging.getLogger(__name__)


class VideoError(UserError):
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


#: ``stat`` file types other than regular files and directories, as the reasons name them.
_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def unusable(path: str | Path) -> str | None:
    """Why ``path`` cannot be read as a video file or frame folder, or ``None`` if it can be tried.

    Only ``stat`` (following symbolic links), never ``open``: opening a FIFO blocks until a writer
    comes, and a device such as ``/dev/zero`` reads forever. A symbolic link loop, a dangling
    link, a missing file or one we may not look at are reasons too.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "dangling symbolic link" if path.is_symlink() else "no such file"
    except PermissionError:
        return "unreadable: permission denied"
    except OSError as err:  # a symlink loop, a name too long, a broken mount...
        return f"unreadable: {err.strerror or err}"
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "an unknown kind")
    return f"not a regular file ({kind})"


def _open(path: str | Path) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    # Every way a listed path can be unusable becomes a VideoError (a failed video, the run goes
    # on); an OSError escaping from here would abort a whole extraction for one odd entry.
    path = Path(path)
    if (reason := unusable(path)) is not None:
        raise VideoError(path, reason)
    if path.is_dir():
        raise VideoError(path, "not a file (a directory)")
    size = path.stat().st_size
    if size == 0:
        raise VideoError(path, "empty file")
    try:
        container = av.open(str(path))
    except PermissionError:  # PyAV's own PermissionError is also the builtin one
        raise VideoError(path, "unreadable: permission denied") from None
    except (av.FFmpegError, OSError, ValueError) as err:
        raise VideoError(path, f"cannot open: {err}") from err
    if not container.streams.video:
        container.close()
        raise VideoError(path, "no video stream")
    return container, container.streams.video[0]


#: Above this a stream's declared rate is checked against its timestamps (slow-motion phones
#: record 240 fps; a variable-rate stream with a 1 ms time base often declares 1000).
PLAUSIBLE_FPS = 240


def _fps(stream: av.video.stream.VideoStream, path: str | Path) -> Fraction:
    """The stream's frame rate: what the container says, unless that is missing or implausible.

    Frame indices are ``pts x time_base x fps``, so a rate that lies (1000 fps for a 25 fps
    variable-rate stream) turns every real frame into 40 "frames" and a clip into one frame
    repeated. Then the rate is measured from the first packets' timestamps instead.
    """
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if rate and rate <= PLAUSIBLE_FPS:
        return Fraction(rate)
    measured = _rate_from_timestamps(path, stream.index)
    if measured is not None:
        return measured
    return Fraction(rate) if rate else Fraction(25)


def _rate_from_timestamps(path: str | Path, index: int, packets: int = 60) -> Fraction | None:
    """Frames per second from the median gap between the first ``packets`` timestamps, or None."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams[index]
            stamps = []
            for packet in container.demux(stream):
                if packet.size and packet.pts is not None:
                    stamps.append(packet.pts)
                if len(stamps) >= packets:
                    break
            time_base = stream.time_base or Fraction(1, 1)
    except (av.FFmpegError, OSError):
        return None
    gaps = sorted(b - a for a, b in zip(sorted(stamps), sorted(stamps)[1:], strict=False) if b > a)
    if not gaps:
        return None
    return (1 / (gaps[len(gaps) // 2] * time_base)).limit_denominator(1001)


def fingerprint(path: str | Path) -> str:
    """Content hash of a video file: survives copies, clones and ``dvc checkout`` (mtimes don't).

    A path that cannot be read hashes to ``unreadable:<reason>``: the video then fails (and is
    recorded as failed) where it is decoded, instead of aborting (or blocking) the run here.
    """
    if (reason := unusable(path)) is not None:
        return f"unreadable:{reason}"
    if Path(path).is_dir():  # a frame folder: its frames' names and bytes, in order
        from pipeline.frame_folder import folder_fingerprint

        try:
            return folder_fingerprint(Path(path))
        except VideoError as err:
            return f"unreadable:{err.reason}"
    h = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    except OSError as err:
        return f"unreadable:{err.strerror or type(err).__name__}"
    return f"blake2b:{h.hexdigest()}"


def count_frames(path: str | Path) -> int:
    """Frames the stream's packets hold: demuxed to the end, not decoded (cheap), pts-based.

    Headers lie (a truncated download keeps the header of the whole file, AVI indexes break);
    packets do not, short of corrupt data inside them, which decoding finds (:func:`decode`
    reports where it stopped).

    Raises:
        VideoError: the file cannot be opened or holds no video packets.
    """
    if Path(path).is_dir():
        from pipeline.frame_folder import frame_count

        return frame_count(Path(path))
    container, stream = _open(path)
    with container:
        fps = _fps(stream, path)
        time_base = stream.time_base or Fraction(1, 1)
        start = stream.start_time or 0
        last, packets = -1, 0
        try:
            for packet in container.demux(stream):
                if not packet.size:
                    continue  # an end-of-stream or dropped-frame marker
                packets += 1
                if packet.pts is not None:
                    last = max(last, round((packet.pts - start) * time_base * fps))
        except av.FFmpegError as err:
            if not packets:
                raise VideoError(path, f"cannot demux: {err}") from err
            logger.warning("%s: demuxing stopped early after %d packets: %s", path, packets, err)
    if not packets:
        raise VideoError(path, "no frames")
    return last + 1 if last >= 0 else packets


def probe(path: str | Path) -> VideoInfo:
    """Read frame count, fps, size and codec without decoding frames.

    The frame count comes from the stream header when the container has one (AVI, MP4);
    otherwise packets are counted, which demuxes but does not decode.

    A folder of frame images (:mod:`pipeline.frame_folder`) is a video too: its frame count is
    its number of frames, its fps unknown (0).

    Raises:
        VideoError: the file is missing, empty, not a video, or has no frames.
    """
    if Path(path).is_dir():
        from pipeline.frame_folder import frame_count, read_frames

        first = read_frames(Path(path), [0])[0]
        return VideoInfo(str(path), frame_count(Path(path)), 0.0, first.shape[1], first.shape[0], "frames")
    container, stream = _open(path)
    with container:
        fps = _fps(stream, path)
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

    Decoding starts from the keyframe before the first wanted frame, stops after the last one,
    and only wanted frames are converted to RGB, so a 16-frame clip in the middle of a long video
    costs little more than 16 frames. ``num_frames`` of the result is the last decoded frame + 1:
    the video's length when ``indices`` is ``None`` or decoding ended before the last wanted frame
    (a truncated or corrupt file), a lower bound otherwise (see :func:`count_frames`).

    Args:
        path: video file, or a folder of frame images (:mod:`pipeline.frame_folder`).
        indices: frames to return, in any order, repeats allowed; ``None`` means every frame.
            An index past the end of the stream gets the last frame.
        size: ``(height, width)`` to resize to while converting (swscale bilinear), or ``None``.
        threads: decoder threads; 0 lets FFmpeg choose.
    Returns:
        The frames and what decoding learnt about the video.

    Raises:
        VideoError: the file cannot be opened or yields no frame.
    """
    wanted = None if indices is None else {int(i) for i in indices}
    if wanted is not None and (not wanted or min(wanted) < 0):
        raise ValueError(f"frame indices must be non-negative and not empty, got {indices}")
    if Path(path).is_dir():  # a frame folder: every frame is its own image, nothing to seek
        from pipeline.frame_folder import frame_count, read_frames

        count = frame_count(Path(path))
        order = list(range(count)) if indices is None else [int(i) for i in indices]
        return DecodedVideo(read_frames(Path(path), order), tuple(order), count, 0.0, len(set(order)))
    first_wanted = 0 if wanted is None else min(wanted)
    stop = None if wanted is None else max(wanted)
    kept, first, last, num_decoded, fps = _decode_frames(path, wanted, first_wanted, stop, size, threads)
    if last is None and first_wanted > 0:
        # The seek went past the end (a header that overstates by more than the wanted frames'
        # distance to the real end): decode from the start to find the frames that exist.
        kept, first, last, again, fps = _decode_frames(path, wanted, 0, stop, size, threads)
        num_decoded += again
    if last is None or first is None:
        raise VideoError(path, "no decodable frames")
    order = list(range(last[0] + 1)) if indices is None else [int(i) for i in indices]
    rows = []
    for i in order:
        if i not in kept:  # before the first timestamp, or past the end of the stream
            kept[i] = first[1] if i < first[0] else last[1]
        rows.append(kept[i])
    return DecodedVideo(np.stack(rows), tuple(order), last[0] + 1, float(fps), num_decoded)


def upright(image: np.ndarray, rotation: float) -> np.ndarray:
    """``(H, W, 3)`` ``image`` turned as its container says it is to be shown.

    Phones record portrait video as landscape frames plus a display matrix that says "turn
    ``rotation`` degrees counterclockwise" (PyAV's ``VideoFrame.rotation``, what players apply);
    read without it, every such clip would reach the teacher lying on its side. Multiples of 90
    only (the matrix of a real recording holds nothing else); 0 returns ``image`` itself.
    """
    k = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(image, k)) if k else image


def _decode_frames(path, wanted, first_wanted, stop, size, threads):
    """One decoding pass: ``(kept {index: rgb}, (first index, rgb), (last index, rgb), frames decoded, fps)``.

    ``first``/``last`` are the first and last frames the pass decoded, converted to RGB (they
    stand in for indices before the first timestamp or past the end).
    """
    container, stream = _open(path)
    stream.thread_type = "AUTO"
    stream.codec_context.thread_count = threads
    fps = _fps(stream, path)
    time_base = stream.time_base or Fraction(1, 1)
    start = stream.start_time or 0

    def rgb(frame: av.VideoFrame) -> np.ndarray:
        if size is None:
            return upright(frame.to_ndarray(format="rgb24"), frame.rotation)
        return upright(frame.to_ndarray(format="rgb24", height=size[0], width=size[1]), frame.rotation)

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
                            kept[missing] = kept[prev[0]] if prev[0] in kept else rgb(prev[1])
                if wanted is None or index in wanted:
                    kept[index] = rgb(frame)
                first = first or (index, frame)
                prev = (index, frame)
                if stop is not None and index >= stop:
                    break
        except av.FFmpegError as err:
            if prev is None:
                raise VideoError(path, f"cannot decode: {err}") from err
            logger.warning("%s: decoding stopped early after frame %d: %s", path, prev[0], err)
        if prev is None or first is None:
            return kept, None, None, num_decoded, fps
        first_rgb = kept[first[0]] if first[0] in kept else rgb(first[1])
        last_rgb = kept[prev[0]] if prev[0] in kept else rgb(prev[1])
    return kept, (first[0], first_rgb), (prev[0], last_rgb), num_decoded, fps


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
