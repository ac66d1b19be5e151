"""The real pipelines under DVC, at toy size, in temporary git repositories holding this project.

* ``dvc.yaml``: synthetic videos -> fit-teacher -> extract-teacher -> train-student (two arms,
  HalluciNet and the lambda-0 baseline, two seeds each) -> compare-students; then DVC's promises:
  nothing reruns when nothing changed; two ``dvc exp run`` with different train_student params,
  which ``dvc exp show`` lists with their headline metrics (DVCLive's) and ``dvc plots diff``
  overlays (DVCLive's per-epoch curves); one arm's param reruns only that arm and the comparison;
  and one new video is extracted alone while the teacher checkpoint stays byte-identical.
* ``real/dvc.yaml`` (a real dataset): the README's recipe, ``cd real && dvc exp run -S
  extract_teacher.root=...``, on a second generated dataset standing in for the real one, with a
  torchvision teacher (r3d_18) at random init.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import copy_project_files, moving_square

from pipeline.cache import FeatureCache
from pipeline.synthetic import held_out_groups
from pipeline.video import write_video

REPO = Path(__file__).resolve().parents[1]

#: Seeds of the toy pipeline: every arm, paired.
SEEDS = (0, 1)
TOY = {
    "make_synthetic": {
        "classes": 2,
        "videos_per_class": 4,
        "groups": 4,  # test group 1, val group 2, train groups 3 and 4
        "val_groups": [2],
        "pool_videos_per_class": 2,
        "pool_groups": 2,
        "frames": 24,
        "height": 32,
        "width": 48,
    },
    "fit_teacher": {"epochs": 1, "batch_size": 4, "clips_per_video": 2},
    "extract_teacher": {
        "anchors": "uniform:2",
        "image_size": 32,
        "batch_size": 4,
        "dataset_options": {"val_groups": [2]},
    },
    "extract_pool": {"anchors": "uniform:2", "image_size": 32, "batch_size": 4},
    "train_student": {"student": "tiny", "epochs": 2, "batch_size": 4, "crop_size": 28, "eval_every": 1},
    "pretrain_student": {"student": "tiny", "epochs": 1, "batch_size": 4, "crop_size": 28},
    "compare_students": {"seeds": list(SEEDS)},
}
TRAIN = {f"train_student@{arm}-{seed}" for arm in ("hallucinet", "baseline") for seed in SEEDS}
PRETRAINED = {f"{stage}@{seed}" for stage in ("pretrain_student", "finetune_student") for seed in SEEDS}
STAGE_ONE = {"make_synthetic", "fit_teacher", "extract_teacher", "extract_pool", "check_benchmark"}


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{output}"
    return output


def ran(output: str) -> set[str]:
    """Names of the stages a ``dvc repro`` or ``dvc exp run`` output says it ran."""
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """The console scripts on PATH, a private precision-probe cache, one thread, and a git identity.

    One thread per process: the models are tiny, and on a busy 2-core machine OpenMP's spinning
    threads cost a quarter of the wall time.
    """
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HALLUCINET_CACHE_DIR": str(tmp_path_factory.mktemp("hallucinet-cache")),
        "OMP_NUM_THREADS": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }


def copy_project(dest: Path, env: dict[str, str], toy: dict[str, dict] | None = None) -> Path:
    """This project's files (tracked and new, not ignored, without dvc.lock) committed to a fresh
    git repository, with ``toy`` merged into the sections of its params.yaml."""
    copy_project_files(dest)
    if toy:
        params = yaml.safe_load((dest / "params.yaml").read_text())
        for section, values in toy.items():
            params[section].update(values)
        (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], dest, env)
    run(["git", "add", "-A"], dest, env)
    run(["git", "commit", "-qm", "toy"], dest, env)
    return dest


@pytest.mark.slow
def test_dvc_repro_end_to_end(tmp_path: Path, env: dict[str, str]) -> None:
    project = copy_project(tmp_path / "project", env, TOY)
    (project / "metrics/selection.json").write_text(json.dumps({"split": "val", "chosen": {"lambda_weight": 50.0}}))
    everything = {*STAGE_ONE, *TRAIN, *PRETRAINED, "compare_students"}
    assert ran(run(["dvc", "repro"], project, env)) == everything
    report = json.loads((project / "metrics/report.json").read_text())
    for arm in ("hallucinet", "baseline", "pretrained"):
        assert report[arm]["video_top1"]["n"] == len(SEEDS)
    assert report["teacher"]["name"] == "tiny3d" and "teacher_beyond_label_r2" in report["design"]
    # The protocol: no run of any arm read the test split; compare-students alone scored it.
    for arm in ("hallucinet", "baseline", "pretrained"):
        for seed in SEEDS:
            metrics = json.loads((project / f"models/{arm}/seed{seed}/metrics.json").read_text())
            assert metrics["split"] == "val" and metrics["splits_read"] == "train,val", (arm, seed)
    assert report["protocol"]["selected_on"] == "val" and report["protocol"]["scored_split"] == "test"
    for png in ("accuracy", "fidelity", "curves", "cost"):
        assert (project / f"metrics/plots/{png}.png").read_bytes()[:4] == b"\x89PNG"
    shown = run(["dvc", "metrics", "show"], project, env)
    assert "hallucinet_ci_low" in shown and "failed to load" not in shown

    # Nothing changed: nothing runs (byte-stable outputs all the way down).
    assert ran(run(["dvc", "repro"], project, env)) == set()

    # Two experiments with different train_student params (DVCLive's files are declared in dvc.yaml).
    check_experiments(project, env)

    # One arm's param reruns that arm's students and the comparison, nothing else.
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train_student"]["arms"]["hallucinet"]["lambda_weight"] = 10.0
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert ran(run(["dvc", "repro"], project, env)) == {f"train_student@hallucinet-{s}" for s in SEEDS} | {
        "compare_students"
    }
    assert json.loads((project / "models/hallucinet/seed0/metrics.json").read_text())["lambda"] == 10.0

    # One new (test-split) video in the dataset: stage one extracts it alone. The dataset is
    # now managed by hand, so its generating stage is frozen first (what `dvc freeze` writes;
    # the command itself refuses stages with ${} templating). fit-teacher learns from the pool,
    # which did not change: it does not rerun, and its checkpoint stays as it was.
    pipeline = yaml.safe_load((project / "dvc.yaml").read_text())
    pipeline["stages"]["make_synthetic"]["frozen"] = True
    (project / "dvc.yaml").write_text(yaml.safe_dump(pipeline, sort_keys=False))
    root = project / "data/synthetic"
    classes = (root / "ucfTrainTestlist/classInd.txt").read_text().split()[1::2]
    group = min(held_out_groups(1, TOY["make_synthetic"]["groups"]))
    name = f"{classes[0]}/v_{classes[0]}_g{group:02d}_c99.avi"
    write_video(root / "UCF-101" / name, moving_square(24, 32, 48))
    with open(root / "ucfTrainTestlist/testlist01.txt", "ab") as fh:
        fh.write(f"{name}\r\n".encode())
    teacher_before = (project / "models/teacher.pt").read_bytes()
    # Up to stage one only: the students and the comparison downstream would rerun on the new cache,
    # as they should, which costs time and shows nothing new.
    output = run(["dvc", "repro", "extract_teacher"], project, env)
    assert ran(output) == {"extract_teacher"}
    assert (project / "models/teacher.pt").read_bytes() == teacher_before
    videos = 2 * TOY["make_synthetic"]["videos_per_class"]
    assert f"(1 extracted, {videos} skipped, 0 failed, 0 removed)" in output
    assert f"UCF-101/{name}" in set(FeatureCache(project / "data/features.h5").videos.path)


def check_experiments(project: Path, env: dict[str, str]) -> None:
    """Two ``dvc exp run`` with different learning rates; both in ``dvc exp show`` and ``dvc plots diff``.

    The first experiment records the runs just made under the current rate (nothing reruns); the
    second reruns the students (both arms, each seed) and the comparison, nothing upstream.
    """
    lr = yaml.safe_load((project / "params.yaml").read_text())["train_student"]["lr"]
    rates = {"toy-lr": lr, "toy-lr-x3": round(3 * lr, 6)}
    finetune = {f"finetune_student@{seed}" for seed in SEEDS}  # the same recipe, from the pre-training
    for name, rate in rates.items():
        output = run(["dvc", "exp", "run", "-n", name, "-S", f"train_student.lr={rate}"], project, env)
        assert ran(output) == (set() if rate == lr else {*TRAIN, *finetune, "compare_students"})

    # dvc exp show: each experiment with its rate and the comparison's headline (summary.json), the
    # only metrics file: the CI bounds as columns of their own, no per-run or per-seed columns.
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project, env))
    experiments = {
        rev["name"]: rev["data"]
        for baseline in shown
        for exp in baseline.get("experiments") or []
        for rev in exp["revs"]
        if rev.get("name") in rates
    }
    assert set(experiments) == set(rates)
    for name, data in experiments.items():
        assert data["params"]["params.yaml"]["data"]["train_student"]["lr"] == rates[name]
        assert list(data["metrics"]) == ["metrics/summary.json"]
        headline = data["metrics"]["metrics/summary.json"]["data"]
        assert headline["metric"] == "video_top1" and headline["seeds"] == len(SEEDS)
        assert headline["hallucinet_ci_low"] <= headline["hallucinet_diff"] <= headline["hallucinet_ci_high"]
        assert 0 <= headline["baseline"] <= 1 and 0 <= headline["teacher_top1"] <= 1
    header = run(["dvc", "exp", "show", "--csv"], project, env).splitlines()[0].split(",")
    assert {"hallucinet_ci_low", "hallucinet_ci_high", "hallucinet_gap_closed"} <= set(header)
    assert not [c for c in header if "dvclive" in c or "report.json" in c]
    checkpoint = "models/hallucinet/seed0/checkpoint.pt"
    weights = {name: data["outs"][checkpoint]["hash"] for name, data in experiments.items()}
    assert weights["toy-lr"] != weights["toy-lr-x3"]  # another rate, another run

    # dvc plots show: the comparison's figures alone (the arms' curves overlaid, mean and band).
    plots = json.loads(run(["dvc", "plots", "show", "--json"], project, env))
    assert set(plots["data"]) == {f"metrics/plots/{png}.png" for png in ("accuracy", "fidelity", "curves", "cost")}

    # dvc plots diff on one run's DVCLive TSVs, named as targets: both experiments' curves overlaid.
    curves = "models/hallucinet/seed0/dvclive/plots/metrics"
    diff = json.loads(run(["dvc", "plots", "diff", *rates, "--json", "--targets", curves, "-x", "step"], project, env))
    loss = diff["data"][f"{curves}/loss.tsv"][0]
    assert loss["revisions"] == list(rates) and loss["content"]["encoding"]["x"]["field"] == "step"
    points = loss["content"]["data"]["values"]
    epochs = TOY["train_student"]["epochs"]
    assert sorted((p["rev"], int(p["step"])) for p in points) == sorted(
        (name, epoch) for name in rates for epoch in range(1, epochs + 1)
    )
    assert {f"{curves}/{name}.tsv" for name in ("hallucination_loss", "lr", "eval_top1")} <= set(diff["data"])


#: The README's real-data recipe at toy size: a random-init r3d_18 on 8-frame clips without the
#: mirrored pass (it runs at 112 px whatever image_size says, which only sizes the student's stored
#: frame, and manages about 0.4 clips/s on a busy 2-core CPU), a tiny student, one epoch, one seed.
REAL_TOY = {
    "extract_teacher.teacher_weights": "random",
    "extract_teacher.clip_len": 8,
    "extract_teacher.mirror": "false",
    "extract_teacher.image_size": 32,
    "extract_teacher.batch_size": 4,
    "extract_teacher.precision": "fp32",
    "extract_teacher.memory_format": "contiguous",
    "train_student.student": "tiny",
    "train_student.student_weights": "null",
    "train_student.epochs": 1,
    "train_student.batch_size": 2,
    "train_student.crop_size": 28,
    "compare_students.seeds": "[0]",
    # the toy dataset's groups: test 1, val 2, train 3
    "extract_teacher.dataset_options.val_groups": "[2]",
}


@pytest.mark.slow
def test_real_data_recipe(tmp_path: Path, env: dict[str, str]) -> None:
    """``cd real && dvc exp run -S extract_teacher.root=DIR``: extract, both arms, comparison; no synthetic stages."""
    project = copy_project(tmp_path / "project", env)
    dataset = tmp_path / "ucf101"
    synthetic = ["--classes", "2", "--videos-per-class", "3", "--groups", "3", "--frames", "16", "--seed", "1"]
    run(["make-synthetic", "--out", str(dataset), *synthetic, "--height", "32", "--width", "32"], tmp_path, env)
    overrides = {"extract_teacher.root": dataset, **REAL_TOY}
    output = run(
        ["dvc", "exp", "run", *[f"-S{key}={value}" for key, value in overrides.items()]], project / "real", env
    )
    assert ran(output) == {
        "extract_teacher",
        "train_student@hallucinet-0",
        "train_student@baseline-0",
        "compare_students",
    }
    for synthetic_output in ("data/synthetic", "models/teacher.pt", "data/features.h5"):
        assert not (project / synthetic_output).exists()
    report = json.loads((project / "real/metrics/report.json").read_text())
    assert report["teacher"]["name"] == "r3d_18" and report["teacher"]["weights"] == "random:0"
    assert report["hallucinet"]["seeds"] == [0] and report["baseline"]["seeds"] == [0]
    assert "video_top1" in report["comparison"] and "single_frame_ceiling" not in report
    assert (project / "real/metrics/plots/accuracy.png").read_bytes()[:4] == b"\x89PNG"
