"""Console script ``fit-teacher``. Thin: options -> config -> function."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli_utils import common_options, echo_config, setup_logging, user_errors
from pipeline.cli_utils import config_option as _opt
from pipeline.config import load_config, read_params
from teacher_extract.fit import FitConfig, fit_teacher_model
from teacher_extract.options import shared_options, with_dataset_options


@click.command(context_settings={"max_content_width": 110})
@shared_options(FitConfig)
@_opt(FitConfig, "epochs", "Training epochs.", type=int)
@_opt(FitConfig, "clips_per_video", "Random clips drawn from each train video per epoch.", type=int)
@_opt(FitConfig, "lr", "AdamW learning rate (cosine schedule).", type=float)
@_opt(
    FitConfig,
    "out",
    "Checkpoint to write (extract-teacher --teacher-weights loads it).",
    type=click.Path(dir_okay=False, path_type=Path),
)
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
