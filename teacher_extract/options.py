"""Options ``fit-teacher`` and ``extract-teacher`` share (same names, same meaning), declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

from pipeline.cli_utils import config_option as _opt
from pipeline.datasets import dataset_names
from teacher_extract.models import teacher_names


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


def shared_options(cfg_cls: type):
    """Options fit-teacher and extract-teacher share (same names, same meaning)."""
    options = [
        _opt(cfg_cls, "dataset", "Dataset adapter.", type=click.Choice(dataset_names())),
        _opt(
            cfg_cls,
            "root",
            "Dataset root (for ucf101: the folder holding UCF-101/ and ucfTrainTestlist/).",
            type=click.Path(file_okay=False, path_type=Path),
        ),
        _opt(cfg_cls, "split", "The dataset's split id (ucf101/hmdb51: 1, 2 or 3)."),
        click.option(
            "--dataset-option",
            "dataset_option",
            multiple=True,
            metavar="KEY=VALUE",
            callback=_dataset_options,
            help="An option of the dataset adapter (README, 'Dataset adapters'), e.g. "
            "annotations=k400/train.csv or val_groups=[8,9]; repeatable; merged over the params "
            "section's dataset_options.",
        ),
        _opt(cfg_cls, "teacher", "Teacher registry name.", type=click.Choice(teacher_names())),
        _opt(
            cfg_cls,
            "teacher_weights",
            "Torchvision weights name (DEFAULT, KINETICS400_V1...), a checkpoint "
            "path (e.g. from fit-teacher), or 'random'.",
        ),
        _opt(cfg_cls, "clip_len", "Frames per teacher clip.", type=int),
        _opt(cfg_cls, "frame_step", "Step between a clip's frames.", type=int),
        _opt(cfg_cls, "batch_size", "Clips per teacher batch.", type=int),
        _opt(cfg_cls, "workers", "Decoder processes (default: one per CPU core; 0: decode in this process).", type=int),
        _opt(cfg_cls, "device", "auto (CUDA if available), cpu, cuda or cuda:N."),
        _opt(cfg_cls, "seed", "Seed (random teacher init, sampling).", type=int),
    ]

    def apply(command):
        for option in reversed(options):
            command = option(command)
        return command

    return apply
