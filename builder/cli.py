"""The builder's commands of ``ct-degradbench`` (registered by :func:`add_commands`).

Sub-commands::

    ct-degradbench sources [--source S ...] [--preview PNG]   list / preview the reference CT
    ct-degradbench build   [--config ...] [--source S ...] [--out DIR] ...   build + export the dataset
    ct-degradbench verify  DIR [--samples N | --all]          check an export: files, rows, replay
    ct-degradbench push    [DIR] --repo-id ORG/NAME            upload an exported folder to the Hub
    ct-degradbench figure  [--source S] [--out PNG]           paper Figure 4: mid-severity degradations

The options are the fields of :class:`~ctdegradbench.builder.sources.options.SourceOptions`,
:class:`~ctdegradbench.builder.simulate.config.SimulationConfig` and
:class:`~ctdegradbench.builder.dataset.options.BuildOptions`, declared once there. This module
imports nothing heavy: the source paths of a command are checked before the simulator (and
torch) is imported.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ctdegradbench.core.options import add_arguments, from_args
from ctdegradbench.builder.sources.options import SourceOptions

HELP_FLAGS = {"-h", "--help"}


def _source_arguments(p: argparse.ArgumentParser, argv) -> None:
    """Source flags; unless help is asked for, the sources are checked now (a missing path is
    reported at once, before the simulator and torch are imported)."""
    add_arguments(p, SourceOptions)
    if not HELP_FLAGS & set(argv):
        from_args(SourceOptions, p.parse_known_args(argv)[0])


def _simulation_arguments(p: argparse.ArgumentParser) -> None:
    from ctdegradbench.builder.simulate.config import SimulationConfig

    add_arguments(p, SimulationConfig)


def _sources_arguments(p, argv) -> None:
    _source_arguments(p, argv)
    p.add_argument("--preview", type=Path, default=Path("sources_preview.png"),
                   help="PNG grid of the slices (a folder: sources_preview.png inside it); default sources_preview.png")


def _build_arguments(p, argv) -> None:
    from ctdegradbench.builder.dataset.options import BuildOptions
    from ctdegradbench.builder.simulate.resolution import MIN_IMAGE_SIZE

    _source_arguments(p, argv)
    add_arguments(p, BuildOptions)
    _simulation_arguments(p)
    for action in p._actions:         # the source's range (64..) is not what build accepts by default
        if "--image-size" in action.option_strings:
            action.help = action.help.replace("; range", f"; the severity levels are calibrated from {MIN_IMAGE_SIZE} "
                                                         "px, a smaller size needs --allow-uncalibrated-grid; range", 1)


def _verify_arguments(p, argv) -> None:
    p.add_argument("folder", type=Path, help="an exported dataset folder")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--samples", type=int, default=None,
                       help="images to re-simulate, spread over every config and level; default 2 per config and "
                            "level")
    which.add_argument("--all", action="store_true", help="re-simulate every image")
    p.add_argument("--seed", type=int, default=0, help="seed of the choice of rows to replay; default 0")
    p.add_argument("--device", default=None, help="device to replay on (default: the one recorded per row)")


def _push_arguments(p, argv) -> None:
    p.add_argument("folder", type=Path, nargs="?", default=Path("ct-degradbench"),
                   help="exported folder; default ct-degradbench")
    p.add_argument("--repo-id", required=True, help="ORG/NAME of the dataset repository")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.add_argument("--revision", default=None, help="branch to commit to (default: the repository's main branch)")
    p.add_argument("--token", default=None, help="Hugging Face token (default: the stored login or HF_TOKEN)")
    p.add_argument("--endpoint", default=None, help="Hub endpoint URL (default: huggingface.co)")


def _figure_arguments(p, argv) -> None:
    _source_arguments(p, argv)
    p.add_argument("--out", type=Path, default=Path("figure4.png"),
                   help="output PNG (a folder: figure4.png inside it); default figure4.png")
    p.add_argument("--level", type=int, default=2, choices=range(4), help="severity level shown; default 2")
    p.add_argument("--slice", type=int, default=0, help="which slice of the source to show; default 0")
    _simulation_arguments(p)


def png_path(path: Path, default_name: str) -> Path:
    """Where a PNG for ``path`` goes: inside it if it is a folder, with ``.png`` added if it has no suffix."""
    path = Path(path)
    if path.is_dir():
        return path / default_name
    return path if path.suffix else path.with_suffix(".png")


def _cmd_sources(args) -> int:
    from ctdegradbench.core.outputs import check_file_output
    from ctdegradbench.builder.sources import format_table, load_sources, save_preview

    preview = check_file_output(png_path(args.preview, "sources_preview.png"), "--preview")
    options = from_args(SourceOptions, args)
    result = load_sources(options)
    print(format_table(result.slices))
    print(result.summary())
    written = save_preview(result.slices, preview)
    print(f"preview written to {written}")
    return 0


def _cmd_build(args) -> int:
    from ctdegradbench.builder.dataset.build import build_dataset
    from ctdegradbench.builder.dataset.options import BuildOptions
    from ctdegradbench.builder.simulate.config import SimulationConfig

    options = from_args(BuildOptions, args, source=from_args(SourceOptions, args),
                        simulation=from_args(SimulationConfig, args))
    print(build_dataset(options).report())
    return 0


def _cmd_verify(args) -> int:
    from ctdegradbench.builder.dataset.verify import verify_folder

    report = verify_folder(args.folder, n_samples=args.samples, replay_all=args.all, seed=args.seed,
                           device=args.device)
    print(report.text())
    return 0 if report.ok else 1


def _cmd_push(args) -> int:
    from ctdegradbench.builder.dataset.hub import push_folder

    url = push_folder(args.folder, args.repo_id, token=args.token, private=args.private,
                      revision=args.revision, endpoint=args.endpoint)
    print(f"uploaded {args.folder} to {url}")
    return 0


def _cmd_figure(args) -> int:
    from ctdegradbench.core.errors import OptionError
    from ctdegradbench.core.outputs import check_file_output
    from ctdegradbench.builder.dataset.figures import save_figure4
    from ctdegradbench.builder.simulate.config import SimulationConfig
    from ctdegradbench.builder.sources import load_sources

    out = check_file_output(png_path(args.out, "figure4.png"))
    simulation = from_args(SimulationConfig, args)
    result = load_sources(from_args(SourceOptions, args))
    if not 0 <= args.slice < len(result.slices):
        raise OptionError(f"--slice must be in 0..{len(result.slices) - 1} for this source, got {args.slice}")
    print(f"read {result.summary()}; simulating slice {args.slice}", file=sys.stderr, flush=True)
    written = save_figure4(result.slices[args.slice], out, level=args.level,
                           simulation=simulation)
    print(f"figure written to {written}")
    return 0


# name -> (one-line help, arguments(parser, argv), command)
COMMANDS = {
    "sources": ("list and preview the reference CT slices of a source", _sources_arguments, _cmd_sources),
    "build": ("simulate the configs and export a Hub-style Parquet folder", _build_arguments, _cmd_build),
    "verify": ("check an exported folder: every file, every row's labels and metadata, and replayed images",
               _verify_arguments, _cmd_verify),
    "push": ("upload an exported dataset folder to the Hugging Face Hub", _push_arguments, _cmd_push),
    "figure": ("write the paper's Figure 4: mid-severity degradations and their spectra", _figure_arguments,
               _cmd_figure),
}


def add_commands(sub, active: str | None = None, argv=()) -> None:
    """Register the builder's sub-commands on ``sub`` (an ``argparse`` sub-parsers object).

    Only the ``active`` command (the one being run; every command when ``None``) gets its
    arguments, built from ``argv`` (the arguments after the command name), so ``ct-degradbench
    verify`` never imports the simulator.
    """
    for name, (help_text, arguments, command) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        p.set_defaults(func=command)
        if active is None or name == active:
            arguments(p, argv)
