"""benchmarks/repro.py: independent DVC stages run side by side, dependents after them, all recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from benchmarks.common import threads_per_job
from benchmarks.repro import repro, upstream

#: Each stage writes when it started and ended, and the thread count it was given.
STAGE = (
    "import json, os, sys, time; t0 = time.time(); time.sleep({sleep}); "
    "json.dump({{'start': t0, 'end': time.time(), 'threads': os.environ.get('OMP_NUM_THREADS')}}, "
    "open(sys.argv[1], 'w'))"
)


def stage(out: str, sleep: float, deps: list[str] = ()) -> dict:
    code = STAGE.format(sleep=sleep)
    return {"cmd": f'{sys.executable} -c "{code}" {out}', "deps": list(deps), "outs": [out]}


@pytest.fixture()
def project(tmp_path) -> Path:
    """A DVC project (no git) with two independent 2-second stages a and b, c after a, d after c."""
    subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    stages = {
        "a": stage("a.json", 2.0),
        "b": stage("b.json", 2.0),
        "c": stage("c.json", 0.1, ["a.json"]),
        "d": stage("d.json", 0.1, ["c.json"]),
    }
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}))
    return tmp_path


def times(project: Path, name: str) -> dict:
    return json.loads((project / f"{name}.json").read_text())


def test_upstream_counts_dependencies_through_stages_outside_the_set(project) -> None:
    assert upstream(["a", "b", "d"], project) == {"a": set(), "b": set(), "d": {"a"}}


def test_independent_stages_overlap_dependents_wait_and_dvc_records_every_one(project) -> None:
    seconds = repro(["d", "c", "b", "a"], jobs=2, logs=project / "logs", cwd=project)
    assert set(seconds) == {"a", "b", "c", "d"}
    a, b, c, d = (times(project, n) for n in "abcd")
    assert a["start"] < b["end"] and b["start"] < a["end"], "a and b did not run side by side"
    assert c["start"] >= a["end"] and d["start"] >= c["end"]
    assert {r["threads"] for r in (a, b, c, d)} == {str(threads_per_job(2))}
    status = subprocess.run(["dvc", "status", "--json"], cwd=project, capture_output=True, text=True, check=True)
    assert json.loads(status.stdout) == {}, status.stdout  # dvc.lock holds all four
    # Up to date now: a second call runs no command (the outputs keep their times).
    repro(["a", "b", "c", "d"], jobs=2, logs=project / "logs", cwd=project)
    assert times(project, "a") == a


def test_a_failed_stage_stops_its_dependents_and_is_named_with_its_log(project) -> None:
    spec = yaml.safe_load((project / "dvc.yaml").read_text())
    spec["stages"]["a"]["cmd"] = f"{sys.executable} -c \"import sys; print('bad input here'); sys.exit(3)\""
    (project / "dvc.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(SystemExit) as err:
        repro(["a", "b", "c"], jobs=2, logs=project / "logs", cwd=project)
    assert "dvc repro of a failed" in str(err.value) and "bad input here" in str(err.value)
    assert not (project / "c.json").exists()
    assert (project / "b.json").exists()  # started beside a, so it finished
