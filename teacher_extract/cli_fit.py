"""Console script ``fit-teacher``. Thin: options -> config -> function."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli_utils import common_options, config_options, echo_config, setup_logging, user_errors
from pipeline.config import load_config, read_params
from teacher_extract.fit import FitConfig, fit_teacher_model
from teacher_extract.options import dataset_option, with_dataset_options


@click.command(context_settings={"max_content_width": 110})
@config_options(FitConfig)
@dataset_option
@common_options
def fit_teacher(params: Path | None, verbose: bool, print_config: bool, dataset_option: dict, **options) -> None:
    """Train (or fine-tune) a registry teacher on a dataset's train split.

    Reports clip accuracy on the test split and saves a checkpoint for extract-teacher. This
    is how the embedded default gets a meaningful teacher offline, and how a Kinetics teacher
    is fine-tuned on your dataset (--teacher-weights KINETICS400_V1).
    """
    setup_logging(verbose)
    with user_errors(verbose):
        values = with_dataset_options(read_params(params, "fit_teacher"), dataset_option)
        cfg = load_config(FitConfig, values, **options)
        if print_config:
            echo_config(cfg)
            return
        fit_teacher_model(cfg)
