"""Frame-folder videos: naming rules, selective decoding, the content fingerprint, and extraction end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import extract_config, moving_square, write_frames
from PIL import Image

from pipeline.cache import FeatureCache
from pipeline.clips import clip_windows
from pipeline.frame_folder import (
    folder_fingerprint,
    frame_count,
    frame_files,
    frame_folder_problem,
    is_frame_folder,
    read_frames,
)
from pipeline.frames import student_images
from pipeline.video import VideoError, fingerprint, write_video
from teacher_extract.extract import run_extraction


def test_frames_sort_by_the_last_number_numerically(tmp_path: Path) -> None:
    folder = tmp_path / "v"
    folder.mkdir()
    # unpadded numbers sort lexicographically as 1, 10, 2: the numeric order is 1, 2, 10
    for name in ("frame10.png", "frame2.png", "frame1.png", "clip7_f3.jpg", "notes.txt", ".hidden9.jpg"):
        (folder / name).write_bytes(b"")
    (folder / "sub").mkdir()
    assert [p.name for p in frame_files(folder)] == ["frame1.png", "frame2.png", "clip7_f3.jpg", "frame10.png"]
    assert frame_count(folder) == 4 and frame_folder_problem(folder) is None
    assert is_frame_folder(folder)
    assert not is_frame_folder(folder / "sub")  # empty folder
    assert not is_frame_folder(folder / "frame1.png")  # a file, not a folder


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["00001.jpg", "cover.jpg"], "'cover.jpg' has no number"),
        (["img_1.jpg", "img_001.png"], "'img_001.png' and 'img_1.jpg' both have frame number 1"),
        (["readme.txt"], "no frame images"),
    ],
)
def test_bad_frame_names_are_errors_naming_the_files(tmp_path: Path, names: list[str], message: str) -> None:
    for name in names:
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(VideoError, match=message) as info:
        frame_files(tmp_path)
    assert info.value.path == str(tmp_path)
    with pytest.raises(VideoError, match="no such frame folder"):
        frame_files(tmp_path / "absent")
    assert message.split(" ", 1)[1].replace("\\", "") in frame_folder_problem(tmp_path)
    assert frame_folder_problem(tmp_path / "absent") == "no such frame folder"


def test_read_frames_returns_the_written_pixels(tmp_path: Path) -> None:
    frames = moving_square(12, 24, 32)
    write_frames(tmp_path / "v", frames, pattern="{}.png", start=0)  # 0.png ... 11.png: unpadded
    got = read_frames(tmp_path / "v", [11, 3, 3, 0, 40])  # any order, repeats, past the end
    assert got.shape == (5, 24, 32, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, frames[[11, 3, 3, 0, 11]])
    np.testing.assert_array_equal(read_frames(tmp_path / "v", None), frames)
    with pytest.raises(ValueError, match="non-negative"):
        read_frames(tmp_path / "v", [-1])


def test_only_the_asked_frames_are_decoded(tmp_path: Path) -> None:
    paths = write_frames(tmp_path / "v", moving_square(4, 16, 16))
    paths[0].write_bytes(b"not an image")  # a corrupt frame that is never asked for
    assert read_frames(tmp_path / "v", [1, 2]).shape == (2, 16, 16, 3)
    with pytest.raises(VideoError, match="cannot read frame image") as info:
        read_frames(tmp_path / "v", [0])
    assert info.value.path == str(paths[0])  # the error names the file


def test_grey_frames_become_rgb_and_sizes_must_agree(tmp_path: Path) -> None:
    folder = tmp_path / "v"
    folder.mkdir()
    Image.fromarray(np.full((8, 8), 77, np.uint8)).save(folder / "1.png")
    Image.fromarray(np.zeros((8, 10, 3), np.uint8)).save(folder / "2.png")
    np.testing.assert_array_equal(read_frames(folder, [0]), np.full((1, 8, 8, 3), 77, np.uint8))
    with pytest.raises(VideoError, match="frames differ in size"):
        read_frames(folder, [0, 1])


def test_fingerprint_follows_content_not_mtime(tmp_path: Path) -> None:
    frames = moving_square(5, 16, 16)
    paths = write_frames(tmp_path / "v", frames)
    before = folder_fingerprint(tmp_path / "v")
    assert before.startswith("blake2b:") and len(before) == len("blake2b:") + 32
    write_frames(tmp_path / "copy", frames)  # same names and bytes elsewhere: same hash
    assert folder_fingerprint(tmp_path / "copy") == before

    changed = frames[2].copy()
    changed[0, 0, 0] ^= 1  # one bit of one pixel of one frame
    Image.fromarray(changed).save(paths[2])
    assert folder_fingerprint(tmp_path / "v") != before

    write_frames(tmp_path / "copy", frames[:1], start=6)  # one more frame
    assert folder_fingerprint(tmp_path / "copy") != before


def test_a_folder_dataset_of_frame_folders_extracts_and_reruns_incrementally(tmp_path: Path) -> None:
    root = tmp_path / "data"
    frames = {name: moving_square(20, 32, 32, seed=i) for i, name in enumerate(("jump/v0", "jump/v1", "run/v2"))}
    for name, video in frames.items():
        write_frames(root / name, video)
    write_video(root / "run/v3.avi", moving_square(20, 32, 32, seed=3))  # a file beside the folders
    cfg = extract_config(root, tmp_path / "f.h5", dataset="folder", dataset_options={"test_fraction": 0.0})
    summary = run_extraction(cfg)
    assert (summary.videos, summary.extracted, summary.failed) == (4, 4, 0)
    cache = FeatureCache(tmp_path / "f.h5")
    assert list(cache.videos.path) == ["jump/v0", "jump/v1", "run/v2", "run/v3.avi"]
    anchors = [c.anchor for c in clip_windows(20, "uniform:2", 16)]
    for v, name in enumerate(("jump/v0", "jump/v1", "run/v2")):
        assert cache.videos.fingerprint[v] == folder_fingerprint(root / name) == fingerprint(root / name)
        assert cache.videos.num_frames[v] == 20 and cache.videos.status[v] == "ok"
        entry = cache.entry(v)
        assert list(entry.frames) == anchors
        np.testing.assert_array_equal(entry.images, student_images(frames[name][anchors], 16))  # PNG is lossless
    cache.close()

    summary = run_extraction(cfg)
    assert (summary.extracted, summary.skipped) == (0, 4)
    changed = frames["jump/v1"][5].copy()
    changed[0, 0, 0] ^= 1
    Image.fromarray(changed).save(frame_files(root / "jump/v1")[5])
    summary = run_extraction(cfg)
    assert (summary.extracted, summary.skipped) == (1, 3)
