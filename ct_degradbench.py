"""CT-DegradBench: the dataset builder and the ``ct-degradbench`` command.

The Hugging Face convention names a dataset's builder after the dataset; this thin entry
re-exports it from the library (installed as the package ``ctdegradbench``)::

    from ct_degradbench import CTDegradBench, with_references
    builder = CTDegradBench(config_name="mixture_m5", source="default", cache_dir="cache")

``main`` is the ``ct-degradbench`` command line: each subpackage registers its own
sub-commands (``add_commands`` in its ``cli`` module). A problem the user can fix
(:class:`~ctdegradbench.builder.core.errors.CTDegradBenchError`) ends with one line on
stderr and exit status 2; anything else keeps its traceback. The library never imports
this file.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sys

from ctdegradbench.builder.core.errors import CTDegradBenchError
from ctdegradbench.builder.dataset.hf_builder import CTDegradBench, CTDegradBenchConfig, with_references

__all__ = ["CTDegradBench", "CTDegradBenchConfig", "with_references", "main", "build_parser"]

# Modules that register sub-commands, in the order of the help text.
COMMAND_MODULES = ("ctdegradbench.builder.cli", "ctdegradbench.evaluation.cli")


def build_parser() -> argparse.ArgumentParser:
    """The ``ct-degradbench`` argument parser with every subpackage's sub-commands."""
    parser = argparse.ArgumentParser(
        prog="ct-degradbench",
        description="Physics-informed CT degradation dataset builder, benchmark and SeSpeCT estimator.")
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {importlib.metadata.version('ct-degradbench')}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``ct-degradbench`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("ct-degradbench: interrupted; no partial output was left looking complete; "
              "rerun the same command to resume", file=sys.stderr)
        return 130
    except (CTDegradBenchError, ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        print(f"ct-degradbench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
