"""MTF of the loss-of-sharpness levels in line pairs per mm, on series of different pixel spacing.

For a slice of each requested series, the clean sinogram is blurred with the level's
detector blur (``sigma_mm``) and both are reconstructed (float, noise-free, default kernel).
By the Fourier slice theorem a detector-axis filter ``G(nu)`` multiplies the image spectrum
by ``G(|k|)``, so the blur's MTF is ``sqrt(P_blur / P_clean)`` of the radially binned image
power spectra. We print it at 0.1-0.5 lp/mm next to ``exp(-2 pi^2 sigma_mm^2 f^2)``, and the
total MTF50 of the blurred image (the clean scan's own resolution, set by the pixel grid
and kernel, included), for each series.

    python benchmarks/mtf_blur.py            # the 0.56 mm and the 0.98 mm series of ../shared/ct, S2 L2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from ctdegradbench.builder.degradations.blur import apply_blur, measured_mtf, sample_blur
from ctdegradbench.builder.simulate.config import SimulationConfig
from ctdegradbench.builder.simulate.simulator import Simulator
from ctdegradbench.builder.sources import load_source

ROOT = Path(__file__).resolve().parents[1]
SERIES = ("dlwpt_cptac_lscc__C3N-00247_lung_B70f.nii.gz", "itkelastix__series_00.nii.gz")
FREQUENCIES = (0.1, 0.2, 0.3, 0.4, 0.5)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ct-dir", type=Path, default=ROOT.parent / "shared" / "ct")
    parser.add_argument("--level", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    simulator = Simulator(SimulationConfig())
    for name in SERIES:
        slices = load_source(args.ct_dir / name, nifti_axes="LPS", min_body_fraction=0.1, max_slices=3).slices
        ref = slices[len(slices) // 2]
        prepared = simulator.prepare(ref)
        spacing = float(ref.pixel_spacing_mm)
        params = sample_blur(args.level, spacing)
        images = prepared.projector.fbp(torch.stack([prepared.sinogram, apply_blur(prepared.sinogram, params)]),
                                        filter_name=simulator.config.fbp_filter).numpy().astype(np.float64)
        measured = measured_mtf(images[0], images[1], spacing, FREQUENCIES)
        theory = [float(np.exp(-2 * np.pi ** 2 * params.sigma_mm ** 2 * f ** 2)) for f in FREQUENCIES]
        print(f"{name} ({spacing:.3f} mm pixels, Nyquist {0.5 / spacing:.2f} lp/mm): S2 L{args.level} sigma "
              f"{params.sigma_mm:g} mm = {params.sigma_bins:.2f} bins")
        print("  f (lp/mm)      " + " ".join(f"{f:6.2f}" for f in FREQUENCIES))
        print("  blur MTF       " + " ".join(f"{m:6.3f}" for m in measured))
        print("  exp(-2pi^2s^2f^2)" + " ".join(f"{m:6.3f}" for m in theory)[2:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
