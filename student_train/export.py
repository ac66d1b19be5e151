"""``export-student``: a ``torch.export`` program (``.pt2``, always) and ONNX (when ``onnx`` and
``onnxscript`` are installed), each reloaded and checked against the PyTorch model before it is kept.

Both use PyTorch's current exporters: ``torch.export`` (``torch.export.save``/``load``) and the
dynamo-based ``torch.onnx.export(..., dynamo=True)``, which replace TorchScript and the
TorchScript-based ONNX exporter (both deprecated upstream).

The exported graph takes float frames ``(B, 3, crop, crop)`` in [0, 1] (normalisation is
inside) and returns ``(task outputs (B, C), hallucinated features (B, D))``. The batch size ``B``
is dynamic in both formats: the check runs the reloaded file on another batch size than the
one it was exported with.

Loading them elsewhere::

    program = torch.export.load("student.pt2")
    outputs, hallucinated = program.module()(frames)

    session = onnxruntime.InferenceSession("student.onnx")
    outputs, hallucinated = session.run(None, {"images": frames.numpy()})
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from student_train.models import HalluciNet
from student_train.spec import StudentSpec

logger = logging.getLogger(__name__)

FORMATS = ("pt2", "onnx")
#: File written for each format (an ONNX model over 2 GiB adds ``student.onnx.data`` beside it).
FILE_NAMES = {"pt2": "student.pt2", "onnx": "student.onnx"}
INPUT_NAMES = ["images"]
OUTPUT_NAMES = ["outputs", "hallucinated"]
#: ONNX's protobuf limit is 2 GiB: larger weights go to an external data file.
_ONNX_INLINE_LIMIT = 1 << 30


class ExportMismatch(ValueError):
    """An exported model's outputs differ from the PyTorch model's beyond tolerance."""


def _check(name: str, expected: tuple[torch.Tensor, ...], got: tuple[np.ndarray, ...], atol: float) -> float:
    worst = 0.0
    for e, g in zip(expected, got, strict=True):
        if tuple(e.shape) != tuple(np.shape(g)):
            raise ExportMismatch(
                f"{name} export gives shape {tuple(np.shape(g))} where the model gives {tuple(e.shape)}"
            )
        e, g = e.numpy(), np.asarray(g)
        if (np.isnan(e) != np.isnan(g)).any():  # NaN on one side only: max() would skip it
            worst = math.inf
        elif e.size and not np.isnan(e).all():
            worst = max(worst, float(np.nanmax(np.abs(e - g))))
    if worst > atol:
        raise ExportMismatch(f"{name} export differs from the model by {worst:.3g} (tolerance {atol})")
    return worst


def _dynamic_batch() -> dict[str, dict[int, torch.export.Dim]]:
    """Dimension 0 of ``images`` is a free batch size, for ``torch.export`` and the ONNX exporter alike."""
    return {"images": {0: torch.export.Dim("batch")}}


def _probe(example: torch.Tensor) -> torch.Tensor:
    """A check input with another batch size than ``example``, so a batch size baked in shows up."""
    generator = torch.Generator().manual_seed(1)
    return torch.rand(example.shape[0] + 1, *example.shape[1:], generator=generator)


def _write_checked(path: Path, write: Callable[[Path], float]) -> float:
    """Run ``write(tmp)`` on a path in a hidden sibling folder, then move what it wrote next to ``path``.

    A failed export or check leaves no half-written or unchecked file under the final name; files
    that refer to each other by name (``student.onnx`` and its ``student.onnx.data``) keep their names.
    """
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        worst = write(tmp_dir / path.name)
        for file in sorted(tmp_dir.iterdir()):
            os.replace(file, path.parent / file.name)
        return worst
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def export_pt2(model: HalluciNet, example: torch.Tensor, path: Path, atol: float = 1e-4) -> float:
    """``torch.export`` ``model`` (dynamic batch) to ``path``, reload it and compare. Returns the largest difference."""

    def write(tmp: Path) -> float:
        program = torch.export.export(model, (example,), dynamic_shapes=_dynamic_batch())
        torch.export.save(program, tmp)
        loaded = torch.export.load(tmp).module()
        probe = _probe(example)
        with torch.no_grad():
            expected = model(probe)
            got = tuple(t.numpy() for t in loaded(probe))
        return _check("torch.export", expected, got, atol)

    return _write_checked(Path(path), write)


def onnx_available() -> bool:
    """Whether ONNX export can run: ``onnx`` for the file format, ``onnxscript`` for the dynamo exporter."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxscript"))


