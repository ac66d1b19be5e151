"""Stage one's refusals and failure accounting: leakage, concurrent writers, a ``--out`` that is an
input, odd dataset entries, and the failure threshold of a sharded run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from helpers import extract_config as config
from helpers import make_dataset, moving_square

from pipeline.cache import FeatureCache
from pipeline.checkpoint import file_hash, load_safely
from pipeline.errors import UserError
from pipeline.outputs import OutputLock
from pipeline.version import code_version
from pipeline.video import fingerprint, write_video
from teacher_extract.cli import extract_teacher, merge_cache
from teacher_extract.extract import run_extraction
from teacher_extract.fit import FitConfig, fit_teacher_model
from teacher_extract.launch import extract
from teacher_extract.shard import shard_path


def cli_args(root: Path, out: Path) -> list[str]:
    return [
        "--root",
        str(root),
        "--teacher",
        "tiny3d",
        "--teacher-weights",
        "random",
        "--anchors",
        "center",
        "--image-size",
        "16",
        "--batch-size",
        "4",
        "--workers",
        "0",
        "--precision",
        "fp32",
        "--memory-format",
        "contiguous",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A synthetic dataset and a one-epoch fit-teacher checkpoint of its split-1 train set."""
    tmp = tmp_path_factory.mktemp("fit")
    root = make_dataset(tmp / "data")
    out = tmp / "teacher.pt"
    cfg = FitConfig(root=str(root), epochs=1, clips_per_video=1, batch_size=4, workers=0, device="cpu", out=str(out))
    fit_teacher_model(cfg)
    return root, out


def test_a_teacher_fitted_on_the_train_set_may_extract_it(fitted: tuple[Path, Path], tmp_path: Path) -> None:
    root, weights = fitted
    record = load_safely(weights)["trained_on"]
    assert record["dataset"] == "ucf101" and record["split"] == "1" and len(record["videos"]) == 2
    summary = run_extraction(config(root, tmp_path / "f.h5", teacher_weights=str(weights)))
    assert summary.extracted == 4
    cache = FeatureCache(tmp_path / "f.h5")
    assert cache.info.teacher_weights == file_hash(weights) and cache.has_logits
    assert cache.info.code_version == code_version()  # what every command's --version prints
    train = {p for p, s in zip(cache.videos.path, cache.videos.split, strict=True) if s == "train"}
    assert {p for p, _ in record["videos"]} == train


def test_fit_teacher_writes_dvclive_files(fitted: tuple[Path, Path]) -> None:
    """Per-epoch curves (DVC plots, x: step) and the final accuracies (DVC metrics) beside the checkpoint."""
    _, weights = fitted
    live = weights.with_suffix(".dvclive")
    for name in ("train_loss", "test_clip_accuracy"):
        lines = (live / "plots" / "metrics" / f"{name}.tsv").read_text().splitlines()
        assert lines[0] == f"step\t{name}" and [line.split("\t")[0] for line in lines[1:]] == ["1"]
    summary = json.loads((live / "metrics.json").read_text())
    fitted_metrics = json.loads(weights.with_suffix(".json").read_text())
    assert summary["test_clip_accuracy"] == fitted_metrics["test_clip_accuracy"] and summary["step"] == 1
    assert set(summary) == {"test_clip_accuracy", "test_clip_accuracy_mirrored", "cost_gflops", "step"}


def test_a_teacher_that_saw_a_test_video_is_refused(fitted: tuple[Path, Path], tmp_path: Path) -> None:
    root, weights = fitted
    ckpt = load_safely(weights)
    test_video = next(p for p in (root / "UCF-101").glob("*/*.avi") if p.name not in str(ckpt["trained_on"]))
    ckpt["trained_on"]["videos"].append(["renamed/elsewhere.avi", fingerprint(test_video)])  # the content counts
    leaky = tmp_path / "leaky.pt"
    torch.save(ckpt, leaky)
    with pytest.raises(UserError, match="was trained on 1 of this dataset's evaluation videos") as info:
        run_extraction(config(root, tmp_path / "f.h5", teacher_weights=str(leaky)))
    assert "\n" not in str(info.value) and test_video.name in str(info.value)
    assert not (tmp_path / "f.h5").exists()
    args = cli_args(root, tmp_path / "g.h5")
    args[args.index("random")] = str(leaky)
    result = CliRunner().invoke(extract_teacher, args)
    assert result.exit_code == 2 and "evaluation videos" in result.output and "Traceback" not in result.output


