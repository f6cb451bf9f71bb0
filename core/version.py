"""The installed version of CT-DegradBench (one place: the package metadata, from ``pyproject.toml``)."""

from __future__ import annotations

import importlib.metadata

DISTRIBUTION = "ct-degradbench"


def version() -> str:
    """The installed distribution's version, or ``"unknown"`` when the sources run uninstalled."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