def _run_onnx(path: Path, images: np.ndarray) -> tuple[np.ndarray, ...]:
    """Outputs of an ONNX file: onnxruntime when installed, else onnx's reference evaluator.

    The reference evaluator is pure Python (slow but exact) and needs nothing beyond ``onnx``.
    """
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    else:
        from onnx.reference import ReferenceEvaluator

        session = ReferenceEvaluator(str(path))
    return tuple(session.run(None, {INPUT_NAMES[0]: images}))


@contextlib.contextmanager
def _quiet_exporter_logs(*names: str) -> Iterator[None]:
    """Hide the ONNX exporter's per-pass INFO lines unless debug logging (``-v``) is on."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        if not lg.isEnabledFor(logging.DEBUG):
            lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def export_onnx(model: HalluciNet, example: torch.Tensor, path: Path, atol: float = 1e-4) -> float:
    """Export to ONNX with the dynamo exporter (dynamic batch), check the file, run it and compare.

    Returns the largest difference to the model.
    """
    import onnx

    size = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))

    def write(tmp: Path) -> float:
        with _quiet_exporter_logs("onnxscript", "onnx_ir"):
            torch.onnx.export(
                model,
                (example,),
                str(tmp),
                dynamo=True,
                input_names=INPUT_NAMES,
                output_names=OUTPUT_NAMES,
                dynamic_shapes=_dynamic_batch(),
                external_data=size > _ONNX_INLINE_LIMIT,
                verbose=False,
            )
        onnx.checker.check_model(str(tmp))
        probe = _probe(example)
        with torch.no_grad():
            expected = model(probe)
        return _check("ONNX", expected, _run_onnx(tmp, probe.numpy()), atol)

    return _write_checked(Path(path), write)


_EXPORTERS = {"pt2": export_pt2, "onnx": export_onnx}


def export_student(
    model: HalluciNet, spec: StudentSpec, out_dir: str | Path, formats: tuple[str, ...] = FORMATS
) -> dict[str, str]:
    """Write the asked formats plus ``student.json`` (classes, crop size, score scale) to ``out_dir``.

    Returns ``{format: path}``. ONNX without ``onnx``/``onnxscript`` is skipped with a warning
    naming the extra to install.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.eval().float()
    example = torch.rand(2, 3, spec.crop_size, spec.crop_size, generator=torch.Generator().manual_seed(0))
    written: dict[str, str] = {}
    for fmt in formats:
        if fmt not in FORMATS:
            raise ValueError(f"unknown export format {fmt!r}; valid names: {', '.join(FORMATS)}")
        if fmt == "onnx" and not onnx_available():
            logger.warning("skipping ONNX: it needs the onnx and onnxscript packages (pip install 'hallucinet[onnx]')")
            continue
        path = out_dir / FILE_NAMES[fmt]
        worst = _EXPORTERS[fmt](model, example, path)
        logger.info("wrote %s (max difference to the model: %.2g)", path, worst)
        written[fmt] = str(path)
    meta = {k: v for k, v in asdict(spec).items() if k not in ("feature_mean", "feature_std")}
    meta["input"] = {"shape": ["batch", 3, spec.crop_size, spec.crop_size], "range": [0, 1], "layout": "RGB"}
    (out_dir / "student.json").write_text(json.dumps(meta, indent=2) + "\n")
    return written
