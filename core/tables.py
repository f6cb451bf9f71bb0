"""Markdown tables for cards and reports."""

from __future__ import annotations


def markdown_table(header, rows) -> str:
    """A Markdown table: ``header`` (column names) and ``rows`` (each a sequence of cells, shown with ``str``).

    >>> print(markdown_table(["a", "b"], [[1, 2.5]]))
    | a | b |
    |---|---|
    | 1 | 2.5 |
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
