from pathlib import Path

import numpy as np
import pytest
from conftest import frame_index_of, moving_square
from hypothesis import given
from hypothesis import strategies as st

from pipeline.video import VideoError, clip_windows, decode, parse_anchor_policy, probe, write_video


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


def test_anchor_policies() -> None:
    assert parse_anchor_policy("center") == ("center", 1)
    assert parse_anchor_policy("uniform:8") == ("uniform", 8)
    for bad in ("middle", "uniform", "uniform:0", "stride:x", "center:2"):
        with pytest.raises(ValueError, match="anchor policy"):
            parse_anchor_policy(bad)
    assert [c.anchor for c in clip_windows(100, "center", 16)] == [50]
    assert [c.anchor for c in clip_windows(60, "center", 16)] == [30]
    assert [c.anchor for c in clip_windows(30, "center", 16)] == [14]  # shifted back to fit
    assert [c.anchor for c in clip_windows(40, "stride:8", 16)] == [0, 8, 16, 24]
    assert [c.anchor for c in clip_windows(100, "uniform:4", 16, 2)] == [8, 26, 43, 61]
    clip = clip_windows(100, "center", 4, 3)[0]
    assert clip.frames == (50, 53, 56, 59)


def test_short_video_repeats_last_frame() -> None:
    (clip,) = clip_windows(10, "uniform:4", 16)
    assert clip.anchor == 0
    assert clip.frames == tuple(range(10)) + (9,) * 6


@given(
    num_frames=st.integers(1, 500),
    clip_len=st.integers(1, 32),
    frame_step=st.integers(1, 4),
    policy=st.sampled_from(["center", "uniform:1", "uniform:3", "uniform:8", "stride:1", "stride:5"]),
)
def test_windows_properties(num_frames: int, clip_len: int, frame_step: int, policy: str) -> None:
    clips = clip_windows(num_frames, policy, clip_len, frame_step)
    span = (clip_len - 1) * frame_step + 1
    assert clips, "every video yields at least one clip"
    anchors = [c.anchor for c in clips]
    assert anchors == sorted(set(anchors))
    for clip in clips:
        assert len(clip.frames) == clip_len
        assert clip.frames[0] == clip.anchor
        assert all(0 <= f < num_frames for f in clip.frames)
        if num_frames >= span:  # the window fits: exact steps, no repeats
            assert all(b - a == frame_step for a, b in zip(clip.frames, clip.frames[1:], strict=False))
        else:
            assert clip.anchor == 0
    kind, k = parse_anchor_policy(policy)
    if kind == "uniform":
        assert len(clips) <= k
