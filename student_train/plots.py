"""PNG plots: DVC embeds them offline, where its vega plots would need a CDN.

Figures are built with matplotlib's object API (``Figure``), not pyplot: no global backend
state, no import-time side effects, safe in worker processes and headless machines.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure


def training_curves(history: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Loss parts and the evaluation metric per epoch, from the training log rows."""
    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(10, 3.8))
    ax_loss, ax_eval = fig.subplots(1, 2)
    for key, label in (("loss", "total"), ("task_loss", "task"), ("hallucination_loss", "hallucination")):
        values = [row.get(key) for row in history]
        if any(v is not None for v in values):
            ax_loss.plot(epochs, values, marker=".", label=label)
    ax_loss.set(xlabel="epoch", ylabel="train loss", yscale="log")
    ax_loss.legend()
    for key in ("eval_top1", "eval_spearman", "eval_fidelity_cosine"):
        values = [row.get(key) for row in history]
        if any(v is not None for v in values):
            ax_eval.plot(epochs, values, marker=".", label=key.removeprefix("eval_"))
    ax_eval.set(xlabel="epoch", ylabel="evaluation split")
    ax_eval.legend()
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def confusion(matrix: np.ndarray, classes: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix (rows: true class) with the counts written in."""
    matrix = np.asarray(matrix)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.45 * len(classes) + 2)
    fig = Figure(figsize=(size, size))
    ax = fig.subplots()
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(classes))
    ax.set_xticks(ticks, classes, rotation=90)
    ax.set_yticks(ticks, classes)
    ax.set(xlabel="predicted", ylabel="true")
    if len(classes) <= 30:
        for i, j in zip(*np.nonzero(matrix), strict=True):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", color="white" if rates[i, j] > 0.5 else "black")
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save ``fig`` as a PNG with no timestamp in its metadata: identical results give identical files."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    return path
