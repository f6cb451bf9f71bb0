"""Several ``table10.py --json`` runs side by side: which run (FBP kernel, simulator version)
agrees best with the paper's Table 10 over all settings jointly, and what it costs in the
reconstruction floor.

Per run it prints the floor (clean FBP against the reference, mean PSNR / SSIM over the
slices), the mean absolute difference from the paper's mean PSNR and SSIM over all 40
setting-levels (the joint agreement), the same over single settings and over mixtures, and
whether every setting stays strictly monotone in mean PSNR and SSIM. Same window and metrics
as ``table10.py`` (its JSON holds the per-slice values).

    python benchmarks/compare_table10.py ram-lak.json shepp-logan.json hann.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from table10 import PAPER_TABLE10  # noqa: E402


def summary(run: dict) -> dict:
    """Floor, joint and per-group mean |ours - paper|, and monotonicity of one run."""
    floor_psnr, floor_ssim = (float(np.mean(v)) for v in run["floor"])
    diffs = {"all": [], "S": [], "M": []}
    monotone = True
    for code, levels in PAPER_TABLE10.items():
        ours = [tuple(float(np.mean(v)) for v in run["ref"][f"{code} L{lv}"]) for lv in range(len(levels))]
        for (psnr, ssim), paper in zip(ours, levels):
            for group in ("all", code[0]):
                diffs[group].append((abs(psnr - paper[0]), abs(ssim - paper[2])))
        monotone &= all(a[k] > b[k] for a, b in zip(ours, ours[1:]) for k in (0, 1))
    means = {group: np.mean(np.asarray(v), axis=0) for group, v in diffs.items()}
    return {"floor": (floor_psnr, floor_ssim), "means": means, "monotone": monotone,
            "filter": run["config"]["fbp_filter"], "slices": len(run["slices"])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="JSON files written by table10.py --json")
    args = parser.parse_args(argv)
    missing = [str(path) for path in args.runs if not path.is_file()]
    if missing:
        parser.error(f"no such table10.py --json file: {', '.join(missing)}")
    print("| run | FBP filter | slices | floor PSNR / SSIM | mean abs diff from the paper, all 40: PSNR / SSIM "
          "| single | mixtures | every setting monotone |")
    print("|---|---|---|---|---|---|---|---|")
    for path in args.runs:
        s = summary(json.loads(path.read_text()))
        m = s["means"]
        print(f"| {path.stem} | {s['filter']} | {s['slices']} | {s['floor'][0]:.2f} dB / {s['floor'][1]:.3f} "
              f"| {m['all'][0]:.2f} dB / {m['all'][1]:.3f} | {m['S'][0]:.2f} / {m['S'][1]:.3f} "
              f"| {m['M'][0]:.2f} / {m['M'][1]:.3f} | {'yes' if s['monotone'] else 'no'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
