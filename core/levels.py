"""Severity levels: L0 (mildest) .. L3 (strongest), the same four for every degradation."""

from __future__ import annotations

from ctdegradbench.core.errors import OptionError

LEVELS: tuple[int, ...] = (0, 1, 2, 3)


def check_level(level) -> int:
    """Return ``level`` if it is a severity level (an int in :data:`LEVELS`), else raise OptionError."""
    if isinstance(level, bool) or not isinstance(level, int) or level not in LEVELS:
        raise OptionError(f"severity level must be an integer in {LEVELS}, got {level!r}")
    return level
