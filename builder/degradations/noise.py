"""Noise: low-dose photon noise, mixed Poisson-Gaussian (paper Eq. 5-8, after Zeng et al. 2015).

Physics. A detector bin behind a line integral ``s`` (dimensionless: ``mu`` in 1/mm times
path length in mm) receives on average ``alpha * I0 * exp(-s)`` photons, where ``I0`` is the
incident flux per detector bin and view at full dose and ``alpha`` the dose fraction. The
flux is set in physical units, ``I0 = i0_per_mm * pixel_spacing_mm`` (photons per mm of
detector width at the isocentre and per view, times the bin width), so a level is the same
dose on every series: a coarser pixel grid collects more photons per bin and its image is
less noisy, as on a scanner reconstructing a larger field of view at the same dose. The
count is Poisson (quantum noise, Eq. 5), the read-out adds Gaussian electronic noise of
variance ``sigma_e^2`` counts^2 (Eq. 6), and the log transform with a stabiliser ``delta``
gives the noisy line integral (Eq. 7)::

    K  ~ Poisson(alpha * I0 * exp(-s))
    K' = K + N(0, sigma_e^2)
    s_noisy = -log((max(K', 0) + delta) / (alpha * I0))
    s_noisy^gamma = s + gamma * (s_noisy - s)                       (Eq. 8)

Eq. 8 scales the residual, so the image noise standard deviation grows linearly with
``gamma`` (variance as ``gamma^2``) while its texture (the FBP-filtered, spatially
correlated noise of a low-dose scan) is kept. ``gamma = 0`` returns ``s`` exactly.

Effective dose. The quantum noise of ``s_noisy`` has variance ``1 / (alpha I0 exp(-s))``
(first order in the log), so Eq. 8's ``gamma^2 / (alpha I0 exp(-s))`` is the quantum
noise of a scan at the dose fraction ``alpha / gamma^2`` (:func:`effective_dose_fraction`):
with ``alpha = 1/4``, the levels are 1/4, 1/16, 1/25 and 1/64 of the full dose. (The
electronic part does not follow: it is scaled by ``gamma^2`` instead of ``gamma^4``; it
matters only in starved bins.)

Negative readings. Where ``K'`` is negative (a starved bin whose electronic noise pulled
the reading below zero; ``K' + delta`` could then be non-positive and the log undefined),
``K'`` is set to 0 before adding ``delta``: such a bin reads ``delta`` counts, i.e. at most
``log(alpha * I0 / delta)`` of attenuation. The number of such bins is returned by
:func:`apply_noise` and recorded in the sample metadata (``clamped_bins``); with the
default flux it is 0 on patient slices and non-zero only behind dense metal.

Default parameters (configurable through ``SimulationConfig``):

* ``i0_per_mm`` (:data:`DEFAULT_I0_PER_MM`) photons per mm of detector and view at full
  dose, ``alpha = 0.25`` (quarter dose, the dose fraction of the AAPM Mayo low-dose
  challenge). It was first calibrated per bin (``I0 = 6.4e6`` per bin of the 0.56-0.98 mm
  pixels of the shared series, Ram-Lak FBP), then set per mm for the default kernel and the
  integrating scan; the measured noise is in the README and ``benchmarks/table10.py``.
  Our scan has 360 views of 1-pixel-wide bins (about 0.6-1 mm), whereas a clinical
  rotation records about 1000-2300 views; what sets the image noise is the flux per bin
  summed over the views, so the per-view flux here is larger than the 1e5-1e6 per view
  Zeng et al. quote for a clinical scanner. The value is calibrated on the image instead.
  Measured on 15 real 512 x 512 slices (3 from each of the 5 shared series; mu_water
  0.0192/mm, line integrals in mm, 360 views, Ram-Lak FBP), the noise added in soft tissue
  (SD of degraded minus clean FBP where the 7-pixel-smoothed reference lies in
  [-50, 150] HU) is, at gamma 1 / 2 / 2.5 / 4, 24 / 49 / 61 / 98 HU on average (median
  18 / 37 / 46 / 75 HU; from 12.5 HU in a thin chest to 48 HU in a large upper abdomen
  at gamma 1). Quarter-dose clinical CT shows roughly 25-40 HU in soft tissue (the
  reference's own noise included), so ``gamma = 1`` is a realistic quarter-dose scan and
  the higher levels are stronger than clinical practice, as a severity scale should be.
* ``sigma_e^2 = 10`` counts^2: the electronic noise variance Zeng et al. use; it matters
  only in starved bins (a few hundred photons or fewer).
* ``delta = 1`` count: the smallest signal a starved bin can report after the clamp
  above; it keeps the log finite and bounds a starved line integral at
  ``log(1.6e6) = 14.3``.

Random draws come from a ``torch.Generator`` on the sinogram's device seeded with the
component seed, so the same seed, device and dtype give identical noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ctdegradbench.core.levels import check_level
from ctdegradbench.builder.core.protocol import (DEFAULT_DELTA, DEFAULT_DOSE_FRACTION, DEFAULT_ELECTRONIC_VARIANCE,
                                                DEFAULT_I0_PER_MM)
from ctdegradbench.builder.core.seeding import check_seed, torch_generator
from ctdegradbench.builder.degradations.base import Degradation, SinogramState, register

GAMMA_LEVELS = (1.0, 2.0, 2.5, 4.0)     # residual noise scaling gamma at L0..L3 (paper Eq. 8)


def effective_dose_fraction(dose_fraction: float, gamma: float) -> float:
    """The dose fraction whose quantum noise equals Eq. 8's at ``gamma``: ``alpha / gamma^2``."""
    if not gamma > 0:
        raise ValueError(f"gamma must be positive for an effective dose, got {gamma!r}")
    return float(dose_fraction) / float(gamma) ** 2


