"""export-student's formats: torch.export (.pt2) and dynamo ONNX, each with a dynamic batch."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from student_train import export as exporting
from student_train.export import FORMATS, ExportMismatch, export_onnx, export_pt2, export_student, onnx_available
from student_train.models import build_student
from student_train.spec import StudentSpec


def tiny(num_outputs: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_student("tiny", num_outputs=num_outputs, teacher_dim=4).eval()


@pytest.mark.parametrize("num_outputs", [3, 0])  # 0: hallucination-only students export an empty first output
def test_pt2_reloads_and_takes_any_batch_size(tmp_path: Path, num_outputs: int) -> None:
    model = tiny(num_outputs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecated exporter left behind
        worst = export_pt2(model, torch.rand(2, 3, 16, 16), tmp_path / "s.pt2")
    assert worst < 1e-4 and sorted(p.name for p in tmp_path.iterdir()) == ["s.pt2"]  # no temporary left
    loaded = torch.export.load(tmp_path / "s.pt2").module()
    for batch in (1, 5):
        x = torch.rand(batch, 3, 16, 16)
        with torch.no_grad():
            for a, b in zip(loaded(x), model(x), strict=True):
                assert a.shape == b.shape == (batch, b.shape[1])
                torch.testing.assert_close(a, b)


@pytest.mark.skipif(not onnx_available(), reason="the onnx extra (onnx, onnxscript) is not installed")
def test_onnx_export_matches_the_model_with_a_dynamic_batch(tmp_path: Path) -> None:
    import onnx

    model = tiny()
    worst = export_onnx(model, torch.rand(2, 3, 16, 16), tmp_path / "s.onnx")
    assert worst < 1e-4 and (tmp_path / "s.onnx").stat().st_size > 1000
    graph = onnx.load(str(tmp_path / "s.onnx")).graph
    assert [i.name for i in graph.input] == ["images"] and [o.name for o in graph.output] == exporting.OUTPUT_NAMES
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a named, free batch dimension
    x = torch.rand(7, 3, 16, 16)
    got = exporting._run_onnx(tmp_path / "s.onnx", x.numpy())
    with torch.no_grad():
        for a, b in zip(got, model(x), strict=True):
            np.testing.assert_allclose(a, b.numpy(), atol=1e-5)


def test_a_mismatch_keeps_no_file(tmp_path: Path) -> None:
    with pytest.raises(ExportMismatch, match=r"torch.export export differs from the model by 0 \(tolerance -1"):
        export_pt2(tiny(), torch.rand(2, 3, 16, 16), tmp_path / "s.pt2", atol=-1.0)
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary folder


def test_nan_on_one_side_is_a_mismatch() -> None:
    nan = torch.tensor([[1.0, float("nan")]])
    assert exporting._check("x", (nan,), (nan.numpy(),), atol=1e-4) == 0.0  # NaN where the model has NaN
    with pytest.raises(ExportMismatch, match="by inf"):
        exporting._check("x", (torch.ones(1, 2),), (nan.numpy(),), atol=1e-4)


def test_export_student_writes_formats_and_metadata(tmp_path: Path) -> None:
    spec = StudentSpec(
        student="tiny",
        task="classification",
        loss="mse",
        num_outputs=3,
        teacher_dim=4,
        relu=True,
        classes=("a", "b", "c"),
        image_size=20,
        crop_size=16,
    )
    written = export_student(tiny(), spec, tmp_path / "out", formats=("pt2",))
    assert written == {"pt2": str(tmp_path / "out" / "student.pt2")}
    meta = json.loads((tmp_path / "out" / "student.json").read_text())
    assert meta["classes"] == ["a", "b", "c"] and meta["input"]["shape"] == ["batch", 3, 16, 16]
    assert FORMATS == ("pt2", "onnx")
    with pytest.raises(ValueError, match="valid names: pt2, onnx"):
        export_student(tiny(), spec, tmp_path / "out", formats=("torchscript",))
