"""Streaks: photon starvation along the most attenuating paths (paper Eq. 10).

Physics. A detector bin behind a line integral ``s`` counts on average ``N = I0 exp(-s)``
photons. On the most attenuating paths (laterally through the shoulders or the pelvis,
paper Table 8) a low tube current leaves only a few photons: the reading is Poisson counts
plus the electronic noise of the detector, floored at zero, and its log is both noisy and
biased (``E[log N] < log E[N]``, and a floor of ``delta`` counts reads too little
attenuation when almost nothing arrives). FBP smears each wrong ray back along its line:
grainy bright and dark streaks along the most attenuating directions, strongest behind the
densest paths, whose amplitude follows the photon count. We model exactly that on the
paper's mask (Eq. 10)::

    s_streak = s + M * e,   e = -log((max(Poisson(N) + sigma_e z, 0) + delta) / N),
    N = N_star * exp(-(s - s_threshold))

* ``M`` (binary, ``(V, D)``) selects the starved rays: every ray whose clean line integral is
  at least the ``1 - streak_fraction`` quantile of the line integrals of the rays that cross
  the object (``s > 0``); the threshold ``s_threshold`` is that ray's value. At a fixed tube
  current starvation sets in at the highest line integrals first, whatever the anatomy; a
  fixed fraction of the object's rays keeps a level comparable between a head and a pelvis.
* ``N`` is the mean photon count of a starved ray (per detector bin and view): ``N_star`` on
  the least attenuated starved ray (the threshold), ``e`` times fewer per unit of line
  integral beyond it. **The severity level is ``N_star``** (:data:`STARVED_PHOTONS_LEVELS`,
  24 / 10.5 / 1.2 / 0.29 photons): calibrated (Monte Carlo, ``tests/test_degradations.py``)
  so that the RMS line-integral error of the threshold ray is the paper's ``dL`` =
  0.25 / 0.5 / 1 / 2 (:data:`DELTA_L_LEVELS`, recorded as ``delta_l``). At L2-L3 the log's
  bias dominates (dark streaks: the floor reads too few photons as too little attenuation).
* ``sigma_e^2`` and ``delta`` are the detector's electronic noise variance and log floor, the
  noise operator's (Eq. 6-7; ``SimulationConfig.electronic_variance``, ``.delta``).
* Draws: ``numpy_generator(seed)``: Poisson counts of the starved rays (row-major order),
  then one standard normal each. Replay recomputes ``M`` from the recorded threshold and
  the reference's clean sinogram.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ctdegradbench.core.levels import check_level
from ctdegradbench.builder.core.protocol import DEFAULT_DELTA, DEFAULT_ELECTRONIC_VARIANCE, DEFAULT_STREAK_FRACTION
from ctdegradbench.builder.core.seeding import check_seed, numpy_generator
from ctdegradbench.builder.degradations.base import Degradation, SinogramState, register

# The paper's Eq. 10 amplitudes dL at L0..L3 (line-integral units): here the RMS error of the
# threshold ray's line integral, which the photon levels below are calibrated to.
DELTA_L_LEVELS = (0.25, 0.5, 1.0, 2.0)
# Mean photons per detector bin and view on the least attenuated starved ray at L0..L3 (the
# severity parameter), with electronic noise 10 counts^2 and a 1-count log floor:
# RMS(e) = 0.25 / 0.5 / 1.0 / 2.0 (Monte Carlo, 4e5 draws each).
STARVED_PHOTONS_LEVELS = (24.0, 10.5, 1.2, 0.29)



def _positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not math.isfinite(value) \
            or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class StreakParams:
    """Photon-starvation streaks.

    Attributes
    ----------
    level : int
        Severity level 0..3.
    photons : float
        ``N_star``: mean photons per detector bin and view on the least attenuated starved ray, > 0.
    fraction : float
        Fraction of the object's rays that are starved, in (0, 1].
    threshold : float
        Clean line integral at and above which a ray is starved (the mask ``M``).
    electronic_variance : float
        Electronic noise variance of a reading, counts^2, >= 0.
    delta : float
        Floor added to the reading before the log, counts, > 0.
    seed : int
        Seed of the counts and the electronic noise.
    """

    level: int
    photons: float
    fraction: float
    threshold: float
    electronic_variance: float
    delta: float
    seed: int

    def __post_init__(self) -> None:
        check_level(self.level)
        _positive(self.photons, "photons")
        if not 0 < _positive(self.fraction, "fraction") <= 1:
            raise ValueError(f"fraction (starved rays) must be in (0, 1], got {self.fraction!r}")
        if not math.isfinite(self.threshold):
            raise ValueError(f"threshold must be a finite line integral, got {self.threshold!r}")
        v = self.electronic_variance
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ValueError(f"electronic_variance must be a finite number of counts^2 >= 0, got {v!r}")
        _positive(self.delta, "delta")
        check_seed(self.seed)

    @property
    def delta_l(self) -> float:
        """The paper's nominal amplitude of this level (RMS error of the threshold ray)."""
        return DELTA_L_LEVELS[self.level]


