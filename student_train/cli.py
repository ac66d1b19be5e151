"""Console scripts of stage two: ``train-student``, ``evaluate-student``, ``predict``, ``export-student``."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from pipeline.cli_utils import common_options, setup_logging, user_errors
from pipeline.cli_utils import config_option as _opt
from pipeline.config import load_config, read_params
from pipeline.device import PRECISIONS
from student_train import export as exporting
from student_train import train as training
from student_train.evaluate import evaluate_checkpoint, load_student
from student_train.losses import HALLUCINATION_LOSSES, TASKS
from student_train.models import student_names
from student_train.predict import format_prediction, predict_video
from student_train.train import TrainConfig, TrainingInterrupted

logger = logging.getLogger(__name__)

CONTEXT = {"max_content_width": 110}


@click.command(context_settings=CONTEXT)
@_opt(TrainConfig, "cache", "Feature cache written by extract-teacher.", type=click.Path(dir_okay=False))
@_opt(TrainConfig, "out", "Run folder: checkpoint.pt, log.csv, metrics.json, plots/.", type=click.Path(file_okay=False))
@_opt(TrainConfig, "student", "Student registry name.", type=click.Choice(student_names()))
@_opt(
    TrainConfig,
    "student_weights",
    "Backbone init: a torchvision weights name (DEFAULT, IMAGENET1K_V1; needs a network once) or a checkpoint path.",
)
@_opt(
    TrainConfig,
    "task",
    "auto (the cache's), classification, regression, or none (hallucination only: pre-training).",
    type=click.Choice(["auto", *TASKS]),
)
@_opt(TrainConfig, "loss", "Hallucination loss.", type=click.Choice(HALLUCINATION_LOSSES))
@_opt(
    TrainConfig,
    "lambda_weight",
    "Weight of the hallucination loss; 0 trains the single-frame baseline.",
    "--lambda",
    type=float,
)
@_opt(TrainConfig, "epochs", "Training epochs (a larger value extends a run with --resume).", type=int)
@_opt(TrainConfig, "batch_size", "Frames per batch.", type=int)
@_opt(TrainConfig, "lr", "Adam learning rate (cosine decay to 0 over the run).", type=float)
@_opt(TrainConfig, "weight_decay", "Adam weight decay.", type=float)
@_opt(
    TrainConfig,
    "crop_size",
    "Random-crop size for training, centre crop for evaluation; 0: 7/8 of the frame.",
    type=int,
)
@_opt(TrainConfig, "eval_split", "Split evaluated after each epoch and at the end.", type=click.Choice(["test", "val"]))
@_opt(TrainConfig, "workers", "DataLoader worker processes (0: load in the main process).", type=int)
@_opt(
    TrainConfig,
    "in_memory",
    "Load the cache's arrays into memory: auto (when under --memory-limit-gb), yes, no.",
    type=click.Choice(["auto", "yes", "no"]),
)
@_opt(TrainConfig, "memory_limit_gb", "Largest cache --in-memory auto loads.", type=float)
@_opt(TrainConfig, "device", "auto (CUDA if available), cpu, cuda or cuda:N.")
@_opt(
    TrainConfig,
    "precision",
    "auto (bf16 on CUDA where supported; fp32 on CPU, which keeps runs bit-reproducible), fp32 or bf16.",
    type=click.Choice(PRECISIONS),
)
@_opt(TrainConfig, "channels_last", "channels_last memory format.", "--channels-last/--no-channels-last")
@_opt(TrainConfig, "seed", "Seed of model init, batch order and augmentation.", type=int)
@_opt(
    TrainConfig,
    "init",
    "Start from a train-student checkpoint (backbone + hallucination head), e.g. a --task none run.",
)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint.pt (bit-exact on CPU).")
@common_options
def train_student(params: Path | None, verbose: bool, resume: bool, **options) -> None:
    """Train a 2D-CNN student from a feature cache alone: task loss + lambda x hallucination loss.

    The student sees one stored frame and learns its task while hallucinating the teacher's
    features of the clip that starts at that frame. Ctrl-C saves a checkpoint; --resume continues.
    """
    setup_logging(verbose)
    with user_errors(verbose):
        cfg = load_config(TrainConfig, read_params(params, "train_student"), **options)
        try:
            training.train_student(cfg, resume=resume)
        except TrainingInterrupted as err:
            logger.warning("%s", err)
            sys.exit(130)


@click.command(context_settings=CONTEXT)
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--cache", required=True, type=click.Path(dir_okay=False), help="Feature cache to evaluate on.")
@click.option("--split", default="test", show_default=True, help="Split of the cache to evaluate.")
@click.option("--out", type=click.Path(file_okay=False), help="Folder for metrics.json and plots/ (optional).")
@click.option("--batch-size", default=64, show_default=True, type=int, help="Frames per batch.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging, and tracebacks on errors.")
def evaluate_student(checkpoint: str, cache: str, split: str, out: str | None, batch_size: int, device: str, verbose):
    """Evaluate a trained student (CHECKPOINT: a run's checkpoint.pt) on a cache's split.

    Prints clip- and video-level top-1/top-5 (or Spearman, Pearson, MAE for scores), the
    hallucination fidelity (cosine, R^2 against the cached teacher features) and the teacher's
    own accuracy from its cached logits, as JSON.
    """
    setup_logging(verbose)
    with user_errors(verbose):
        metrics = evaluate_checkpoint(checkpoint, cache, split=split, out=out, batch_size=batch_size, device=device)
        metrics.pop("confusion", None)
        click.echo(json.dumps(metrics, indent=2, sort_keys=True))


@click.command(context_settings=CONTEXT)
@click.argument("videos", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False), help="A train-student checkpoint.pt.")
@click.option("--frames", default=8, show_default=True, type=int, help="Frames per video (spread evenly); averaged.")
@click.option("--top-k", default=5, show_default=True, type=int, help="Classes to show.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per video (JSON lines) instead of text.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging, and tracebacks on errors.")
def predict(videos: tuple[str, ...], checkpoint: str, frames: int, top_k: int, as_json: bool, verbose: bool) -> None:
    """Predict the class (or score) of each VIDEO with a trained student: no teacher, no cache."""
    setup_logging(verbose)
    with user_errors(verbose):
        model, spec, _ = load_student(checkpoint)
        for path in videos:
            result = predict_video(model, spec, path, frames=frames, top_k=top_k)
            click.echo(json.dumps(result) if as_json else format_prediction(result))


@click.command(context_settings=CONTEXT)
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the exported files.")
@click.option(
    "--format",
    "formats",
    multiple=True,
    type=click.Choice(exporting.FORMATS),
    help="Formats to write (repeatable) [default: torchscript, and onnx when the onnx package is installed].",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging, and tracebacks on errors.")
def export_student(checkpoint: str, out: str, formats: tuple[str, ...], verbose: bool) -> None:
    """Export a trained student (CHECKPOINT) to TorchScript and ONNX, each checked against the model.

    The exported graph takes RGB frames (B, 3, crop, crop) in [0, 1] and returns (task outputs,
    hallucinated features); student.json beside it holds the classes, crop and score scale.
    """
    setup_logging(verbose)
    with user_errors(verbose):
        model, spec, _ = load_student(checkpoint)
        written = exporting.export_student(model, spec, out, formats or exporting.FORMATS)
        for fmt, path in written.items():
            click.echo(f"{fmt}: {path}")
