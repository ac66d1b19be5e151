"""params.yaml values: numbers YAML reads as strings (``1e-3``) still fill numeric options."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from pipeline.config import ConfigError, load_config, read_params


@dataclass(frozen=True)
class _Cfg:
    lr: float = 1e-4
    epochs: int = 1
    max_steps: int | None = None
    weight_decay: float | None = None
    betas: tuple[float, ...] = (0.9, 0.999)
    name: str = "run"


def test_exponent_numbers_in_params_yaml(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(
        "train_student:\n"
        "  lr: 1e-3\n"
        "  epochs: 1e1\n"
        "  max_steps: 2E3\n"
        "  weight_decay: 5e-4\n"
        "  betas: [1e-1, 0.5]\n"
        "  name: 1e-3\n"
    )
    section = read_params(params, "train_student")
    assert section["lr"] == "1e-3"  # what PyYAML (YAML 1.1) gives: the reason for the conversion
    cfg = load_config(_Cfg, section)
    assert cfg.lr == 1e-3 and isinstance(cfg.lr, float)
    assert cfg.epochs == 10 and isinstance(cfg.epochs, int)
    assert cfg.max_steps == 2000 and isinstance(cfg.max_steps, int)
    assert cfg.weight_decay == 5e-4
    assert cfg.betas == (0.1, 0.5)
    assert cfg.name == "1e-3"  # a string option keeps the text


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("epochs", "1.5e0", "epochs must be int, got '1.5e0' (not a whole number)"),
        ("epochs", "ten", "epochs must be int, got 'ten'"),
        ("lr", "fast", "lr must be float, got 'fast'"),
        ("max_steps", "1e-3", "max_steps must be int"),
    ],
)
def test_non_numbers_are_still_refused(key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(_Cfg, {key: value})


def test_plain_integers_stay_exact() -> None:
    assert load_config(_Cfg, {"epochs": "12345678901234567891"}).epochs == 12345678901234567891
    assert load_config(_Cfg, yaml.safe_load("epochs: 3")).epochs == 3


def test_params_from_a_pipe_are_read(tmp_path: Path) -> None:
    """``--params <(generate-params)`` hands the command /dev/fd/N, a pipe, not a regular file."""
    r, w = os.pipe()
    os.write(w, b"train_student:\n  epochs: 7\n")
    os.close(w)
    try:
        assert read_params(f"/dev/fd/{r}", "train_student") == {"epochs": 7}
    finally:
        os.close(r)
    with pytest.raises(ConfigError, match="is a directory"):
        read_params(tmp_path, "train_student")
