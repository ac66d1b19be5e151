"""DVCLive files of a training run: per-epoch figures as DVC plots, final figures as DVC metrics.

``fit-teacher`` and ``train-student`` write, under a run's ``dvclive/`` folder (DVCLive's own
layout, which DVC, its VS Code extension and Studio read):

* ``plots/metrics/<name>.tsv``: columns ``step`` (the epoch, from 1) and ``<name>``, one row per
  epoch that has the figure: the curves ``dvc plots diff`` overlays across experiments;
* ``metrics.json``: flat; while training, the last epoch's figures, and at the end the run's
  headline figures: what ``dvc exp show`` and ``dvc metrics diff`` list. DVCLive adds ``step``,
  the last epoch.

dvc.yaml declares both (the stage's ``metrics:``, and ``plots:`` with ``x: step``): DVCLive writes
no dvc.yaml of its own and saves no experiment (``dvc exp run`` makes the experiments).

The files are rewritten whole from the run's history on every call, as ``log.csv`` is, so a
resumed run's files equal an uninterrupted run's, and identical runs write identical files (no
timestamps and no wall-clock figures). Writing them draws no random number and waits for nothing
on the device: it changes no trained number. The trainers call it on their main process only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dvclive import Live

#: Per-epoch columns that are not figures of the run: the step itself, and wall-clock time (it
#: would make identical runs' files differ, and DVC rerun nothing on it anyway).
NOT_PLOTTED = frozenset({"epoch", "seconds"})


class _FilesOnlyLive(Live):
    """A :class:`dvclive.Live` that writes its files and nothing else.

    A plain ``Live`` opens the DVC repository around the working directory (and in a git
    repository without DVC, runs ``dvc init`` there), and may post to DVC Studio. A training
    command should do neither: DVC finds these files through dvc.yaml, and training runs offline.
    """

    def _init_dvc(self) -> None:
        return None

    def _init_studio(self) -> None:
        self._studio_events_to_skip.update({"start", "data", "done"})


def _is_figure(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def write_live(
    folder: str | Path,
    history: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Any] | None = None,
) -> Path:
    """Rewrite the DVCLive files of a run under ``folder`` from its per-epoch rows and final figures.

    Args:
        folder: the run's DVCLive folder (``<run>/dvclive``); its previous DVCLive files are replaced.
        history: one mapping per finished epoch, with ``epoch`` (from 1); every other numeric value
            except :data:`NOT_PLOTTED` becomes a point of its curve (``None``: not measured that epoch).
        summary: the run's final figures, when it has finished: they replace the last epoch's in
            ``metrics.json``. Non-numeric values are left out (they are not metrics).

    Returns:
        The folder.
    """
    live = _FilesOnlyLive(dir=str(folder), resume=False, report=None, save_dvc_exp=False, dvcyaml=None)
    for row in history:
        live.step = int(row["epoch"])
        for name, value in row.items():
            if name not in NOT_PLOTTED and _is_figure(value):
                live.log_metric(name, float(value))
    if summary is not None:
        live.summary = {name: value for name, value in summary.items() if _is_figure(value)}
    live.make_summary()
    return Path(folder)


def pick(metrics: Mapping[str, Any], names: Iterable[str]) -> dict[str, float]:
    """The finite numeric ``metrics`` among ``names``, in that order."""
    return {n: metrics[n] for n in names if _is_figure(metrics.get(n)) and math.isfinite(metrics[n])}
