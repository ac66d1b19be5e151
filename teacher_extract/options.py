"""Options ``fit-teacher`` and ``extract-teacher`` share (same names, same meaning), declared once."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli_utils import config_option as _opt
from pipeline.datasets import dataset_names
from teacher_extract.models import teacher_names


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
