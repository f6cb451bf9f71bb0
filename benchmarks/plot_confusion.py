"""Confusion matrices of SeSpeCT checkpoints, side by side, from ``ct-degradbench evaluate`` JSON files.

    python benchmarks/plot_confusion.py EVAL.json [EVAL.json ...] --out FIGURE.png [--labels NAME ...]

Each panel is one evaluation's ``confusion_matrix`` (rows: the true class of the dataset rows,
columns: the model's answer, including ``clean``), each row divided by its count, so a row reads as
"where the rows of this class went"; the count is written in every cell with at least one row. The
title gives the eleven-way and the ten-class accuracy. ``--out`` is a new PNG or one this project
wrote (``core.outputs.check_file_output``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def panel(ax, evaluation: dict, title: str) -> None:
    """One confusion matrix, rows normalised, counts written in the cells."""
    names = list(evaluation["per_class"])
    counts = np.asarray(evaluation["confusion_matrix"], float)
    rows = counts.sum(1, keepdims=True)
    shares = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i, j in zip(*np.nonzero(counts)):
        ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=6,
                color="white" if shares[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("answer")
    ax.set_ylabel("true class")
    ten = evaluation.get("ten_class", {}).get("accuracy")
    ax.set_title(f"{title}\naccuracy {evaluation['accuracy']:.3f}"
                 + (f", ten classes {ten:.3f}" if ten is not None else "")
                 + f" ({int(counts.sum())} rows)", fontsize=9)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("evaluations", nargs="+", type=Path, metavar="EVAL.json",
                        help="ct-degradbench evaluate --out files")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write")
    parser.add_argument("--labels", nargs="+", default=None, metavar="NAME",
                        help="a title per file (default: the file names)")
    args = parser.parse_args(argv)
    if args.labels and len(args.labels) != len(args.evaluations):
        parser.error(f"--labels gives {len(args.labels)} names for {len(args.evaluations)} files")
    from ctdegradbench.core.errors import OutputError
    from ctdegradbench.core.outputs import check_file_output

    try:
        check_file_output(args.out)
    except OutputError as err:
        parser.error(str(err))
    evaluations = []
    for path in args.evaluations:
        try:
            evaluation = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            parser.error(f"{path}: not a readable JSON file ({err})")
        if not isinstance(evaluation, dict) or "confusion_matrix" not in evaluation or "per_class" not in evaluation:
            parser.error(f"{path}: no confusion_matrix / per_class: not a ct-degradbench evaluate --out file")
        evaluations.append(evaluation)
    from matplotlib.figure import Figure

    from ctdegradbench.core.plotting import save_png

    fig = Figure(figsize=(5.2 * len(evaluations), 5.4), layout="constrained")
    for ax, evaluation, title in zip(fig.subplots(1, len(evaluations), squeeze=False)[0], evaluations,
                                     args.labels or [p.stem for p in args.evaluations]):
        panel(ax, evaluation, title)
    print(save_png(fig, args.out, dpi=150), file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
