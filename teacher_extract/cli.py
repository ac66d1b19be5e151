"""Console scripts of stage one: ``extract-teacher`` and ``fit-teacher``. Thin: options -> config -> function."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from pipeline.cli_utils import common_options, setup_logging, user_errors
from pipeline.cli_utils import config_option as _opt
from pipeline.config import load_config, read_params
from pipeline.device import PRECISIONS
from teacher_extract.extract import ExtractConfig, ExtractionFailed, extract
from teacher_extract.fit import FitConfig, fit_teacher_model
from teacher_extract.models import teacher_names
from teacher_extract.shard import find_shards, merge_shards

logger = logging.getLogger(__name__)

DATASET_NAMES = ("folder", "hmdb51", "kinetics", "manifest", "ucf101")


def _shared_options(cfg_cls: type):
    """Options fit-teacher and extract-teacher share (same names, same meaning)."""
    options = [
        _opt(cfg_cls, "dataset", "Dataset adapter.", type=click.Choice(DATASET_NAMES)),
        _opt(
            cfg_cls,
            "root",
            "Dataset root (for ucf101: the folder holding UCF-101/ and ucfTrainTestlist/).",
            type=click.Path(file_okay=False, path_type=Path),
        ),
        _opt(cfg_cls, "split", "The dataset's split id (ucf101/hmdb51: 1, 2 or 3)."),
        _opt(cfg_cls, "teacher", "Teacher registry name.", type=click.Choice(teacher_names())),
        _opt(
            cfg_cls,
            "teacher_weights",
            "Torchvision weights name (DEFAULT, KINETICS400_V1...), a checkpoint "
            "path (e.g. from fit-teacher), or 'random'.",
        ),
        _opt(cfg_cls, "clip_len", "Frames per teacher clip.", type=int),
        _opt(cfg_cls, "frame_step", "Step between a clip's frames.", type=int),
        _opt(cfg_cls, "batch_size", "Clips per teacher batch.", type=int),
        _opt(cfg_cls, "workers", "Decoder threads.", type=int),
        _opt(cfg_cls, "device", "auto (CUDA if available), cpu, cuda or cuda:N."),
        _opt(cfg_cls, "seed", "Seed (random teacher init, sampling).", type=int),
    ]

    def apply(command):
        for option in reversed(options):
            command = option(command)
        return command

    return apply


@click.command(context_settings={"max_content_width": 110})
@_shared_options(ExtractConfig)
@_opt(ExtractConfig, "anchors", "Anchor frames per video: center, uniform:K or stride:S.")
@_opt(ExtractConfig, "image_size", "Side of the stored student frame (short side resized, centre-cropped).", type=int)
@_opt(
    ExtractConfig,
    "precision",
    "auto (bf16 where the device runs it natively), fp32 or bf16.",
    type=click.Choice(PRECISIONS),
)
@_opt(
    ExtractConfig,
    "channels_last",
    "channels_last_3d memory format for the teacher.",
    "--channels-last/--no-channels-last",
)
@_opt(ExtractConfig, "max_failed_fraction", "Exit non-zero when more than this fraction of videos fail.", type=float)
@_opt(
    ExtractConfig,
    "shard",
    "Extract only shard i of N (i/N, e.g. 0/4) into <out stem>.shardII-of-NN.h5, for independent jobs "
    "such as a Slurm array; merge with merge-cache. Under torchrun, ranks shard and merge by themselves.",
)
@_opt(ExtractConfig, "out", "Cache file to write or update.", type=click.Path(dir_okay=False, path_type=Path))
@common_options
def extract_teacher(params: Path | None, verbose: bool, **options) -> None:
    """Run a 3D-CNN teacher once over a dataset and cache its features (HDF5).

    For every anchor frame t the teacher sees the clip t, t+s, ..., t+(clip-len - 1)*s; the cache
    stores its features (and logits), frame t as the student will see it, labels and
    provenance. Reruns are incremental: only new or changed videos are extracted, and an
    interrupted run resumes where it stopped.

    Several GPUs or machines: torchrun --nproc-per-node N $(which extract-teacher) ...
    """
    setup_logging(verbose)
    with user_errors(verbose):
        cfg = load_config(ExtractConfig, read_params(params, "extract_teacher"), **options)
        try:
            extract(cfg)
        except ExtractionFailed as err:
            logger.error("%s", err)
            sys.exit(1)


@click.command(context_settings={"max_content_width": 110})
@_shared_options(FitConfig)
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
def fit_teacher(params: Path | None, verbose: bool, **options) -> None:
    """Train (or fine-tune) a registry teacher on a dataset's train split.

    Reports clip accuracy on the test split and saves a checkpoint for extract-teacher. This
    is how the embedded default gets a meaningful teacher offline, and how a Kinetics teacher
    is fine-tuned on your dataset (--teacher-weights KINETICS400_V1).
    """
    setup_logging(verbose)
    with user_errors(verbose):
        cfg = load_config(FitConfig, read_params(params, "fit_teacher"), **options)
        fit_teacher_model(cfg)


@click.command(context_settings={"max_content_width": 110})
@click.argument("shards", nargs=-1, type=click.Path(dir_okay=False, exists=True))
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False),
    help="The merged cache. Without SHARDS, its shard files <stem>.shardII-of-NN.h5 beside it are merged.",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging, and tracebacks on errors.")
def merge_cache(shards: tuple[str, ...], out: str, verbose: bool) -> None:
    """Merge the shard caches of `extract-teacher --shard i/N` jobs (SHARDS in shard order) into one cache.

    The shards are copied (not linked) into a single self-contained file in the dataset's order;
    train statistics are recomputed over all of them. The shard files are kept: they are each
    shard's incremental state for the next run.
    """
    setup_logging(verbose)
    with user_errors(verbose):
        merge_shards(list(shards) or find_shards(out), out)
