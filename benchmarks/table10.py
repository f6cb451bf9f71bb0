"""The paper's Table 10 (PSNR and SSIM per setting and severity level) from our simulator.

What it measures. For a documented selection of real 512 x 512 slices of ``../shared/ct``
(every series, ``--slices-per-series`` evenly spaced interior slices whose body fraction is at
least ``--min-body-fraction``), the simulator degrades each slice in every setting S1..S5,
M1..M5 at every level L0..L3 (one realization, seed ``--seed``), and we compute, per
(setting, level), the mean +- std over slices of

* PSNR and SSIM against the **reference**: the original slice, as the paper's Table 10;
* PSNR and SSIM against the **clean FBP**: the reconstruction of the undegraded sinogram on
  the same geometry (a second view, free of the reconstruction error floor);

and, once per slice, the **floor**: clean FBP against the reference (the error that FBP on a
360-view, one-bin-per-pixel geometry adds before any degradation; see DESIGN.md, calibration
notes).

Metric conventions (stated in the output too): images are windowed to [-300, 300] HU and
mapped to [0, 1] (values outside the window are clipped, as any display window does);
``skimage.metrics.peak_signal_noise_ratio`` and ``structural_similarity`` with
``data_range=1`` (SSIM: scikit-image defaults, 7 x 7 uniform window, K1 = 0.01, K2 = 0.03);
std is the sample standard deviation over slices (ddof = 1). The paper does not state its
window or data range.

Monotonicity. A setting is monotone when its mean SSIM and its mean PSNR both strictly
decrease from L0 to L3; per slice, we also count the fraction of slices on which SSIM (and
PSNR) strictly decrease over the four levels (a mixture's levels draw different component
levels and noise per slice, so per-slice monotonicity is a stronger, noisier property).

Exit status: 1 when any setting's mean SSIM is not strictly decreasing with level (so the
script doubles as a check), 0 otherwise.

Sources: ``--ct-dir`` (NIfTI series, default ``../shared/ct``) or ``--dicom`` (a DICOM folder,
e.g. ``../shared/ct-tcga-lung``, ``--dicom-slices`` evenly spaced slices). ``--filter`` sets the
FBP kernel; ``--json`` keeps the per-slice metrics (``benchmarks/compare_table10.py`` puts two
runs side by side). The script only uses the public simulator API, so it also measures an
older checkout of the library (put that checkout's package first on ``PYTHONPATH``).

Run from the repository root::

    python benchmarks/table10.py                      # 3 slices per series, about 2-5 min on 2 cores
    python benchmarks/table10.py --out results/table10   # also table10.md and table10.png
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

import torch  # noqa: E402
from skimage.metrics import peak_signal_noise_ratio, structural_similarity  # noqa: E402

from ctdegradbench.builder.simulate.settings import LEVELS, PAPER_SETTINGS as SETTINGS  # noqa: E402
from ctdegradbench.builder.simulate.config import SimulationConfig  # noqa: E402
from ctdegradbench.builder.simulate.simulator import Simulator  # noqa: E402
from ctdegradbench.builder.sources import load_source  # noqa: E402

SHARED_CT = ROOT.parent / "shared" / "ct"
IMAGE_SIZE = 512
WINDOW_HU = (-300.0, 300.0)    # display window mapped to [0, 1] before PSNR / SSIM
DATA_RANGE = 1.0               # of the windowed images
NIFTI_AXES = "LPS"             # orientation of the shared volumes (see ../shared/ct/README.md)

# The paper's Table 10 (ct-degradbench-paper.txt, "Table 10: Benchmarking results (mean +- std)
# for full-reference quality metrics"), copied verbatim: per setting code, per level L0..L3,
# (PSNR mean, PSNR std, SSIM mean, SSIM std). The paper labels S4 "S4_alias".
PAPER_TABLE10: dict[str, tuple[tuple[float, float, float, float], ...]] = {
    "S1": ((29.67, 1.95, 0.8627, 0.0482), (27.14, 2.44, 0.7456, 0.0978),
           (25.96, 2.68, 0.6920, 0.1142), (23.08, 3.10, 0.5638, 0.1373)),
    "S2": ((30.96, 1.80, 0.9260, 0.0108), (30.83, 1.74, 0.9225, 0.0107),
           (30.49, 1.60, 0.9115, 0.0104), (29.81, 1.37, 0.8846, 0.0114)),
    "S3": ((31.58, 1.69, 0.9385, 0.0082), (31.28, 1.59, 0.9256, 0.0094),
           (30.29, 1.31, 0.8936, 0.0166), (27.83, 0.87, 0.8298, 0.0305)),
    "S4": ((31.05, 1.84, 0.9234, 0.0110), (30.33, 1.59, 0.8647, 0.0172),
           (29.40, 1.33, 0.7896, 0.0268), (28.57, 1.16, 0.7267, 0.0331)),
    "S5": ((25.28, 0.86, 0.8527, 0.0197), (24.61, 0.80, 0.8414, 0.0204),
           (24.02, 0.74, 0.8311, 0.0213), (23.58, 0.69, 0.8221, 0.0222)),
    "M1": ((28.20, 2.31, 0.7931, 0.0909), (27.54, 2.56, 0.7600, 0.1089),
           (25.56, 2.85, 0.6650, 0.1273), (24.40, 2.77, 0.6057, 0.1224)),
    "M2": ((28.44, 2.44, 0.8027, 0.0934), (27.77, 2.70, 0.7720, 0.1080),
           (24.92, 2.99, 0.6505, 0.1285), (22.92, 2.81, 0.5642, 0.1235)),
    "M3": ((23.89, 0.90, 0.7090, 0.0622), (23.05, 1.45, 0.6425, 0.1087),
           (20.89, 1.66, 0.4884, 0.1067), (19.19, 1.13, 0.3833, 0.0694)),
    "M4": ((28.06, 2.28, 0.7750, 0.0819), (27.48, 2.27, 0.7439, 0.0901),
           (25.25, 2.60, 0.6134, 0.1036), (23.87, 2.79, 0.5478, 0.1020)),
    "M5": ((24.11, 0.94, 0.7314, 0.0676), (23.11, 1.34, 0.6469, 0.1022),
           (21.13, 1.52, 0.4979, 0.1023), (19.52, 1.44, 0.3942, 0.0918)),
}


# ------------------------------------------------------------------ data
def pick_interior(items: list, count: int) -> list:
    """``count`` evenly spaced interior items: index ``floor((i + 0.5) n / count)``, all if ``n <= count``."""
    n = len(items)
    if n <= count:
        return list(items)
    return [items[int((i + 0.5) * n / count)] for i in range(count)]


def select_dicom(folder: Path, count: int, min_body_fraction: float) -> tuple[list, list[str]]:
    """``count`` evenly spaced slices of a DICOM folder (all its series together), one line each."""
    result = load_source(folder, min_body_fraction=min_body_fraction, image_size=IMAGE_SIZE)
    slices = sorted(result.slices, key=lambda s: s.reference_id)
    chosen = pick_interior(slices, count)
    return chosen, [f"{s.reference_id} ({s.pixel_spacing_mm:.3f} mm, kernel {s.info.get('kernel', '?')})"
                    for s in chosen]


def select_slices(ct_dir: Path, per_series: int, min_body_fraction: float) -> tuple[list, list[str]]:
    """Reference slices of every NIfTI series in ``ct_dir`` and one summary line per series.

    Per series the loader keeps, of the slices with body fraction >= ``min_body_fraction``,
    ``2 * per_series + 1`` evenly spaced ones (ends included); we take the ``per_series``
    interior ones of those (so the first and last slice of a volume, often at its edge, are
    not used).
    """
    files = sorted(ct_dir.glob("*.nii.gz"))
    if not files:
        raise FileNotFoundError(f"no .nii.gz volume in {ct_dir}: expected the shared CT series (../shared/ct)")
    slices, lines = [], []
    for path in files:
        result = load_source(path, nifti_axes=NIFTI_AXES, min_body_fraction=min_body_fraction,
                             max_slices=2 * per_series + 1, image_size=IMAGE_SIZE)
        chosen = pick_interior(result.slices, per_series)
        slices += chosen
        lines.append(f"{path.name}: slices {[s.slice_index for s in chosen]} "
                     f"(body fraction {[s.info.get('body_fraction') for s in chosen]}, "
                     f"{chosen[0].pixel_spacing_mm:.3f} mm pixels); loader: {result.summary()}")
    return slices, lines


# --------------------------------------------------------------- metrics
def window(hu: np.ndarray) -> np.ndarray:
    """HU -> [0, 1] in the window ``WINDOW_HU`` (clipped outside), float64."""
    low, high = WINDOW_HU
    return np.clip((np.asarray(hu, dtype=np.float64) - low) / (high - low), 0.0, 1.0)


def psnr_ssim(reference: np.ndarray, image: np.ndarray) -> tuple[float, float]:
    """PSNR (dB) and SSIM of two windowed images, ``data_range = DATA_RANGE``."""
    return (float(peak_signal_noise_ratio(reference, image, data_range=DATA_RANGE)),
            float(structural_similarity(reference, image, data_range=DATA_RANGE)))


def measure(slices: list, simulator: Simulator, settings, log=print) -> dict:
    """Per-slice metrics of every (setting, level): arrays of shape ``(n_slices,)``.

    Returns ``{"ref": {(code, level): (psnr, ssim)}, "fbp": {...}, "floor": (psnr, ssim),
    "clip_count": int, "clamped_bins": int}``.
    """
    keys = [(s.code, lv) for s in settings for lv in LEVELS]
    ref_m = {k: ([], []) for k in keys}
    fbp_m = {k: ([], []) for k in keys}
    floor = ([], [])
    clips = clamped = 0
    for i, ref in enumerate(slices):
        start = time.perf_counter()
        prepared = simulator.prepare(ref)
        samples = simulator.run(prepared, settings=[s.code for s in settings], levels=LEVELS)
        w_ref, w_fbp = window(ref.hu), window(prepared.clean_fbp_hu)
        p, s = psnr_ssim(w_ref, w_fbp)
        floor[0].append(p)
        floor[1].append(s)
        clips += prepared.clean_clip_count
        for sample in samples:
            img = window(sample.image_hu)
            for table, target in ((ref_m, w_ref), (fbp_m, w_fbp)):
                p, s = psnr_ssim(target, img)
                table[(sample.setting, sample.level)][0].append(p)
                table[(sample.setting, sample.level)][1].append(s)
            clips += sample.metadata["clip_count"]
            clamped += sample.metadata["clamped_bins"]
        log(f"  [{i + 1}/{len(slices)}] {ref.reference_id}: {len(samples)} samples, "
            f"floor {floor[0][-1]:.2f} dB / {floor[1][-1]:.4f}, {time.perf_counter() - start:.1f} s")
    as_arrays = lambda table: {k: (np.array(v[0]), np.array(v[1])) for k, v in table.items()}  # noqa: E731
    return {"ref": as_arrays(ref_m), "fbp": as_arrays(fbp_m), "floor": (np.array(floor[0]), np.array(floor[1])),
            "clip_count": clips, "clamped_bins": clamped}


def mean_std(values: np.ndarray) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def strictly_decreasing(values) -> bool:
    return bool(np.all(np.diff(np.asarray(values, dtype=np.float64)) < 0))


def monotonicity(table: dict, code: str) -> dict:
    """Mean-curve verdicts and the per-slice fraction of strictly decreasing curves."""
    psnr = np.stack([table[(code, lv)][0] for lv in LEVELS])   # (levels, slices)
    ssim = np.stack([table[(code, lv)][1] for lv in LEVELS])
    return {"mean_ssim": strictly_decreasing(ssim.mean(axis=1)), "mean_psnr": strictly_decreasing(psnr.mean(axis=1)),
            "slice_ssim": float(np.mean(np.all(np.diff(ssim, axis=0) < 0, axis=0))),
            "slice_psnr": float(np.mean(np.all(np.diff(psnr, axis=0) < 0, axis=0)))}


# ---------------------------------------------------------------- output
def format_rows(result: dict, settings) -> list[list[str]]:
    """Table rows: label, ours vs reference, paper, ours vs clean FBP."""
    rows = []
    for setting in settings:
        for lv in LEVELS:
            key = (setting.code, lv)
            (rp, rps), (rs, rss) = (mean_std(v) for v in result["ref"][key])
            (fp, fps), (fs, fss) = (mean_std(v) for v in result["fbp"][key])
            pp, pps, ps, pss = PAPER_TABLE10[setting.code][lv]
            rows.append([f"{setting.class_name} L{lv}", f"{rp:.2f}±{rps:.2f}", f"{rs:.4f}±{rss:.4f}",
                         f"{pp:.2f}±{pps:.2f}", f"{ps:.4f}±{pss:.4f}",
                         f"{fp:.2f}±{fps:.2f}", f"{fs:.4f}±{fss:.4f}"])
    return rows


HEADER = ["setting level", "PSNR ours", "SSIM ours", "PSNR paper", "SSIM paper", "PSNR vs FBP", "SSIM vs FBP"]


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows + [HEADER]) for i in range(len(HEADER))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(HEADER), line(["-" * w for w in widths])] + [line(r) for r in rows])


def markdown_table(rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    return "\n".join(out + ["| " + " | ".join(r) + " |" for r in rows])


def verdict_lines(result: dict, settings) -> tuple[list[str], bool]:
    lines, all_ok = [], True
    for setting in settings:
        m = monotonicity(result["ref"], setting.code)
        all_ok &= m["mean_ssim"]
        ok = "monotone" if m["mean_ssim"] and m["mean_psnr"] else "NOT monotone"
        ssim_word = "decreasing" if m["mean_ssim"] else "NOT decreasing"
        lines.append(f"{setting.class_name:12s} {ok:13s} mean SSIM {ssim_word}, "
                     f"mean PSNR {'decreasing' if m['mean_psnr'] else 'NOT decreasing'}; per slice strictly "
                     f"decreasing: SSIM {100 * m['slice_ssim']:.0f} %, PSNR {100 * m['slice_psnr']:.0f} %")
    return lines, all_ok


def plot(result: dict, settings, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [("single degradations", [s for s in settings if not s.is_mixture]),
              ("mixtures", [s for s in settings if s.is_mixture])]
    groups = [g for g in groups if g[1]]
    fig, axes = plt.subplots(len(groups), 2, figsize=(11, 4.2 * len(groups)), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row, (title, members) in enumerate(groups):
        for col, (metric, index, paper_index) in enumerate((("PSNR (dB)", 0, 0), ("SSIM", 1, 2))):
            ax = axes[row][col]
            for k, s in enumerate(members):
                ours = [np.mean(result["ref"][(s.code, lv)][index]) for lv in LEVELS]
                paper = [PAPER_TABLE10[s.code][lv][paper_index] for lv in LEVELS]
                ax.plot(LEVELS, ours, "-o", color=colours[k], label=f"{s.class_name} ours")
                ax.plot(LEVELS, paper, "--x", color=colours[k], label=f"{s.class_name} paper")
            ax.set_xticks(LEVELS, [f"L{lv}" for lv in LEVELS])
            ax.set_xlabel("severity level")
            ax.set_ylabel(metric)
            ax.set_title(f"{title}: {metric} vs reference")
            ax.grid(alpha=0.3)
        axes[row][1].legend(fontsize=7, ncol=2)
    fig.suptitle(f"ours (solid) vs paper Table 10 (dashed); window [{WINDOW_HU[0]:g}, {WINDOW_HU[1]:g}] HU -> [0, 1]")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------ main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ct-dir", type=Path, default=SHARED_CT, help="folder of NIfTI CT volumes (HU)")
    parser.add_argument("--slices-per-series", type=int, default=3)
    parser.add_argument("--min-body-fraction", type=float, default=0.10,
                        help="skip slices with fewer pixels above -500 HU than this fraction")
    parser.add_argument("--settings", nargs="*", default=None, help="setting codes (default: all ten)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--out", type=Path, default=None, help="folder for table10.md and table10.png")
    parser.add_argument("--dicom", type=Path, default=None,
                        help="a DICOM folder (e.g. ../shared/ct-tcga-lung) measured instead of --ct-dir")
    parser.add_argument("--dicom-slices", type=int, default=12, help="evenly spaced slices of --dicom")
    parser.add_argument("--filter", default=None, help="FBP filter (SimulationConfig.fbp_filter); default: the default")
    parser.add_argument("--json", type=Path, default=None, help="write the per-slice metrics to this JSON file")
    args = parser.parse_args(argv)
    if args.slices_per_series < 1:
        raise ValueError(f"--slices-per-series must be >= 1, got {args.slices_per_series}")
    torch.set_num_threads(args.threads)
    settings = SETTINGS if not args.settings else tuple(s for s in SETTINGS if s.code in set(args.settings))
    if args.settings and len(settings) != len(set(args.settings)):
        raise ValueError(f"unknown setting code in {args.settings}; expected codes of {[s.code for s in SETTINGS]}")

    start = time.perf_counter()
    if args.dicom is not None:
        slices, lines = select_dicom(args.dicom, args.dicom_slices, args.min_body_fraction)
    else:
        slices, lines = select_slices(args.ct_dir, args.slices_per_series, args.min_body_fraction)
    config = SimulationConfig(seed=args.seed, **({} if args.filter is None else {"fbp_filter": args.filter}))
    simulator = Simulator(config)
    print(f"Table 10 from our simulator: {len(slices)} slices of {args.ct_dir}, {IMAGE_SIZE} x {IMAGE_SIZE}")
    for line in lines:
        print("  " + line)
    print(f"simulator: {config.to_dict()}, torch threads {torch.get_num_threads()}")
    result = measure(slices, simulator, settings)

    conventions = (f"Window [{WINDOW_HU[0]:g}, {WINDOW_HU[1]:g}] HU -> [0, 1] (clipped), data_range {DATA_RANGE:g}, "
                   f"skimage PSNR / SSIM (7x7 uniform window); mean ± sample std over {len(slices)} slices. "
                   "'ours': against the reference (the original slice), as the paper; 'vs FBP': against the "
                   "clean FBP of the same slice.")
    (fp, fps), (fs, fss) = (mean_std(v) for v in result["floor"])
    floor = f"Floor (clean FBP vs reference): PSNR {fp:.2f}±{fps:.2f} dB, SSIM {fs:.4f}±{fss:.4f}"
    counts = (f"int16 clipped pixels: {result['clip_count']}; sinogram bins floored before the log: "
              f"{result['clamped_bins']}")
    rows = format_rows(result, settings)
    verdicts, ok = verdict_lines(result, settings)
    print()
    print(conventions)
    print(floor)
    print(counts)
    print()
    print(text_table(rows))
    print()
    print("Monotonicity (against the reference):")
    for line in verdicts:
        print("  " + line)
    print(f"\n{'all settings monotone in mean SSIM' if ok else 'FAIL: a setting is not monotone in mean SSIM'}; "
          f"{time.perf_counter() - start:.0f} s")

    if args.json is not None:
        import json
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "slices": [s.reference_id for s in slices], "config": config.to_dict(),
            "floor": [v.tolist() for v in result["floor"]],
            "ref": {f"{code} L{lv}": [v.tolist() for v in vals] for (code, lv), vals in result["ref"].items()},
            "fbp": {f"{code} L{lv}": [v.tolist() for v in vals] for (code, lv), vals in result["fbp"].items()},
            "clip_count": int(result["clip_count"]), "clamped_bins": int(result["clamped_bins"])}))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        md = "\n\n".join(["# Table 10 from the CT-DegradBench simulator", conventions, floor, counts,
                          markdown_table(rows), "Monotonicity (against the reference):\n\n"
                          + "\n".join(f"- {v}" for v in verdicts), "Slices:\n\n" + "\n".join(f"- {v}" for v in lines)])
        (args.out / "table10.md").write_text(md + "\n")
        plot(result, settings, args.out / "table10.png")
        print(f"wrote {args.out / 'table10.md'} and {args.out / 'table10.png'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
