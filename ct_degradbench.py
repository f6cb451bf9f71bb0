"""CT-DegradBench: the dataset builder and the ``ct-degradbench`` command.

The Hugging Face convention names a dataset's builder after the dataset; this thin entry
re-exports it from the library (installed as the package ``ctdegradbench``)::

    from ct_degradbench import CTDegradBench, with_references
    builder = CTDegradBench(config_name="mixture_m5", source="default", cache_dir="cache")

``main`` is the ``ct-degradbench`` command line. The library never imports this file.
"""

from ctdegradbench.builder.dataset.hf_builder import CTDegradBench, CTDegradBenchConfig, with_references

__all__ = ["CTDegradBench", "CTDegradBenchConfig", "with_references", "main"]


def main(argv=None) -> int:
    """Entry point of the ``ct-degradbench`` command."""
    from ctdegradbench.builder.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