def dose_name(dose_fraction: float) -> str:
    """Plain words for a dose fraction: ``0.25 -> "1/4 of the full dose"``, ``0.3 -> "30% of the full dose"``."""
    fraction = float(dose_fraction)
    if fraction >= 1:
        return "the full dose"
    inverse = 1.0 / fraction
    if abs(inverse - round(inverse)) < 1e-9:
        return f"1/{round(inverse)} of the full dose"
    return f"{100 * fraction:.3g}% of the full dose"


def _finite(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def check_noise_physics(i0, dose_fraction, electronic_variance, delta) -> None:
    """Raise ValueError unless ``I0 > 0``, ``0 < alpha <= 1``, ``sigma_e^2 >= 0`` and ``delta > 0``."""
    if _finite(i0, "i0") <= 0:
        raise ValueError(f"i0 (incident photons per bin, or per mm, and view) must be positive, got {i0!r}")
    if not 0 < _finite(dose_fraction, "dose_fraction") <= 1:
        raise ValueError(f"dose_fraction (alpha) must be in (0, 1], got {dose_fraction!r}")
    if _finite(electronic_variance, "electronic_variance") < 0:
        raise ValueError(f"electronic_variance (counts^2) must be >= 0, got {electronic_variance!r}")
    if _finite(delta, "delta") <= 0:
        raise ValueError(f"delta (log stabiliser, counts) must be positive, got {delta!r}")


@dataclass(frozen=True)
class NoiseParams:
    """Parameters of one noise realisation.

    Attributes
    ----------
    level : int
        Severity level 0..3 (``gamma`` is the table value of that level).
    gamma : float
        Residual noise scaling (Eq. 8), >= 0; 0 is the identity.
    i0 : float
        Incident photons per detector bin and view at full dose (``i0_per_mm`` times the bin width).
    dose_fraction : float
        ``alpha`` in (0, 1]; ``alpha * i0`` photons reach an unattenuated bin.
    electronic_variance : float
        ``sigma_e^2`` in counts^2, >= 0.
    delta : float
        Log stabiliser in counts, > 0.
    seed : int
        Seed of the ``torch.Generator`` that draws the Poisson and Gaussian noise.
    """

    level: int
    gamma: float
    i0: float
    dose_fraction: float
    electronic_variance: float
    delta: float
    seed: int
    i0_per_mm: float | None = None

    def __post_init__(self) -> None:
        check_level(self.level)
        if self.i0_per_mm is not None and _finite(self.i0_per_mm, "i0_per_mm") <= 0:
            raise ValueError(f"i0_per_mm must be positive, got {self.i0_per_mm!r}")
        if _finite(self.gamma, "gamma") < 0:
            raise ValueError(f"gamma (residual noise scaling) must be >= 0, got {self.gamma!r}")
        check_noise_physics(self.i0, self.dose_fraction, self.electronic_variance, self.delta)
        check_seed(self.seed)

    @property
    def photons(self) -> float:
        """``alpha * I0``: photons per unattenuated detector bin and view."""
        return self.i0 * self.dose_fraction


def sample_noise(level: int, *, seed: int, pixel_spacing_mm: float, i0_per_mm: float = DEFAULT_I0_PER_MM,
                 dose_fraction: float = DEFAULT_DOSE_FRACTION,
                 electronic_variance: float = DEFAULT_ELECTRONIC_VARIANCE,
                 delta: float = DEFAULT_DELTA) -> NoiseParams:
    """Noise parameters of severity ``level``: ``gamma`` from the severity table, and the
    photons per bin ``i0 = i0_per_mm * pixel_spacing_mm``.

    The noise itself is the random part; it is drawn in :func:`apply_noise` from ``seed``
    (the component seed), so the parameters hold everything needed to replay it.
    """
    if _finite(pixel_spacing_mm, "pixel_spacing_mm") <= 0:
        raise ValueError(f"pixel_spacing_mm must be positive, got {pixel_spacing_mm!r}")
    return NoiseParams(level=level, gamma=GAMMA_LEVELS[check_level(level)],
                       i0=float(i0_per_mm) * float(pixel_spacing_mm), dose_fraction=float(dose_fraction),
                       electronic_variance=float(electronic_variance), delta=float(delta), seed=check_seed(seed),
                       i0_per_mm=float(i0_per_mm))


def apply_noise(sinogram: torch.Tensor, params: NoiseParams) -> tuple[torch.Tensor, int]:
    """Noisy line integrals (Eq. 5-8) on the sinogram's device and dtype.

    Parameters
    ----------
    sinogram : tensor ``(..., V, D)``
        Clean line integrals (dimensionless); values must be finite.
    params : NoiseParams

    Returns
    -------
    noisy : tensor, same shape, device and dtype
    clamped_bins : int
        Number of bins whose reading ``K'`` was negative and was set to 0 before the log.
    """
    if not isinstance(sinogram, torch.Tensor) or not sinogram.is_floating_point():
        raise ValueError(f"sinogram must be a floating-point torch.Tensor, got {type(sinogram).__name__}")
    if not bool(torch.isfinite(sinogram).all()):
        raise ValueError("sinogram holds non-finite line integrals; expected finite values")
    generator = torch_generator(params.seed, sinogram.device)
    expected = params.photons * torch.exp(-sinogram)
    counts = torch.poisson(expected, generator=generator)
    electronic = torch.randn(sinogram.shape, generator=generator, device=sinogram.device, dtype=sinogram.dtype)
    reading = counts + math.sqrt(params.electronic_variance) * electronic
    negative = reading < 0
    clamped_bins = int(negative.sum())
    reading = torch.where(negative, torch.zeros_like(reading), reading)
    noisy = -torch.log((reading + params.delta) / params.photons)
    return sinogram + params.gamma * (noisy - sinogram), clamped_bins


@register
class Noise(Degradation):
    """Low-dose photon noise (paper Eq. 5-8); see the module docstring."""

    name = "noise"
    title = "noise"
    parameter = "gamma"
    unit = "residual noise scale"
    levels = GAMMA_LEVELS
    fields = {
        "gamma": ("float", "residual noise scaling gamma (Eq. 8)"),
        "i0": ("float", "incident photons per detector bin and view at full dose, I0"),
        "i0_per_mm": ("float", "incident photons per mm of detector and view at full dose (I0 / bin width)"),
        "effective_dose_fraction": ("float", "dose fraction with the same quantum noise, alpha / gamma^2"),
        "dose_fraction": ("float", "dose fraction alpha (Eq. 5)"),
        "electronic_variance": ("float", "electronic noise variance sigma_e^2, in photon counts^2 (Eq. 6)"),
        "delta": ("float", "log stabiliser delta, in photon counts (Eq. 7)"),
    }
    physics = (
        "**Noise** (mixed Poisson-Gaussian, Zeng et al. 2015; Eq. 5-8). Each detector bin counts "
        "`K ~ Poisson(alpha I0 exp(-s))` photons, read out with Gaussian electronic noise of variance "
        "`sigma_e^2`; the noisy line integral is `-log((max(K', 0) + delta) / (alpha I0))`, and its residual "
        "is scaled by `gamma` (Eq. 8), so the image noise SD grows linearly with `gamma`, keeping the "
        "texture of a low-dose scan: the quantum noise of a scan at `alpha / gamma^2` of the full dose "
        "(1/4, 1/16, 1/25, 1/64). The flux is given per mm of detector (`i0_per_mm`; `I0` = that times the "
        "bin width), so a level is the same dose on every series. Readings below zero are floored "
        "(counted in `clamped_bins`).")

    def sample(self, level, context, seed, config) -> NoiseParams:
        return sample_noise(level, seed=seed, pixel_spacing_mm=context.geometry.pixel_spacing_mm,
                            i0_per_mm=config.i0_per_mm, dose_fraction=config.dose_fraction,
                            electronic_variance=config.electronic_variance, delta=config.delta)

    def apply(self, state: SinogramState, params: NoiseParams, context) -> SinogramState:
        noisy, clamped = apply_noise(state.sinogram, params)
        return state.replace(sinogram=noisy, clamped_bins=state.clamped_bins + clamped)

    def record(self, params: NoiseParams, context) -> dict:
        effective = effective_dose_fraction(params.dose_fraction, params.gamma) if params.gamma > 0 else None
        return {"seed": params.seed, "gamma": params.gamma, "i0": params.i0, "i0_per_mm": params.i0_per_mm,
                "dose_fraction": params.dose_fraction, "effective_dose_fraction": effective,
                "electronic_variance": params.electronic_variance, "delta": params.delta}

    def params_from_record(self, record: dict) -> NoiseParams:
        return NoiseParams(level=record["level"], gamma=record["gamma"], i0=record["i0"],
                           dose_fraction=record["dose_fraction"], electronic_variance=record["electronic_variance"],
                           delta=record["delta"], seed=record["seed"], i0_per_mm=record.get("i0_per_mm"))

    def phrase(self, record: dict, geometry: dict) -> str:
        gamma, alpha = float(record["gamma"]), float(record["dose_fraction"])
        if gamma <= 0:
            return "no photon noise (gamma 0)"
        return (f"photon noise at gamma {gamma:g} on a {dose_name(alpha)} scan, the quantum noise of "
                f"{dose_name(effective_dose_fraction(alpha, gamma))} (alpha / gamma^2)")
