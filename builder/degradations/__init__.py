"""The degradation operators, one physical cause per module (paper Section 2.3, Eq. 5-12).

Every operator acts on line integrals (the sinogram, ``(..., V, D)``) before FBP and has

* a frozen parameter dataclass holding every drawn value and its seed
  (``.component(order)`` gives the metadata record, ``.from_component(dict)`` rebuilds it),
* a sampler ``sample_<type>(level, ...)`` that draws the random parts only from the
  generator or seed it is given, and
* a deterministic ``apply_<type>(sinogram, params, ...)`` in torch on the sinogram's
  device and dtype.

==========  =================  =========================================================
module      cause              operator
==========  =================  =========================================================
noise       low photon counts  mixed Poisson-Gaussian counts, log, residual scaling gamma
blur        detector response  1-D Gaussian along the detector axis, sigma in bins
streak      photon starvation  s + dL * M, M a seeded set of outlier runs in the shadow
aliasing    sparse views       keep N evenly spaced views of the 360
metal       metal implants     metal inserted in the attenuation map (``metal.py``)
==========  =================  =========================================================
"""

from ctdegradbench.builder.degradations.aliasing import AliasingParams, aliasing_views, apply_aliasing, sample_aliasing
from ctdegradbench.builder.degradations.blur import BlurParams, apply_blur, gaussian_kernel, sample_blur
from ctdegradbench.builder.degradations.metal import MetalContext, MetalParams, MetalSimulator, metal_bbox, metal_mask, sample_metal
from ctdegradbench.builder.degradations.noise import (DEFAULT_DELTA, DEFAULT_DOSE_FRACTION, DEFAULT_ELECTRONIC_VARIANCE, DEFAULT_I0, NoiseParams,
                    apply_noise, sample_noise)
from ctdegradbench.builder.degradations.streak import DEFAULT_STREAK_RUNS, StreakParams, apply_streak, sample_streak, streak_mask, thick_shadow

__all__ = [
    "AliasingParams", "aliasing_views", "apply_aliasing", "sample_aliasing",
    "BlurParams", "apply_blur", "gaussian_kernel", "sample_blur",
    "MetalContext", "MetalParams", "MetalSimulator", "metal_bbox", "metal_mask", "sample_metal",
    "DEFAULT_DELTA", "DEFAULT_DOSE_FRACTION", "DEFAULT_ELECTRONIC_VARIANCE", "DEFAULT_I0", "NoiseParams",
    "apply_noise", "sample_noise",
    "DEFAULT_STREAK_RUNS", "StreakParams", "apply_streak", "sample_streak", "streak_mask", "thick_shadow",
]
