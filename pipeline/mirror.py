"""The label of a mirrored view: a class with a mirror-pair partner becomes that partner.

Flipping a video left-right turns "swipe left" into "swipe right": the dataset adapters name
those pairs (``DatasetIndex.mirror_map``) and the cache records them (``CacheInfo.mirror_map``);
fit-teacher and both student loaders relabel their mirrored views with this one function.
"""

from __future__ import annotations

import numpy as np


def mirrored_labels(labels: np.ndarray, mirrored: np.ndarray | bool, mirror_map: np.ndarray) -> np.ndarray:
    """``labels`` ``(n,)`` with each mirrored one (``mirrored``: ``(n,)`` bool, or one bool for all)
    replaced by its partner in ``mirror_map`` (``(C,)``, class -> partner; empty: no pairs).
    Negative labels (no class: regression, unlabelled) stay as they are."""
    labels = np.asarray(labels)
    if not len(mirror_map):
        return labels
    flip = np.asarray(mirrored, bool) & (labels >= 0)
    if not flip.any():
        return labels
    return np.where(flip, np.asarray(mirror_map)[np.maximum(labels, 0)], labels)
