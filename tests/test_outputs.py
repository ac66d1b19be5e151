"""Output guards: one writer per output, and no overwriting of what the user did not ask to replace."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.errors import UserError
from pipeline.outputs import OutputLock, check_output_dir, check_output_file, lock_path


def _dead_pid() -> int:
    """The pid of a process that has exited (reaped), so nothing runs under it."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_lock(out: Path, pid: int, host: str | None = None) -> Path:
    path = lock_path(out)
    info = {"pid": pid, "host": host or socket.gethostname(), "command": "extract-teacher", "started": "earlier"}
    path.write_text(json.dumps(info))
    return path


def test_lock_is_exclusive_and_names_its_holder(tmp_path: Path) -> None:
    out = tmp_path / "features.h5"
    with OutputLock(out, "extract-teacher") as lock:
        held = json.loads(lock.path.read_text())
        assert held["pid"] == os.getpid() and held["command"] == "extract-teacher"
        assert held["host"] == socket.gethostname() and held["started"]
        with pytest.raises(UserError) as info, OutputLock(out, "merge-cache"):
            pass
        message = str(info.value)
        assert message.startswith(f"{out} is being written by extract-teacher (pid {os.getpid()} on host ")
        assert f"remove {out}.lock if that process is gone" in message and "\n" not in message
        assert lock.path.exists()  # the refused attempt left the holder's lock alone
    assert not lock_path(out).exists()
    with OutputLock(out, "merge-cache"):  # free again
        pass


def test_lock_held_by_another_live_process(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _write_lock(out, proc.pid)
        with pytest.raises(UserError, match=f"pid {proc.pid} on host"), OutputLock(out, "train-student"):
            pass
    finally:
        proc.kill()
        proc.wait()


def test_stale_lock_is_taken_over(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "features.h5"
    path = _write_lock(out, _dead_pid())
    with caplog.at_level(logging.WARNING, logger="pipeline.outputs"), OutputLock(out, "extract-teacher"):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert "stale lock" in caplog.text
    assert not path.exists()


def test_lock_from_another_host_is_respected(tmp_path: Path) -> None:
    out = tmp_path / "features.h5"
    _write_lock(out, _dead_pid(), host="some-other-node")
    with pytest.raises(UserError, match="on host some-other-node"), OutputLock(out, "extract-teacher"):
        pass


def test_lock_is_released_after_an_exception(tmp_path: Path) -> None:
    out = tmp_path / "features.h5"
    with pytest.raises(RuntimeError, match="boom"), OutputLock(out, "extract-teacher"):
        raise RuntimeError("boom")
    assert not lock_path(out).exists()


def test_foreign_lock_file_is_not_removed(tmp_path: Path) -> None:
    out = tmp_path / "features.h5"
    lock_path(out).write_text("not json")
    with pytest.raises(UserError, match="is not a lock file"), OutputLock(out, "extract-teacher"):
        pass
    assert lock_path(out).read_text() == "not json"


def _is_cache(path: Path) -> bool:
    return path.read_bytes().startswith(b"CACHE")


def test_check_output_file(tmp_path: Path) -> None:
    cache = tmp_path / "features.h5"
    cache.write_bytes(b"CACHE v1")
    photo = tmp_path / "holiday.jpg"
    photo.write_bytes(b"\xff\xd8 a photo")
    check_output_file(tmp_path / "new.h5", kind="feature cache", accepts=_is_cache)  # does not exist: fine
    check_output_file(cache, kind="feature cache", accepts=_is_cache)  # an earlier cache: replaced
    with pytest.raises(UserError, match="holiday.jpg exists and is not a feature cache; refusing to overwrite it"):
        check_output_file(photo, kind="feature cache", accepts=_is_cache)
    with pytest.raises(UserError, match="is a folder, not a feature cache"):
        check_output_file(tmp_path, kind="feature cache", accepts=_is_cache)

    def unreadable(path: Path) -> bool:
        raise OSError("unable to open")

    with pytest.raises(UserError, match="is not a feature cache"):
        check_output_file(cache, kind="feature cache", accepts=unreadable)


def test_check_output_file_refuses_an_input(tmp_path: Path) -> None:
    cache = tmp_path / "features.h5"
    cache.write_bytes(b"CACHE v1")
    (tmp_path / "link.h5").symlink_to(cache)
    (tmp_path / "sub").mkdir()
    for spelling in (cache, tmp_path / "link.h5", tmp_path / "sub" / ".." / "features.h5"):
        with pytest.raises(UserError, match="is the input"):
            check_output_file(spelling, kind="feature cache", accepts=_is_cache, inputs=[cache])
    # Not yet existing, but the same path as a (not yet existing) input.
    with pytest.raises(UserError, match="is the input"):
        check_output_file(
            tmp_path / "sub" / ".." / "a.h5", kind="feature cache", accepts=_is_cache, inputs=[tmp_path / "a.h5"]
        )
    check_output_file(tmp_path / "merged.h5", kind="feature cache", accepts=_is_cache, inputs=[cache])


def test_check_output_dir(tmp_path: Path) -> None:
    markers = ("checkpoint.pt", "metrics.json", "log.csv")
    check_output_dir(tmp_path / "new", kind="train-student", marker_files=markers)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".DS_Store").write_text("")
    check_output_dir(empty, kind="train-student", marker_files=markers)
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.csv").write_text("epoch\n")
    (run / "notes.txt").write_text("mine")
    check_output_dir(run, kind="train-student", marker_files=markers)
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_text("")
    with pytest.raises(UserError, match=r"photos is not empty \(a.jpg\) and holds no train-student output"):
        check_output_dir(photos, kind="train-student", marker_files=markers)
    with pytest.raises(UserError, match="is a file, not a folder"):
        check_output_dir(photos / "a.jpg", kind="train-student", marker_files=markers)


@pytest.mark.parametrize("kind", ["export-student", "evaluate-student", "compare-students"])
def test_commands_refuse_a_foreign_out_folder(tmp_path: Path, kind: str) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_text("")
    checkpoint = str(tmp_path / "checkpoint.pt")  # never read: the check comes first
    if kind == "compare-students":
        from student_train.cli_compare import compare_students as command

        args = ["--out", str(photos)]
    elif kind == "export-student":
        from student_train.cli_use import export_student as command

        args = [checkpoint, "--out", str(photos)]
    else:
        from student_train.cli_use import evaluate_student as command

        args = [checkpoint, "--cache", str(tmp_path / "c.h5"), "--out", str(photos)]
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 2, result.output
    assert f"holds no {kind} output" in result.output
    assert sorted(p.name for p in photos.iterdir()) == ["a.jpg"]
