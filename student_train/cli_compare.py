"""Console script ``compare-students``: score the runs once on the test split and compare them over seeds.

Thin: options -> config -> function.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from pipeline.cli_utils import common_options, config_option, echo_config, section_option, setup_logging, user_errors
from pipeline.config import load_config, read_params
from pipeline.outputs import check_output_dir
from student_train import compare
from student_train.compare import CompareConfig

logger = logging.getLogger(__name__)

_FILE = click.Path(dir_okay=False)
_DIR = click.Path(file_okay=False)


@click.command(context_settings={"max_content_width": 100})
@config_option(
    CompareConfig,
    "cache",
    "The feature cache the runs trained on (names the teacher; the runs must match it).",
    type=_FILE,
)
@config_option(
    CompareConfig,
    "split",
    "The split every run is scored on, here and only here (the runs must not have read it).",
    type=click.Choice(["test", "val"]),
)
@config_option(CompareConfig, "baseline", "Folder of lambda-0 runs, one per seed (seedN/).", type=_DIR)
@config_option(CompareConfig, "hallucinet", "Folder of HalluciNet runs, one per seed.", type=_DIR)
@config_option(
    CompareConfig,
    "pretrained",
    "Optional: folder of runs fine-tuned (lambda 0) from a hallucination-only pre-training, one per seed.",
    type=_DIR,
)
@config_option(
    CompareConfig, "teacher", "Optional: fit-teacher's metrics (<teacher>.json), its own test accuracy.", type=_FILE
)
@config_option(
    CompareConfig,
    "ceiling",
    "Optional: a dataset's ceiling.json (make-synthetic writes one), for the share of the gap closed.",
    type=_FILE,
)
@config_option(
    CompareConfig, "design", "Optional: check-benchmark's design checks (JSON), copied into the report.", type=_FILE
)
@config_option(
    CompareConfig, "selection", "Optional: the val grid's selection (JSON), copied into the report.", type=_FILE
)
@config_option(CompareConfig, "out", "Folder for report.json, summary.json and plots/.", type=_DIR)
@config_option(CompareConfig, "device", "auto (CUDA if available), cpu, cuda or cuda:N: where the runs are scored.")
@click.option(
    "--seeds",
    default=None,
    callback=lambda _ctx, _param, value: None if value is None else tuple(int(v) for v in value.split(",")),
    help="Comma-separated seeds whose runs (seedN folders) to compare [default: 0,1,2].",
)
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
