"""What every console script shares: ``--version`` prints the code version a feature cache records,
``--print-config`` the resolved config of a run, without running it."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.version import code_version

REPO = Path(__file__).resolve().parents[1]


def console_scripts() -> dict[str, str]:
    """``[project.scripts]`` of pyproject.toml: command -> ``module:function``."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the installed entry points say the same
        from importlib.metadata import distribution

        return {ep.name: ep.value for ep in distribution("hallucinet").entry_points if ep.group == "console_scripts"}
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]


SCRIPTS = console_scripts()


def test_every_command_is_a_verb_noun_of_this_project() -> None:
    """No generic names (the 0.1.0 aliases ``predict`` and ``report`` are gone)."""
    assert {"predict-student", "compare-students", "check-benchmark"} <= set(SCRIPTS)
    assert all("-" in name for name in SCRIPTS) and not {"predict", "report"} & set(SCRIPTS)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_every_command_answers_version_with_the_caches_code_version(name: str) -> None:
    module, _, attr = SCRIPTS[name].partition(":")
    result = CliRunner().invoke(getattr(importlib.import_module(module), attr), ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{code_version()}\n" and result.stderr == ""


def test_the_installed_script_answers_version() -> None:
    """Through the installed entry point: the package's own version, not "(not installed)"."""
    script = Path(sys.executable).parent / "predict-student"
    assert script.is_file(), "the console scripts are not installed: run make test (pip install -e .)"
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, check=True)
    assert result.stdout == f"{code_version()}\n"
    assert code_version().startswith("hallucinet ") and "not installed" not in code_version()


#: The commands a params.yaml section configures, with that section.
CONFIGURED = {
    "make-synthetic": [],
    "check-benchmark": [],
    "fit-teacher": [],
    "extract-teacher": [],
    "train-student": ["--arm", "baseline", "--seed", "3"],
    "compare-students": [],
}


@pytest.mark.parametrize("name", sorted(CONFIGURED))
def test_print_config_shows_the_resolved_run_and_runs_nothing(name: str, tmp_path: Path, monkeypatch) -> None:
    import yaml

    module, _, attr = SCRIPTS[name].partition(":")
    command = getattr(importlib.import_module(module), attr)
    monkeypatch.chdir(tmp_path)  # nothing may be written here
    args = ["--params", str(REPO / "params.yaml"), "--print-config", *CONFIGURED[name]]
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0, result.output
    config = yaml.safe_load(result.output)
    section = yaml.safe_load((REPO / "params.yaml").read_text())[name.replace("-", "_")]
    shared = [k for k in section if k in config and k not in ("arms", "dataset_options")]
    assert shared and all(config[k] == section[k] for k in shared), name
    if name == "train-student":  # the arm's overrides and the flags are applied
        assert config["lambda_weight"] == 0 and config["seed"] == 3
    assert list(tmp_path.iterdir()) == []


#: params.yaml sections of a stage that reuses another stage's command.
SECTION_COMMANDS = {"extract_pool": "extract-teacher", "pretrain_student": "train-student"}
#: params keys whose flag says them one at a time: ``--dataset-option K=V``, ``--arm NAME``.
ONE_AT_A_TIME = {"dataset_options": "dataset_option", "arms": "arm"}


def _command(name: str):
    module, _, attr = SCRIPTS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


@pytest.mark.parametrize(
    "section",
    [
        "make_synthetic",
        "fit_teacher",
        "extract_teacher",
        "extract_pool",
        "check_benchmark",
        "train_student",
        "pretrain_student",
        "compare_students",
    ],
)
def test_every_params_key_is_a_flag_of_the_same_name(section: str) -> None:
    """``key: value`` in params.yaml and ``--key value`` on the command line set the same thing."""
    import yaml

    keys = yaml.safe_load((REPO / "params.yaml").read_text())[section]
    command = _command(SECTION_COMMANDS.get(section, section.replace("_", "-")))
    flags = {opt for param in command.params for opt in param.opts}
    names = {param.name for param in command.params}
    for key in keys:
        if key in ONE_AT_A_TIME:
            assert ONE_AT_A_TIME[key] in names, key
        else:
            assert "--" + key.replace("_", "-") in flags, f"{section}.{key} has no flag --{key.replace('_', '-')}"


def test_a_flag_is_derived_from_its_field(tmp_path: Path) -> None:
    """Default, type and help come from the dataclass field: --help shows the field's default, a
    tuple field reads a comma list, a bool field gets --x/--no-x, a bad value is refused by click."""
    import yaml

    from pipeline.synthetic import SyntheticConfig

    command = _command("make-synthetic")
    help_text = CliRunner().invoke(command, ["--help"]).output
    assert f"[default: {SyntheticConfig().videos_per_class}]" in " ".join(help_text.split())
    result = CliRunner().invoke(command, ["--print-config", "--speeds", "0.5,1.5", "--val-groups", "8,9"])
    assert result.exit_code == 0, result.output
    config = yaml.safe_load(result.output)
    assert config["speeds"] == [0.5, 1.5] and config["val_groups"] == [8, 9]
    bad = CliRunner().invoke(command, ["--print-config", "--speeds", "fast"])
    assert bad.exit_code == 2 and "comma-separated float" in bad.output
    relu = CliRunner().invoke(_command("train-student"), ["--print-config", "--no-head-relu", "--lambda", "3"])
    assert relu.exit_code == 0, relu.output
    config = yaml.safe_load(relu.output)
    assert config["head_relu"] is False and config["lambda_weight"] == 3.0
