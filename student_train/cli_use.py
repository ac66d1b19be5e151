"""Console scripts that use a trained student: ``evaluate-student``, ``predict-student``, ``export-student``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from pipeline.cli_utils import setup_logging, user_errors, version_option
from pipeline.outputs import check_output_dir
from pipeline.video import VideoError
from student_train import export as exporting
from student_train.evaluate import evaluate_checkpoint
from student_train.predict import format_prediction, predict_video
from student_train.spec import load_student

logger = logging.getLogger(__name__)

CONTEXT = {"max_content_width": 110}


@click.command(context_settings=CONTEXT)
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--cache", required=True, type=click.Path(dir_okay=False), help="Feature cache to evaluate on.")
@click.option("--split", default="test", show_default=True, help="Split of the cache to evaluate.")
@click.option(
    "--out", type=click.Path(file_okay=False), help="Folder for metrics.json, per_class.json and plots/ (optional)."
)
@click.option("--batch-size", default=64, show_default=True, type=int, help="Frames per batch.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--other-teacher",
    is_flag=True,
    help="Evaluate on a cache made by another teacher than the student learnt from (warns instead of refusing).",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging, and tracebacks on errors.")
@version_option
def evaluate_student(
    checkpoint: str,
    cache: str,
    split: str,
    out: str | None,
    batch_size: int,
    device: str,
    other_teacher: bool,
    verbose: bool,
) -> None:
    """Evaluate a trained student (CHECKPOINT: a run's checkpoint.pt) on a cache's split.

    Prints clip- and video-level top-1/top-5 (or Spearman, Pearson, MAE for scores), the
    hallucination fidelity (cosine, R^2 against the cached teacher features) and the teacher's
    own accuracy from its cached logits, as JSON.
    """
    setup_logging(verbose)
    with user_errors(verbose):
        if out:
            markers = ("metrics.json", "per_class.json", "plots", "checkpoint.pt", "log.csv")
            check_output_dir(Path(out), kind="evaluate-student", marker_files=markers)
        metrics = evaluate_checkpoint(
            checkpoint, cache, split=split, out=out, batch_size=batch_size, device=device, other_teacher=other_teacher
        )
        metrics.pop("confusion", None)
        click.echo(json.dumps(metrics, indent=2, sort_keys=True))


@click.command(context_settings=CONTEXT)
@click.argument("videos", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False), help="A train-student checkpoint.pt.")
@click.option("--frames", default=8, show_default=True, type=int, help="Frames per video (spread evenly); averaged.")
@click.option("--top-k", default=5, show_default=True, type=int, help="Classes to show.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per video (JSON lines) instead of text.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging, and tracebacks on errors.")
@version_option
def predict_student(
    videos: tuple[str, ...], checkpoint: str, frames: int, top_k: int, as_json: bool, verbose: bool
) -> None:
    """Predict the class (or score) of each VIDEO with a trained student: no teacher, no cache.

    Every readable video is answered; unreadable ones are listed at the end, and then the exit
    status is 1.
    """
    setup_logging(verbose)
    with user_errors(verbose):
        model, spec, _ = load_student(checkpoint)
        failed: list[VideoError] = []
        for path in videos:
            try:
                result = predict_video(model, spec, path, frames=frames, top_k=top_k)
            except VideoError as err:
                logger.error("cannot read %s", err)
                failed.append(err)
                continue
            click.echo(json.dumps(result) if as_json else format_prediction(result))
    if failed:
        listed = "; ".join(str(err) for err in failed[:5]) + ("; ..." if len(failed) > 5 else "")
        exc = click.ClickException(f"{len(failed)} of {len(videos)} videos could not be read: {listed}")
        exc.exit_code = 1
        raise exc


@click.command(context_settings=CONTEXT)
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the exported files.")
@click.option(
    "--format",
    "formats",
    multiple=True,
    type=click.Choice(exporting.FORMATS),
    help="Formats to write (repeatable) [default: pt2, and onnx when the onnx extra is installed].",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging, and tracebacks on errors.")
@version_option
def export_student(checkpoint: str, out: str, formats: tuple[str, ...], verbose: bool) -> None:
    """Export a trained student (CHECKPOINT) to torch.export (.pt2) and ONNX, each checked against the model.

    The exported graph takes RGB frames (B, 3, crop, crop) in [0, 1] and returns (task outputs,
    hallucinated features); student.json beside it holds the classes, crop and score scale.
    """
    setup_logging(verbose)
    with user_errors(verbose):
        markers = ("student.json", *exporting.FILE_NAMES.values())
        check_output_dir(Path(out), kind="export-student", marker_files=markers)
        model, spec, _ = load_student(checkpoint)
        written = exporting.export_student(model, spec, out, formats or exporting.FORMATS)
        for fmt, path in written.items():
            click.echo(f"{fmt}: {path}")
