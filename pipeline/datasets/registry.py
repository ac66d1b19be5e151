"""The dataset registry. Each adapter module of this package registers itself when imported.

Adapters are found, not listed: every module of ``pipeline.datasets`` whose name does not start
with ``_`` (other than ``base`` and this one) is an adapter, so adding ``mtl_aqa.py`` is all it
takes to add a dataset, and no list of names elsewhere can drift out of date.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from pathlib import Path
from typing import Any

from pipeline.datasets._common import read_mirror_pairs
from pipeline.datasets.base import DatasetError, DatasetIndex
from pipeline.registry import Registry

DATASETS: Registry = Registry("dataset")

#: Modules of the package that are not adapters.
_NOT_ADAPTERS = frozenset({"base", "registry"})


def _import_adapters() -> None:
    """Import every adapter module of ``pipeline.datasets`` (each registers itself; re-imports are free).

    Done on demand rather than at package import, so the adapters (which import this module)
    register without an import cycle.
    """
    package = importlib.import_module(__package__)
    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("_") and module.name not in _NOT_ADAPTERS:
            importlib.import_module(f"{__package__}.{module.name}")


def dataset_names() -> list[str]:
    """Sorted registry names of every dataset adapter (for ``click.Choice`` and error messages)."""
    _import_adapters()
    return DATASETS.names()


def load_dataset(name: str, root: str | Path, split: str = "1", **options: Any) -> DatasetIndex:
    """Build the index of dataset ``name`` under ``root`` for split id ``split``.

    ``options`` are adapter-specific (documented on each adapter, set from ``dataset_options``
    in params.yaml), plus one every adapter accepts, handled here:

    * ``mirror_pairs``: a file of ``ClassA ClassB`` lines (relative to ``root`` or absolute)
      saying which classes swap under a horizontal mirror (see
      :func:`pipeline.datasets._common.read_mirror_pairs`); it sets :attr:`DatasetIndex.mirror`
      and overrides an adapter's default.

    Raises:
        UserError: unknown dataset name (listing the valid ones).
        DatasetError: missing root, split files or annotations, naming the path.
    """
    _import_adapters()
    builder = DATASETS.get(name)
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} does not exist or is not a folder")
    mirror_pairs = options.pop("mirror_pairs", None)
    index = builder(root, str(split), **options)
    if mirror_pairs:
        path = Path(mirror_pairs)
        path = path if path.is_absolute() else root / path
        if not path.is_file():
            raise DatasetError(f"mirror_pairs file {path} does not exist")
        if index.task != "classification":
            raise DatasetError(f"mirror_pairs {path}: dataset {name!r} is a regression dataset, it has no classes")
        index = dataclasses.replace(index, mirror=read_mirror_pairs(path, index.classes))
    return index
