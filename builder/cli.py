"""The builder's commands of ``ct-degradbench``: their options (declared once, ``option()``
dataclasses validated in ``__post_init__``) and their handlers. The command table
(``ct_degradbench.COMMANDS``) names them; nothing here imports more than the option
declarations until a handler runs.

    ct-degradbench sources [--source S ...] [--preview PNG]   list / preview the reference CT
    ct-degradbench build   [--config ...] [--source S ...] [--out DIR] ...   build + export the dataset
    ct-degradbench verify  DIR [--samples N | --all] [--num-proc N]  check an export: files, rows, replay
    ct-degradbench push    [DIR] --repo-id ORG/NAME            upload an exported folder to the Hub
    ct-degradbench figure  [--source S] [--out PNG]           paper Figure 4: mid-severity degradations

``build`` takes :class:`~ctdegradbench.builder.dataset.options.BuildOptions` (with
:class:`~ctdegradbench.builder.sources.options.SourceOptions` and
:class:`~ctdegradbench.builder.simulate.config.SimulationConfig` nested), declared there.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from ctdegradbench.core.levels import LEVELS
from ctdegradbench.core.options import option
from ctdegradbench.builder.simulate.config import SimulationConfig
from ctdegradbench.builder.sources.options import SourceOptions


def png_path(path: Path, default_name: str) -> Path:
    """Where a PNG for ``path`` goes: inside it if it is a folder, with ``.png`` added if it has no suffix."""
    path = Path(path)
    if path.is_dir():
        return path / default_name
    return path if path.suffix else path.with_suffix(".png")


@dataclass(frozen=True, kw_only=True)
class SourcesOptions:
    """``ct-degradbench sources``: the reference CT and where its preview goes."""

    source: SourceOptions = option(default_factory=SourceOptions, nested=SourceOptions)
    preview: Path = option(Path("sources_preview.png"), "PNG grid of the slices (a folder: sources_preview.png "
                           "inside it)", type=Path)


@dataclass(frozen=True, kw_only=True)
class VerifyOptions:
    """``ct-degradbench verify``: which rows of an export are replayed."""

    folder: Path = option(help="an exported dataset folder", type=Path, positional=True)
    samples: int | None = option(None, "images to re-simulate, spread over every config and level", type=int,
                                 minimum=0, group="which", none_means="2 per config and level")
    all: bool = option(False, "re-simulate every image", group="which")
    seed: int = option(0, "seed of the choice of rows to replay")
    device: str | None = option(None, "device to replay on", none_means="the one recorded per row")
    num_proc: int = option(1, "processes replaying images (each one reference slice at a time)", minimum=1)


@dataclass(frozen=True, kw_only=True)
class PushOptions:
    """``ct-degradbench push``: an exported folder and the Hub repository it goes to."""

    folder: Path = option(Path("ct-degradbench"), "exported folder", type=Path, positional=True)
    repo_id: str = option(help="ORG/NAME of the dataset repository")
    private: bool = option(False, "create the repository as private")
    revision: str | None = option(None, "branch to commit to", none_means="the repository's main branch")
    token: str | None = option(None, "Hugging Face token", none_means="the stored login or HF_TOKEN")
    endpoint: str | None = option(None, "Hub endpoint URL", none_means="huggingface.co")


@dataclass(frozen=True, kw_only=True)
class FigureOptions:
    """``ct-degradbench figure``: the paper's Figure 4 on one slice of a source."""

    source: SourceOptions = option(default_factory=SourceOptions, nested=SourceOptions)
    out: Path = option(Path("figure4.png"), "output PNG (a folder: figure4.png inside it)", type=Path)
    level: int = option(2, "severity level shown", choices=LEVELS)
    slice: int = option(0, "which slice of the source to show", minimum=0)
    simulation: SimulationConfig = option(None, nested=SimulationConfig)


def sources(options: SourcesOptions) -> int:
    from ctdegradbench.core.outputs import check_file_output
    from ctdegradbench.builder.sources import format_table, load_sources, save_preview

    preview = check_file_output(png_path(options.preview, "sources_preview.png"), "--preview")
    result = load_sources(options.source)
    print(format_table(result.slices))
    print(result.summary())
    written = save_preview(result.slices, preview)
    print(f"preview written to {written}")
    return 0


def build(options) -> int:
    from ctdegradbench.builder.dataset.build import build_dataset

    print(build_dataset(options).report())
    return 0


def verify(options: VerifyOptions) -> int:
    from ctdegradbench.builder.dataset.verify import verify_folder

    report = verify_folder(options.folder, n_samples=options.samples, replay_all=options.all, seed=options.seed,
                           device=options.device, num_proc=options.num_proc)
    print(report.text())
    return 0 if report.ok else 1


def push(options: PushOptions) -> int:
    from ctdegradbench.builder.dataset.hub import push_folder

    url = push_folder(options.folder, options.repo_id, token=options.token, private=options.private,
                      revision=options.revision, endpoint=options.endpoint)
    print(f"uploaded {options.folder} to {url}")
    return 0


def figure(options: FigureOptions) -> int:
    from ctdegradbench.core.errors import OptionError
    from ctdegradbench.core.outputs import check_file_output
    from ctdegradbench.builder.dataset.figures import save_figure4
    from ctdegradbench.builder.sources import load_sources

    out = check_file_output(png_path(options.out, "figure4.png"))
    result = load_sources(options.source)
    if not options.slice < len(result.slices):
        raise OptionError(f"--slice must be in 0..{len(result.slices) - 1} for this source, got {options.slice}")
    print(f"read {result.summary()}; simulating slice {options.slice}", file=sys.stderr, flush=True)
    written = save_figure4(result.slices[options.slice], out, level=options.level, simulation=options.simulation)
    print(f"figure written to {written}")
    return 0
