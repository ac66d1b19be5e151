"""Listed paths that are not video files: each is a failed video with its reason, none blocks or aborts the run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
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


@pytest.mark.slow
def test_memory_is_bounded_by_the_teachers_input_not_the_source(tmp_path: Path) -> None:
    """An 80-frame 3840x2160 file: extract-teacher's peak RSS stays under 2 GB (it was 8.3 GB).

    Decoded at full size the needed frames alone take 80 x 24.9 MB = 2 GB; oversized sources are
    decoded at 8x the teacher's resize instead (decoding.decode_size).
    """
    import av

    root = tmp_path / "data"
    root.mkdir()
    base = (np.add.outer(np.arange(2160) // 8, np.arange(3840) // 8) % 256).astype(np.uint8)
    with av.open(str(root / "big.avi"), "w") as container:  # frame by frame: the test holds one
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 3840, 2160, "yuv420p"
        for t in range(80):
            rgb = np.repeat((base + 3 * t)[..., None], 3, axis=2)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    manifest(root, ["big.avi"])
    script = (
        "import resource, sys; from teacher_extract.cli import extract_teacher\n"
        "try:\n    extract_teacher()\nexcept SystemExit:\n"
        "    print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); raise\n"
    )
    args = ["--dataset", "manifest", "--root", str(root), "--teacher", "r3d_18", "--teacher-weights", "random"]
    args += ["--anchors", "uniform:4"]
    args += ["--precision", "fp32", "--memory-format", "contiguous", "--workers", "0", "--device", "cpu"]
    args += ["--batch-size", "4", "--max-failed-fraction", "1", "--out", str(tmp_path / "f.h5")]
    result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    peak_gb = int(result.stderr.split("PEAK_KB")[-1].split()[0]) / 2**20
    print(f"peak RSS {peak_gb:.2f} GB")
    assert peak_gb < 2.0
    assert len(FeatureCache(tmp_path / "f.h5")) == 4


def test_a_stream_that_declares_1000_fps_is_counted_by_its_timestamps(tmp_path: Path) -> None:
    """A variable-rate file with a 1 ms time base that declares 1000 fps: 50 frames ~40 ms apart."""
    from fractions import Fraction

    import av

    from pipeline.video import count_frames, decode, probe

    path = tmp_path / "vfr.mkv"
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=1000)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        t = 0
        for i in range(50):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), (i * 5) % 256, np.uint8), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            t += int(rng.choice([36, 40, 40, 44]))
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    assert probe(path).fps == pytest.approx(25, rel=0.05)
    assert 48 <= count_frames(path) <= 52  # one per frame, not one per millisecond (~2,000)
    frames = decode(path, list(range(16))).frames
    assert len({int(f.mean()) for f in frames}) >= 14  # distinct frames, not one repeated
