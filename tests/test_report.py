"""The report over seeds, from hand-written run files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import report
from pipeline.report import ReportConfig, build_report, spread


def write_run(folder: Path, top1: float, cosine: float) -> None:
    folder.mkdir(parents=True)
    metrics = {"video_top1": top1, "clip_top1": top1, "fidelity_cosine": cosine, "cost_gflops": 0.5}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "log.csv").write_text(f"epoch,loss,eval_top1\n1,2.0,{top1 / 2}\n2,1.0,{top1}\n")


def test_spread_by_hand() -> None:
    s = spread([0.2, 0.4])
    assert s["mean"] == pytest.approx(0.3) and s["std"] == pytest.approx(0.1414213562) and s["n"] == 2
    assert spread([0.5])["std"] == 0.0


def test_report_compares_the_listed_seeds(tmp_path: Path) -> None:
    teacher = {
        "teacher": "tiny3d",
        "test_clip_accuracy": 0.6,
        "chance": 0.125,
        "cost_per_clip": {"gflops": 2.0, "latency_ms": 4.0},
    }
    (tmp_path / "teacher.json").write_text(json.dumps(teacher))
    for seed, (h, b) in enumerate([(0.5, 0.3), (0.7, 0.5)]):
        write_run(tmp_path / "h" / f"seed{seed}", h, 0.8)
        write_run(tmp_path / "b" / f"seed{seed}", b, 0.4)
    write_run(tmp_path / "h" / "seed7", 0.0, 0.0)  # a stale run of a seed no longer listed
    cfg = ReportConfig(
        seeds=(0, 1),
        teacher=str(tmp_path / "teacher.json"),
        hallucinet=str(tmp_path / "h"),
        baseline=str(tmp_path / "b"),
        out=str(tmp_path / "out"),
    )
    r = build_report(cfg)
    assert r["hallucinet"]["video_top1"]["values"] == [0.5, 0.7]
    assert r["delta_video_top1"] == pytest.approx(0.2)
    assert r["baseline"]["fidelity_cosine"]["mean"] == pytest.approx(0.4)
    assert json.loads((tmp_path / "out/report.json").read_text())["teacher"]["name"] == "tiny3d"
    for png in ("accuracy", "fidelity", "curves", "cost"):
        assert (tmp_path / "out/plots" / f"{png}.png").read_bytes()[:4] == b"\x89PNG"

    result = CliRunner().invoke(
        report,
        ["--seeds", "0,3", "--teacher", cfg.teacher, "--hallucinet", cfg.hallucinet, "--baseline", cfg.baseline],
    )
    assert result.exit_code == 2 and "seed3/metrics.json does not exist" in result.output
