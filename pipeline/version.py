"""The code version: what ``--version`` prints and what a feature cache records as ``code_version``."""

from __future__ import annotations

from importlib import metadata

#: The distribution whose version is the code's (``[project] name`` in pyproject.toml).
DISTRIBUTION = "hallucinet"


def code_version() -> str:
    """``"hallucinet <version>"`` of the installed package, or ``"hallucinet (not installed)"``."""
    try:
        return f"{DISTRIBUTION} {metadata.version(DISTRIBUTION)}"
    except metadata.PackageNotFoundError:
        return f"{DISTRIBUTION} (not installed)"
