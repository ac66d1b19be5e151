"""Console scripts of stage one: ``extract-teacher`` and ``merge-cache``. Thin: options -> config -> function."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from pipeline.cli_utils import (
    common_options,
    config_options,
    echo_config,
    section_option,
    setup_logging,
    user_errors,
    version_option,
)
from pipeline.config import load_config, read_params
from pipeline.outputs import OutputLock, check_output_file
from teacher_extract.extract import ExtractConfig, ExtractionFailed, check_failures, is_cache_file
from teacher_extract.launch import extract
from teacher_extract.options import dataset_option, with_dataset_options
from teacher_extract.shard import find_shards, merge_shards

logger = logging.getLogger(__name__)


@click.command(context_settings={"max_content_width": 110})
@config_options(ExtractConfig)
@dataset_option
@section_option("extract_teacher")
@common_options
def extract_teacher(
    params: Path | None, verbose: bool, print_config: bool, section: str, dataset_option: dict, **options
) -> None:
    """Run a 3D-CNN teacher once over a dataset and cache its features (HDF5).

    For every anchor frame t the teacher sees the clip t, t+s, ..., t+(clip-len - 1)*s; the cache
    stores its features (and logits), frame t as the student will see it, labels and
    provenance. Reruns are incremental: only new or changed videos are extracted, and an
    interrupted run resumes where it stopped.

    Several GPUs or machines: torchrun --nproc-per-node N $(which extract-teacher) ...
    """
    setup_logging(verbose)
    with user_errors(verbose):
        values = with_dataset_options(read_params(params, section), dataset_option)
        cfg = load_config(ExtractConfig, values, **options)
        if print_config:
            echo_config(cfg)
            return
        try:
            extract(cfg)
        except ExtractionFailed as err:
            logger.error("%s", err)
            sys.exit(1)


@click.command(context_settings={"max_content_width": 110})
@click.argument("shards", nargs=-1, type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The merged cache. Without SHARDS, its shard files <stem>.shardII-of-NN.h5 beside it are merged.",
)
@click.option(
    "--max-failed-fraction",
    default=ExtractConfig.max_failed_fraction,
    show_default=True,
    type=float,
    help="Exit non-zero when more than this fraction of all the shards' videos failed (the cache is written).",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging, and tracebacks on errors.")
@version_option
def merge_cache(shards: tuple[Path, ...], out: Path, max_failed_fraction: float, verbose: bool) -> None:
    """Merge the shard caches of `extract-teacher --shard i/N` jobs (SHARDS, in any order) into one cache.

    The shards are copied (not linked) into a single self-contained file in the dataset's order;
    train statistics are recomputed over all of them, and the failure threshold applies to the
    whole run. The shard files are kept: they are each shard's incremental state for the next run.
    """
    setup_logging(verbose)
    with user_errors(verbose):
        parts = list(shards) or find_shards(out)
        check_output_file(out, kind="feature cache", accepts=is_cache_file, inputs=parts)
        with OutputLock(out, "merge-cache"):
            videos, failed = merge_shards(parts, out)
        try:
            check_failures(failed, videos, max_failed_fraction, out)
        except ExtractionFailed as err:
            logger.error("%s", err)
            sys.exit(1)
