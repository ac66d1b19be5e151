"""Evaluation metrics as pure numpy functions, so each is testable against a hand computation."""

from __future__ import annotations

import numpy as np


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Fraction of rows whose label is among the ``k`` highest of ``scores`` ``(N, C)``."""
    if len(labels) == 0:
        return float("nan")
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``(C, C)`` counts, row = true class, column = predicted class."""
    m = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(m, (labels, pred), 1)
    return m


def per_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    """Recall of each class from a confusion matrix; NaN for a class with no samples."""
    totals = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(confusion) / np.maximum(totals, 1), np.nan)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def video_mean(values: np.ndarray, video: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``values`` ``(N, ...)`` over the rows of each video id in ``video`` ``(N,)``.

    Returns the sorted unique video ids and the ``(V, ...)`` means, in that order.
    """
    ids, inverse = np.unique(video, return_inverse=True)
    sums = np.zeros((len(ids), *values.shape[1:]), np.float64)
    np.add.at(sums, inverse, values)
    counts = np.bincount(inverse, minlength=len(ids)).reshape(-1, *([1] * (values.ndim - 1)))
    return ids, sums / counts


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks starting at 1, ties given their average rank (as Spearman's rho needs)."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), np.float64)
    ranks[order] = np.arange(1, len(x) + 1)
    values, inverse = np.unique(x, return_inverse=True)
    sums = np.zeros(len(values))
    np.add.at(sums, inverse, ranks)
    return (sums / np.bincount(inverse))[inverse]


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    dx, dy = x - x.mean(), y - y.mean()
    denom = np.sqrt((dx**2).sum() * (dy**2).sum())
    return float((dx * dy).sum() / denom) if denom > 0 else float("nan")


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    return pearson(_ranks(np.asarray(x)), _ranks(np.asarray(y)))


def mean_absolute_error(pred: np.ndarray, target: np.ndarray) -> float:
    return float(np.abs(np.asarray(pred, np.float64) - target).mean())


def fidelity(hallucinated: np.ndarray, teacher: np.ndarray, reference: np.ndarray | None = None) -> dict[str, float]:
    """How well hallucinated features ``(N, D)`` match the teacher's ``(N, D)``.

    ``cosine``: mean over rows of the cosine similarity. ``r2``: ``1 - SS_res / SS_tot`` over all
    entries, with ``SS_tot`` taken around ``reference`` ``(D,)``, the *train-set* mean feature
    (default: the teacher features' own mean). 1 is perfect; 0 is no better than always
    predicting the reference; negative is worse than that.
    """
    h, t = np.asarray(hallucinated, np.float64), np.asarray(teacher, np.float64)
    ref = t.mean(axis=0) if reference is None else np.asarray(reference, np.float64)
    norms = np.linalg.norm(h, axis=1) * np.linalg.norm(t, axis=1)
    cos = (h * t).sum(axis=1) / np.maximum(norms, 1e-12)
    ss_res = ((h - t) ** 2).sum()
    ss_tot = ((t - ref) ** 2).sum()
    return {"cosine": float(cos.mean()), "r2": float(1 - ss_res / ss_tot) if ss_tot > 0 else float("nan")}
