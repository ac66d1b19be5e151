"""Stage one's decoder side: windows placed on the frames that decode, one item per video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import frame_index_of, moving_square, truncated_avi

from pipeline.clips import clip_windows
from pipeline.frames import student_images
from pipeline.video import decode, write_video
from teacher_extract.decoding import ClipDecoder, decode_windows


@pytest.mark.parametrize("policy", ["uniform:3", "stride:2", "center"])
def test_windows_sit_on_the_frames_that_decode(tmp_path: Path, policy: str) -> None:
    path = truncated_avi(tmp_path / "cut.avi", moving_square(60, 32, 32), keep=24)
    video, windows, header = decode_windows(path, policy, 16, 1)
    assert header == 60 and video.num_frames == 24
    assert windows == clip_windows(24, policy, 16, 1)
    assert max(f for clip in windows for f in clip.frames) <= 23, "no window reaches past the true end"
    needed = sorted({f for clip in windows for f in clip.frames} | {clip.anchor for clip in windows})
    assert list(video.indices) == needed
    assert [frame_index_of(f) for f in video.frames] == needed  # the frames really are those


def test_an_honest_file_decodes_its_window_frames_once(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.avi", moving_square(48, 32, 32), fps=25)
    video, windows, header = decode_windows(path, "uniform:2", 16, 1, horizon=4)
    assert header == video.num_frames == 48
    assert [(c.anchor, c.frames[0]) for c in windows] == [(7, 11), (21, 25)]
    assert video.num_decoded <= 48  # one pass at most, never a frame twice
    assert [frame_index_of(f) for f in video.frames] == list(video.indices)


def test_clip_decoder_items(tmp_path: Path) -> None:
    write_video(tmp_path / "a.avi", moving_square(30, 32, 48), fps=25)
    (tmp_path / "b.avi").write_bytes(b"junk" * 100)
    decoder = ClipDecoder(
        tmp_path, ["a.avi", "b.avi"], anchors="stride:4", clip_len=8, frame_step=2, horizon=0, image_size=16
    )
    item = decoder[0]
    assert item.error is None and item.num_frames == 30 and item.header_frames == 30
    windows = clip_windows(30, "stride:4", 8, 2)
    assert list(item.anchors) == [c.anchor for c in windows]
    # gather picks, from the distinct decoded frames, exactly each window's frames
    indices = np.array([frame_index_of(f) for f in item.frames.numpy()])
    assert len(set(indices.tolist())) == len(indices), "each needed frame is held once"
    assert [tuple(indices[row]) for row in item.gather.numpy()] == [c.frames for c in windows]
    anchors = decode(tmp_path / "a.avi", [c.anchor for c in windows]).frames
    np.testing.assert_array_equal(item.images, student_images(anchors, 16))
    failed = decoder[1]
    assert failed.error and failed.frames.numel() == 0 and failed.images.shape == (0, 16, 16, 3)


def test_decode_size_bounds_only_oversized_sources() -> None:
    from teacher_extract.decoding import decode_size

    assert decode_size(320, 240, 128) is None  # UCF101 for r3d_18: untouched
    assert decode_size(1920, 1080, 128) == (1024, 1820)  # short side to 8 x 128, even sizes
    assert decode_size(2160, 3840, 128) == (1820, 1024)  # portrait
    assert decode_size(3840, 2160, None) is None