def starvation_threshold(sinogram, fraction: float) -> float:
    """The line integral of the ``ceil(fraction * n)``-th highest of the ``n`` rays with ``s > 0``."""
    s = sinogram.detach().cpu().numpy() if isinstance(sinogram, torch.Tensor) else np.asarray(sinogram)
    values = s[s > 0]
    if values.size == 0:
        raise ValueError("the sinogram has no ray through the object (an empty slice?); streaks need one")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
    k = max(1, math.ceil(fraction * values.size))
    return float(np.partition(values, values.size - k)[values.size - k])


def sample_streak(level: int, sinogram, pixel_spacing_mm: float, *, seed: int,
                  fraction: float = DEFAULT_STREAK_FRACTION, threshold: float | None = None,
                  electronic_variance: float = DEFAULT_ELECTRONIC_VARIANCE,
                  delta: float = DEFAULT_DELTA) -> StreakParams:
    """Streak parameters of severity ``level`` on a clean sinogram ``(V, D)`` (see the module docstring).

    ``threshold``: ``starvation_threshold(sinogram, fraction)`` when already known (it depends on
    the reference only, so the operator computes it once per reference). The counts are drawn
    by :func:`streak_errors` from ``seed`` when the operator runs.
    """
    check_level(level)
    _positive(pixel_spacing_mm, "pixel_spacing_mm")
    if threshold is None:
        threshold = starvation_threshold(sinogram, float(fraction))
    return StreakParams(level=level, photons=STARVED_PHOTONS_LEVELS[level], fraction=float(fraction),
                        threshold=float(threshold), electronic_variance=float(electronic_variance),
                        delta=float(delta), seed=check_seed(seed))


def starved_photons(clean: np.ndarray, params: StreakParams) -> np.ndarray:
    """Mean photons ``N = N_star exp(-(s - threshold))`` of the starved rays (``clean >= threshold``), row-major."""
    s = np.asarray(clean)
    return params.photons * np.exp(-(s[s >= params.threshold].astype(np.float64) - params.threshold))


def streak_errors(clean, params: StreakParams) -> np.ndarray:
    """``M * e`` ``(V, D)`` float64: the starved rays' line-integral errors (module docstring), 0 elsewhere."""
    s = clean.detach().cpu().numpy() if isinstance(clean, torch.Tensor) else np.asarray(clean)
    mask = s >= params.threshold
    mean = starved_photons(s, params)
    rng = numpy_generator(params.seed)
    counts = rng.poisson(mean)
    reading = np.maximum(counts + math.sqrt(params.electronic_variance) * rng.standard_normal(mean.shape), 0.0)
    errors = np.zeros(s.shape, dtype=np.float64)
    errors[mask] = -np.log((reading + params.delta) / mean)
    return errors


def streak_mask(sinogram: torch.Tensor, params: StreakParams) -> torch.Tensor:
    """The binary mask ``M`` (1 on the starved rays) of a clean sinogram, same dtype and device."""
    return (sinogram >= params.threshold).to(sinogram.dtype)


