"""Two processes with torchrun (gloo, CPU): sharded extraction and DDP training, against one process."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers import extract_config as config
from helpers import make_cache, make_dataset

from pipeline.cache import FeatureCache
from pipeline.errors import UserError
from student_train.evaluate import evaluate_checkpoint
from student_train.spec import load_student
from teacher_extract.cli import extract_teacher, merge_cache
from teacher_extract.extract import run_extraction
from teacher_extract.shard import parse_shard, shard_path

BIN = Path(sys.executable).parent


def torchrun(script: str, *args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(BIN / script)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    result = subprocess.run([*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stderr


def extract_args(root: Path, out: Path) -> list[str]:
    return [
        "--root",
        str(root),
        "--teacher",
        "tiny3d",
        "--teacher-weights",
        "random",
        "--anchors",
        "uniform:2",
        "--image-size",
        "16",
        "--batch-size",
        "4",
        "--precision",
        "fp32",
        "--memory-format",
        "contiguous",
        "--workers",
        "0",
        "--out",
        str(out),
    ]


def assert_same_cache(a: Path, b: Path) -> None:
    x, y = FeatureCache(a), FeatureCache(b)
    assert x.info == y.info
    for name in ("path", "label", "split", "fingerprint", "status", "num_clips"):
        assert list(getattr(x.videos, name)) == list(getattr(y.videos, name)), name
    rows = np.arange(len(x))
    np.testing.assert_array_equal(x.clip_frame, y.clip_frame)
    np.testing.assert_array_equal(x.images(rows), y.images(rows))
    np.testing.assert_allclose(x.features(rows), y.features(rows), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(x.feature_mean, y.feature_mean, rtol=1e-4, atol=1e-5)


def test_parse_shard() -> None:
    assert parse_shard("") == (0, 1) and parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "1", "a/b", "-1/2"):
        with pytest.raises(UserError, match="i/N"):
            parse_shard(bad)
    assert shard_path("data/features.h5", 1, 4) == Path("data/features.shard01-of-04.h5")


@pytest.mark.slow
def test_sharded_extraction_equals_one_process(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "data", videos_per_class=3)  # 6 videos: shards of 3 and 3
    # One corrupt video: 1 of 3 (over the threshold 0.2) in its shard, 1 of 6 (under it) in the whole run,
    # which is what the threshold applies to.
    sorted((root / "UCF-101").glob("*/*.avi"))[0].write_bytes(b"\x00" * 500)
    threshold = ["--max-failed-fraction", "0.2"]
    single = tmp_path / "single.h5"
    assert run_extraction(config(root, single, teacher_weights="random", max_failed_fraction=0.2)).failed == 1

    # torchrun: two ranks extract their shards, rank 0 merges.
    merged = tmp_path / "ranks" / "features.h5"
    log = torchrun("extract-teacher", *extract_args(root, merged), *threshold, cwd=tmp_path)
    assert "all 2 ranks: 6 videos (5 extracted, 0 skipped, 1 failed)" in log
    assert shard_path(merged, 0, 2).is_file() and shard_path(merged, 1, 2).is_file()
    assert_same_cache(merged, single)

    # Independent jobs (a Slurm array): --shard i/N, then merge-cache.
    jobs = tmp_path / "jobs" / "features.h5"
    runner = CliRunner()
    for i in range(2):
        result = runner.invoke(extract_teacher, [*extract_args(root, jobs), *threshold, "--shard", f"{i}/2"])
        assert result.exit_code == 0, result.output
    assert not jobs.exists()
    assert runner.invoke(merge_cache, ["--out", str(jobs), *threshold]).exit_code == 0
    assert_same_cache(jobs, single)

    # Each shard is incremental on its own: a rerun of shard 1 extracts nothing.
    summary = run_extraction(config(root, jobs, teacher_weights="random", shard="1/2"), apply_threshold=False)
    assert (summary.extracted, summary.skipped, summary.videos) == (0, 3, 3)

    # A merge with a shard missing is refused in one line.
    shard_path(jobs, 1, 2).unlink()
    result = runner.invoke(merge_cache, ["--out", str(jobs)])
    assert result.exit_code == 2 and "shards [1] of 2" in result.output


def without_fixed_run_config(args: list[str]) -> list[str]:
    """``args`` less ``--precision`` and ``--memory-format``: both left to ``auto``."""
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in ("--precision", "--memory-format"):
            skip = True
        else:
            out.append(a)
    return out


@pytest.mark.slow
def test_ranks_share_rank_0s_auto_choice(tmp_path: Path) -> None:
    """With auto and no remembered choice, rank 0 times the candidates once and every rank uses its answer."""
    root = make_dataset(tmp_path / "data", videos_per_class=2)
    out = tmp_path / "ranks" / "features.h5"
    fresh = {"HALLUCINET_CACHE_DIR": str(tmp_path / "choices")}
    log = torchrun("extract-teacher", *without_fixed_run_config(extract_args(root, out)), cwd=tmp_path, env=fresh)
    assert log.count("for every rank") == 1 and "all 2 ranks: 4 videos (4 extracted" in log
    # One process with the choice rank 0 remembered: the same cache.
    single = tmp_path / "one" / "features.h5"
    args = [str(BIN / "extract-teacher"), *without_fixed_run_config(extract_args(root, single))]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **fresh}
    subprocess.run(args, cwd=tmp_path, env=env, check=True, capture_output=True, timeout=300)
    assert_same_cache(single, out)


def test_shard_jobs_with_auto_precision_are_refused_up_front(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "data")
    args = [*without_fixed_run_config(extract_args(root, tmp_path / "f.h5")), "--memory-format", "auto"]
    result = CliRunner().invoke(extract_teacher, [*args, "--shard", "0/2"])
    assert result.exit_code == 2 and "--shard jobs must agree on the teacher's precision" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_shards_in_different_memory_formats_merge_into_the_single_process_cache(tmp_path: Path) -> None:
    """The memory format is each machine's speed choice: not in the cache key, so such shards merge,
    and their features equal one process's within float reordering."""
    root = make_dataset(tmp_path / "data", videos_per_class=2)
    single, jobs = tmp_path / "one" / "features.h5", tmp_path / "jobs" / "features.h5"
    run_extraction(config(root, single, teacher_weights="random"))
    for i, fmt in enumerate(("channels_last", "contiguous")):
        run_extraction(
            config(root, jobs, teacher_weights="random", shard=f"{i}/2", memory_format=fmt), apply_threshold=False
        )
    result = CliRunner().invoke(merge_cache, ["--out", str(jobs)])
    assert result.exit_code == 0, result.output
    x, y = FeatureCache(single), FeatureCache(jobs)
    assert x.info.config_key == y.info.config_key
    rows = np.arange(len(x))
    np.testing.assert_allclose(x.features(rows), y.features(rows), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_ddp_training(tmp_path: Path) -> None:
    cache = make_cache(tmp_path / "features.h5", videos_per_class=8)
    out = tmp_path / "run"
    args = ["--cache", str(cache), "--out", str(out), "--student", "tiny", "--epochs", "3", "--batch-size", "4"]
    torchrun("train-student", *args, "--crop-size", "14", "--lr", "0.003", "--device", "cpu", cwd=tmp_path)
    with open(out / "log.csv") as fh:
        losses = [float(row["loss"]) for row in csv.DictReader(fh)]
    assert len(losses) == 3 and losses[-1] < losses[0]
    # Rank 0 alone writes DVCLive's files: one row per epoch, as in log.csv.
    curve = (out / "dvclive" / "plots" / "metrics" / "loss.tsv").read_text().splitlines()
    assert curve == ["step\tloss", *(f"{epoch}\t{loss!r}" for epoch, loss in enumerate(losses, 1))]
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    assert ckpt["world_size"] == 2 and ckpt["epoch"] == 3
    # Rank 0's checkpoint is a plain model: it loads and evaluates in a single process.
    model, spec, _ = load_student(out / "checkpoint.pt")
    assert not any(k.startswith("module.") for k in ckpt["state_dict"])
    metrics = evaluate_checkpoint(out / "checkpoint.pt", cache)
    assert metrics["num_clips"] == 3 * 3 * 4 and 0 <= metrics["video_top1"] <= 1
    assert spec.num_outputs == 3 and model.task_head is not None


def test_merge_cache_checks_the_set_it_is_given(tmp_path: Path) -> None:
    """Twice the same shard, half the shards: refused; the order of the list: no difference to the bytes."""
    root = make_dataset(tmp_path / "data", videos_per_class=3)
    out = tmp_path / "features.h5"
    for i in range(2):
        run_extraction(config(root, out, teacher_weights="random", shard=f"{i}/2"), apply_threshold=False)
    a, b = shard_path(out, 0, 2), shard_path(out, 1, 2)
    runner = CliRunner()
    for args, words in [([a, a], "given twice"), ([a], "shards [1] of 2 are missing"), ([b], "shards [0] of 2")]:
        result = runner.invoke(merge_cache, [*map(str, args), "--out", str(out)])
        assert result.exit_code == 2 and words in result.output, result.output
        assert not out.exists()
    merged = {}
    for name, args in [("ab", [a, b]), ("ba", [b, a])]:
        target = tmp_path / name / "features.h5"
        assert runner.invoke(merge_cache, [*map(str, args), "--out", str(target)]).exit_code == 0
        merged[name] = target.read_bytes()
    assert merged["ab"] == merged["ba"]
