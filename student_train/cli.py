"""Console script of stage two: ``train-student``. Thin: options -> config -> function."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from pipeline.cli_utils import common_options, config_options, echo_config, section_option, setup_logging, user_errors
from pipeline.config import load_config, read_params
from student_train import train as training
from student_train.train import TrainConfig, TrainingInterrupted

logger = logging.getLogger(__name__)

CONTEXT = {"max_content_width": 110}


@click.command(context_settings=CONTEXT)
@config_options(TrainConfig)
@click.option(
    "--arm",
    default=None,
    help="Apply the overrides of this arm from the params section's 'arms' (e.g. baseline: lambda 0).",
)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint.pt (bit-exact on CPU).")
@section_option("train_student")
@common_options
def train_student(
    params: Path | None, verbose: bool, print_config: bool, section: str, arm: str | None, resume: bool, **options
) -> None:
    """Train a 2D-CNN student from a feature cache alone: task loss + lambda x hallucination loss.

    The student sees one stored frame and learns its task while hallucinating the teacher's
    features of the clip that starts at that frame. Ctrl-C saves a checkpoint; --resume continues.
    """
    setup_logging(verbose)
    with user_errors(verbose):
        values = training.apply_arm(read_params(params, section), arm)
        cfg = load_config(TrainConfig, values, **options)
        if print_config:
            echo_config(cfg)
            return
        try:
            training.train_student(cfg, resume=resume)
        except TrainingInterrupted as err:
            logger.warning("%s", err)
            sys.exit(err.exit_code)
