"""Seed spread of SeSpeCT variants on the test split: is a difference between two variants larger
than the run-to-run spread?

Trains each variant (a list of ablated parts, as ``ct-degradbench train --ablate``) with several
seeds on the same cached frozen features and prints, per variant, the mean and sample standard
deviation over seeds of test accuracy, macro F1, QWK and the mean Spearman over single settings
and over mixtures. The seed changes the initialisation of the trainable parts, the batch order
and dropout; the data and the split stay fixed.

    python benchmarks/sespect_seeds.py --dataset DIR [DIR ...] [--seeds 3] [--epochs 8] \\
        [--variants full image] [--out seeds.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

METRICS = ("accuracy", "macro_f1", "qwk", "mean_spearman_single", "mean_spearman_mixtures")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, nargs="+", required=True, help="exported dataset folders")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per variant: 0..N-1 (default 3)")
    parser.add_argument("--epochs", type=int, default=8, help="epochs per run (default 8)")
    parser.add_argument("--variants", nargs="+", default=["full", "image"],
                        help="'full' or a comma-separated list of parts to ablate, e.g. image or semantic,image")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="JSON file for every run's metrics")
    args = parser.parse_args(argv)
    if args.seeds < 2:
        parser.error(f"--seeds must be >= 2 for a spread, got {args.seeds}")

    from ctdegradbench.model.options import ABLATIONS
    from ctdegradbench.model.train import prepare_data, train_sespect

    unknown = sorted({part for v in args.variants if v != "full" for part in v.split(",")} - set(ABLATIONS))
    if unknown:
        parser.error(f"unknown part(s) to ablate in --variants: {', '.join(unknown)}; expected 'full' or any of "
                     f"{', '.join(ABLATIONS)}")
    prepared = prepare_data(args.dataset, cache_dir=args.cache_dir, progress=False)
    runs = {}
    for variant in args.variants:
        ablate = [] if variant == "full" else variant.split(",")
        runs[variant] = []
        for seed in range(args.seeds):
            run = train_sespect(args.dataset, None, prepared=prepared, ablate=ablate, epochs=args.epochs, seed=seed,
                                progress=False, log=lambda text: None)
            runs[variant].append({k: run.metrics[k] for k in METRICS} | {"seed": seed, "best_epoch": run.best_epoch})
            print(f"{variant} seed {seed}: " + ", ".join(f"{k} {run.metrics[k]:.3f}" for k in METRICS), flush=True)
    print()
    print("| variant | " + " | ".join(METRICS) + " |")
    print("|---" * (len(METRICS) + 1) + "|")
    for variant, rows in runs.items():
        cells = [f"{statistics.mean(r[k] for r in rows):.3f} ± {statistics.stdev(r[k] for r in rows):.3f}"
                 for k in METRICS]
        print(f"| {variant} ({len(rows)} seeds, {args.epochs} epochs) | " + " | ".join(cells) + " |")
    if args.out:
        args.out.write_text(json.dumps(runs, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
