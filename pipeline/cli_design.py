"""Console script ``check-benchmark``: the synthetic benchmark's design checks. Thin: options -> config -> function.

A module of its own, so make-synthetic's stage does not depend on the checks' code (and back).
"""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli_utils import common_options, config_options, echo_config, setup_logging, user_errors
from pipeline.config import load_config, read_params
from pipeline.design import DesignConfig, check_design


@click.command(context_settings={"max_content_width": 100})
@config_options(DesignConfig)
@common_options
def check_benchmark(params: Path | None, verbose: bool, print_config: bool, **options) -> None:
    """Check the synthetic benchmark's design from the teacher's cache alone, before any student runs.

    How much of the teacher-feature variance a frame could learn beyond the label, the teacher's
    accuracy on the students' classes, the achievable single-frame ceilings, the scene shortcut.
    """
    setup_logging(verbose)
    with user_errors(verbose):
        cfg = load_config(DesignConfig, read_params(params, "check_benchmark"), **options)
        if print_config:
            echo_config(cfg)
            return
        check_design(cfg)
