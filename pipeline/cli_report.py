"""Console script ``report``: compare the student runs over seeds. Thin: options -> config -> function."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli_utils import common_options, config_option, setup_logging, user_errors
from pipeline.config import load_config, read_params
from pipeline.outputs import check_output_dir
from pipeline.report import ReportConfig, build_report


@click.command(context_settings={"max_content_width": 100})
@config_option(
    ReportConfig,
    "cache",
    "The feature cache the runs trained on (names the teacher; the runs must match it).",
    type=click.Path(dir_okay=False),
)
@config_option(
    ReportConfig,
    "teacher",
    "Optional: fit-teacher's metrics (<teacher>.json), for the teacher's centre-clip accuracy.",
    type=click.Path(dir_okay=False),
)
@config_option(
    ReportConfig,
    "ceiling",
    "Optional: a dataset's ceiling.json (make-synthetic writes one), for the share of the gap closed.",
    type=click.Path(dir_okay=False),
)
@config_option(ReportConfig, "hallucinet", "Folder of HalluciNet runs, one per seed.", type=click.Path(file_okay=False))
@config_option(ReportConfig, "baseline", "Folder of lambda-0 runs, one per seed.", type=click.Path(file_okay=False))
@config_option(ReportConfig, "out", "Folder for report.json and plots/.", type=click.Path(file_okay=False))
@click.option(
    "--seeds",
    default=None,
    callback=lambda _ctx, _param, value: None if value is None else tuple(int(v) for v in value.split(",")),
    help="Comma-separated seeds whose runs (seedN folders) to compare [default: 0,1,2].",
)
@common_options
def report(params: Path | None, verbose: bool, **options) -> None:
    """Compare teacher, single-frame baseline and HalluciNet over seeds: report.json and PNG plots."""
    setup_logging(verbose)
    with user_errors(verbose):
        cfg = load_config(ReportConfig, read_params(params, "report"), **options)
        check_output_dir(Path(cfg.out), kind="report", marker_files=("report.json", "plots"))
        build_report(cfg)
