"""The one exception type for mistakes in what the user asked for.

Commands report a :class:`UserError` in one line (see :func:`pipeline.cli_utils.user_errors`);
every other exception is a bug and keeps its traceback, so the two never get confused.
"""

from __future__ import annotations


class UserError(ValueError):
    """A mistake in what the user asked for: a bad option, path, file or dataset on disk.

    The message names the offending value and what would be accepted; the CLI reports it in one
    line (exit code 2). Subclassing ``ValueError`` keeps callers that catch ``ValueError`` working.
    """
