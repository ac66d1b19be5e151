"""Progress that reaches the logs: a tqdm bar on a terminal, periodic log lines everywhere else.

A tqdm bar redraws one line with carriage returns. In a Slurm log, a CI job or under ``dvc repro``
that becomes either nothing (``disable=None``) or megabytes of ``\\r``-joined bars. Long runs
there need the opposite: an ordinary log line every half minute saying how far, how fast and how
long still to go. :func:`progress` gives one or the other behind tqdm's interface, so callers
write a single loop.
"""

from __future__ import annotations

import datetime
import logging
import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm


class _NullStream:
    """Where the log-mode bar "draws": nowhere (tqdm still keeps count, rate and ETA)."""

    encoding = "utf-8"

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


class LogProgress(tqdm):
    """A tqdm whose display is an INFO log line, at most every ``interval`` seconds, and once at close.

    tqdm does the counting and its smoothed rate; only :meth:`display` (called by tqdm whenever
    it would redraw) and :meth:`close` (for the final line, with the overall average rate) change.
    """

    def __init__(self, *args: Any, logger: logging.Logger, interval: float = 30.0, **kwargs: Any):
        self._logger = logger
        self._interval = interval
        self._last_log: float | None = None
        self._final = False
        kwargs.update(file=_NullStream(), ascii=True, mininterval=min(interval, 0.1), delay=0)
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        if self._final or self.n <= self.initial:
            return True  # nothing done yet: a "0/N" line says nothing the first real line won't
        now = self._time()
        if self._last_log is not None and now - self._last_log < self._interval:
            return True
        if self._last_log is None and now - self.start_t < self._interval:
            return True
        self._last_log = now
        self._log(self._ema_rate())
        return True

    def close(self) -> None:
        if not self.disable and not self._final:
            self._final = True
            if self.n > self.initial:
                elapsed = self._time() - self.start_t
                self._log((self.n - self.initial) / elapsed if elapsed > 0 else None)
        super().close()

    def _ema_rate(self) -> float | None:
        rate = self.format_dict.get("rate")
        if rate:
            return rate
        elapsed = self._time() - self.start_t
        return (self.n - self.initial) / elapsed if elapsed > 0 else None

    def _log(self, rate: float | None) -> None:
        if self._logger.isEnabledFor(logging.INFO):
            self._logger.info("%s", self.line(rate))

    def line(self, rate: float | None) -> str:
        """``<desc>: <done>/<total> <unit> (<pct>%), <rate> <unit>/s, ETA <h:mm:ss>[, postfix]``."""
        desc = self.desc.removesuffix(": ") or "progress"
        done = f"{self.n:g}"
        if self.total:
            parts = [f"{desc}: {done}/{self.total:g} {self.unit} ({100 * self.n / self.total:.0f}%)"]
        else:
            parts = [f"{desc}: {done} {self.unit}"]
        parts.append(f"{_number(rate)} {self.unit}/s" if rate else f"? {self.unit}/s")
        if self.total and rate:
            remaining = max(self.total - self.n, 0) / rate
            parts.append(f"ETA {datetime.timedelta(seconds=round(remaining))}")
        elif self.total:
            parts.append("ETA ?")
        if self.postfix:
            parts.append(str(self.postfix))
        return ", ".join(parts)


def _number(value: float) -> str:
    """Three significant figures without exponents: 0.123, 1.23, 12.3, 123, 1234."""
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}" if value >= 0.001 else f"{value:.2g}"


def progress(
    iterable: Iterable | None = None,
    *,
    total: float | None = None,
    desc: str,
    unit: str,
    logger: logging.Logger,
    interval: float = 30.0,
    disable: bool = False,
    initial: int = 0,
) -> tqdm:
    """A progress tracker with tqdm's interface: a bar on a terminal, log lines otherwise.

    Use it like tqdm: iterate over it, or call ``.update(n)``, ``.set_postfix(**kw)`` and
    ``.close()``; it is also a context manager.

    Args:
        iterable: what to iterate over (its ``len()`` is the total when it has one).
        total: number of expected units, when ``iterable`` has no length or is ``None``.
        desc: what is being done (``"extract-teacher"``), the start of every line.
        unit: what is counted (``"video"``, ``"step"``).
        logger: the caller's module logger, so lines carry its name and obey its level.
        interval: seconds between log lines when stderr is not a terminal (Slurm, CI, DVC):
            the default 30 keeps a day-long run's log readable.
        disable: no bar and no lines (e.g. on non-zero ranks of a distributed run).
        initial: units already done (a resumed run), excluded from the rate.

    Returns:
        A plain ``tqdm`` bar when ``sys.stderr`` is a terminal, else a :class:`LogProgress`.
    """
    if disable or sys.stderr.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=disable)
    return LogProgress(iterable, total=total, desc=desc, unit=unit, initial=initial, logger=logger, interval=interval)
