"""The real pipeline under DVC, at toy size, in a temporary git repository holding this project.

One end-to-end test: synthetic videos -> fit-teacher -> extract-teacher -> train-student (x seeds,
HalluciNet and baseline) -> report, then DVC's promises: nothing reruns when nothing changed, a
student param reruns only the students and the report, and one new video is extracted alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import moving_square

from pipeline.cache import FeatureCache
from pipeline.synthetic import held_out_groups
from pipeline.video import write_video

REPO = Path(__file__).resolve().parents[1]

TOY = {
    "make_synthetic": {"classes": 2, "videos_per_class": 4, "groups": 2, "frames": 24, "height": 32, "width": 48},
    "fit_teacher": {"epochs": 2, "batch_size": 4, "clips_per_video": 2},
    "extract_teacher": {"anchors": "uniform:2", "image_size": 32, "batch_size": 4},
    "train_student": {"student": "tiny", "epochs": 2, "batch_size": 4, "crop_size": 28},
    "report": {"seeds": [0, 1]},
}


def run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{output}"
    return output


def ran(output: str) -> set[str]:
    """Names of the stages a ``dvc repro`` output says it ran."""
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """This project's files (tracked and new, not ignored) committed to a fresh git repository."""
    dest = tmp_path_factory.mktemp("clone") / "project"
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    for section, values in TOY.items():
        params[section].update(values)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "toy"], dest)
    return dest


@pytest.mark.slow
def test_dvc_repro_end_to_end(project: Path) -> None:
    everything = {
        "make_synthetic",
        "fit_teacher",
        "extract_teacher",
        "train_student@0",
        "train_student@1",
        "train_baseline@0",
        "train_baseline@1",
        "report",
    }
    assert ran(run(["dvc", "repro"], project)) == everything
    report = json.loads((project / "metrics/report.json").read_text())
    assert report["hallucinet"]["video_top1"]["n"] == 2 and report["baseline"]["video_top1"]["n"] == 2
    assert report["teacher"]["name"] == "tiny3d"
    for png in ("accuracy", "fidelity", "curves", "cost"):
        assert (project / f"metrics/plots/{png}.png").read_bytes()[:4] == b"\x89PNG"
    assert "video_top1" in run(["dvc", "metrics", "show"], project)

    # Nothing changed: nothing runs (byte-stable outputs all the way down).
    assert ran(run(["dvc", "repro"], project)) == set()

    # A HalluciNet-only param reruns the HalluciNet students and the report, nothing else.
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train_student"]["lambda_weight"] = 10.0
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert ran(run(["dvc", "repro"], project)) == {"train_student@0", "train_student@1", "report"}

    # One new (test-split) video in the dataset: stage one extracts it alone. The dataset is
    # now managed by hand, so its generating stage is frozen first (what `dvc freeze` writes;
    # the command itself refuses stages with ${} templating).
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
    output = run(["dvc", "repro"], project)
    assert "extract_teacher" in ran(output)
    assert (project / "models/teacher.pt").read_bytes() == teacher_before  # train split unchanged
    videos = 2 * TOY["make_synthetic"]["videos_per_class"]
    assert f"({1} extracted, {videos} skipped, 0 failed, 0 removed)" in output
    cache = FeatureCache(project / "data/features.h5")
    assert f"UCF-101/{name}" in set(cache.videos["path"])
