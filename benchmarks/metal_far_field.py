"""Far-field error of a metal disk on real slices, noise-free, and the noise it competes with.

For each slice (the middle body slice of every series of ``--ct-dir``), a steel disk of 3 mm
(L0) and 15 mm (L3) at the same anatomical disk position (the simulator's placement for the
"disk" implant), scanned by the polychromatic metal model without noise; the error is the
metal scan's FBP minus the metal-free polychromatic scan's FBP (same kernel), and we report
its RMS over the body pixels farther than ``--far-mm`` (40 mm) from the metal. The same
slices' S1 L0 noise (SD of the noisy FBP minus the clean FBP in soft tissue, the HU noise
that L0 adds) is printed next to it.

This is the noise-free component view; what users get are the dataset rows, measured by
``benchmarks/physics_rows.py`` on a build (S5 image minus ``clean_fbp`` against the S1 noise).

Run it with the current library, and with an older checkout first on ``PYTHONPATH`` to get
the "before" numbers (the script adapts to the older ``MetalParams``)::

    python benchmarks/metal_far_field.py
    PYTHONPATH=/path/to/old/package python benchmarks/metal_far_field.py
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from ctdegradbench.core.hu import mu_to_hu
from ctdegradbench.builder.degradations import metal as metal_module
from ctdegradbench.builder.simulate.config import SimulationConfig
from ctdegradbench.builder.simulate.simulator import Simulator
from ctdegradbench.builder.sources import load_source

ROOT = Path(__file__).resolve().parents[1]
SOFT_TISSUE_HU = (-50.0, 150.0)


def disk_params(diameter: float, centre, seed: int = 1):
    fields = inspect.signature(metal_module.MetalParams).parameters
    if "objects" in fields:                                   # this version: implants
        obj = metal_module.MetalObject("ellipse", centre, diameter, diameter)
        return metal_module.MetalParams(level=0, implant="disk", metal_mm=diameter, material="steel",
                                        objects=(obj,), model="polychromatic", seed=seed, i0=2e7)
    return metal_module.MetalParams(level=0, diameter_mm=diameter, center_px=centre, material="steel",
                                    model="polychromatic", seed=seed)


def disk_centre(hu, spacing):
    """A body position 15 mm + 2 mm inside tissue, the same for both sizes (first candidate by seed 0)."""
    from scipy.ndimage import distance_transform_edt, gaussian_filter, binary_fill_holes, label
    smooth = gaussian_filter(hu.astype(np.float64), 1.0)
    labels, _ = label(smooth > -300)
    sizes = np.bincount(labels.ravel()); sizes[0] = 0
    body = binary_fill_holes(labels == np.argmax(sizes))
    air = ~body | (smooth < -400)
    distance = distance_transform_edt(np.pad(~air, 1))[1:-1, 1:-1] * spacing
    candidates = np.argwhere(distance >= 7.5 + 2.0)
    row, col = candidates[np.random.default_rng(0).integers(len(candidates))]
    return (float(row), float(col)), body


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ct-dir", type=Path, default=ROOT.parent / "shared" / "ct")
    parser.add_argument("--far-mm", type=float, default=40.0)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    config = SimulationConfig()
    simulator = Simulator(config)
    print(f"library {metal_module.__file__}; FBP filter {config.fbp_filter}")
    rows = []
    for path in sorted(args.ct_dir.glob("*.nii.gz")):
        slices = load_source(path, nifti_axes="LPS", min_body_fraction=0.1, max_slices=3).slices
        ref = slices[len(slices) // 2]
        spacing = float(ref.pixel_spacing_mm)
        prepared = simulator.prepare(ref)
        projector = prepared.projector
        msim = metal_module.MetalSimulator(projector)
        ctx = msim.prepare(ref.hu)
        centre, body = disk_centre(ref.hu, spacing)
        clean = mu_to_hu(projector.fbp(msim.noiseless_sinogram(ctx), filter_name=config.fbp_filter)).numpy()
        errors = []
        for diameter in (3.0, 15.0):
            p = disk_params(diameter, centre)
            image = mu_to_hu(projector.fbp(msim.noiseless_sinogram(ctx, p), filter_name=config.fbp_filter)).numpy()
            mask = np.hypot(*(np.mgrid[:ref.image_size, :ref.image_size] - np.array(centre)[:, None, None])) \
                <= 0.5 * diameter / spacing
            far = body & (ndimage.distance_transform_edt(~mask) * spacing > args.far_mm)
            errors.append(float(np.sqrt(np.mean((image - clean)[far] ** 2))))
        noisy = simulator.run(prepared, settings=["S1"], levels=(0,))[0].image_hu.astype(np.float64)
        smooth = ndimage.uniform_filter(ref.hu.astype(np.float64), 7)
        soft = ndimage.binary_erosion((smooth >= SOFT_TISSUE_HU[0]) & (smooth <= SOFT_TISSUE_HU[1]), iterations=3)
        noise = float(np.std((noisy - prepared.clean_fbp_hu)[soft]))
        rows.append((ref.reference_id, spacing, *errors, noise))
        print(f"{ref.reference_id:75s} {spacing:.3f} mm: far-field RMS 3 mm {errors[0]:6.1f} HU, "
              f"15 mm {errors[1]:6.1f} HU; S1 L0 noise SD {noise:5.1f} HU", flush=True)
    e3, e15, sd = (np.mean([r[i] for r in rows]) for i in (2, 3, 4))
    print(f"mean over {len(rows)} slices: far-field RMS (> {args.far_mm:g} mm, noise-free) 3 mm steel {e3:.1f} HU, "
          f"15 mm steel {e15:.1f} HU; S1 L0 added noise SD {sd:.1f} HU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
