"""The builder's commands of ``ct-degradbench`` (registered by :func:`add_commands`).

Sub-commands::

    ct-degradbench sources [--source S] [--preview PNG]     list / preview the reference CT
    ct-degradbench build   [--configs ...] [--source S] [--out DIR] ...   build + export the dataset
    ct-degradbench verify  DIR [--samples N]                re-simulate rows and check they replay
    ct-degradbench push    [DIR] --repo-id ORG/NAME          upload an exported folder to the Hub
    ct-degradbench figure  [--source S] [--out PNG]         paper Figure 4: mid-severity degradations

"""

from __future__ import annotations

import argparse
from pathlib import Path

from ctdegradbench.builder.dataset.export import ALL_CONFIG
from ctdegradbench.builder.simulate.settings import SETTINGS

CONFIG_CHOICES = [s.config_name for s in SETTINGS] + [ALL_CONFIG]


def _add_source_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", default="default",
                   help="'default' (CT shipped in pydicom/pydicom-data), a DICOM folder, a NIfTI file or folder")
    p.add_argument("--stride", type=int, default=1, help="keep every N-th slice of each series")
    p.add_argument("--max-slices", type=int, default=None, help="at most this many slices per series")
    p.add_argument("--min-body-fraction", type=float, default=0.0,
                   help="skip slices with a smaller fraction of pixels above -500 HU")
    p.add_argument("--image-size", type=int, default=512, help="square grid side in pixels (spacing tracked)")
    p.add_argument("--nifti-axes", default=None,
                   help="patient direction of each NIfTI array axis (e.g. LPS) when the affine has none")


def _source_options(args) -> dict:
    return {"stride": args.stride, "max_slices": args.max_slices, "min_body_fraction": args.min_body_fraction,
            "image_size": args.image_size, "nifti_axes": args.nifti_axes}


def add_commands(sub) -> None:
    """Register the builder's sub-commands on ``sub`` (an ``argparse`` sub-parsers object)."""

    p = sub.add_parser("sources", help="list and preview the reference CT slices of a source")
    p.set_defaults(func=_cmd_sources)
    _add_source_options(p)
    p.add_argument("--preview", type=Path, default=Path("sources_preview.png"), help="PNG grid of the slices")

    p = sub.add_parser("build", help="simulate the configs and export a Hub-style Parquet folder")
    p.set_defaults(func=_cmd_build)
    _add_source_options(p)
    p.add_argument("--configs", nargs="+", default=["all"], metavar="CONFIG",
                   help=f"configs to build (default: all); one or more of {', '.join(CONFIG_CHOICES)}")
    p.add_argument("--out", type=Path, default=Path("ct-degradbench"), help="output folder")
    p.add_argument("--realizations", type=int, default=1, help="degraded realizations per reference and level")
    p.add_argument("--seed", type=int, default=0, help="root seed of every random draw and of the split")
    p.add_argument("--device", default="cpu", help="torch device of the simulator (cpu, cuda, ...)")
    p.add_argument("--metal-material", default=None, help="metal of the metal settings (steel or titanium)")
    p.add_argument("--num-proc", type=int, default=None, help="worker processes for generation, each with cores/N threads (pays off on many-core "
                        "machines; on 2 cores one process with 2 threads was faster: 75 s vs 86 s)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="datasets cache for the builder, kept after the build (default: .<out>.cache beside "
                        "the output, deleted once the export is complete)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")

    p = sub.add_parser("verify", help="re-simulate a random sample of rows and check they replay exactly")
    p.set_defaults(func=_cmd_verify)
    p.add_argument("folder", type=Path, help="an exported dataset folder")
    p.add_argument("--samples", type=int, default=20, help="rows to re-simulate")
    p.add_argument("--config", default="all", help="config to draw the rows from (default: all settings)")
    p.add_argument("--seed", type=int, default=0, help="seed of the row sampling")
    p.add_argument("--device", default=None, help="device to replay on (default: the one recorded per row)")

    p = sub.add_parser("push", help="upload an exported dataset folder to the Hugging Face Hub")
    p.set_defaults(func=_cmd_push)
    p.add_argument("folder", type=Path, nargs="?", default=Path("ct-degradbench"), help="exported folder")
    p.add_argument("--repo-id", required=True, help="ORG/NAME of the dataset repository")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.add_argument("--revision", default=None, help="branch to commit to")
    p.add_argument("--token", default=None, help="Hugging Face token (default: the stored login or HF_TOKEN)")
    p.add_argument("--endpoint", default=None, help="Hub endpoint URL (default: huggingface.co)")

    p = sub.add_parser("figure", help="write the paper's Figure 4: mid-severity degradations and their spectra")
    p.set_defaults(func=_cmd_figure)
    _add_source_options(p)
    p.add_argument("--out", type=Path, default=Path("figure4.png"), help="output PNG")
    p.add_argument("--level", type=int, default=2, help="severity level shown (default 2)")
    p.add_argument("--slice", type=int, default=0, help="which slice of the source to show")


def _cmd_sources(args) -> int:
    from ctdegradbench.builder.sources import format_table, load_source, save_preview

    result = load_source(args.source, **_source_options(args))
    print(format_table(result.slices))
    print(result.summary())
    save_preview(result.slices, args.preview)
    print(f"preview written to {args.preview}")
    return 0


def _cmd_build(args) -> int:
    from ctdegradbench.builder.dataset.build import build_dataset

    simulation = {}
    if args.metal_material:
        simulation["metal_material"] = args.metal_material
    summary = build_dataset(
        args.out, configs=args.configs, source=args.source, source_options=_source_options(args),
        realizations=args.realizations, seed=args.seed, device=args.device, simulation=simulation,
        num_proc=args.num_proc, cache_dir=args.cache_dir, overwrite=args.overwrite)
    print(summary.report())
    return 0


def _cmd_verify(args) -> int:
    from ctdegradbench.builder.dataset.verify import verify_folder

    report = verify_folder(args.folder, n_samples=args.samples, seed=args.seed, device=args.device,
                           config=args.config)
    print(report.text())
    return 0 if report.ok else 1


def _cmd_push(args) -> int:
    from ctdegradbench.builder.dataset.hub import push_folder

    url = push_folder(args.folder, args.repo_id, token=args.token, private=args.private,
                      revision=args.revision, endpoint=args.endpoint)
    print(f"uploaded {args.folder} to {url}")
    return 0


def _cmd_figure(args) -> int:
    from ctdegradbench.builder.dataset.figures import save_figure4
    from ctdegradbench.builder.sources import load_source

    result = load_source(args.source, **_source_options(args))
    if not 0 <= args.slice < len(result.slices):
        raise ValueError(f"--slice must be in 0..{len(result.slices) - 1} for this source, got {args.slice}")
    save_figure4(result.slices[args.slice], args.out, level=args.level)
    print(f"figure written to {args.out}")
    return 0
