"""The benchmark's run options (``bench iqa`` / ``bench drift`` and the Python API of
:mod:`~ctdegradbench.evaluation.runner`), declared once with ``option()`` and validated once in
``__post_init__``; light (no torch), so the command answers ``--help`` and a bad option at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ctdegradbench.core.errors import InputNotFoundError, OptionError
from ctdegradbench.core.options import check_declared, option
from ctdegradbench.builder.dataset.reader import TARGETS
from ctdegradbench.evaluation.iqa import DEFAULT_WINDOW_HU


@dataclass(kw_only=True)
class BenchOptions:
    """What a ``bench iqa`` / ``bench drift`` run reads and how."""

    dataset: Path = option(help="dataset folder written by `ct-degradbench build`", type=Path)
    configs: tuple[str, ...] | None = option(None, "setting configs to evaluate", many=True, metavar="CONFIG",
                                             none_means="every setting config of the dataset")
    split: str = option("test", "split to evaluate (patients unseen by any model: test)")
    out: Path = option(help="output folder: results.json, tables.md, *.png, configs/*.json (reused on rerun)",
                       type=Path)
    targets: tuple[str, ...] = option(TARGETS, "what each degraded image is compared with: the reference slice "
                                      "and/or its clean FBP", many=True, choices=TARGETS)
    window: tuple[float, float] = option(DEFAULT_WINDOW_HU, "HU window mapped to [0, 1] before every metric / "
                                         "encoder (values outside are clipped)", nargs=2, type=float,
                                         metavar=("LO", "HI"))
    max_references: int | None = option(None, "evaluate only N reference slices of each config, spread over "
                                        "patients (each patient's first slice, then second, ...), with all their "
                                        "levels; the counts used / available are recorded", type=int, minimum=1,
                                        metavar="N", none_means="all")
    batch_size: int = option(8, "images per batch", minimum=1)
    device: str = option("cpu", "torch device (cpu, cuda, cuda:1, ...)")
    n_boot: int = option(1000, "bootstrap resamples over patients for the correlation CIs (0: no CIs)",
                         flag="--bootstrap", minimum=0)
    confidence: float = option(0.95, "level of the bootstrap CIs", above=0, below=1)
    seed: int = option(0, "seed of the bootstrap")
    threads: int | None = option(None, "torch CPU threads", type=int, minimum=1, none_means="torch's")
    figures: bool = option(True, "skip the PNG figures", flag="--no-figures", negate=True)
    progress: bool = option(True, "no progress bars", flag="--quiet", negate=True)
    weights_dir: Path | None = option(None, "folder holding checkpoints/<file> for lpips / dists", type=Path,
                                      cli=False, none_means="torch's hub folder")

    def __post_init__(self) -> None:
        self.dataset, self.out = Path(self.dataset), Path(self.out)
        self.window = tuple(float(v) for v in self.window)
        self.targets = tuple(self.targets)
        self.configs = None if self.configs is None else tuple(self.configs)
        check_declared(self)
        if not self.window[0] < self.window[1]:
            raise OptionError(f"--window LO HI needs LO < HI, got {self.window[0]:g} {self.window[1]:g}")
        if not self.dataset.is_dir():
            what = "is not a folder" if self.dataset.exists() else "does not exist"
            raise InputNotFoundError(f"--dataset {self.dataset} {what}: give a folder written by ct-degradbench build")
