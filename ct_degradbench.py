"""CT-DegradBench: the dataset builder and the ``ct-degradbench`` command.

The Hugging Face convention names a dataset's builder after the dataset; this thin entry
re-exports it from the library (installed as the package ``ctdegradbench``)::

    from ct_degradbench import CTDegradBench, with_references
    builder = CTDegradBench(config_name="mixture_m5", source="default", cache_dir="cache")

``main`` is the ``ct-degradbench`` command line: each subpackage registers its own
sub-commands (``add_commands`` in its ``cli`` module). A problem the user can fix
(:class:`~ctdegradbench.core.errors.CTDegradBenchError`) ends with one line on
stderr and exit status 2; anything else keeps its traceback. The library never imports
this file.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ctdegradbench.core.errors import CTDegradBenchError
from ctdegradbench.core.version import version

__all__ = ["CTDegradBench", "CTDegradBenchConfig", "with_references", "main", "build_parser"]



def __getattr__(name: str):
    """The builder class, its config and ``with_references``, imported on first use (so the
    command line starts without loading ``datasets`` and torch)."""
    if name in ("CTDegradBench", "CTDegradBenchConfig", "with_references"):
        from ctdegradbench.builder.dataset import hf_builder

        return getattr(hf_builder, name)
    raise AttributeError(f"module 'ct_degradbench' has no attribute {name!r}")


# Modules that register sub-commands, in the order of the help text.
COMMAND_MODULES = ("ctdegradbench.builder.cli", "ctdegradbench.evaluation.cli", "ctdegradbench.model.cli",
                   "ctdegradbench.model.app.cli")


def _command_of(argv) -> str | None:
    """The sub-command named in ``argv`` (its first argument that is not an option)."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(argv=()) -> argparse.ArgumentParser:
    """The ``ct-degradbench`` argument parser; the command named in ``argv`` gets its arguments
    (all commands do when ``argv`` names none)."""
    argv = list(argv)
    command = _command_of(argv)
    parser = argparse.ArgumentParser(
        prog="ct-degradbench",
        description="Physics-informed CT degradation dataset builder, benchmark and SeSpeCT estimator.")
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        rest = argv[argv.index(command) + 1:] if command else []
        importlib.import_module(name).add_commands(sub, active=command or "", argv=rest)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``ct-degradbench`` command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser(argv).parse_args(argv)
        return args.func(args)
    except KeyboardInterrupt:
        print("ct-degradbench: interrupted; no partial output was left looking complete; "
              "rerun the same command to resume", file=sys.stderr)
        return 130
    except CTDegradBenchError as exc:
        print(f"ct-degradbench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
