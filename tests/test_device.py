"""Precision and memory format chosen by measurement (``fastest_config``), remembered per machine; device checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pipeline.device import check_choice, check_device, fastest_config, resolve_device, resolve_precision
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


RATES = {"fp32+contiguous": 10.0, "fp32+channels_last": 20.0, "bf16+contiguous": 30.0, "bf16+channels_last": 5.0}


def test_picks_the_fastest_candidate(run_config_store: Path) -> None:
    measure = FakeMeasure(RATES, {"bf16+contiguous": 0.01})
    choice = fastest_config("m", MODEL, EXAMPLE, CPU, measure=measure)
    assert (choice.precision, choice.memory_format) == ("bf16", "contiguous")
    assert dict(choice.timings) == RATES
    assert sorted(measure.calls) == sorted(RATES) and measure.calls[:2] == ["fp32+contiguous", "fp32+channels_last"]


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
    assert measure.calls == ["fp32+contiguous", "fp32+channels_last"]


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
