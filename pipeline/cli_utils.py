"""What every console script shares: logging setup, ``--params``/``--verbose``, and user-error handling.

Commands stay thin: parse options, build a config with :func:`pipeline.config.load_config`, call
one plain function. A mistake by the user (bad path, bad value, unreadable file) becomes a
one-line ``Error: ...`` and exit code 2; ``--verbose`` shows the traceback as well.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from pipeline.config import ConfigError
from pipeline.video import VideoError

logger = logging.getLogger(__name__)

#: Exceptions that mean "the user asked for something impossible", reported in one line.
USER_ERRORS = (ConfigError, ValueError, FileNotFoundError, FileExistsError, VideoError, OSError)


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
    """Add ``--params`` and ``--verbose`` to a command."""
    command = click.option(
        "--params",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        help="YAML file whose section named like this command's DVC stage sets defaults; flags win.",
    )(command)
    command = click.option("-v", "--verbose", is_flag=True, help="Debug logging, and tracebacks on errors.")(command)
    return command


@contextlib.contextmanager
def user_errors(verbose: bool) -> Iterator[None]:
    """Turn user mistakes into ``click.ClickException`` (one line, exit 2); let Ctrl-C through."""
    try:
        yield
    except click.ClickException:
        raise
    except USER_ERRORS as err:
        if verbose:
            logger.exception("failed")
        message = str(err) or type(err).__name__
        exc = click.ClickException(message)
        exc.exit_code = 2
        raise exc from err


def default_help(cfg_cls: type, name: str, text: str) -> str:
    """Help text that shows the dataclass default, since click's own default is ``None``
    (``None`` means "not given", so params.yaml can fill it)."""
    field = cfg_cls.__dataclass_fields__[name]
    default: Any = field.default
    return f"{text} [default: {default}]"


def config_option(cfg_cls: type, name: str, text: str, *decls: str, **kwargs: Any) -> Callable:
    """A click option for config field ``name`` (flag ``--name-with-dashes`` unless ``decls`` say otherwise).

    Its default is ``None`` ("not given"), so params.yaml and then the dataclass fill it.
    """
    flag = "--" + name.replace("_", "-")
    return click.option(*(decls or (flag,)), name, default=None, help=default_help(cfg_cls, name, text), **kwargs)
