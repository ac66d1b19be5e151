"""What every console script shares: logging setup, ``--params``/``--verbose``, and user-error handling.

Commands stay thin: parse options, build a config with :func:`pipeline.config.load_config`, call
one plain function. A mistake by the user (a :class:`~pipeline.errors.UserError`, or a path they
gave that is missing, unreadable or of the wrong kind) becomes a one-line ``Error: ...`` and exit
code 2; ``--verbose`` shows the traceback as well. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import sys
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from pipeline.config import config_yaml
from pipeline.errors import FULL, UserError
from pipeline.version import code_version

logger = logging.getLogger(__name__)

#: OS errors about a path (they carry ``filename``): the user named a file that is missing,
#: already there, unreadable, or a folder where a file was meant (or the reverse). Other OSErrors
#: (a full disk, a broken pipe) are not the user's mistake and keep their traceback.
PATH_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError)

#: Exceptions that mean "the user asked for something impossible", reported in one line.
USER_ERRORS = (UserError, *PATH_ERRORS)


def setup_logging(verbose: bool) -> None:
    """Configure the root logger once per process: INFO by default, DEBUG with ``--verbose``."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    for noisy in ("matplotlib", "PIL", "h5py", "fsspec", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def common_options(command: Callable) -> Callable:
    """Add ``--params``, ``--print-config``, ``--verbose`` and ``--version`` to a command."""
    command = print_config_option(command)
    command = click.option(
        "--params",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        help="YAML file whose section named like this command's DVC stage sets defaults; flags win.",
    )(command)
    command = click.option("-v", "--verbose", is_flag=True, help="Debug logging, and tracebacks on errors.")(command)
    return version_option(command)


def section_option(default: str) -> Callable:
    """``--section``: which params.yaml section sets the defaults (``default``: the command's own stage).

    For a second stage of the same command, such as extract-teacher over the pretraining pool
    (section ``extract_pool``) beside the students' dataset (section ``extract_teacher``).
    """
    return click.option(
        "--section",
        default=default,
        show_default=True,
        help="The --params section that sets the defaults (another stage of this command).",
    )


def print_config_option(command: Callable) -> Callable:
    """``--print-config``: show the resolved config and stop (the command checks ``print_config``
    right after building its config, with :func:`echo_config`)."""
    return click.option(
        "--print-config",
        is_flag=True,
        help="Print the resolved config as YAML (defaults, then --params, then flags) and exit without running.",
    )(command)


def echo_config(cfg: Any) -> None:
    """The config as the run would use it, in the YAML a run folder keeps (``config.yaml``)."""
    click.echo(config_yaml(cfg), nl=False)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(code_version())
        ctx.exit()


def version_option(command: Callable) -> Callable:
    """Add ``--version``: print :func:`pipeline.version.code_version` (what a cache records) and exit."""
    return click.option(
        "--version",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_print_version,
        help="Print the code version (the feature cache's code_version) and exit.",
    )(command)


@contextlib.contextmanager
def user_errors(verbose: bool) -> Iterator[None]:
    """Turn user mistakes (:data:`USER_ERRORS`) into ``click.ClickException`` (one line, exit 2).

    Only those: a plain ``ValueError`` from, say, a numpy shape mismatch is a bug, and a one-line
    message would hide where it came from, so it propagates with its traceback. Ctrl-C goes through.
    """
    try:
        yield
    except click.ClickException:
        raise
    except USER_ERRORS as err:
        if verbose:
            logger.exception("failed")
        exc = click.ClickException(_one_line(err))
        exc.exit_code = 2
        raise exc from err
    except OSError as err:
        if err.errno not in (*FULL, errno.EROFS):  # anything else is not the user's doing
            raise
        if verbose:
            logger.exception("failed")
        exc = click.ClickException(_one_line(err))
        exc.exit_code = 2
        raise exc from err


def _one_line(err: BaseException) -> str:
    """The message on one line; ``<path>: <reason>`` for OS errors (not ``[Errno 2] ...: '<path>'``)."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        target = f" -> {err.filename2}" if err.filename2 is not None else ""
        return f"{err.filename}{target}: {err.strerror}"
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return "; ".join(lines) or type(err).__name__


def config_options(cfg_cls: type) -> Callable:
    """Add one click option per field of ``cfg_cls`` declared with :func:`pipeline.config.option`, in field order.

    Each option's default is ``None`` ("not given"), so params.yaml and then the dataclass fill
    it; its help shows the dataclass default. Fields declared without ``option`` (a mapping such
    as ``dataset_options``) have no flag of their own.
    """
    hints = typing.get_type_hints(cfg_cls)
    options = [_option(f, hints[f.name]) for f in dataclasses.fields(cfg_cls) if "help" in f.metadata]

    def apply(command: Callable) -> Callable:
        for add in reversed(options):
            command = add(command)
        return command

    return apply


def _option(field: dataclasses.Field, annotation: Any) -> Callable:
    """The click option of one :func:`~pipeline.config.option` field."""
    meta = field.metadata
    kind = annotation  # X | None -> X
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kind = next(a for a in typing.get_args(annotation) if a is not type(None))
    flag = "--" + field.name.replace("_", "-")
    text = f"{meta['help']} [default: {_shown_default(field.default)}]"
    decls = (flag, *meta["aliases"])
    kwargs: dict[str, Any] = {}
    if kind is bool:
        decls = (f"{flag}/--no-{flag[2:]}",)
    elif typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        kwargs = {"metavar": f"{item.__name__.upper()},...", "callback": _comma_list(item)}
    elif meta["choices"] is not None:
        choices = meta["choices"]() if callable(meta["choices"]) else meta["choices"]
        kwargs["type"] = click.Choice(list(choices))
    elif meta["path"] is not None:
        kwargs["type"] = click.Path(dir_okay=meta["path"] != "file", file_okay=meta["path"] != "dir")
    elif kind in (int, float):
        kwargs["type"] = kind
    return click.option(*decls, field.name, default=None, help=text, **kwargs)


def _shown_default(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value) or "none"
    return str(value)


def _comma_list(item: type) -> Callable:
    """A click callback reading ``1,2,3`` as a tuple of ``item`` (``None`` when the flag is not given)."""

    def parse(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple | None:
        if value is None:
            return None
        try:
            return tuple(item(v) for v in value.split(",") if v.strip())
        except ValueError:
            raise click.BadParameter(f"expected comma-separated {item.__name__} values, got {value!r}") from None

    return parse