def test_a_second_writer_of_one_out_is_refused(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "data")
    out = tmp_path / "f.h5"
    run_extraction(config(root, out))
    before = out.read_bytes()
    with OutputLock(out, "extract-teacher"):  # another run is writing it
        with pytest.raises(UserError, match=f"{out} is being written by extract-teacher \\(pid {os.getpid()}") as info:
            run_extraction(config(root, out, anchors="center"))
        assert "\n" not in str(info.value)
        result = CliRunner().invoke(extract_teacher, cli_args(root, out))
        assert result.exit_code == 2 and "is being written by" in result.output and len(result.output.splitlines()) == 1
    assert out.read_bytes() == before  # the first writer's cache is intact
    assert run_extraction(config(root, out)).skipped == 4  # and the lock is gone with its holder


def test_the_lock_is_taken_before_the_teacher_is_built(tmp_path: Path) -> None:
    """A second writer is refused at once: not after building (here: failing to build) a teacher."""
    root = make_dataset(tmp_path / "data")
    out = tmp_path / "f.h5"
    with OutputLock(out, "extract-teacher"), pytest.raises(UserError, match="is being written by"):
        run_extraction(config(root, out, teacher_weights=str(tmp_path / "no-such-teacher.pt")))


def test_out_naming_an_input_video_is_refused(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "data")
    video = next((root / "UCF-101").glob("*/*.avi"))
    before = video.read_bytes()
    result = CliRunner().invoke(extract_teacher, cli_args(root, video))
    assert result.exit_code == 2, result.output
    assert "is the input" in result.output and len(result.output.strip().splitlines()) == 1
    assert video.read_bytes() == before


def test_a_dangling_link_in_a_folder_dataset_fails_alone(tmp_path: Path) -> None:
    root = tmp_path / "data"
    for cls, seeds in (("jump", (0, 1)), ("run", (2, 3))):
        for seed in seeds:
            write_video(root / cls / f"v{seed}.avi", moving_square(20, 32, 32, seed=seed))
    (root / "run" / "broken.avi").symlink_to(tmp_path / "nowhere.avi")
    summary = run_extraction(config(root, tmp_path / "f.h5", dataset="folder", max_failed_fraction=0.5))
    assert (summary.videos, summary.extracted, summary.failed) == (5, 4, 1)
    cache = FeatureCache(tmp_path / "f.h5")
    status = dict(zip(cache.videos.path, cache.videos.status, strict=True))
    assert status.pop("run/broken.avi") == "failed: dangling symbolic link"
    assert set(status.values()) == {"ok"} and len(cache) == 8


def test_the_failure_threshold_applies_to_the_whole_sharded_run(tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "data", videos_per_class=8)  # 16 videos
    bad = sorted((root / "UCF-101").glob("*/*.avi"))[0]
    bad.write_bytes(b"\x00" * 500)
    out = tmp_path / "f.h5"
    for i in range(2):  # independent --shard jobs: the threshold waits for merge-cache
        summary = extract(config(root, out, anchors="center", shard=f"{i}/2"))
        assert summary.videos == 8
    shards = [FeatureCache(shard_path(out, i, 2)) for i in range(2)]
    failed = [int((c.videos.status != "ok").sum()) for c in shards]
    assert sorted(failed) == [0, 1]
    # the failing shard alone is over max_failed_fraction 0.1 (1 of 8 videos failed), and the
    # jobs did not judge it; the whole run is not (1 of 16)
    result = CliRunner().invoke(merge_cache, ["--out", str(out), "--max-failed-fraction", "0.1"])
    assert result.exit_code == 0, result.output
    parts = [str(shard_path(out, i, 2)) for i in range(2)]
    strict = CliRunner().invoke(merge_cache, [*parts, "--out", str(tmp_path / "g.h5"), "--max-failed-fraction", "0.05"])
    assert strict.exit_code == 1 and "1 of 16 videos failed" in strict.output
    merged = FeatureCache(out)
    assert len(merged.videos) == 16 and int((merged.videos.status != "ok").sum()) == 1
    assert sorted(merged.videos.path) == sorted(p for c in shards for p in c.videos.path)


def test_dataset_options_on_the_command_line(tmp_path: Path) -> None:
    """--dataset-option KEY=VALUE reaches the adapter, values read as YAML, merged over params.yaml's."""
    root = make_dataset(tmp_path / "data")
    out = tmp_path / "f.h5"
    args = [*cli_args(root, out), "--dataset-option", "val_groups=[2]"]
    result = CliRunner().invoke(extract_teacher, args)
    assert result.exit_code == 0, result.output
    assert "val" in set(FeatureCache(out).videos.split)
    result = CliRunner().invoke(extract_teacher, [*cli_args(root, out), "--dataset-option", "nonsense"])
    assert result.exit_code == 2 and "expected KEY=VALUE" in result.output
    result = CliRunner().invoke(extract_teacher, [*cli_args(root, out), "--dataset-option", "colour=red"])
    assert result.exit_code == 2 and "colour" in result.output
