"""``make-synthetic``: the embedded default dataset, as a console script."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli_utils import common_options, config_option, echo_config, setup_logging, user_errors
from pipeline.config import load_config, read_params
from pipeline.synthetic import MOTIONS, SyntheticConfig, generate


def _opt(name: str, text: str, **kwargs):
    return config_option(SyntheticConfig, name, text, **kwargs)


@click.command(context_settings={"max_content_width": 100})
@_opt("out", "Dataset root to write (UCF-101/ and ucfTrainTestlist/ inside).", type=click.Path(path_type=Path))
@_opt("classes", f"Number of motion classes (2-{len(MOTIONS)}).", type=int)
@_opt("videos_per_class", "Videos per class, spread over the groups.", type=int)
@_opt("groups", "Groups (like UCF101's gXX: one background/palette each); test groups differ per split.", type=int)
@_opt("frames", "Frames per video (at least 16).", type=int)
@_opt("height", "Frame height in pixels (even).", type=int)
@_opt("width", "Frame width in pixels (even).", type=int)
@_opt("fps", "Frame rate written into the files.", type=float)
@_opt("cue_agreement", "Probability that a single frame's pose points along the true motion.", type=float)
@_opt(
    "speeds",
    "Comma-separated speeds; each video moves at one of them (its ghost's length shows it).",
    callback=lambda _ctx, _param, value: None if value is None else tuple(float(v) for v in value.split(",")),
)
@_opt("scene_bias", "Probability that a training video is shown in its class's own scene (a shortcut).", type=float)
@_opt(
    "val_groups",
    "Comma-separated groups whose training videos form the val split (the ucf101 option of that name).",
    callback=lambda _ctx, _param, value: None if value is None else tuple(int(v) for v in value.split(",")),
)
@_opt(
    "pool_videos_per_class",
    "Videos per class x speed of a pretraining pool written to OUT/pool (0: none).",
    type=int,
)
@_opt("pool_groups", "Groups of the pool (its own backgrounds, never in the students' splits).", type=int)
@_opt(
    "task",
    "classification (the UCF101 layout: class = motion) or regression (the manifest layout: "
    "score = how fast the motion goes, as an action-quality score).",
    type=click.Choice(["classification", "regression"]),
)
@_opt("seed", "Seed: the same seed writes the same videos.", type=int)
@_opt("workers", "Videos encoded in parallel.", type=int)
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
