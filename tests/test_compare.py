"""``compare-students``: paired statistics by hand, the test split read once (here), refusals, outputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import make_cache, train_config

from pipeline.errors import UserError
from student_train.cli_compare import compare_students as compare_students_cli
from student_train.compare import (
    CompareConfig,
    check_runs,
    compare,
    compare_students,
    convergence,
    load_runs,
    mean_ci,
    spread,
    t975,
)
from student_train.evaluate import evaluate_checkpoint
from student_train.train import train_student


def runs(h: list[float], b: list[float]) -> tuple[dict, dict]:
    def one(top1: float, lam: float) -> dict:
        metrics = {"task": "classification", "lambda": lam, "cache_key": "k", "splits_read": "train,val"}
        return {"metrics": metrics, "scored": {"video_top1": top1}, "log": []}

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
    assert c["diffs"] == pytest.approx([0.2, 0.2, 0.1]) and c["n"] == 3 and c["wins"] == 3
    mean = 0.5 / 3
    sd = math.sqrt(((0.2 - mean) ** 2 * 2 + (0.1 - mean) ** 2) / 2)
    assert c["diff_mean"] == pytest.approx(mean)
    assert c["ci95"] == pytest.approx([mean - 4.303 * sd / math.sqrt(3), mean + 4.303 * sd / math.sqrt(3)])
    assert c["gap_closed"] == pytest.approx(mean / (0.75 - 1.3 / 3))
    assert "gap_closed" not in compare(hallucinet, baseline, "video_top1", ceiling=None)["video_top1"]
    # pairing by seed: a seed's baseline is subtracted from the same seed's HalluciNet, not sorted values
    swapped = {0: baseline[1], 1: baseline[0], 2: baseline[2]}
    assert compare(hallucinet, swapped, "video_top1", None)["video_top1"]["diffs"] == pytest.approx([0.0, 0.4, 0.1])


def test_convergence_reads_the_last_fifth_of_the_log() -> None:
    log = [{"loss": str(2.0 - 0.1 * e), "eval_top1": str(0.1 * e)} for e in range(10)]  # last fifth: epochs 8, 9
    c = convergence({0: {"log": log}})
    assert c["epochs"] == 10
    assert c["loss_change_last_fifth"]["mean"] == pytest.approx((1.1 - 1.2) / 1.2)
    assert c["val_change_last_fifth"]["mean"] == pytest.approx(0.1)


def test_check_runs_refuses_what_cannot_be_compared() -> None:
    hallucinet, baseline = runs([0.5, 0.7], [0.3, 0.5])
    assert check_runs({"baseline": baseline, "hallucinet": hallucinet}, "k", "test") == "classification"
    wrong_arm = {**baseline, 1: {**baseline[1], "metrics": {**baseline[1]["metrics"], "lambda": 50.0}}}
    with pytest.raises(UserError, match=r"baseline \(lambda 0\) run of seed 1 was trained with lambda 50.0"):
        check_runs({"baseline": wrong_arm, "hallucinet": hallucinet}, "k", "test")
    other = {**hallucinet, 0: {**hallucinet[0], "metrics": {**hallucinet[0]["metrics"], "cache_key": "zz"}}}
    with pytest.raises(UserError, match="trained on other caches") as info:
        check_runs({"baseline": baseline, "hallucinet": other}, "k", "test")
    assert "\n" not in str(info.value)
    # The protocol: a run that looked at the scored split while training cannot be compared on it.
    peeked = {**hallucinet, 1: {**hallucinet[1], "metrics": {**hallucinet[1]["metrics"], "splits_read": "test,train"}}}
    with pytest.raises(UserError, match="HalluciNet run of seed 1 read the test split while training"):
        check_runs({"baseline": baseline, "hallucinet": peeked}, "k", "test")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two seeds of the three arms, one epoch each, curves on val: real runs with real checkpoints."""
    root = tmp_path_factory.mktemp("compare")
    cache = make_cache(root / "features.h5", teacher_gflops=2.0, val=True)
    for seed in (0, 1):
        common = dict(epochs=1, eval_split="val", seed=seed)
        train_student(train_config(cache, root / "b" / f"seed{seed}", lambda_weight=0.0, **common))
        train_student(train_config(cache, root / "h" / f"seed{seed}", lambda_weight=50.0, **common))
        pre = root / "pre" / f"seed{seed}"
        train_student(train_config(cache, pre, task="none", lambda_weight=50.0, **common))
        init = str(pre / "checkpoint.pt")
        train_student(train_config(cache, root / "p" / f"seed{seed}", lambda_weight=0.0, init=init, **common))
    return root


