"""DVCLive files (``pipeline.live``): their layout, no side effects, resume-proof, and no effect on training."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import make_cache, train_config

from pipeline.live import write_live
from pipeline.metric_schema import EXPERIMENT
from student_train import train as train_module
from student_train.train import Trainer

HISTORY = [
    {"epoch": 1, "loss": 2.0, "task_loss": None, "lr": 0.1, "seconds": 3.2},
    {"epoch": 2, "loss": 1.5, "task_loss": None, "lr": 0.05, "seconds": 2.9, "eval_top1": 0.5},
    {"epoch": 3, "loss": 1.0, "task_loss": None, "lr": 0.0, "seconds": 3.0},
]


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_layout_summary_and_rewrite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # In a git repository without DVC: plain dvclive.Live would run `dvc init` here.
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    monkeypatch.chdir(tmp_path)
    live = write_live("run/dvclive", HISTORY)
    assert not (tmp_path / ".dvc").exists() and not (tmp_path / "run" / "dvclive" / "dvc.yaml").exists()
    assert set(files(live)) == {
        "metrics.json",
        "plots/metrics/loss.tsv",
        "plots/metrics/lr.tsv",
        "plots/metrics/eval_top1.tsv",
    }  # no wall-clock seconds, no column that was never measured
    assert (live / "plots/metrics/loss.tsv").read_text().splitlines() == ["step\tloss", "1\t2.0", "2\t1.5", "3\t1.0"]
    assert (live / "plots/metrics/eval_top1.tsv").read_text().splitlines() == ["step\teval_top1", "2\t0.5"]
    assert json.loads((live / "metrics.json").read_text()) == {"loss": 1.0, "lr": 0.0, "eval_top1": 0.5, "step": 3}

    # The end of the run: the final figures replace the last epoch's; strings are not metrics.
    write_live(live, HISTORY, {"video_top1": 0.75, "task": "classification"})
    assert json.loads((live / "metrics.json").read_text()) == {"video_top1": 0.75, "step": 3}

    # Rewritten whole from the history, as after a resume: no stale rows, the same bytes as ever.
    write_live(live, HISTORY[:1])
    assert (live / "plots/metrics/loss.tsv").read_text().splitlines() == ["step\tloss", "1\t2.0"]
    assert not (live / "plots/metrics/eval_top1.tsv").exists()
    before = files(write_live(live, HISTORY))
    assert files(write_live(live, HISTORY)) == before


def test_logging_changes_no_trained_number(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = make_cache(tmp_path / "c.h5", videos_per_class=3)
    logged = Trainer(train_config(cache, tmp_path / "logged", epochs=2))
    logged_metrics = logged.fit()
    monkeypatch.setattr(train_module, "write_live", lambda *args, **kwargs: None)
    silent = Trainer(train_config(cache, tmp_path / "silent", epochs=2))
    silent_metrics = silent.fit()
    assert not (tmp_path / "silent" / "dvclive").exists()
    for key, value in logged.model.state_dict().items():
        assert torch.equal(value, silent.model.state_dict()[key]), key
    assert [r["loss"] for r in logged.history] == [r["loss"] for r in silent.history]
    live = tmp_path / "logged" / "dvclive"
    summary = json.loads((live / "metrics.json").read_text())
    assert set(summary) == {*(n for n in EXPERIMENT if n in logged_metrics), "step"} and summary["step"] == 2
    assert summary["video_top1"] == logged_metrics["video_top1"] == silent_metrics["video_top1"]
    loss = (live / "plots/metrics/loss.tsv").read_text().splitlines()
    assert loss == ["step\tloss", *(f"{r['epoch']}\t{r['loss']}" for r in logged.history)]


def test_the_commands_import_neither_dvc_nor_dvclive() -> None:
    """`pip install .` brings no DVC (it is the ``dvc`` extra): every console script starts without it."""
    from importlib import metadata

    required = [r for r in metadata.requires("hallucinet") if "extra ==" not in r]
    assert required and not [r for r in required if r.lower().startswith("dvc")]
    scripts = [e for e in metadata.entry_points(group="console_scripts") if e.dist and e.dist.name == "hallucinet"]
    modules = sorted({e.module for e in scripts})
    assert len(modules) >= 5
    code = f"import sys; import {', '.join(modules)}; print(sorted(m for m in sys.modules if m.startswith('dvc')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
