"""The simulator's scan protocol: the named choices and default values of the options that
``SimulationConfig`` exposes, one place each (the operators that use them import them from here).

Pure constants (no numpy, no torch), so that a command can declare its options and answer
``--help`` without importing the physics. The physics of each value is documented where it acts:

- quantum and electronic noise (``degradations/noise.py``, paper Eq. 5-7): photons per mm of
  detector and view at full dose, the low-dose fraction alpha, the electronic variance sigma_e^2
  in counts^2 and the log stabiliser delta in counts;
- photon starvation (``degradations/streak.py``, Eq. 10): the fraction of the object's rays
  that are starved, the same at every level;
- metal (``degradations/metal.py``, ``implants.py``, ``spectrum.py``, Eq. 11-12): the physics
  model, the implant, the disk's metal and the photons of the polychromatic scan;
- reconstruction and projection (``projector/``): the FBP ramp filters and projector backends.
"""

from __future__ import annotations

# Floating types of the simulation (``SimulationConfig.dtype``).
DTYPE_NAMES: tuple[str, ...] = ("float32", "float64")

# Projector backends (``ParallelBeamProjector(backend=...)``) and FBP ramp filters.
BACKENDS: tuple[str, ...] = ("interp", "nufft")
FILTERS: tuple[str, ...] = ("ram-lak", "shepp-logan", "hann")
DEFAULT_FBP_FILTER = "ram-lak"

# Noise (Eq. 5-7).
DEFAULT_I0_PER_MM = 9.1e6            # photons per mm of detector (at the isocentre) and view, full dose
DEFAULT_DOSE_FRACTION = 0.25         # alpha: quarter dose
DEFAULT_ELECTRONIC_VARIANCE = 10.0   # sigma_e^2, counts^2 (noise, starvation and metal scans)
DEFAULT_DELTA = 1.0                  # log stabiliser, counts

# Photon starvation (Eq. 10): fraction of the object's rays (s > 0) that are starved, the same at
# every level; set from Table 10 (benchmarks/table10.py): 2 % of the rays made S3 L0 some 12 dB
# worse than the paper.
DEFAULT_STREAK_FRACTION = 0.002

# Metal (Eq. 11-12).
IMPLANT_TYPES: tuple[str, ...] = ("disk", "hip_pair", "spine_screws", "dental", "clip")
ANATOMICAL = "anatomical"            # choose the implant from what the slice shows
IMPLANT_CHOICES: tuple[str, ...] = (ANATOMICAL,) + IMPLANT_TYPES
DEFAULT_IMPLANT = ANATOMICAL
METAL_MODELS: tuple[str, ...] = ("polychromatic", "monochromatic")
METAL_MATERIALS: tuple[str, ...] = ("steel", "titanium")          # choices for the disk implant
DEFAULT_METAL_I0_PER_MM = 2.9e7      # photons per mm of detector (isocentre) and view of the metal scan
