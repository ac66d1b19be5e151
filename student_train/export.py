"""``export-student``: TorchScript (always) and ONNX (when ``onnx`` is installed), each checked
against the PyTorch model on the same input before it is kept.

The exported graph takes float frames ``(B, 3, crop, crop)`` in [0, 1] (normalisation is
inside) and returns ``(task outputs (B, C), hallucinated features (B, D))``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from student_train.evaluate import StudentSpec
from student_train.models import HalluciNet

logger = logging.getLogger(__name__)

FORMATS = ("torchscript", "onnx")


class ExportMismatch(ValueError):
    """An exported model's outputs differ from the PyTorch model's beyond tolerance."""


def _check(name: str, expected: tuple[torch.Tensor, ...], got: tuple[np.ndarray, ...], atol: float) -> float:
    worst = 0.0
    for e, g in zip(expected, got, strict=True):
        if e.numel():
            worst = max(worst, float(np.abs(e.numpy() - np.asarray(g)).max()))
    if worst > atol:
        raise ExportMismatch(f"{name} export differs from the model by {worst:.3g} (tolerance {atol})")
    return worst


def export_torchscript(model: HalluciNet, example: torch.Tensor, path: Path, atol: float = 1e-4) -> float:
    """Trace ``model`` to ``path``, reload it and compare outputs. Returns the largest difference."""
    traced = torch.jit.trace(model, example, check_trace=False)
    tmp = path.with_name(path.name + ".tmp")
    traced.save(str(tmp))
    loaded = torch.jit.load(str(tmp))
    with torch.inference_mode():
        expected = model(example)
        got = tuple(t.numpy() for t in loaded(example))
    worst = _check("TorchScript", expected, got, atol)
    os.replace(tmp, path)
    return worst


def onnx_available() -> bool:
    return importlib.util.find_spec("onnx") is not None


def export_onnx(model: HalluciNet, example: torch.Tensor, path: Path, atol: float = 1e-4) -> float:
    """Export to ONNX (dynamic batch), check it, and run it with onnx's reference evaluator to compare.

    The reference evaluator is pure Python (slow but exact): it needs no onnxruntime.
    """
    import onnx
    from onnx.reference import ReferenceEvaluator

    tmp = path.with_name(path.name + ".tmp")
    torch.onnx.export(
        model,
        (example,),
        str(tmp),
        input_names=["images"],
        output_names=["outputs", "hallucinated"],
        dynamic_axes={"images": {0: "batch"}, "outputs": {0: "batch"}, "hallucinated": {0: "batch"}},
        dynamo=False,
    )
    onnx.checker.check_model(str(tmp))
    session = ReferenceEvaluator(str(tmp))
    with torch.inference_mode():
        expected = model(example)
    got = tuple(session.run(None, {"images": example.numpy()}))
    worst = _check("ONNX", expected, got, atol)
    os.replace(tmp, path)
    return worst


def export_student(
    model: HalluciNet, spec: StudentSpec, out_dir: str | Path, formats: tuple[str, ...] = FORMATS
) -> dict[str, str]:
    """Write the asked formats plus ``student.json`` (classes, crop size, score scale) to ``out_dir``.

    Returns ``{format: path}``. ONNX without the ``onnx`` package is skipped with a warning
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
        if fmt == "torchscript":
            path = out_dir / "student.torchscript.pt"
            worst = export_torchscript(model, example, path)
        elif not onnx_available():
            logger.warning("skipping ONNX: the onnx package is not installed (pip install 'hallucinet[onnx]')")
            continue
        else:
            path = out_dir / "student.onnx"
            worst = export_onnx(model, example, path)
        logger.info("wrote %s (max difference to the model: %.2g)", path, worst)
        written[fmt] = str(path)
    meta = {k: v for k, v in asdict(spec).items() if k not in ("feature_mean", "feature_std")}
    meta["input"] = {"shape": ["batch", 3, spec.crop_size, spec.crop_size], "range": [0, 1], "layout": "RGB"}
    (out_dir / "student.json").write_text(json.dumps(meta, indent=2) + "\n")
    return written
