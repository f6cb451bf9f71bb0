"""Writing figures: matplotlib's object-oriented API only (no global backend or pyplot state,
so importing the package never changes a notebook user's matplotlib setup)."""

from __future__ import annotations

from pathlib import Path

from ctdegradbench.core.errors import OutputError


def save_png(fig, path, dpi: int) -> Path:
    """Write the ``matplotlib.figure.Figure`` ``fig`` as a PNG at ``path`` (creating its folder).

    Returns the path written; raises OutputError naming the path, and leaves no partial
    file, when it cannot be written (read-only place, full disk). The PNG's ``Software`` text
    chunk marks it as ours (``core.outputs``).
    """
    from ctdegradbench.core.outputs import GENERATOR, replace_atomically

    path = Path(path)
    try:
        return replace_atomically(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png",
                                                                metadata={"Software": GENERATOR}))
    except OutputError as exc:
        raise OutputError(f"cannot write the figure {path}: {str(exc).rsplit(': ', 1)[-1]}") from None
