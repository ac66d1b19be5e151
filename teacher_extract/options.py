"""What ``fit-teacher`` and ``extract-teacher`` share: the config fields of the same name and
meaning (declared once, here; a config picks its own default where they differ) and
``--dataset-option``."""

from __future__ import annotations

from typing import Any

import click
import yaml

from pipeline.config import option
from pipeline.datasets import dataset_names
from teacher_extract.models import teacher_names

#: name -> (help, option keywords) of the fields both teacher configs have.
_SHARED: dict[str, tuple[str, dict[str, Any]]] = {
    "dataset": ("Dataset adapter.", {"choices": dataset_names}),
    "root": ("Dataset root (for ucf101: the folder holding UCF-101/ and ucfTrainTestlist/).", {"path": "dir"}),
    "split": ("The dataset's split id (ucf101/hmdb51: 1, 2 or 3).", {}),
    "teacher": ("Teacher registry name.", {"choices": teacher_names}),
    "teacher_weights": (
        "Torchvision weights name (DEFAULT, KINETICS400_V1...), a checkpoint path (e.g. from fit-teacher), "
        "or 'random'.",
        {},
    ),
    "clip_len": ("Frames per teacher clip.", {}),
    "frame_step": ("Step between a clip's frames.", {}),
    "batch_size": ("Clips per teacher batch.", {}),
    "workers": ("Decoder processes (none: one per CPU core; 0: decode in this process).", {}),
    "device": ("auto (CUDA if available), cpu, cuda or cuda:N.", {}),
    "seed": ("Seed (random teacher init, sampling).", {}),
}


def shared(name: str, default: Any) -> Any:
    """The field ``name`` of a teacher config, with the help text both commands share."""
    text, keywords = _SHARED[name]
    return option(default, text, **keywords)


def _dataset_options(_ctx, _param, values: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs, each value read as YAML (``5``, ``[5, 6]``, ``a.csv``)."""
    parsed = {}
    for item in values:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item[:60]!r}")
        try:
            parsed[key.strip()] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            raise click.BadParameter(f"{key.strip()}: {text[:60]!r} is not a YAML value") from None
    return parsed


def with_dataset_options(section: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """The params section with ``--dataset-option`` pairs merged over its ``dataset_options``."""
    if not extra:
        return section
    return {**section, "dataset_options": {**(section.get("dataset_options") or {}), **extra}}


#: ``--dataset-option KEY=VALUE``: the params key ``dataset_options``, one pair at a time.
dataset_option = click.option(
    "--dataset-option",
    "dataset_option",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_dataset_options,
    help="An option of the dataset adapter (README, 'Dataset adapters'), e.g. annotations=k400/train.csv or "
    "val_groups=[8,9]; repeatable; merged over the params section's dataset_options (params key "
    "dataset_options).",
)