def config(root: Path, **overrides) -> CompareConfig:
    values = dict(
        seeds=(0, 1),
        cache=str(root / "features.h5"),
        hallucinet=str(root / "h"),
        baseline=str(root / "b"),
        pretrained=str(root / "p"),
        device="cpu",
        out=str(root / "out"),
    )
    return CompareConfig(**{**values, **overrides})


def test_runs_never_read_the_test_split(trained: Path) -> None:
    for arm in ("b", "h", "p"):
        for seed in (0, 1):
            metrics = json.loads((trained / arm / f"seed{seed}" / "metrics.json").read_text())
            assert metrics["split"] == "val" and metrics["splits_read"] == "train,val", (arm, seed)


def test_compare_scores_each_checkpoint_once_on_test(trained: Path) -> None:
    r = compare_students(config(trained))
    assert r["task"] == "classification" and r["headline"] == "video_top1" and r["split"] == "test"
    for arm, folder in (("baseline", "b"), ("hallucinet", "h"), ("pretrained", "p")):
        scored = [
            evaluate_checkpoint(trained / folder / f"seed{s}" / "checkpoint.pt", trained / "features.h5")["video_top1"]
            for s in (0, 1)
        ]
        assert r[arm]["video_top1"]["values"] == pytest.approx(scored) and r[arm]["seeds"] == [0, 1]
        val = [json.loads((trained / folder / f"seed{s}" / "metrics.json").read_text())["video_top1"] for s in (0, 1)]
        assert r["val"][arm]["video_top1"]["values"] == pytest.approx(val)
    diffs = [
        h - b
        for h, b in zip(r["hallucinet"]["video_top1"]["values"], r["baseline"]["video_top1"]["values"], strict=False)
    ]
    assert r["comparison"]["video_top1"]["diffs"] == pytest.approx(diffs)
    assert r["comparisons"]["hallucinet"] == r["comparison"] and "pretrained" in r["comparisons"]
    assert r["protocol"]["selected_on"] == "val" and r["protocol"]["scored_split"] == "test"
    assert r["protocol"]["scored_by"] == "compare-students" and r["protocol"]["seeds"] == [0, 1]
    assert r["baseline_convergence"]["epochs"] == 1
    assert r["teacher"]["name"] == "tiny3d" and r["teacher"]["cost_gflops"] == 2.0
    low, high = r["teacher"]["video_top1_ci95"]
    assert low <= r["teacher"]["video_top1"] <= high
    assert "gap_closed" not in r["comparison"]["video_top1"] and "single_frame_ceiling" not in r
    out = Path(config(trained).out)
    assert json.loads((out / "report.json").read_text())["comparison"]["video_top1"]["n"] == 2
    for png in ("accuracy", "fidelity", "curves", "cost"):
        assert (out / "plots" / f"{png}.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_with_teacher_ceiling_design_and_selection(trained: Path, tmp_path: Path) -> None:
    teacher = {"teacher": "tiny3d", "test_clip_accuracy": 0.6, "cost_per_clip": {"gflops": 2.0, "latency_ms": 4.0}}
    (tmp_path / "teacher.json").write_text(json.dumps(teacher))
    (tmp_path / "ceiling.json").write_text(json.dumps({"single_frame_ceiling": {"video_top1": 0.9}}))
    design = {"teacher_beyond_label_r2": 0.2, "teacher_r2_class": 0.5, "teacher_r2_class_speed_cue": 0.7}
    (tmp_path / "design.json").write_text(json.dumps(design))
    (tmp_path / "selection.json").write_text(json.dumps({"split": "val", "chosen": {"lambda_weight": 50.0}}))
    r = compare_students(
        config(
            trained,
            teacher=str(tmp_path / "teacher.json"),
            ceiling=str(tmp_path / "ceiling.json"),
            design=str(tmp_path / "design.json"),
            selection=str(tmp_path / "selection.json"),
            out=str(tmp_path / "out"),
        )
    )
    assert r["teacher"]["centre_clip_top1"] == 0.6 and r["teacher"]["cost_latency_ms"] == 4.0
    assert r["single_frame_ceiling"] == {"video_top1": 0.9} and r["design"] == design
    c = r["comparison"]["video_top1"]
    base = r["baseline"]["video_top1"]["mean"]
    assert c["gap_closed"] == pytest.approx(c["diff_mean"] / (0.9 - base) if base < 0.9 else math.nan, nan_ok=True)
    assert r["protocol"]["selection"]["chosen"] == {"lambda_weight": 50.0} and r["protocol"]["selected_on"] == "val"
    assert r["protocol"]["hallucinet_matches_selection"] is True
    # summary.json: the headline flat, what dvc exp show lists (the CI bounds as two numbers)
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    assert summary["metric"] == "video_top1" and summary["seeds"] == c["n"] and summary["ceiling"] == 0.9
    assert summary["baseline"] == base and summary["hallucinet"] == r["hallucinet"]["video_top1"]["mean"]
    assert [summary[f"hallucinet_{k}"] for k in ("diff", "ci_low", "ci_high", "wins")] == [
        c["diff_mean"],
        *c["ci95"],
        c["wins"],
    ]
    assert summary["beyond_label_r2"] == 0.2 and not any(isinstance(v, dict | list) for v in summary.values())
    (tmp_path / "selection.json").write_text(json.dumps({"split": "val", "chosen": {"lambda_weight": 5.0}}))
    r = compare_students(config(trained, selection=str(tmp_path / "selection.json"), out=str(tmp_path / "out2")))
    assert r["protocol"]["hallucinet_matches_selection"] is False


def test_a_run_that_read_the_test_split_is_refused(trained: Path, tmp_path: Path) -> None:
    cache = trained / "features.h5"
    for arm, lam in (("b", 0.0), ("h", 50.0)):
        train_student(train_config(cache, tmp_path / arm / "seed0", lambda_weight=lam, epochs=1, eval_split="test"))
    cfg = config(trained, seeds=(0,), hallucinet=str(tmp_path / "h"), baseline=str(tmp_path / "b"), pretrained=None)
    with pytest.raises(UserError, match="read the test split while training"):
        compare_students(cfg)


def test_cli_names_a_missing_run_in_one_line(trained: Path, tmp_path: Path) -> None:
    cfg = config(trained, out=str(tmp_path / "out"))
    args = ["--cache", cfg.cache, "--hallucinet", cfg.hallucinet, "--baseline", cfg.baseline, "--out", cfg.out]
    result = CliRunner().invoke(compare_students_cli, ["--seeds", "0,3", "--device", "cpu", *args])
    assert result.exit_code == 2 and "seed3/metrics.json does not exist" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(compare_students_cli, ["--seeds", "0,1", "--device", "cpu", *args])
    assert result.exit_code == 0, result.output
    assert json.loads((Path(cfg.out) / "report.json").read_text())["hallucinet"]["seeds"] == [0, 1]
    (trained / "h" / "seed1" / "metrics.json").rename(trained / "h" / "seed1" / "metrics.bak")
    try:
        (trained / "h" / "seed1" / "metrics.json").write_text('{"video_top1": 0.5,')  # cut short
        with pytest.raises(UserError, match="seed1/metrics.json .* is not valid JSON"):
            load_runs(trained / "h", (1,))
    finally:
        (trained / "h" / "seed1" / "metrics.bak").replace(trained / "h" / "seed1" / "metrics.json")
