"""Loss of sharpness: Gaussian blur of the sinogram along the detector axis (paper Eq. 9).

Physics. The finite detector aperture, cross-talk between neighbouring cells and the
focal spot spread each ray over neighbouring detector bins; the detector response is the
dominant resolution loss of a CT scanner, and it acts along the detector, not across
views. We model it as a 1-D Gaussian point-spread function of standard deviation
``sigma`` detector bins::

    s_blur[v, d] = sum_k g[k] * s[v, d - k],   g[k] ∝ exp(-k^2 / (2 sigma^2)),  sum_k g[k] = 1

with ``k`` running over ``-r .. r``, ``r = int(4 * sigma + 0.5)`` (the kernel of
``scipy.ndimage.gaussian_filter1d`` with ``truncate=4``). Bins beyond the detector read 0
(air), so each view's sum (the object's total attenuation seen in that view) is conserved
as long as the object's shadow stays ``r`` bins away from the detector edges, which the
default detector (``ceil(sqrt(2) N)`` bins) guarantees for anything inside the image
circle. ``sigma = 0`` is the identity. The FBP then turns the detector blur into an
in-plane loss of resolution (a lower MTF).

There is nothing random in this operator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ctdegradbench.builder.core.levels import check_level
from ctdegradbench.builder.degradations.base import Degradation, SinogramState, register

SIGMA_LEVELS = (0.8, 1.0, 1.5, 2.5)     # Gaussian sigma in detector bins at L0..L3 (paper Eq. 9)

TRUNCATE_SIGMAS = 4.0   # kernel half-width in standard deviations (as scipy's default)


@dataclass(frozen=True)
class BlurParams:
    """Detector-axis blur.

    Attributes
    ----------
    level : int
        Severity level 0..3.
    sigma_bins : float
        Gaussian standard deviation in detector bins, >= 0 (0 is the identity).
    """

    level: int
    sigma_bins: float

    def __post_init__(self) -> None:
        check_level(self.level)
        s = self.sigma_bins
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s < 0:
            raise ValueError(f"sigma_bins must be a finite number >= 0 detector bins, got {s!r}")


def sample_blur(level: int) -> BlurParams:
    """Blur parameters of severity ``level``: ``sigma`` from the severity table (deterministic)."""
    return BlurParams(level=level, sigma_bins=SIGMA_LEVELS[check_level(level)])


def gaussian_kernel(sigma_bins: float) -> list[float]:
    """Normalised sampled Gaussian of ``sigma_bins``, ``2 r + 1`` taps, ``r = int(4 sigma + 0.5)``."""
    if sigma_bins == 0:
        return [1.0]
    radius = int(TRUNCATE_SIGMAS * sigma_bins + 0.5)
    taps = [math.exp(-0.5 * (k / sigma_bins) ** 2) for k in range(-radius, radius + 1)]
    total = math.fsum(taps)
    return [t / total for t in taps]


def apply_blur(sinogram: torch.Tensor, params: BlurParams) -> torch.Tensor:
    """Blur each view along the detector axis (last axis) on the sinogram's device and dtype.

    Computed as a fixed-order weighted sum of shifted copies (not a library convolution
    whose algorithm may vary), so the result is deterministic on every device.
    """
    if not isinstance(sinogram, torch.Tensor) or not sinogram.is_floating_point():
        raise ValueError(f"sinogram must be a floating-point torch.Tensor, got {type(sinogram).__name__}")
    kernel = gaussian_kernel(float(params.sigma_bins))
    if len(kernel) == 1:
        return sinogram.clone()
    radius = len(kernel) // 2
    d = sinogram.shape[-1]
    padded = F.pad(sinogram, (radius, radius))
    out = torch.zeros_like(sinogram)
    # out[d] = sum_k g[k] s[d - k]; padded[j] = s[j - radius], so s[d - k] = padded[d - k + radius].
    for index, weight in enumerate(kernel):
        start = radius - (index - radius)
        out.add_(padded[..., start:start + d], alpha=weight)
    return out


@register
class Blur(Degradation):
    """Loss of sharpness: detector-axis Gaussian blur (paper Eq. 9); see the module docstring."""

    name = "blur"
    title = "loss of sharpness"
    parameter = "sigma_bins"
    unit = "detector bins"
    levels = SIGMA_LEVELS
    fields = {"sigma_bins": ("float", "Gaussian blur sigma along the detector axis, in detector bins")}
    physics = (
        "**Loss of sharpness** (Eq. 9). The detector aperture, cross-talk and the focal spot spread each "
        "ray over neighbouring bins; this acts along the detector, not across views. Each view is "
        "convolved with a normalised Gaussian of standard deviation `sigma` along the detector axis "
        "(truncated at 4 sigma; bins beyond the detector read air), which FBP turns into an in-plane loss "
        "of resolution.")

    def sample(self, level, context, seed, config) -> BlurParams:
        return sample_blur(level)

    def apply(self, state: SinogramState, params: BlurParams, context) -> SinogramState:
        return state.replace(sinogram=apply_blur(state.sinogram, params))

    def record(self, params: BlurParams, context) -> dict:
        return {"sigma_bins": float(params.sigma_bins)}

    def params_from_record(self, record: dict) -> BlurParams:
        return BlurParams(level=record["level"], sigma_bins=record["sigma_bins"])

    def phrase(self, record: dict, geometry: dict) -> str:
        return f"loss of sharpness from a detector blur of sigma {float(record['sigma_bins']):g} bins"
