"""A full or read-only disk: one line naming the path, no temporary file left, the previous outputs intact.

Needs a small tmpfs, so root (or CAP_SYS_ADMIN); elsewhere the tests skip and say why. (Root
ignores file permissions, so a read-only *filesystem*, a remounted tmpfs, stands in for an
output folder the user may not write.)
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import make_cache, make_dataset

from pipeline.cache import check_space
from pipeline.errors import OutOfSpace
from student_train.cli import train_student
from teacher_extract.cli import extract_teacher


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 256 KB tmpfs, unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.decode().strip() or 'not permitted'})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)  # lazily: a handle still open must not keep it


def test_check_space_refuses_before_writing(tmp_path: Path) -> None:
    with pytest.raises(OutOfSpace, match=r"needs about [\d,]+ MB, [\d,]+ MB are free"):
        check_space(tmp_path / "f.h5.tmp", 1 << 62)
    check_space(tmp_path / "f.h5.tmp", 1000)


def test_extract_onto_a_full_disk_is_one_line(small_disk: Path, tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "data")
    out = small_disk / "features.h5"
    args = ["--root", str(root), "--teacher", "tiny3d", "--teacher-weights", "random", "--image-size", "16"]
    args += ["--precision", "fp32", "--memory-format", "contiguous", "--workers", "0", "--out", str(out)]
    result = CliRunner().invoke(extract_teacher, args)
    assert result.exit_code == 2, result.output
    assert "MB are free" in result.output or "no space left" in result.output
    assert "Traceback" not in result.output
    assert not out.exists() and not list(small_disk.glob("*.tmp"))


def test_training_onto_a_full_disk_is_one_line(small_disk: Path, tmp_path: Path) -> None:
    cache = make_cache(tmp_path / "c.h5")
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * (200 << 10))  # most of the 256 KB gone
    args = ["--cache", str(cache), "--out", str(small_disk / "run"), "--student", "tiny", "--crop-size", "14"]
    result = CliRunner().invoke(train_student, [*args, "--epochs", "2", "--device", "cpu"])
    assert result.exit_code == 2, result.output
    assert "No space left on device" in result.output or "no space left" in result.output
    assert "Traceback" not in result.output and not list((small_disk / "run").rglob("*.tmp"))


def test_a_read_only_output_is_one_line_and_the_old_cache_stays(small_disk: Path, tmp_path: Path) -> None:
    root = make_dataset(tmp_path / "data")
    cache = make_cache(tmp_path / "c.h5")
    old = small_disk / "c.h5"
    old.write_bytes(cache.read_bytes())
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    args = ["--root", str(root), "--teacher", "tiny3d", "--teacher-weights", "random", "--image-size", "16"]
    args += ["--precision", "fp32", "--memory-format", "contiguous", "--workers", "0", "--out", str(old)]
    runner = CliRunner()
    result = runner.invoke(extract_teacher, args)
    assert result.exit_code == 2 and "Read-only file system" in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert old.read_bytes() == cache.read_bytes()
    train = ["--cache", str(cache), "--out", str(small_disk / "run"), "--student", "tiny", "--epochs", "1"]
    result = runner.invoke(train_student, train)
    assert result.exit_code == 2 and "Read-only file system" in result.output, result.output
    assert "Traceback" not in result.output
