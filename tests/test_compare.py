"""``compare-students``: paired statistics over seeds by hand, refusals of runs that cannot be compared, outputs.

And its former name ``report``, a deprecated alias.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from helpers import make_cache

from pipeline.cli_compare import compare_students as compare_students_cli
from pipeline.cli_compare import report
from pipeline.compare import (
    CompareConfig,
    check_runs,
    compare,
    compare_students,
    load_runs,
    mean_ci,
    spread,
    t975,
)
from pipeline.errors import UserError


def write_run(
    folder: Path, top1: float, cosine: float, lam: float, key: str = "k", task: str = "classification"
) -> None:
    folder.mkdir(parents=True)
    metrics = {
        "task": task,
        "lambda": lam,
        "cache_key": key,
        "video_top1": top1,
        "clip_top1": top1,
        "fidelity_cosine": cosine,
        "mean_feature_cosine": 0.3,
        "cost_gflops": 0.5,
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "log.csv").write_text(f"epoch,loss,eval_top1\n1,2.0,{top1 / 2}\n2,1.0,{top1}\n")


def runs(h: list[float], b: list[float]) -> tuple[dict, dict]:
    def one(top1: float, lam: float) -> dict:
        return {"metrics": {"task": "classification", "lambda": lam, "cache_key": "k", "video_top1": top1}, "log": []}

    return {s: one(v, 50.0) for s, v in enumerate(h)}, {s: one(v, 0.0) for s, v in enumerate(b)}


def test_t975_matches_the_table() -> None:
    for df, value in ((1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228), (30, 2.042)):
        assert t975(df) == pytest.approx(value, abs=5e-4)
    for df, value in ((40, 2.021), (60, 2.000), (120, 1.980), (10**6, 1.960)):  # beyond the table
        assert t975(df) == pytest.approx(value, abs=1e-3)
    assert math.isnan(t975(0))


def test_mean_ci_and_spread_by_hand() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    sd = math.sqrt(sum((v - 2.5) ** 2 for v in values) / 3)
    mean, (low, high) = mean_ci(values)
    assert mean == 2.5 and high - mean == pytest.approx(3.182 * sd / 2) and mean - low == pytest.approx(high - mean)
    single = mean_ci([0.5])
    assert single[0] == 0.5 and all(math.isnan(x) for x in single[1])
    s = spread([0.2, 0.4])
    assert s["mean"] == pytest.approx(0.3) and s["std"] == pytest.approx(0.1414213562) and s["n"] == 2
    assert spread([0.5])["std"] == 0.0


def test_compare_pairs_by_seed_and_closes_the_gap_by_hand() -> None:
    hallucinet, baseline = runs([0.5, 0.7, 0.6], [0.3, 0.5, 0.5])
    c = compare(hallucinet, baseline, "video_top1", ceiling=0.75)["video_top1"]
    assert c["diffs"] == pytest.approx([0.2, 0.2, 0.1]) and c["n"] == 3
    mean = 0.5 / 3
    sd = math.sqrt(((0.2 - mean) ** 2 * 2 + (0.1 - mean) ** 2) / 2)
    assert c["diff_mean"] == pytest.approx(mean)
    assert c["ci95"] == pytest.approx([mean - 4.303 * sd / math.sqrt(3), mean + 4.303 * sd / math.sqrt(3)])
    assert c["gap_closed"] == pytest.approx(mean / (0.75 - 1.3 / 3))
    assert "gap_closed" not in compare(hallucinet, baseline, "video_top1", ceiling=None)["video_top1"]
    # pairing by seed: a seed's baseline is subtracted from the same seed's HalluciNet, not sorted values
    swapped = {0: baseline[1], 1: baseline[0], 2: baseline[2]}
    assert compare(hallucinet, swapped, "video_top1", None)["video_top1"]["diffs"] == pytest.approx([0.0, 0.4, 0.1])


def test_check_runs_refuses_what_cannot_be_compared(tmp_path: Path) -> None:
    hallucinet, baseline = runs([0.5, 0.7], [0.3, 0.5])
    assert check_runs(hallucinet, baseline, "k") == "classification"
    wrong_arm = {**baseline, 1: {**baseline[1], "metrics": {**baseline[1]["metrics"], "lambda": 50.0}}}
    with pytest.raises(UserError, match="baseline run of seed 1 was trained with lambda 50.0"):
        check_runs(hallucinet, wrong_arm, "k")
    with pytest.raises(UserError, match="HalluciNet run of seed 0 was trained with lambda 0.0"):
        check_runs(baseline, baseline, "k")
    other = {**hallucinet, 0: {**hallucinet[0], "metrics": {**hallucinet[0]["metrics"], "cache_key": "zz"}}}
    with pytest.raises(UserError, match="trained on other caches") as info:
        check_runs(other, baseline, "k")
    assert "\n" not in str(info.value)
    write_run(tmp_path / "seed0", 0.5, 0.8, 50.0)
    (tmp_path / "seed0" / "metrics.json").write_text('{"video_top1": 0.5,')  # cut short
    with pytest.raises(UserError, match="seed0/metrics.json .* is not valid JSON") as info:
        load_runs(tmp_path, (0,))
    assert "\n" not in str(info.value)


@pytest.fixture
def run_folders(tmp_path: Path) -> CompareConfig:
    cache = make_cache(tmp_path / "features.h5", teacher_gflops=2.0)
    for seed, (h, b) in enumerate([(0.5, 0.3), (0.7, 0.5)]):
        write_run(tmp_path / "h" / f"seed{seed}", h, 0.8, 50.0)
        write_run(tmp_path / "b" / f"seed{seed}", b, 0.4, 0.0)
    write_run(tmp_path / "h" / "seed7", 0.0, 0.0, 50.0)  # a stale run of a seed no longer listed
    return CompareConfig(
        seeds=(0, 1),
        cache=str(cache),
        hallucinet=str(tmp_path / "h"),
        baseline=str(tmp_path / "b"),
        out=str(tmp_path / "out"),
    )


def test_compare_without_teacher_metrics_or_ceiling(run_folders: CompareConfig) -> None:
    r = compare_students(run_folders)
    assert r["task"] == "classification" and r["headline"] == "video_top1"
    assert r["hallucinet"]["video_top1"]["values"] == [0.5, 0.7] and r["hallucinet"]["seeds"] == [0, 1]
    assert r["comparison"]["video_top1"]["diff_mean"] == pytest.approx(0.2)
    assert "gap_closed" not in r["comparison"]["video_top1"] and "single_frame_ceiling" not in r
    assert r["baseline"]["fidelity_cosine"]["mean"] == pytest.approx(0.4)
    assert r["teacher"]["name"] == "tiny3d" and r["teacher"]["cost_gflops"] == 2.0
    assert "centre_clip_top1" not in r["teacher"]
    out = Path(run_folders.out)
    assert json.loads((out / "report.json").read_text())["comparison"]["video_top1"]["n"] == 2
    for png in ("accuracy", "fidelity", "curves", "cost"):
        assert (out / "plots" / f"{png}.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_with_teacher_metrics_and_ceiling(run_folders: CompareConfig, tmp_path: Path) -> None:
    teacher = {"teacher": "tiny3d", "test_clip_accuracy": 0.6, "cost_per_clip": {"gflops": 2.0, "latency_ms": 4.0}}
    (tmp_path / "teacher.json").write_text(json.dumps(teacher))
    (tmp_path / "ceiling.json").write_text(json.dumps({"single_frame_ceiling": {"video_top1": 0.75}}))
    cfg = CompareConfig(**{**run_folders.__dict__, "teacher": str(tmp_path / "teacher.json")})
    cfg = CompareConfig(**{**cfg.__dict__, "ceiling": str(tmp_path / "ceiling.json")})
    r = compare_students(cfg)
    assert r["teacher"]["centre_clip_top1"] == 0.6 and r["teacher"]["cost_latency_ms"] == 4.0
    assert r["single_frame_ceiling"] == {"video_top1": 0.75}
    assert r["comparison"]["video_top1"]["gap_closed"] == pytest.approx(0.2 / (0.75 - 0.4))


def test_cli_names_a_missing_run_in_one_line(run_folders: CompareConfig) -> None:
    cfg = run_folders
    args = ["--cache", cfg.cache, "--hallucinet", cfg.hallucinet, "--baseline", cfg.baseline, "--out", cfg.out]
    result = CliRunner().invoke(compare_students_cli, ["--seeds", "0,3", *args])
    assert result.exit_code == 2 and "seed3/metrics.json does not exist" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(compare_students_cli, ["--seeds", "0,1", *args])
    assert result.exit_code == 0, result.output
    assert json.loads((Path(cfg.out) / "report.json").read_text())["hallucinet"]["seeds"] == [0, 1]


def test_report_is_a_deprecated_alias(run_folders: CompareConfig) -> None:
    cfg = run_folders
    args = ["--cache", cfg.cache, "--hallucinet", cfg.hallucinet, "--baseline", cfg.baseline, "--out", cfg.out]
    result = CliRunner().invoke(report, ["--seeds", "0,1", *args])
    assert result.exit_code == 0, result.output
    warning = [line for line in result.stderr.splitlines() if "deprecated" in line]
    assert warning == [
        "Warning: 'report' is deprecated and will be removed in the next release; use 'compare-students'."
    ]
    assert json.loads((Path(cfg.out) / "report.json").read_text())["hallucinet"]["seeds"] == [0, 1]


def test_a_params_file_from_before_the_rename_still_works(run_folders: CompareConfig, tmp_path: Path) -> None:
    """Its section is still called ``report``: read it (with a warning) rather than fall back to defaults."""
    cfg = run_folders
    section = {"seeds": [0, 1], "cache": cfg.cache, "hallucinet": cfg.hallucinet, "baseline": cfg.baseline}
    params = tmp_path / "old-params.yaml"
    params.write_text(yaml.safe_dump({"report": {**section, "out": cfg.out}}))
    result = CliRunner().invoke(report, ["--params", str(params)])
    assert result.exit_code == 0, result.output
    assert "reading its former name, report" in result.output
    assert json.loads((Path(cfg.out) / "report.json").read_text())["hallucinet"]["seeds"] == [0, 1]
