"""Physics of the dataset rows of a build: metal far field, streak amplitude, stored range, monotonicity.

Reads an export folder (``ct-degradbench build --out DIR``, configs ``single_noise``,
``single_streak``, ``single_metal`` and the ``references`` config) and measures, per row,
the error ``image - clean_fbp`` (HU) of the reference's clean reconstruction:

* **Metal far field**: RMS of the error of each S5 row over the pixels farther than
  ``--far-mm`` (40 mm) from every metal object, separately in the body (reference above
  -500 HU, holes filled) and in air; next to the S1 row's added noise (SD of the error) in
  the same regions (body; air). Medians over the slices, per level.
* **Streak amplitude vs attenuation**: the S3 error image is forward projected (the
  reconstruction's own projector); its RMS per ray, binned by the clean line integral
  above the row's starvation threshold ``streak_threshold``, per level; plotted with
  ``--plot``.
* **Stored range**: rows without metal above 3071 HU whose reference is not (must be 0);
  rows below -1024 HU (must be 0).
* **Monotonicity**: for each setting, the error RMS over the image grows with the level,
  per slice and in the mean.

    python benchmarks/physics_rows.py DIR [--plot streak.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import ndimage

FAR_MM = 40.0
BODY_HU = -500.0
STANDARD_TOP = 3071
FLOOR = -1024
EXCESS_BINS = (-1.0, -0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)   # s - threshold (line-integral units)


def load_rows(folder: Path, config: str) -> list[dict]:
    """Every row of ``config`` (all splits), decoded, through the one reader of an export."""
    from ctdegradbench.builder.dataset.reader import ExportedFolder

    return [row for split in ExportedFolder(folder).load(config).values() for row in split]


def body_mask(reference: np.ndarray) -> np.ndarray:
    smooth = ndimage.gaussian_filter(reference.astype(np.float64), 1.0)
    return ndimage.binary_fill_holes(smooth > BODY_HU)


def metal_far_mask(row: dict, size: int, spacing: float, far_mm: float) -> np.ndarray:
    from ctdegradbench.builder.degradations import get_degradation
    from ctdegradbench.builder.degradations.metal import metal_mask

    metal = get_degradation("metal")
    record = next(c for c in row["components"] if c["type"] == "metal")
    mask = metal_mask(metal.params_from_record(dict(record, level=row["level"])), size, spacing)
    if not mask.any():
        x0, y0, x1, y1 = record["bbox"]
        mask = np.zeros((size, size), bool)
        mask[y0:y1 + 1, x0:x1 + 1] = True
    return ndimage.distance_transform_edt(~mask) * spacing > far_mm


def rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(values.astype(np.float64) ** 2))) if values.size else float("nan")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--far-mm", type=float, default=FAR_MM)
    parser.add_argument("--plot", type=Path, default=None, help="PNG of the streak error amplitude vs attenuation")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = parser.parse_args(argv)

    refs = {r["reference_id"]: r for r in load_rows(args.folder, "references")}
    clean = {k: np.asarray(r["clean_fbp"], np.float64) for k, r in refs.items()}
    reference = {k: np.asarray(r["reference"], np.float64) for k, r in refs.items()}
    bodies = {k: body_mask(v) for k, v in reference.items()}
    out: dict = {"folder": str(args.folder), "slices": len(refs), "far_mm": args.far_mm}

    # ---- noise (S1): added noise SD in body and air
    noise = {}
    rows_by_setting = {}
    for config in ("single_noise", "single_streak", "single_metal"):
        rows_by_setting[config] = load_rows(args.folder, config)
    for row in rows_by_setting["single_noise"]:
        err = np.asarray(row["image"], np.float64) - clean[row["reference_id"]]
        body = bodies[row["reference_id"]]
        noise.setdefault(row["level"], []).append((float(err[body].std()), float(err[~body].std())))

    # ---- metal far field (S5)
    far = {}
    for row in rows_by_setting["single_metal"]:
        key = row["reference_id"]
        img = np.asarray(row["image"], np.float64)
        mask = metal_far_mask(row, img.shape[0], float(row["pixel_spacing_mm"]), args.far_mm)
        err = img - clean[key]
        far.setdefault(row["level"], []).append((rms(err[mask & bodies[key]]), rms(err[mask & ~bodies[key]]),
                                                 row["components"][0]["implant"]))
    print(f"{len(refs)} slices of {args.folder}; metal far field (> {args.far_mm:g} mm from every metal object), "
          "median over slices, HU:")
    print(f"  {'level':6s} {'S5 body RMS':>12s} {'S1 body SD':>11s} {'S5 air RMS':>11s} {'S1 air SD':>10s}")
    out["far_field"] = {}
    for level in sorted(far):
        f = np.array([v[:2] for v in far[level]])
        n = np.array(noise.get(level, [(np.nan, np.nan)]))
        med = [float(np.nanmedian(f[:, 0])), float(np.median(n[:, 0])), float(np.nanmedian(f[:, 1])),
               float(np.median(n[:, 1]))]
        out["far_field"][f"L{level}"] = dict(zip(("s5_body_rms", "s1_body_sd", "s5_air_rms", "s1_air_sd"), med))
        print(f"  L{level:<5d} {med[0]:12.1f} {med[1]:11.1f} {med[2]:11.1f} {med[3]:10.1f}")
    out["implants"] = sorted({v[2] for v in far.get(0, [])})
    print(f"  implants: {out['implants']}")

    # ---- stored range
    over = [(r["sample_id"], int(np.max(r["image"]))) for c in ("single_noise", "single_streak")
            for r in rows_by_setting[c] if np.max(r["image"]) > STANDARD_TOP
            and reference[r["reference_id"]].max() <= STANDARD_TOP]
    under = sum(int(np.min(r["image"]) < FLOOR) for rows in rows_by_setting.values() for r in rows)
    out["non_metal_rows_above_3071"] = len(over)
    out["rows_below_floor"] = under
    print(f"non-metal rows above {STANDARD_TOP} HU (reference within it): {len(over)} {over[:3]}; "
          f"rows below {FLOOR} HU: {under}")

    # ---- monotonicity
    out["monotone"] = {}
    for config, rows in rows_by_setting.items():
        per_slice: dict = {}
        for r in rows:
            err = np.asarray(r["image"], np.float64) - clean[r["reference_id"]]
            per_slice.setdefault(r["reference_id"], {})[r["level"]] = rms(err)
        table = np.array([[v[lv] for lv in sorted(v)] for v in per_slice.values()])
        slices_ok = int(np.sum(np.all(np.diff(table, axis=1) > 0, axis=1)))
        mean_ok = bool(np.all(np.diff(table.mean(axis=0)) > 0))
        out["monotone"][config] = {"slices_monotone": slices_ok, "slices": len(table), "mean_monotone": mean_ok,
                                   "mean_rms_by_level": [float(v) for v in table.mean(axis=0)]}
        print(f"{config}: error RMS by level (mean) {np.round(table.mean(axis=0), 1).tolist()} HU; monotone in the "
              f"mean: {mean_ok}; per slice: {slices_ok}/{len(table)}")

    # ---- streak amplitude vs attenuation (S3)
    import torch

    from ctdegradbench.builder.core.geometry import ParallelBeamGeometry
    from ctdegradbench.core.hu import MU_WATER_PER_MM, hu_to_mu
    from ctdegradbench.builder.projector import ParallelBeamProjector

    projectors: dict = {}
    sums: dict = {}
    for r in rows_by_setting["single_streak"]:
        key = r["reference_id"]
        spacing = float(r["pixel_spacing_mm"])
        size = clean[key].shape[0]
        if (size, spacing) not in projectors:
            projectors[(size, spacing)] = ParallelBeamProjector(ParallelBeamGeometry(size, spacing))
        projector = projectors[(size, spacing)]
        err_mu = torch.as_tensor((np.asarray(r["image"], np.float64) - clean[key]) * MU_WATER_PER_MM / 1000.0,
                                 dtype=torch.float32)
        err_sino = projector(err_mu).numpy().astype(np.float64)
        s = projector(hu_to_mu(torch.as_tensor(reference[key], dtype=torch.float32))).numpy().astype(np.float64)
        record = r["components"][0]
        excess = s - float(record["streak_threshold"])
        index = np.digitize(excess, EXCESS_BINS)
        level_sums = sums.setdefault(r["level"], np.zeros((2, len(EXCESS_BINS) + 1)))
        np.add.at(level_sums[0], index.ravel(), err_sino.ravel() ** 2)
        np.add.at(level_sums[1], index.ravel(), 1.0)
    out["streak_amplitude"] = {}
    print("S3: RMS of the projected error (line-integral units) by clean line integral minus threshold:")
    labels = [f"<{EXCESS_BINS[0]:g}"] + [f"{a:g}..{b:g}" for a, b in zip(EXCESS_BINS[:-1], EXCESS_BINS[1:])] \
        + [f">{EXCESS_BINS[-1]:g}"]
    for level in sorted(sums):
        total, count = sums[level]
        amplitude = np.where(count > 0, np.sqrt(total / np.maximum(count, 1)), np.nan)
        out["streak_amplitude"][f"L{level}"] = {"bins": labels, "rms": [float(v) for v in amplitude],
                                                 "rays": [int(v) for v in count]}
        print(f"  L{level}: " + ", ".join(f"{lab} {v:.3f}" for lab, v in zip(labels, amplitude) if np.isfinite(v)))
    if args.plot is not None:
        from matplotlib.figure import Figure

        from ctdegradbench.core.plotting import save_png

        fig = Figure(figsize=(6.5, 4.2))
        ax = fig.add_subplot()
        centres = np.array([EXCESS_BINS[0] - 0.25] + [0.5 * (a + b) for a, b in zip(EXCESS_BINS[:-1], EXCESS_BINS[1:])]
                           + [EXCESS_BINS[-1] + 0.5])
        for level in sorted(sums):
            values = np.array(out["streak_amplitude"][f"L{level}"]["rms"])
            ax.plot(centres, values, marker="o", label=f"S3 L{level}")
        ax.axvline(0.0, color="0.5", linestyle=":", label="starvation threshold")
        ax.set_xlabel("clean line integral minus the starvation threshold")
        ax.set_ylabel("RMS of the projected S3 error (line integral)")
        ax.set_yscale("log")
        ax.set_title(f"Streak error vs ray attenuation ({len(refs)} TCGA slices, dataset rows)")
        ax.legend(fontsize=8)
        save_png(fig, args.plot, dpi=110)
        print(f"wrote {args.plot}")
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
