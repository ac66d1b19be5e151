"""Listed paths that are not video files: each is a failed video with its reason, none blocks or aborts the run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import extract_config, moving_square

from pipeline.cache import FeatureCache
from pipeline.video import fingerprint, write_video
from teacher_extract.extract import run_extraction


def manifest(root: Path, names: list[str]) -> None:
    lines = ["path,label,split"] + [f"{n},{'ab'[i % 2]},{'train' if i % 2 else 'test'}" for i, n in enumerate(names)]
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")


def test_fifo_device_link_loop_are_failed_videos(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "data"
    root.mkdir()
    good = [write_video(root / f"v{i}.avi", moving_square(20, 32, 32, seed=i)).name for i in range(2)]
    os.mkfifo(root / "fifo.avi")
    (root / "zero.avi").symlink_to("/dev/zero")
    (root / "loop.avi").symlink_to("loop.avi")
    bad = ["fifo.avi", "zero.avi", "loop.avi"]
    manifest(root, good + bad)
    summary = run_extraction(extract_config(root, tmp_path / "f.h5", dataset="manifest", max_failed_fraction=0.9))
    assert (summary.extracted, summary.failed) == (2, 3)
    assert sorted(summary.failures) == sorted(bad)
    for name, reason in [("fifo", "a FIFO"), ("zero", "a character device"), ("loop", "symbolic links")]:
        assert any(f"{name}.avi" in r.getMessage() and reason in r.getMessage() for r in caplog.records), name
    videos = FeatureCache(tmp_path / "f.h5").videos
    assert sorted(p for p, n in zip(videos.path, videos.num_clips, strict=True) if n) == sorted(good)


def test_fingerprint_never_opens_what_is_not_a_regular_file(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "zero").symlink_to("/dev/zero")
    (tmp_path / "loop").symlink_to("loop")
    assert fingerprint(tmp_path / "fifo") == "unreadable:not a regular file (a FIFO)"
    assert fingerprint(tmp_path / "zero") == "unreadable:not a regular file (a character device)"
    assert fingerprint(tmp_path / "loop") == "unreadable:unreadable: Too many levels of symbolic links"
