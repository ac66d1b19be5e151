"""Precision and memory format chosen by measurement (``fastest_config``), remembered per machine; device checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pipeline import autotune as autotune_module
from pipeline.autotune import fastest_config, screen
from pipeline.config import check_choice
from pipeline.device import check_device, resolve_device, resolve_precision
from pipeline.errors import UserError

CPU = torch.device("cpu")
EXAMPLE = torch.zeros(2, 3, 4)
MODEL = torch.nn.Identity()


class FakeMeasure:
    """Stands in for ``time_forward``: a rate per ``precision+format``, and an output that strays by ``error``."""

    def __init__(self, rates: dict[str, float], errors: dict[str, float] | None = None):
        self.rates, self.errors, self.calls = rates, errors or {}, []

    def __call__(self, model, example, device, precision, fmt):
        key = f"{precision}+{fmt}"
        self.calls.append(key)
        return self.rates[key], torch.full((4,), 1.0 + self.errors.get(key, 0.0))


@pytest.fixture(autouse=True)
def native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about choosing among candidates: bf16 is one, whatever this CPU supports."""
    monkeypatch.setattr(autotune_module, "bf16_is_native", lambda device: True)


RATES = {"fp32+contiguous": 10.0, "fp32+channels_last": 20.0, "bf16+contiguous": 30.0, "bf16+channels_last": 5.0}


def test_picks_the_fastest_candidate(run_config_store: Path) -> None:
    measure = FakeMeasure(RATES, {"bf16+contiguous": 0.01})
    choice = fastest_config("m", MODEL, EXAMPLE, CPU, measure=measure)
    assert (choice.precision, choice.memory_format) == ("bf16", "contiguous")
    # bf16+channels_last (5/s) is under half the best (30/s) on one item: screened out, never timed in full.
    assert dict(choice.timings) == {k: v for k, v in RATES.items() if k != "bf16+channels_last"}
    screening, full = measure.calls[:4], measure.calls[4:]
    assert sorted(screening) == sorted(RATES)
    assert full == ["fp32+contiguous", "fp32+channels_last", "bf16+contiguous"]


def test_screening_keeps_fp32_and_the_near_fastest() -> None:
    rates = {"fp32+contiguous": 1.0, "fp32+channels_last": 1.5, "bf16+contiguous": 40.0, "bf16+channels_last": 25.0}
    measure = FakeMeasure(rates)
    kept = screen(MODEL, EXAMPLE, CPU, [tuple(k.split("+")) for k in rates], measure)
    assert kept == [
        ("fp32", "contiguous"),
        ("fp32", "channels_last"),
        ("bf16", "contiguous"),
        ("bf16", "channels_last"),
    ]
    measure = FakeMeasure({**rates, "bf16+channels_last": 19.0})
    kept = screen(MODEL, EXAMPLE, CPU, [tuple(k.split("+")) for k in rates], measure)
    assert ("bf16", "channels_last") not in kept and ("fp32", "contiguous") in kept


def test_refuses_a_bf16_candidate_whose_output_strays() -> None:
    measure = FakeMeasure(RATES, {"bf16+contiguous": 0.2, "bf16+channels_last": 0.001})
    choice = fastest_config("m", MODEL, EXAMPLE, CPU, measure=measure)
    assert (choice.precision, choice.memory_format) == ("fp32", "channels_last")  # 30/s but 20% off: refused
    assert "bf16+contiguous" not in dict(choice.timings)
    tolerant = fastest_config(
        "m2", MODEL, EXAMPLE, CPU, measure=FakeMeasure(RATES, {"bf16+contiguous": 0.2}), tolerance=0.3
    )
    assert tolerant.precision == "bf16"


def test_the_choice_is_remembered_in_the_cache_dir(run_config_store: Path) -> None:
    first = fastest_config("m", MODEL, EXAMPLE, CPU, measure=FakeMeasure(RATES))
    stored = json.loads((run_config_store / "run-config.json").read_text())
    assert len(stored) == 1 and next(iter(stored.values()))["precision"] == "bf16"
    again = FakeMeasure({k: 100.0 - v for k, v in RATES.items()})  # would choose otherwise: must not be asked
    assert fastest_config("m", MODEL, EXAMPLE, CPU, measure=again) == first and again.calls == []
    other_shape = FakeMeasure({k: 100.0 - v for k, v in RATES.items()})
    assert fastest_config("m", MODEL, torch.zeros(4, 3, 4), CPU, measure=other_shape).precision == "bf16"
    assert other_shape.calls  # another input shape is another question
    assert fastest_config("m", MODEL, torch.zeros(4, 3, 4), CPU, measure=other_shape).memory_format == "channels_last"


def test_fixed_choices_are_not_measured(run_config_store: Path) -> None:
    measure = FakeMeasure(RATES)
    choice = fastest_config("m", MODEL, EXAMPLE, CPU, precision="fp32", fmt="contiguous", measure=measure)
    assert (choice.precision, choice.memory_format, choice.timings) == ("fp32", "contiguous", ())
    assert measure.calls == [] and not (run_config_store / "run-config.json").exists()
    half = fastest_config("m", MODEL, EXAMPLE, CPU, precision="fp32", measure=measure)  # only the format is measured
    assert half == fastest_config("m", MODEL, EXAMPLE, CPU, precision="fp32", measure=measure)
    assert (half.precision, half.memory_format) == ("fp32", "channels_last")
    assert measure.calls == ["fp32+contiguous", "fp32+channels_last"] * 2  # screened on one item, then timed


def test_emulated_bf16_is_not_a_candidate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(autotune_module, "bf16_is_native", lambda device: False)
    measure = FakeMeasure(RATES)
    choice = fastest_config("m", MODEL, EXAMPLE, CPU, measure=measure)
    assert choice.precision == "fp32" and not any(c.startswith("bf16") for c in measure.calls)
    forced = fastest_config("m", MODEL, EXAMPLE, CPU, precision="bf16", measure=FakeMeasure(RATES))
    assert forced.precision == "bf16"  # asked for by name: the user's call


def test_device_and_choice_checks() -> None:
    for good in ("auto", "cpu", "cuda", "cuda:1"):
        check_device(good)
    for bad in ("gpu", "cuda:x", "CPU"):
        with pytest.raises(UserError, match=f"invalid device '{bad}'; choose from auto, cpu, cuda or cuda:N"):
            check_device(bad)
    with pytest.raises(UserError, match="invalid precision 'fp16'; choose from auto, fp32, bf16"):
        check_choice("precision", "fp16", ("auto", "fp32", "bf16"))
    assert resolve_device("cpu") == CPU and resolve_precision("auto", CPU) == "fp32"
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA device is available"):
            resolve_device("cuda")
