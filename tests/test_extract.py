"""Stage one end to end on tiny real videos: cache content, decode-once, incremental, crash-safe, lying headers."""

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torchvision
from click.testing import CliRunner
from helpers import add_video, make_dataset, moving_square, truncated_avi
from helpers import extract_config as config

from pipeline.cache import FeatureCache
from pipeline.clips import clip_windows
from pipeline.frames import student_images
from pipeline.video import decode, write_video
from teacher_extract.cli import extract_teacher
from teacher_extract.extract import ExtractionFailed, run_extraction
from teacher_extract.models import build_teacher


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return make_dataset(tmp_path / "data")


def test_cache_content(dataset: Path, tmp_path: Path) -> None:
    summary = run_extraction(config(dataset, tmp_path / "f.h5"))
    assert (summary.videos, summary.extracted, summary.failed) == (4, 4, 0)
    cache = FeatureCache(tmp_path / "f.h5")
    assert cache.info.teacher == "tiny3d" and cache.info.teacher_weights == "random:0"
    assert cache.info.classes == ("MoveLeft", "MoveRight") and cache.info.anchors == "uniform:2"
    assert len(cache) == 8 and list(cache.videos.num_clips) == [2, 2, 2, 2]
    assert list(cache.clip_frame[:2]) == [c.anchor for c in clip_windows(24, "uniform:2", 16)]
    assert cache.images(np.arange(8)).shape == (8, 16, 16, 3)
    assert set(cache.videos.split) == {"train", "test"}
    assert not cache.has_logits  # a random head's logits mean nothing, so none are stored
    assert not (tmp_path / "f.h5.partial").exists()
    # the stored student frame is the anchor frame itself
    path = dataset / cache.videos.path[0]
    frame = decode(path, [int(cache.clip_frame[0])]).frames
    assert np.array_equal(cache.images(np.array([0]))[0], student_images(frame, 16)[0])


@pytest.mark.slow
def test_features_match_the_torchvision_model_on_its_own_preset(tmp_path: Path) -> None:
    """The cached features are the torchvision model's on its own preset, to cosine >= 0.999 per clip."""
    # One video and 8-frame clips: r3d_18 at its own 112x112 is the costly part.
    root = tmp_path / "data"
    write_video(root / "v.avi", moving_square(20, 32, 48), fps=25)
    (root / "manifest.csv").write_text("path,label,split\nv.avi,a,train\n")
    out = tmp_path / "r3d.h5"
    cfg = config(root, out, dataset="manifest", teacher="r3d_18", anchors="uniform:2", clip_len=8, batch_size=2, seed=7)
    run_extraction(cfg)
    cache = FeatureCache(out)
    reference = torchvision.models.video.r3d_18()
    reference.load_state_dict(build_teacher("r3d_18", None, seed=7).model.state_dict())
    reference.fc = torch.nn.Identity()
    reference.eval()
    preset = torchvision.models.video.R3D_18_Weights.KINETICS400_V1.transforms()
    clips = clip_windows(20, "uniform:2", 8)
    assert list(cache.clip_frame) == [c.anchor for c in clips]
    x = torch.stack(
        [preset(torch.from_numpy(decode(root / "v.avi", c.frames).frames).permute(0, 3, 1, 2)) for c in clips]
    )
    with torch.inference_mode():
        expected = reference(x).numpy()
    got = torch.from_numpy(cache.features(np.arange(2)))
    assert torch.nn.functional.cosine_similarity(got, torch.from_numpy(expected)).min() >= 0.999


def test_each_frame_is_decoded_once(dataset: Path, tmp_path: Path) -> None:
    summary = run_extraction(config(dataset, tmp_path / "f.h5", anchors="stride:2"))
    cache = FeatureCache(tmp_path / "f.h5")
    # 24 frames, clip 16, stride 2: 5 overlapping clips per video need frames 0..23, each decoded once
    assert len(cache) == 4 * 5
    needed = [
        len({f for clip in clip_windows(int(n), "stride:2", 16) for f in clip.frames}) for n in cache.videos.num_frames
    ]
    assert needed == [24] * 4
    assert summary.frames_decoded == sum(needed)  # the decoder's own count: no frame decoded twice


