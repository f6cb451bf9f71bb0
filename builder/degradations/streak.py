"""Streaks: photon starvation along the most attenuating paths (paper Eq. 10).

Physics. A detector bin behind a line integral ``s`` counts on average ``N = I0 exp(-s)``
photons, so the relative quantum noise of its reading, ``1 / sqrt(N)``, grows as
``exp(s / 2)``: the rays with the highest line integrals (the longest paths through the
patient, laterally through the shoulders or the pelvis, paper Table 8) are the first to be
starved when the tube current is too low for them. Their log-transformed readings carry
large errors of either sign, and FBP smears each wrong ray back along its line: clinical
photon-starvation streaks are bright and dark lines, alternating and noisy, running in the
directions of highest attenuation. We model that as::

    s_streak = s + dL * M * e,        dL in {0.25, 0.5, 1, 2}  (line-integral units)

* ``M`` (binary, ``(V, D)``) selects the starved rays: every ray whose clean line integral is
  at least the ``1 - streak_fraction`` quantile of the line integrals of the rays that cross
  the object (``s > 0``); the threshold is that ray's value, recorded as ``threshold``. It
  follows from the physics above: at a fixed tube current, starvation sets in at the
  highest line integrals first, whatever the anatomy; a fixed fraction of the object's rays
  (rather than a fixed count threshold) keeps the severity of a level comparable between a
  head and a pelvis, whose longest paths differ by orders of magnitude in transmission.
* ``e = +-1`` is the sign of each starved reading's error, drawn per view and per detector
  *cell* of ``cell_mm`` millimetres at the isocentre (independent quantum noise per physical
  detector cell; ``cell_mm / pixel_spacing`` bins, recorded as ``cell_bins``), uniformly and
  independently (numpy PCG64 from the component seed). So ``|s_streak - s| = dL`` exactly
  on the starved rays, as in Eq. 10, with the alternating sign of noise.

``dL`` keeps the paper's meaning and values; ``M`` has the same law at every level, so the
severity is set by ``dL`` alone; ``dL = 0`` is the identity. Replay recomputes ``M`` from
the recorded threshold and the reference's clean sinogram, and ``e`` from the seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ctdegradbench.builder.core.levels import check_level
from ctdegradbench.builder.core.seeding import check_seed, numpy_generator
from ctdegradbench.builder.degradations.base import Degradation, SinogramState, register

DELTA_L_LEVELS = (0.25, 0.5, 1.0, 2.0)   # outlier amplitude in line-integral units at L0..L3 (paper Eq. 10)

# Fraction of the object's rays (s > 0) that are starved: the same at every level; the value
# was set from Table 10 (benchmarks/table10.py): 2 % of the rays made S3 L0 some 12 dB worse than the paper.
DEFAULT_STREAK_FRACTION = 0.002
# Width at the isocentre of one detector cell whose reading errs as one (independent quantum
# noise per cell): about the cell pitch at the isocentre of a clinical 64-row scanner.
DEFAULT_CELL_MM = 1.0


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
    delta_l : float
        Error magnitude of a starved ray's line integral (dimensionless), >= 0.
    fraction : float
        Fraction of the object's rays that are starved, in (0, 1].
    threshold : float
        Clean line integral at and above which a ray is starved (the mask ``M``).
    cell_mm : float
        Width at the isocentre of a detector cell with one error sign.
    cell_bins : float
        The same in detector bins of this scan.
    seed : int
        Seed of the signs.
    """

    level: int
    delta_l: float
    fraction: float
    threshold: float
    cell_mm: float
    cell_bins: float
    seed: int

    def __post_init__(self) -> None:
        check_level(self.level)
        d = self.delta_l
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d) or d < 0:
            raise ValueError(f"delta_l (streak amplitude, line-integral units) must be a finite number >= 0, got {d!r}")
        if not 0 < _positive(self.fraction, "fraction") <= 1:
            raise ValueError(f"fraction (starved rays) must be in (0, 1], got {self.fraction!r}")
        if not math.isfinite(self.threshold):
            raise ValueError(f"threshold must be a finite line integral, got {self.threshold!r}")
        _positive(self.cell_mm, "cell_mm")
        _positive(self.cell_bins, "cell_bins")
        check_seed(self.seed)


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
                  fraction: float = DEFAULT_STREAK_FRACTION, cell_mm: float = DEFAULT_CELL_MM,
                  threshold: float | None = None) -> StreakParams:
    """Streak parameters of severity ``level`` on a clean sinogram ``(V, D)`` (see the module docstring).

    ``threshold``: ``starvation_threshold(sinogram, fraction)`` when already known (it depends on
    the reference only, so the operator computes it once per reference). The signs are drawn by
    :func:`streak_signs` from ``seed`` when the operator runs.
    """
    check_level(level)
    spacing = _positive(pixel_spacing_mm, "pixel_spacing_mm")
    if threshold is None:
        threshold = starvation_threshold(sinogram, float(fraction))
    return StreakParams(level=level, delta_l=DELTA_L_LEVELS[level], fraction=float(fraction),
                        threshold=float(threshold), cell_mm=float(cell_mm),
                        cell_bins=_positive(cell_mm, "cell_mm") / spacing, seed=check_seed(seed))


