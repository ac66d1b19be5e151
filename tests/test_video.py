"""Probing, decoding and writing real video files with PyAV; content fingerprints."""

from pathlib import Path

import numpy as np
import pytest
from helpers import frame_index_of, moving_square, truncated_avi

from pipeline.video import VideoError, count_frames, decode, fingerprint, probe, write_video


# mpeg4 is lossy (and chroma-subsampled on these sharp edges); H.264 at crf 0 is near lossless.
@pytest.mark.parametrize("suffix,codec,tolerance", [(".avi", "mpeg4", 10), (".mp4", "h264", 2)])
def test_probe_decode_round_trip(tmp_path: Path, suffix: str, codec: str, tolerance: float) -> None:
    frames = moving_square(30, 32, 48)
    path = write_video(tmp_path / f"v{suffix}", frames, fps=30)
    info = probe(path)
    assert (info.num_frames, info.width, info.height, info.codec) == (30, 48, 32, codec)
    assert info.fps == pytest.approx(30)
    video = decode(path)
    assert video.frames.shape == (30, 32, 48, 3) and video.frames.dtype == np.uint8
    assert video.num_frames == 30 and video.num_decoded == 30
    assert np.abs(video.frames.astype(int) - frames).mean() < tolerance
    assert [frame_index_of(f) for f in video.frames] == list(range(30))


def test_decode_resizes_on_the_way(video_file: Path) -> None:
    video = decode(video_file, size=(16, 24))
    assert video.frames.shape == (24, 16, 24, 3)


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_decode_subset_uses_pts_after_seek(tmp_path: Path, suffix: str) -> None:
    # 60 frames with a keyframe every 12 (mpeg4 default) so a seek lands mid-file.
    path = write_video(tmp_path / f"long{suffix}", moving_square(60, 32, 32), fps=25)
    wanted = [40, 33, 33, 47]
    video = decode(path, wanted)
    assert video.indices == tuple(wanted)
    assert [frame_index_of(f) for f in video.frames] == wanted
    # stops after the last wanted frame
    assert video.num_decoded <= 48


def test_frame_index_comes_from_pts_not_decode_order(tmp_path: Path) -> None:
    # Frames 0..31 encode their own index; decoding from frame 20 must label it 20, not 0.
    path = write_video(tmp_path / "v.mkv", moving_square(32), fps=25)
    video = decode(path, [20, 21])
    assert [frame_index_of(f) for f in video.frames] == [20, 21]


def test_past_the_end_repeats_last_frame(video_file: Path) -> None:
    video = decode(video_file, [22, 23, 30])
    assert video.num_frames == 24
    assert np.array_equal(video.frames[1], video.frames[2])


@pytest.mark.parametrize(
    "content,reason",
    [(None, "no such file"), (b"", "empty file"), (b"not a video at all" * 100, "cannot open")],
)
def test_bad_files_raise_video_error(tmp_path: Path, content: bytes | None, reason: str) -> None:
    path = tmp_path / "bad.avi"
    if content is not None:
        path.write_bytes(content)
    for read in (probe, decode):
        with pytest.raises(VideoError, match=reason) as info:
            read(path)
        assert info.value.path == str(path)


def test_truncated_file_raises_video_error(tmp_path: Path, video_file: Path) -> None:
    bad = tmp_path / "truncated.avi"
    bad.write_bytes(video_file.read_bytes()[:300])
    with pytest.raises(VideoError):
        decode(bad)


def test_count_frames_reads_packets_not_the_header(tmp_path: Path) -> None:
    path = truncated_avi(tmp_path / "cut.avi", moving_square(60, 32, 32), keep=24)
    assert probe(path).num_frames == 60  # the header still claims the whole file
    assert count_frames(path) == 24
    video = decode(path)
    assert video.num_frames == 24 and [frame_index_of(f) for f in video.frames] == list(range(24))
    # a frame past the true end is the last frame that exists
    assert frame_index_of(decode(path, [30]).frames[0]) == 23


def test_fingerprint_follows_content_not_path(tmp_path: Path, video_file: Path) -> None:
    copy = tmp_path / "elsewhere" / "copy.avi"
    copy.parent.mkdir()
    copy.write_bytes(video_file.read_bytes())
    assert fingerprint(copy) == fingerprint(video_file) and fingerprint(copy).startswith("blake2b:")
    write_video(copy, moving_square(seed=1), fps=25)
    assert fingerprint(copy) != fingerprint(video_file)
    assert fingerprint(tmp_path / "absent.avi").startswith("unreadable:")


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotation_metadata_is_applied(tmp_path: Path, rotation: int) -> None:
    """A phone's portrait clip: landscape frames plus a display matrix; decoded as players show it."""
    import av

    image = np.zeros((32, 64, 3), np.uint8)
    image[:8, :16] = 255  # a white block in the top-left corner
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(rotation)
        for _ in range(3):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    frames = decode(path).frames
    expected = np.rot90(image, rotation // 90)  # counterclockwise, as the matrix says
    assert frames.shape[1:] == expected.shape
    assert np.abs(frames[0].astype(int) - expected).mean() < 10  # mpeg4 blurs the edge a little
    half = decode(path, size=(16, 32)).frames  # resized while converting, then turned
    assert half.shape[1:] == expected[::2, ::2].shape
