"""One error type for user mistakes: what the CLI reports in one line, and what it must not hide."""

from __future__ import annotations

import errno
import urllib.error
from pathlib import Path

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pipeline.cache import CacheError
from pipeline.cli_utils import user_errors
from pipeline.config import ConfigError
from pipeline.datasets import DatasetError
from pipeline.errors import UserError
from pipeline.registry import Registry
from pipeline.video import VideoError


@pytest.mark.parametrize("cls", [ConfigError, DatasetError, CacheError, VideoError])
def test_project_errors_are_user_errors_and_value_errors(cls: type) -> None:
    assert issubclass(cls, UserError) and issubclass(cls, ValueError)


def test_video_error_keeps_its_constructor() -> None:
    err = VideoError("a/b.avi", "empty file")
    assert (err.path, err.reason, str(err)) == ("a/b.avi", "empty file", "a/b.avi: empty file")


def test_registry_unknown_name_is_a_user_error() -> None:
    reg: Registry = Registry("widget")
    reg.register("knob")(lambda: None)
    with pytest.raises(UserError, match="unknown widget 'nob'; valid names: knob"):
        reg.get("nob")


def _command(exc: BaseException):
    @click.command()
    def cmd() -> None:
        with user_errors(verbose=False):
            raise exc

    return cmd


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (UserError("bad --lr"), "Error: bad --lr"),
        (ConfigError("unknown key 'lrr'"), "Error: unknown key 'lrr'"),
        (UserError("first\n  second\n"), "Error: first; second"),
        (
            FileNotFoundError(errno.ENOENT, "No such file or directory", "x.h5"),
            "Error: x.h5: No such file or directory",
        ),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "runs"), "Error: runs: Is a directory"),
        (PermissionError(errno.EACCES, "Permission denied", "/root/x"), "Error: /root/x: Permission denied"),
        (FileExistsError(errno.EEXIST, "File exists", "out"), "Error: out: File exists"),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "f/x"), "Error: f/x: Not a directory"),
    ],
)
def test_user_mistakes_are_one_line_with_exit_2(exc: BaseException, message: str) -> None:
    result = CliRunner().invoke(_command(exc))
    assert result.exit_code == 2
    assert result.output.strip() == message


def test_a_full_disk_is_one_line() -> None:
    exc = OSError(errno.ENOSPC, "No space left on device", "/data/features.h5")
    result = CliRunner().invoke(_command(exc))
    assert result.exit_code == 2 and result.output.strip() == "Error: /data/features.h5: No space left on device"


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.zeros((2, 3)) @ np.zeros((2, 3)),  # a genuine bug: a numpy shape ValueError
        lambda: (_ for _ in ()).throw(OSError(errno.EIO, "Input/output error")),  # a failing disk: not a mistake
        lambda: {}["key"],
    ],
)
def test_bugs_keep_their_traceback(make) -> None:
    try:
        make()
    except Exception as err:  # whatever it raised goes through the CLI below
        exc = err
    result = CliRunner().invoke(_command(exc))
    assert result.exit_code == 1  # not 2: click did not turn it into a one-line message
    assert result.exception is exc


def test_failed_teacher_weights_download_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision.models.video import R3D_18_Weights

    from teacher_extract.models import build_teacher

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # so TORCH_HOME decides, whatever ran before

    def offline(url: str, dst: str, *args, **kwargs) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    member = R3D_18_Weights.KINETICS400_V1
    with pytest.raises(UserError) as info:
        build_teacher("r3d_18", "KINETICS400_V1")
    message = str(info.value)
    target = tmp_path / "hub" / "checkpoints" / member.url.rsplit("/", 1)[1]
    assert "could not download R3D_18_Weights.KINETICS400_V1" in message
    assert member.url in message and "Temporary failure in name resolution" in message
    assert f"put it in {target}" in message and "or pass a checkpoint path" in message
    assert "\n" not in message