def cell_index(n_detectors: int, cell_bins: float) -> np.ndarray:
    """Detector cell of every bin: ``floor((bin - D // 2 + 0.5) / cell_bins)``, shifted to start at 0."""
    centre = (np.arange(n_detectors) - n_detectors // 2 + 0.5) / cell_bins
    index = np.floor(centre).astype(np.int64)
    return index - index.min()


def streak_signs(params: StreakParams, shape: tuple[int, int]) -> np.ndarray:
    """``e``: +-1 per view and detector cell, ``(V, D)`` float64, from ``numpy_generator(seed)``."""
    n_views, n_det = shape
    cells = cell_index(n_det, params.cell_bins)
    draws = numpy_generator(params.seed).integers(0, 2, size=(n_views, int(cells.max()) + 1))
    return (2.0 * draws - 1.0)[:, cells]


def streak_mask(sinogram: torch.Tensor, params: StreakParams) -> torch.Tensor:
    """The binary mask ``M`` (1 on the starved rays) of a clean sinogram, same dtype and device."""
    return (sinogram >= params.threshold).to(sinogram.dtype)


def apply_streak(sinogram: torch.Tensor, clean: torch.Tensor, params: StreakParams) -> torch.Tensor:
    """``s + dL * M * e``: ``sinogram`` ``(V, D)`` on all views, ``M`` from the ``clean`` sinogram."""
    if not isinstance(sinogram, torch.Tensor) or not sinogram.is_floating_point():
        raise ValueError(f"sinogram must be a floating-point torch.Tensor, got {type(sinogram).__name__}")
    if tuple(clean.shape) != tuple(sinogram.shape[-2:]):
        raise ValueError(f"clean sinogram shape {tuple(clean.shape)} differs from {tuple(sinogram.shape)}")
    signs = torch.as_tensor(streak_signs(params, tuple(clean.shape)), device=sinogram.device, dtype=sinogram.dtype)
    return sinogram + params.delta_l * streak_mask(clean, params) * signs


@register
class Streak(Degradation):
    """Photon-starvation streaks on the most attenuating rays (paper Eq. 10); see the module docstring."""

    name = "streak"
    title = "streak artifacts"
    parameter = "delta_l"
    unit = "line-integral units"
    levels = DELTA_L_LEVELS
    fields = {
        "delta_l": ("float", "error magnitude of each starved ray's line integral (Eq. 10's dL)"),
        "streak_fraction": ("float", "fraction of the object's rays that are starved (the highest line integrals)"),
        "streak_threshold": ("float", "clean line integral at and above which a ray is starved (the mask M)"),
        "streak_cell_mm": ("float", "detector cell width at the isocentre with one error sign, in mm"),
        "streak_cell_bins": ("float", "the same in detector bins of this scan"),
    }
    physics = (
        "**Streaks** (photon starvation, Eq. 10). A ray behind a line integral `s` counts about `I0 exp(-s)` "
        "photons, so its relative noise grows as `exp(s/2)`: the longest paths (laterally through shoulders or "
        "pelvis) starve first. The mask `M` selects the starved rays, those with the highest clean line "
        "integrals (the top `streak_fraction` of the object's rays), and each starved reading errs by `dL` "
        "with a random sign per view and per 1 mm detector cell: `s + dL M e`. FBP turns them into the "
        "alternating bright and dark streaks along the most attenuating directions.")

    def sample(self, level, context, seed, config) -> StreakParams:
        key = ("streak/threshold", float(config.streak_fraction))
        if key not in context.cache:       # the same for every level and realization of the reference
            context.cache[key] = starvation_threshold(context.sinogram, float(config.streak_fraction))
        return sample_streak(level, context.sinogram, context.geometry.pixel_spacing_mm, seed=seed,
                             fraction=config.streak_fraction, threshold=context.cache[key])

    def apply(self, state: SinogramState, params: StreakParams, context) -> SinogramState:
        if state.views is not None:
            raise ValueError("streak errors index the full scan's views; apply them before aliasing")
        return state.replace(sinogram=apply_streak(state.sinogram, context.sinogram, params))

    def record(self, params: StreakParams, context) -> dict:
        return {"seed": params.seed, "delta_l": float(params.delta_l), "streak_fraction": float(params.fraction),
                "streak_threshold": float(params.threshold), "streak_cell_mm": float(params.cell_mm),
                "streak_cell_bins": float(params.cell_bins)}

    def params_from_record(self, record: dict) -> StreakParams:
        return StreakParams(level=record["level"], delta_l=record["delta_l"], fraction=record["streak_fraction"],
                            threshold=record["streak_threshold"], cell_mm=record["streak_cell_mm"],
                            cell_bins=record["streak_cell_bins"], seed=record["seed"])

    def phrase(self, record: dict, geometry: dict) -> str:
        return (f"photon-starvation streaks: the {100 * float(record['streak_fraction']):g} % most attenuating "
                f"rays err by +-{float(record['delta_l']):g} in line integral (random sign per view and "
                f"{float(record['streak_cell_mm']):g} mm detector cell)")