def apply_streak(sinogram: torch.Tensor, clean: torch.Tensor, params: StreakParams) -> torch.Tensor:
    """``s + M e``: ``sinogram`` ``(V, D)`` on all views, ``M`` and ``N`` from the ``clean`` sinogram."""
    if not isinstance(sinogram, torch.Tensor) or not sinogram.is_floating_point():
        raise ValueError(f"sinogram must be a floating-point torch.Tensor, got {type(sinogram).__name__}")
    if tuple(clean.shape) != tuple(sinogram.shape[-2:]):
        raise ValueError(f"clean sinogram shape {tuple(clean.shape)} differs from {tuple(sinogram.shape)}")
    errors = torch.as_tensor(streak_errors(clean, params), device=sinogram.device, dtype=sinogram.dtype)
    return sinogram + errors


@register
class Streak(Degradation):
    """Photon-starvation streaks on the most attenuating rays (paper Eq. 10); see the module docstring."""

    name = "streak"
    title = "streak artifacts"
    parameter = "streak_photons"
    unit = "mean photons per detector bin and view on the least attenuated starved ray"
    levels = STARVED_PHOTONS_LEVELS
    fields = {
        "streak_photons": ("float", "mean photons per bin and view on the least attenuated starved ray (the severity)"),
        "delta_l": ("float", "the paper's Eq. 10 amplitude of the level: RMS line-integral error of that ray"),
        "streak_fraction": ("float", "fraction of the object's rays that are starved (the highest line integrals)"),
        "streak_threshold": ("float", "clean line integral at and above which a ray is starved (the mask M)"),
        "streak_electronic_variance": ("float", "electronic noise variance of a starved reading, counts^2"),
        "streak_delta": ("float", "floor added to a starved reading before the log, counts"),
    }
    physics = (
        "**Streaks** (photon starvation, Eq. 10). A ray behind a line integral `s` counts about `I0 exp(-s)` "
        "photons, so the longest paths (laterally through shoulders or pelvis) starve first. The mask `M` "
        "selects the starved rays, those with the highest clean line integrals (the top `streak_fraction` of "
        "the object's rays). Each starved ray's reading is Poisson counts of mean `N = N_star exp(-(s - s_M))` "
        "plus electronic noise, floored, then logged: its line integral errs with the noise and the bias of "
        "the log of few counts, more for the more attenuating rays. A level is the photon count `N_star` of "
        "the least attenuated starved ray, 24 / 10.5 / 1.2 / 0.29 photons per bin and view, calibrated so that "
        "its RMS line-integral error is the paper's `dL` = 0.25 / 0.5 / 1 / 2. FBP turns the errors into "
        "grainy bright and dark streaks along the most attenuating directions.")

    def sample(self, level, context, seed, config) -> StreakParams:
        key = ("streak/threshold", float(config.streak_fraction))
        if key not in context.cache:       # the same for every level and realization of the reference
            context.cache[key] = starvation_threshold(context.sinogram, float(config.streak_fraction))
        return sample_streak(level, context.sinogram, context.geometry.pixel_spacing_mm, seed=seed,
                             fraction=config.streak_fraction, threshold=context.cache[key],
                             electronic_variance=config.electronic_variance, delta=config.delta)

    def apply(self, state: SinogramState, params: StreakParams, context) -> SinogramState:
        if state.views is not None:
            raise ValueError("streak errors index the full scan's views; apply them before aliasing")
        return state.replace(sinogram=apply_streak(state.sinogram, context.sinogram, params))

    def record(self, params: StreakParams, context) -> dict:
        return {"seed": params.seed, "streak_photons": float(params.photons), "delta_l": float(params.delta_l),
                "streak_fraction": float(params.fraction), "streak_threshold": float(params.threshold),
                "streak_electronic_variance": float(params.electronic_variance),
                "streak_delta": float(params.delta)}

    def params_from_record(self, record: dict) -> StreakParams:
        return StreakParams(level=record["level"], photons=record["streak_photons"],
                            fraction=record["streak_fraction"], threshold=record["streak_threshold"],
                            electronic_variance=record["streak_electronic_variance"],
                            delta=record["streak_delta"], seed=record["seed"])

    def phrase(self, record: dict, geometry: dict) -> str:
        return (f"photon-starvation streaks: the {100 * float(record['streak_fraction']):g} % most attenuating "
                f"rays starved to {float(record['streak_photons']):g} photons or fewer per detector bin and view "
                f"(line-integral error about {float(record['delta_l']):g})")
