"""The dataset registry. Each adapter module registers itself; importing this module imports them all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.datasets.base import DatasetError, DatasetIndex
from pipeline.registry import Registry

DATASETS: Registry = Registry("dataset")


def load_dataset(name: str, root: str | Path, split: str = "1", **options: Any) -> DatasetIndex:
    """Build the index of dataset ``name`` under ``root`` for split id ``split``.

    ``options`` are adapter-specific (documented on each adapter, set from ``dataset_options``
    in params.yaml).

    Raises:
        ValueError: unknown dataset name (listing the valid ones).
        DatasetError: missing root, split files or annotations, naming the path.
    """
    # Imported here so the adapters register themselves without import-time cycles.
    from pipeline.datasets import folder, hmdb51, kinetics, manifest, ucf101  # noqa: F401

    builder = DATASETS.get(name)
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} does not exist or is not a folder")
    return builder(root, str(split), **options)
