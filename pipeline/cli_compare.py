"""Console script ``compare-students``: compare the student runs over seeds. Thin: options -> config -> function.

``report`` is its former name, kept as a deprecated alias for one release.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from pipeline import compare
from pipeline.cli_utils import common_options, config_option, deprecated_alias, setup_logging, user_errors
from pipeline.compare import CompareConfig
from pipeline.config import load_config, read_params
from pipeline.outputs import check_output_dir

logger = logging.getLogger(__name__)


@click.command(context_settings={"max_content_width": 100})
@config_option(
    CompareConfig,
    "cache",
    "The feature cache the runs trained on (names the teacher; the runs must match it).",
    type=click.Path(dir_okay=False),
)
@config_option(
    CompareConfig,
    "teacher",
    "Optional: fit-teacher's metrics (<teacher>.json), for the teacher's centre-clip accuracy.",
    type=click.Path(dir_okay=False),
)
@config_option(
    CompareConfig,
    "ceiling",
    "Optional: a dataset's ceiling.json (make-synthetic writes one), for the share of the gap closed.",
    type=click.Path(dir_okay=False),
)
@config_option(
    CompareConfig, "hallucinet", "Folder of HalluciNet runs, one per seed.", type=click.Path(file_okay=False)
)
@config_option(CompareConfig, "baseline", "Folder of lambda-0 runs, one per seed.", type=click.Path(file_okay=False))
@config_option(CompareConfig, "out", "Folder for report.json and plots/.", type=click.Path(file_okay=False))
@click.option(
    "--seeds",
    default=None,
    callback=lambda _ctx, _param, value: None if value is None else tuple(int(v) for v in value.split(",")),
    help="Comma-separated seeds whose runs (seedN folders) to compare [default: 0,1,2].",
)
@common_options
def compare_students(params: Path | None, verbose: bool, **options) -> None:
    """Compare teacher, single-frame baseline and HalluciNet over seeds: report.json and PNG plots."""
    setup_logging(verbose)
    with user_errors(verbose):
        section = read_params(params, "compare_students")
        if not section and read_params(params, "report"):
            # A params.yaml written before the rename: its section still carries the old name.
            logger.warning("%s has no compare_students section; reading its former name, report", params)
            section = read_params(params, "report")
        cfg = load_config(CompareConfig, section, **options)
        check_output_dir(Path(cfg.out), kind="compare-students", marker_files=("report.json", "plots"))
        compare.compare_students(cfg)


#: The former name of ``compare-students`` (console script ``report``), for one release.
report = deprecated_alias(compare_students, "report")
