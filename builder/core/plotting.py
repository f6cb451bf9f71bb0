"""Writing figures: matplotlib's object-oriented API only (no global backend or pyplot state,
so importing the package never changes a notebook user's matplotlib setup)."""

from __future__ import annotations

from pathlib import Path

from ctdegradbench.builder.core.errors import OutputError


def save_png(fig, path, dpi: int) -> Path:
    """Write the ``matplotlib.figure.Figure`` ``fig`` as a PNG at ``path`` (creating its folder).

    Returns the path written; raises OutputError naming the path, and leaves no partial
    file, when it cannot be written (read-only place, full disk).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise OutputError(f"cannot write the figure {path}: {exc.strerror or exc}") from None
    return path
