"""``make-synthetic``: the embedded default dataset, as a console script."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli_utils import common_options, config_options, echo_config, setup_logging, user_errors
from pipeline.config import load_config, read_params
from pipeline.synthetic import SyntheticConfig, generate


@click.command(context_settings={"max_content_width": 100})
@config_options(SyntheticConfig)
@common_options
def make_synthetic(params: Path | None, verbose: bool, print_config: bool, **options) -> None:
    """Write a small synthetic action dataset: the UCF101 layout, or a scored manifest.

    Each class is a kind of motion (left/right, up/down, rotation sense, grow/shrink, orbit
    sense); a single frame only hints at it. Read it with `--dataset ucf101 --root OUT` (or, with
    --task regression, `--dataset manifest --root OUT`).
    """
    setup_logging(verbose)
    with user_errors(verbose):
        cfg = load_config(SyntheticConfig, read_params(params, "make_synthetic"), **options)
        if print_config:
            echo_config(cfg)
            return
        generate(cfg)
