"""DVCLive files of a training run: per-epoch figures as DVC plots, final figures as DVC metrics.

``fit-teacher`` and ``train-student`` write, under a run's ``dvclive/`` folder (DVCLive's own
layout, which DVC, its VS Code extension and Studio read):

* ``plots/metrics/<name>.tsv``: columns ``step`` (the epoch, from 1) and ``<name>``, one row per
  epoch that has the figure: the curves ``dvc plots diff`` overlays across experiments;
* ``metrics.json``: flat; while training, the last epoch's figures, and at the end the run's
  headline figures: what ``dvc exp show`` and ``dvc metrics diff`` list. DVCLive adds ``step``,
  the last epoch.

dvc.yaml declares both (the stage's ``metrics:``, and ``plots:`` with ``x: step``). The files are
written here, in the layout DVCLive documents (tab-separated, ``step`` first; ``metrics.json``
indented by 4), not through the ``dvclive`` package: ``dvclive.Live`` opens the DVC repository
around the working directory (``dvc init`` in a git repository without one) and may post to
DVC Studio, which a training command must not do, and turning that off took overriding two of
its private methods. Without it, training needs no DVC installed at all.

The files are rewritten whole from the run's history on every call, as ``log.csv`` is, so a
resumed run's files equal an uninterrupted run's, and identical runs write identical files (no
timestamps and no wall-clock figures). Writing them draws no random number and waits for nothing
on the device: it changes no trained number. The trainers call it on their main process only.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

#: Per-epoch columns that are not figures of the run: the step itself, and wall-clock time (it
#: would make identical runs' files differ, and DVC rerun nothing on it anyway).
NOT_PLOTTED = frozenset({"epoch", "seconds"})


def _is_figure(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(value: float) -> float | str:
    """A curve's value as DVCLive writes it: non-finite values as text (``nan``, ``inf``)."""
    return value if math.isfinite(value) else str(value)


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
    folder = Path(folder)
    curves: dict[str, list[tuple[int, float | str]]] = {}
    latest: dict[str, float | str] = {}
    for row in history:
        for name, value in row.items():
            if name not in NOT_PLOTTED and _is_figure(value):
                cell = _cell(float(value))
                curves.setdefault(name, []).append((int(row["epoch"]), cell))
                latest[name] = cell
    plots = folder / "plots" / "metrics"
    shutil.rmtree(plots, ignore_errors=True)
    plots.mkdir(parents=True)
    for name, points in curves.items():
        with open(plots / f"{name}.tsv", "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
            writer.writerow(["step", name])
            writer.writerows(points)
    figures: dict[str, Any] = latest
    if summary is not None:
        figures = {name: value for name, value in summary.items() if _is_figure(value)}
    if history:
        figures = {**figures, "step": int(history[-1]["epoch"])}
    with open(folder / "metrics.json", "w", encoding="utf-8") as fh:
        json.dump(figures, fh, indent=4)
        fh.write("\n")
    return folder


def pick(metrics: Mapping[str, Any], names: Iterable[str]) -> dict[str, float]:
    """The finite numeric ``metrics`` among ``names``, in that order."""
    return {n: metrics[n] for n in names if _is_figure(metrics.get(n)) and math.isfinite(metrics[n])}
