"""Loss of sharpness: Gaussian blur of the sinogram along the detector axis (paper Eq. 9).

Physics. The finite detector aperture, cross-talk between neighbouring cells and the
focal spot spread each ray over neighbouring detector bins; the detector response is the
dominant resolution loss of a CT scanner, and it acts along the detector, not across
views. We model it as a 1-D Gaussian point-spread function of standard deviation
``sigma_mm`` millimetres at the isocentre, i.e. ``sigma = sigma_mm / pixel_spacing_mm``
detector bins (a bin is one pixel wide)::

    s_blur[v, d] = sum_k g[k] * s[v, d - k],   g[k] ∝ exp(-k^2 / (2 sigma^2)),  sum_k g[k] = 1

with ``k`` running over ``-r .. r``, ``r = int(4 * sigma + 0.5)`` (the kernel of
``scipy.ndimage.gaussian_filter1d`` with ``truncate=4``). Bins beyond the detector read 0
(air), so each view's sum (the object's total attenuation seen in that view) is conserved
as long as the object's shadow stays ``r`` bins away from the detector edges, which the
default detector (``ceil(sqrt(2) N)`` bins) guarantees for anything inside the image
circle. ``sigma = 0`` is the identity. The FBP then turns the detector blur into an
in-plane loss of resolution: the image MTF is multiplied by ``exp(-2 pi^2 sigma_mm^2 f^2)``
(``f`` in line pairs per mm), the same at every pixel spacing.

Levels. The paper gives ``sigma`` = 0.8 / 1 / 1.5 / 2.5 without a unit, on 512 x 512 slices;
we read them as detector bins of the 0.7 mm pixels of a typical 360 mm abdominal field of
view, i.e. ``sigma_mm`` = 0.56 / 0.7 / 1.05 / 1.75 mm, so that a level is the same detector
blur on any series (the bins it becomes are recorded as ``sigma_bins``).

There is nothing random in this operator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ctdegradbench.core.levels import check_level
from ctdegradbench.builder.degradations.base import Degradation, SinogramState, register

PAPER_SIGMA_BINS = (0.8, 1.0, 1.5, 2.5)   # the paper's Eq. 9 values (bins of its 512 px slices)
PAPER_PIXEL_MM = 0.7                      # pixel of a 360 mm field of view on 512 px
SIGMA_MM_LEVELS = tuple(round(s * PAPER_PIXEL_MM, 4) for s in PAPER_SIGMA_BINS)   # L0..L3, mm

TRUNCATE_SIGMAS = 4.0   # kernel half-width in standard deviations (as scipy's default)


@dataclass(frozen=True)
class BlurParams:
    """Detector-axis blur.

    Attributes
    ----------
    level : int
        Severity level 0..3.
    sigma_bins : float
        The Gaussian standard deviation in detector bins, >= 0 (0 is the identity); the
        operator uses this value.
    sigma_mm : float or None
        The same at the isocentre in mm (``sigma_bins * pixel spacing``); ``None`` when the
        blur was given in bins only.
    """

    level: int
    sigma_bins: float
    sigma_mm: float | None = None

    def __post_init__(self) -> None:
        check_level(self.level)
        for name in ("sigma_bins", "sigma_mm"):
            s = getattr(self, name)
            if s is None and name == "sigma_mm":
                continue
            if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {s!r}")


def sample_blur(level: int, pixel_spacing_mm: float) -> BlurParams:
    """Blur of severity ``level``: ``sigma_mm`` from the severity table, in bins of ``pixel_spacing_mm``."""
    if isinstance(pixel_spacing_mm, bool) or not pixel_spacing_mm > 0:
        raise ValueError(f"pixel_spacing_mm must be a positive number of mm, got {pixel_spacing_mm!r}")
    sigma_mm = SIGMA_MM_LEVELS[check_level(level)]
    return BlurParams(level=level, sigma_bins=sigma_mm / float(pixel_spacing_mm), sigma_mm=sigma_mm)


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


def blur_image(image: torch.Tensor, sigma_bins: float) -> torch.Tensor:
    """The image-plane equivalent of a detector blur of ``sigma_bins``: the same Gaussian taps
    along both image axes (the backprojection of a detector-axis Gaussian is the isotropic
    2-D Gaussian of the same sigma; a bin is one pixel wide). Used for the part of an image
    that is reconstructed apart (the metal's fine views, :class:`builder.degradations.metal.FineViews`)."""
    params = BlurParams(level=0, sigma_bins=float(sigma_bins))
    return apply_blur(apply_blur(image, params).transpose(-2, -1), params).transpose(-2, -1)


@register
class Blur(Degradation):
    """Loss of sharpness: detector-axis Gaussian blur (paper Eq. 9); see the module docstring."""

    name = "blur"
    title = "loss of sharpness"
    parameter = "sigma_mm"
    unit = "mm"
    levels = SIGMA_MM_LEVELS
    fields = {"sigma_mm": ("float", "Gaussian detector blur sigma at the isocentre, in mm"),
              "sigma_bins": ("float", "the same sigma in detector bins of this scan (sigma_mm / pixel spacing)")}
    physics = (
        "**Loss of sharpness** (Eq. 9). The detector aperture, cross-talk and the focal spot spread each "
        "ray over neighbouring bins; this acts along the detector, not across views. Each view is "
        "convolved with a normalised Gaussian of standard deviation `sigma_mm` at the isocentre "
        "(`sigma_mm / pixel spacing` bins; truncated at 4 sigma; bins beyond the detector read air), which "
        "FBP turns into an in-plane loss of resolution: the MTF is multiplied by `exp(-2 pi^2 sigma_mm^2 f^2)` "
        "(f in lp/mm), the same on every series. The paper's 0.8 / 1 / 1.5 / 2.5 are read as bins of 0.7 mm "
        "(a 360 mm field of view on 512 px): 0.56 / 0.7 / 1.05 / 1.75 mm.")

    def sample(self, level, context, seed, config) -> BlurParams:
        return sample_blur(level, context.geometry.pixel_spacing_mm)

    def apply(self, state: SinogramState, params: BlurParams, context) -> SinogramState:
        fine_views = None if state.fine_views is None else state.fine_views.blurred(params.sigma_bins)
        return state.replace(sinogram=apply_blur(state.sinogram, params), fine_views=fine_views)

    def record(self, params: BlurParams, context) -> dict:
        return {"sigma_mm": None if params.sigma_mm is None else float(params.sigma_mm),
                "sigma_bins": float(params.sigma_bins)}

    def params_from_record(self, record: dict) -> BlurParams:
        return BlurParams(level=record["level"], sigma_bins=record["sigma_bins"], sigma_mm=record["sigma_mm"])

    def phrase(self, record: dict, geometry: dict) -> str:
        if record.get("sigma_mm") is None:
            return f"loss of sharpness from a detector blur of sigma {float(record['sigma_bins']):g} bins"
        return (f"loss of sharpness from a detector blur of sigma {float(record['sigma_mm']):g} mm "
                f"({float(record['sigma_bins']):.2f} detector bins)")


def radial_power(image, spacing: float, edges) -> "np.ndarray":
    """Power of the (Hann-windowed, mean-removed) 2-D spectrum of ``image`` summed in rings of
    spatial frequency ``edges`` (line pairs per mm; ``spacing`` in mm per pixel)."""
    import numpy as np

    n = image.shape[0]
    window = np.outer(np.hanning(n), np.hanning(n))
    power = np.abs(np.fft.fft2((image - image.mean()) * window)) ** 2
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(n, spacing), np.fft.fftfreq(n, spacing)))
    return np.array([power[(f >= lo) & (f < hi)].sum() for lo, hi in zip(edges[:-1], edges[1:])])


def measured_mtf(clean, blurred, spacing: float, frequencies, ring: float = 0.01) -> list[float]:
    """The blur's MTF measured from a clean and a blurred FBP of the same object (square arrays,
    ``spacing`` mm per pixel): ``sqrt(power(blurred) / power(clean))`` in a ring of half-width
    ``ring`` lp/mm around each frequency (lp/mm). Expected: ``exp(-2 pi^2 sigma_mm^2 f^2)``."""
    import numpy as np

    out = []
    for f in frequencies:
        edges = np.array([f - ring, f + ring])
        out.append(float(np.sqrt(radial_power(blurred, spacing, edges)[0] / radial_power(clean, spacing, edges)[0])))
    return out
