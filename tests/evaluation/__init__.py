"""Tests of the benchmark (ctdegradbench.evaluation). A package, so that its conftest is imported
as ``evaluation.conftest`` and never shadows the ``conftest`` module of tests/."""
