"""Console script of stage two: ``train-student``. Thin: options -> config -> function."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from pipeline.cli_utils import common_options, echo_config, section_option, setup_logging, user_errors
from pipeline.cli_utils import config_option as _opt
from pipeline.config import load_config, read_params
from pipeline.device import PRECISIONS
from student_train import train as training
from student_train.losses import LOSSES, TASKS
from student_train.train import TrainConfig, TrainingInterrupted

logger = logging.getLogger(__name__)

CONTEXT = {"max_content_width": 110}


@click.command(context_settings=CONTEXT)
@_opt(TrainConfig, "cache", "Feature cache written by extract-teacher.", type=click.Path(dir_okay=False))
@_opt(
    TrainConfig,
    "out",
    "Run folder: checkpoint.pt, log.csv, metrics.json, per_class.json, plots/, dvclive/.",
    type=click.Path(file_okay=False),
)
@_opt(
    TrainConfig,
    "student",
    "Student by name: small or tiny (ours), or any torchvision image classifier (resnet18, resnet50, vgg11_bn, "
    "mobilenet_v3_small, efficientnet_b0, regnet_x_400mf...); an unknown name lists the valid ones.",
)
@_opt(
    TrainConfig,
    "student_weights",
    "Backbone init: a torchvision weights name (DEFAULT, IMAGENET1K_V1; needs a network once) or a checkpoint path.",
)
@_opt(
    TrainConfig,
    "task",
    "auto (the cache's), classification, regression, or none (hallucination only: pre-training).",
    type=click.Choice(["auto", *TASKS.names()]),
)
@_opt(TrainConfig, "loss", "Hallucination loss.", type=click.Choice(LOSSES.names()))
@_opt(
    TrainConfig,
    "head_relu",
    "End the hallucination head with a ReLU; unset: as the loss needs (mse_sigmoid, cosine: yes; mse: no).",
    "--head-relu/--no-head-relu",
)
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
@_opt(TrainConfig, "eval_every", "Evaluate every N epochs for the training curves (and after the last).", type=int)
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
@click.option(
    "--arm",
    default=None,
    help="Apply the overrides of this arm from the params section's 'arms' (e.g. baseline: lambda 0).",
)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint.pt (bit-exact on CPU).")
@section_option("train_student")
@common_options
def train_student(
    params: Path | None, verbose: bool, print_config: bool, section: str, arm: str | None, resume: bool, **options
) -> None:
    """Train a 2D-CNN student from a feature cache alone: task loss + lambda x hallucination loss.

    The student sees one stored frame and learns its task while hallucinating the teacher's
    features of the clip that starts at that frame. Ctrl-C saves a checkpoint; --resume continues.
    """
    setup_logging(verbose)
    with user_errors(verbose):
        values = training.apply_arm(read_params(params, section), arm)
        cfg = load_config(TrainConfig, values, **options)
        if print_config:
            echo_config(cfg)
            return
        try:
            training.train_student(cfg, resume=resume)
        except TrainingInterrupted as err:
            logger.warning("%s", err)
            sys.exit(err.exit_code)
