"""Progress: a bar on a terminal, log lines (count, rate, ETA) in Slurm/CI/DVC logs."""

from __future__ import annotations

import io
import logging
import re

import pytest
from tqdm import tqdm

from pipeline.progress import LogProgress, progress

LOGGER = logging.getLogger("tests.progress")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def not_a_tty(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    return stream


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER.name]


def test_loop_logs_count_rate_and_eta(not_a_tty: io.StringIO, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER.name)
    bar = progress(range(5), desc="extract", unit="video", logger=LOGGER, interval=0)
    assert isinstance(bar, LogProgress)
    assert list(bar) == [0, 1, 2, 3, 4]
    lines = _lines(caplog)
    assert lines and all(line.startswith("extract: ") for line in lines)
    final = lines[-1]
    assert re.fullmatch(r"extract: 5/5 video \(100%\), [0-9.]+ video/s, ETA 0:00:00", final), final
    assert not_a_tty.getvalue() == ""  # no bar drawn into the log


def test_lines_are_throttled_to_the_interval(not_a_tty: io.StringIO, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER.name)
    for _ in progress(range(1000), desc="decode", unit="frame", logger=LOGGER, interval=3600):
        pass
    assert len(_lines(caplog)) == 1  # only the final line
    assert _lines(caplog)[0].startswith("decode: 1000/1000 frame (100%)")


def test_update_postfix_context_manager_and_initial(not_a_tty: io.StringIO, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER.name)
    with progress(total=10, desc="train", unit="step", logger=LOGGER, interval=0, initial=4) as bar:
        bar.update(2)
        bar.set_postfix(loss=0.25)
        bar.update(1)
    lines = _lines(caplog)
    assert lines[0].startswith("train: 6/10 step (60%), ")
    assert re.fullmatch(r"train: 7/10 step \(70%\), [0-9.]+ step/s, ETA \d+:\d\d:\d\d, loss=0.25", lines[-1])


def test_unknown_total_and_disable(not_a_tty: io.StringIO, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER.name)
    list(progress(iter("abc"), desc="scan", unit="file", logger=LOGGER, interval=0))
    assert re.fullmatch(r"scan: 3 file, [0-9.]+ file/s", _lines(caplog)[-1])
    caplog.clear()
    list(progress(range(3), desc="quiet", unit="file", logger=LOGGER, interval=0, disable=True))
    assert _lines(caplog) == []


def test_terminal_gets_a_plain_bar(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    caplog.set_level(logging.INFO, logger=LOGGER.name)
    bar = progress(range(3), desc="extract", unit="video", logger=LOGGER, interval=0)
    assert type(bar) is tqdm
    assert list(bar) == [0, 1, 2]
    assert "3/3" in terminal.getvalue()
    assert _lines(caplog) == []