def test_incremental_add_change_remove(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.h5"
    cfg = config(dataset, out)
    run_extraction(cfg)
    cache = FeatureCache(out)
    before = {e.path: e.features for e in map(cache.entry, range(len(cache.videos)))}
    cache.close()
    add_video(dataset, "v_new_g09_c01.avi", 1, moving_square(24, 32, 48, seed=9))
    summary = run_extraction(cfg)
    assert (summary.extracted, summary.skipped, summary.removed) == (1, 4, 0)
    after = FeatureCache(out)
    assert len(after.videos.path) == 5 and "UCF-101/MoveRight/v_new_g09_c01.avi" in list(after.videos.path)
    for entry in map(after.entry, range(len(after.videos))):
        if entry.path in before:
            np.testing.assert_array_equal(before[entry.path], entry.features)

    # change one file's content: only that one is re-extracted
    changed = dataset / after.videos.path[0]
    write_video(changed, moving_square(24, 32, 48, seed=5))
    summary = run_extraction(cfg)
    assert (summary.extracted, summary.skipped) == (1, 4)

    # drop a video from the annotations: its rows go
    lines = (dataset / "ucfTrainTestlist/trainlist01.txt").read_bytes().split(b"\r\n")
    (dataset / "ucfTrainTestlist/trainlist01.txt").write_bytes(b"\r\n".join(lines[1:]))
    summary = run_extraction(cfg)
    assert (summary.extracted, summary.removed, summary.videos) == (0, 1, 4)
    assert len(FeatureCache(out).videos.path) == 4

    # another preprocessing: everything is re-extracted
    summary = run_extraction(config(dataset, out, image_size=8))
    assert (summary.extracted, summary.skipped) == (4, 0)


def test_identical_reruns_are_byte_identical(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.h5"
    run_extraction(config(dataset, out))
    first = out.read_bytes()
    run_extraction(config(dataset, out))
    assert out.read_bytes() == first
    run_extraction(config(dataset, tmp_path / "g.h5", workers=2))  # decoder processes change nothing
    assert (tmp_path / "g.h5").read_bytes() == first


def test_corrupt_video_is_recorded_and_skipped(dataset: Path, tmp_path: Path) -> None:
    bad = next((dataset / "UCF-101").glob("*/*.avi"))
    bad.write_bytes(b"\x00" * 1000)
    summary = run_extraction(config(dataset, tmp_path / "f.h5", max_failed_fraction=0.5))
    assert (summary.extracted, summary.failed) == (3, 1)
    cache = FeatureCache(tmp_path / "f.h5")
    status = dict(zip(cache.videos.path, cache.videos.status, strict=True))
    assert status[bad.relative_to(dataset).as_posix()].startswith("failed: ")
    assert len(cache) == 6
    with pytest.raises(ExtractionFailed, match="1 of 4 videos failed"):
        run_extraction(config(dataset, tmp_path / "g.h5", max_failed_fraction=0.1))
    assert (tmp_path / "g.h5").exists()  # the cache is written all the same


def test_short_video_repeats_its_last_frame(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "data", videos_per_class=2, frames=16)
    add_video(root, "v_short_g09_c01.avi", 0, moving_square(10, 32, 48))
    out = tmp_path / "f.h5"
    run_extraction(config(root, out, anchors="uniform:3"))
    cache = FeatureCache(out)
    v = list(cache.videos.path).index("UCF-101/MoveLeft/v_short_g09_c01.avi")
    entry = cache.entry(v)
    assert list(entry.frames) == [0] and entry.num_frames == 10
    teacher = build_teacher("tiny3d", None)
    frames = decode(root / entry.path, list(range(10)) + [9] * 6).frames
    clip = teacher.preset(torch.from_numpy(frames).permute(0, 3, 1, 2))[None]
    with torch.inference_mode():
        expected = teacher(torch.cat([clip, torch.zeros(3, *clip.shape[1:])]))[0][0].numpy()
    np.testing.assert_allclose(entry.features[0], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_kill_9_then_resume_equals_a_clean_run(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "data", videos_per_class=5)
    args = [
        "--dataset",
        "ucf101",
        "--root",
        str(root),
        "--teacher",
        "tiny3d",
        "--teacher-weights",
        "random",
        "--anchors",
        "stride:1",  # 9 clips of batch 1 per video: the run lasts long enough to be killed mid-way
        "--image-size",
        "16",
        "--batch-size",
        "1",
        "--workers",
        "1",
        "--precision",
        "fp32",
        "--memory-format",
        "contiguous",
        "--device",
        "cpu",
    ]
    clean = tmp_path / "clean.h5"
    CliRunner().invoke(extract_teacher, [*args, "--out", str(clean)], catch_exceptions=False)
    out = tmp_path / "crash.h5"
    cmd = [
        sys.executable,
        "-c",
        "from teacher_extract.cli import extract_teacher; extract_teacher()",
        *args,
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = tmp_path / "crash.h5.partial"
    deadline = time.time() + 120
    while len(list(journal.glob("*.npz"))) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(journal.glob("*.npz")))
    assert 3 <= done < 10, f"the kill must land mid-run, not after {done} videos"
    assert not out.exists()
    result = CliRunner().invoke(extract_teacher, [*args, "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0
    assert out.read_bytes() == clean.read_bytes()
    with h5py.File(out) as f:
        assert len(f["videos/path"]) == 10


def test_cli_help_and_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(extract_teacher, ["--help"])
    for flag in (
        "--dataset",
        "--root",
        "--split",
        "--teacher",
        "--teacher-weights",
        "--anchors",
        "--clip-len",
        "--frame-step",
        "--image-size",
        "--batch-size",
        "--workers",
        "--device",
        "--out",
        "--params",
        "--precision",
        "--max-failed-fraction",
    ):
        assert flag in result.output
    result = runner.invoke(extract_teacher, ["--root", str(tmp_path), "--anchors", "middle"])
    assert result.exit_code == 2 and result.output.startswith("Error: invalid anchor policy 'middle'")
    result = runner.invoke(extract_teacher, ["--root", str(tmp_path / "none"), "--teacher", "tiny3d"])
    assert result.exit_code == 2 and "does not exist" in result.output and "Traceback" not in result.output


def test_a_header_that_overstates_its_frames(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = make_dataset(tmp_path / "data", frames=16)
    cut = add_video(root, "v_cut_g09_c01.avi", 0, moving_square(60, 32, 48))
    truncated_avi(cut, moving_square(60, 32, 48), keep=24)  # the header still says 60
    one_short = add_video(root, "v_short_g09_c02.avi", 1, moving_square(30, 32, 48))
    truncated_avi(one_short, moving_square(30, 32, 48), keep=29)  # off by one: common and harmless
    with caplog.at_level(logging.DEBUG, logger="teacher_extract"):
        summary = run_extraction(config(root, tmp_path / "f.h5", anchors="stride:4"))
    assert summary.failed == 0 and summary.header_mismatches == 2
    cache = FeatureCache(tmp_path / "f.h5")
    for name, true_count in (("v_cut_g09_c01.avi", 24), ("v_short_g09_c02.avi", 29)):
        v = [p.rsplit("/", 1)[1] for p in cache.videos.path].index(name)
        entry = cache.entry(v)
        assert entry.num_frames == true_count
        assert list(entry.frames) == [c.anchor for c in clip_windows(true_count, "stride:4", 16)]
        assert entry.frames.max() + 15 < true_count, "no window reaches past the frames that decode"
    warned = [r for r in caplog.records if "header claims" in r.getMessage()]
    levels = {r.getMessage().split(":")[0].rsplit("/", 1)[1]: r.levelno for r in warned}
    assert levels == {"v_cut_g09_c01.avi": logging.WARNING, "v_short_g09_c02.avi": logging.DEBUG}
    assert "claims 60 frames but 24 decode" in next(r.getMessage() for r in warned if r.levelno == logging.WARNING)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_extraction_equals_the_cpu_one(dataset: Path, tmp_path: Path) -> None:
    # The device path: pinned uint8 frames copied on a side stream, preset and mirror on the GPU,
    # outputs copied back asynchronously. Convolutions may use TF32 there: close, not equal.
    run_extraction(config(dataset, tmp_path / "cpu.h5", mirror=True))
    run_extraction(config(dataset, tmp_path / "cuda.h5", mirror=True, device="cuda", workers=2))
    cpu, cuda = FeatureCache(tmp_path / "cpu.h5"), FeatureCache(tmp_path / "cuda.h5")
    rows = np.arange(len(cpu))
    assert len(cuda) == len(cpu) == 8 and np.array_equal(cuda.clip_frame, cpu.clip_frame)
    np.testing.assert_array_equal(cuda.images(rows), cpu.images(rows))  # stored frames are made on the CPU
    for mirrored in (np.zeros(8, bool), np.ones(8, bool)):
        a, b = cuda.features(rows, mirrored), cpu.features(rows, mirrored)
        np.testing.assert_allclose(a, b, rtol=1e-2, atol=1e-2 * float(np.abs(b).max()))
