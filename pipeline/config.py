"""Layered, typed configuration: dataclass defaults < a ``params.yaml`` section < command-line flags.

Each command has a frozen dataclass config. :func:`load_config` builds it from the optional
params file's section (named like the DVC stage, e.g. ``extract_teacher``) and then the flags
the user actually gave. Unknown keys are errors that list the valid ones, so a typo in
``params.yaml`` never silently falls back to a default.

A field that is also a command-line option is declared with :func:`option`: its default, its
type (the annotation) and its ``--help`` text stand side by side, and
:func:`pipeline.cli_utils.config_options` derives the flag ``--name-with-dashes`` from them, so
``--help``, ``params.yaml`` and the dataclass cannot disagree.
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from pipeline.errors import UserError

C = TypeVar("C")


#: Keys that change how fast (or where) a stage runs, never what it writes. DVC stages depend on
#: every other key of their params section (tests check ``dvc.yaml`` against this).
RESULT_NEUTRAL = frozenset({"device", "workers", "in_memory", "memory_limit_gb"})


def option(
    default: Any,
    help: str,
    *,
    aliases: tuple[str, ...] = (),
    choices: Sequence[str] | Callable[[], Sequence[str]] | None = None,
    path: str | None = None,
) -> Any:
    """A config field that is also the command-line flag of the same name (dashes for underscores).

    ``help``: the ``--help`` text (the default is appended). ``aliases``: more flags for it
    (``--lambda`` beside ``--lambda-weight``). ``choices``: the valid values, or a registry's
    ``names`` function (called when the command is built). ``path``: ``"file"``, ``"dir"`` or
    ``"any"`` for a path (click then refuses a folder where a file is meant, and the reverse).
    The flag's type follows the annotation: ``bool`` gives ``--name/--no-name``, a tuple a
    comma-separated list.
    """
    metadata = {"help": help, "aliases": aliases, "choices": choices, "path": path}
    return dataclasses.field(default=default, metadata=metadata)


class ConfigError(UserError):
    """A params file or option value is invalid; the message names the key and what is allowed."""


def check_choice(kind: str, name: str, valid: tuple[str, ...]) -> None:
    """Refuse ``name`` unless it is one of ``valid`` (``precision``, ``memory_format``...)."""
    if name not in valid:
        raise UserError(f"invalid {kind} {name!r}; choose from {', '.join(valid)}")


def read_params(path: str | Path | None, section: str) -> dict[str, Any]:
    """Return ``params.yaml[section]`` (empty when ``path`` is ``None`` or the section is absent)."""
    if path is None:
        return {}
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"params file {path} does not exist")
    if path.is_dir():
        raise ConfigError(f"params file {path} is a directory")
    try:  # not only regular files: a pipe (`--params <(make-params)`, /dev/fd/N) is read once, as it comes
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read params file {path}: {err}") from None
    try:
        params = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"params file {path} is not valid YAML: {err}") from err
    if not isinstance(params, dict):
        raise ConfigError(f"params file {path} must hold a mapping of sections, got {type(params).__name__}")
    values = params.get(section) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"section {section!r} of {path} must be a mapping, got {type(values).__name__}")
    return {key.replace("-", "_"): value for key, value in values.items()}


#: How a bad value is quoted in an error: a short prefix, never the whole of it (a YAML alias
#: bomb of 400 bytes expands to hundreds of megabytes of repr).
_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = 4
_SHORT.maxlevel = 2


def shown(value: Any) -> str:
    """``repr(value)``, cut short."""
    return _SHORT.repr(value)


def _finite(name: str, number: float) -> float:
    if not math.isfinite(number):
        raise ConfigError(f"{name} must be a finite number, got {number!r}")
    return number


def _coerce(name: str, value: Any, annotation: Any) -> Any:
    """Check ``value`` against a field's annotation, converting the few lossless cases (int->float, list->tuple)."""
    if value is None:
        if _allows_none(annotation):
            return None
        raise ConfigError(f"{name} must not be null")
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in typing.get_args(annotation):
            if arg is type(None):
                continue
            try:
                return _coerce(name, value, arg)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{name}: invalid value {shown(value)}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{name} must be a list, got {shown(value)}")
        args = typing.get_args(annotation)
        item = args[0] if args else Any
        return tuple(_coerce(name, v, item) for v in value)
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name} must be a mapping, got {shown(value)}")
        return dict(value)
    if annotation is Any:
        return value
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name} must be true or false, got {shown(value)}")
    if annotation is float and isinstance(value, int | float) and not isinstance(value, bool):
        return _finite(name, float(value))
    if annotation is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if annotation in (int, float) and isinstance(value, str):
        return _parse_number(name, value, annotation)
    if annotation is str and isinstance(value, str | int | float | Path) and not isinstance(value, bool):
        return str(value)
    if annotation in (int, float, str):
        raise ConfigError(f"{name} must be {annotation.__name__}, got {shown(value)}")
    return value


def _parse_number(name: str, text: str, annotation: type) -> int | float:
    """A number written as a string: YAML 1.1 (PyYAML) reads ``1e-3`` as the *string* '1e-3'.

    PyYAML's float pattern needs a dot and a signed exponent (``1.0e-3``), so the usual ``lr: 1e-3``
    in params.yaml arrives as text. An int field takes such a string only when it is exactly
    integral (``'1e3'`` -> 1000), never by rounding.
    """
    try:
        number = float(text.strip())
    except ValueError:
        raise ConfigError(f"{name} must be {annotation.__name__}, got {shown(text)}") from None
    if annotation is float:
        return _finite(name, number)
    try:
        return int(text.strip())  # '12' or '1_000', exact even beyond 2**53
    except ValueError:
        pass
    if not number.is_integer():
        raise ConfigError(f"{name} must be int, got {shown(text)} (not a whole number)")
    return int(number)


def _allows_none(annotation: Any) -> bool:
    return annotation is type(None) or type(None) in typing.get_args(annotation)


def load_config(cls: type[C], params: Mapping[str, Any] | None = None, **overrides: Any) -> C:
    """Build ``cls`` from defaults, then ``params`` (a params.yaml section), then non-``None`` overrides.

    Raises:
        ConfigError: an unknown key (listing the valid ones) or a value of the wrong type.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for source in (params or {}, {k: v for k, v in overrides.items() if v is not None}):
        for key, value in source.items():
            if key not in fields:
                raise ConfigError(f"unknown {cls.__name__} key {key!r}; valid keys: {', '.join(sorted(fields))}")
            values[key] = _coerce(key, value, hints[key])
    cfg = cls(**values)
    check = getattr(cfg, "validate", None)
    if check is not None:
        check()
    return cfg


def config_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config (paths as strings, tuples as lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {f.name: plain(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def config_yaml(cfg: Any) -> str:
    """The resolved config as YAML, keys sorted: what ``--print-config`` prints and a run folder keeps."""
    return yaml.safe_dump(config_dict(cfg), sort_keys=True)


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config as YAML next to a run's outputs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config_yaml(cfg))
    return path
