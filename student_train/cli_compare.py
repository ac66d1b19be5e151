"""Console script ``compare-students``: score the runs once on the test split and compare them over seeds.

Thin: options -> config -> function.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from pipeline.cli_utils import common_options, config_options, echo_config, section_option, setup_logging, user_errors
from pipeline.config import load_config, read_params
from pipeline.outputs import check_output_dir
from student_train import compare
from student_train.compare import CompareConfig

logger = logging.getLogger(__name__)


@click.command(context_settings={"max_content_width": 100})
@config_options(CompareConfig)
@section_option("compare_students")
@common_options
def compare_students(params: Path | None, verbose: bool, print_config: bool, section: str, **options) -> None:
    """Score every run once on the test split and compare the arms over paired seeds: report, summary, plots."""
    setup_logging(verbose)
    with user_errors(verbose):
        cfg = load_config(CompareConfig, read_params(params, section), **options)
        if print_config:
            echo_config(cfg)
            return
        # The default metrics/ folder also holds check-benchmark's and the protocol's files.
        markers = ("report.json", "plots", "design.json", "selection.json", "knobs.json")
        check_output_dir(Path(cfg.out), kind="compare-students", marker_files=markers)
        compare.compare_students(cfg)
