"""Ring artifacts: per-detector-element gain errors (opt-in; outside the paper's ten settings).

Physics. Every detector element converts the x-rays it receives into signal with its own
gain. The scanner divides each reading by an air (flat-field) calibration, so only the
*residual* relative gain error left after calibration reaches the data: drift since the
calibration, temperature, radiation damage or a defective element. An element ``d`` with
residual error ``eps_d`` multiplies its reading by ``1 + eps_d`` in every view, before the
log::

    I'_d(theta) = (1 + eps_d) I_d(theta)        s'_d(theta) = s_d(theta) - log(1 + eps_d)

The same offset at the same detector position in every view backprojects onto the circle
of radius ``|t_d|`` around the rotation axis: a ring (on this 180-degree parallel scan each
element draws half a ring, the element at ``-t_d`` the other half). Errors of neighbouring
elements are independent, so the rings are fine and concentric, strongest near the centre
of rotation where few elements share a radius.

Sampling law. ``eps_d ~ N(0, sigma^2)``, independent per element, drawn from the component
seed (numpy PCG64) when the operator runs; ``sigma`` is the severity: residual gain-error
SD of 0.25 / 0.5 / 1 / 2 % at L0..L3 (a well-calibrated clinical detector stays near or
below the mildest; a detector far from its last calibration reaches the strongest). The
record holds ``sigma`` and the seed, so replay redraws the same gains. ``sigma = 0`` is the
identity.

In a mixture, apply it before noise: the gain acts on the signal the photons produce, and
photon noise is drawn on the gained reading.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ctdegradbench.core.levels import check_level
from ctdegradbench.builder.core.seeding import check_seed, numpy_generator
from ctdegradbench.builder.degradations.base import Degradation, SinogramState, register

GAIN_SD_LEVELS = (0.0025, 0.005, 0.01, 0.02)   # residual relative gain-error SD at L0..L3
MIN_GAIN = 0.5    # gains are kept above this (a 25-sigma draw at the strongest level)


@dataclass(frozen=True)
class RingParams:
    """Detector gain errors.

    Attributes
    ----------
    level : int
        Severity level 0..3.
    gain_sd : float
        SD ``sigma`` of the relative gain errors, >= 0.
    seed : int
        Seed of the generator that draws one error per detector element.
    """

    level: int
    gain_sd: float
    seed: int

    def __post_init__(self) -> None:
        check_level(self.level)
        if not (isinstance(self.gain_sd, (int, float)) and math.isfinite(self.gain_sd) and self.gain_sd >= 0):
            raise ValueError(f"gain_sd must be a finite number >= 0, got {self.gain_sd!r}")
        check_seed(self.seed)


def detector_gains(params: RingParams, n_detectors: int) -> np.ndarray:
    """The relative gains ``1 + eps_d`` of the ``n_detectors`` elements (float64)."""
    eps = params.gain_sd * numpy_generator(params.seed).standard_normal(n_detectors)
    return np.maximum(1.0 + eps, MIN_GAIN)


def apply_ring(sinogram: torch.Tensor, params: RingParams) -> torch.Tensor:
    """``s - log(gain_d)`` for every view of a sinogram ``(..., V, D)``, on its device and dtype."""
    gains = detector_gains(params, sinogram.shape[-1])
    offset = torch.as_tensor(np.log(gains), dtype=sinogram.dtype, device=sinogram.device)
    return sinogram - offset


@register
class Ring(Degradation):
    """Ring artifacts from residual detector gain errors; see the module docstring."""

    name = "ring"
    title = "ring artifacts"
    parameter = "gain_sd"
    unit = "relative gain-error SD"
    levels = GAIN_SD_LEVELS
    fields = {"gain_sd": ("float", "SD of the residual relative gain error of each detector element")}
    physics = (
        "**Ring artifacts** (opt-in, outside the paper). Each detector element keeps a residual relative gain "
        "error `eps_d ~ N(0, sigma^2)` after the air calibration, which multiplies its reading in every view "
        "before the log (`s' = s - log(1 + eps_d)`); the constant offset of one element backprojects onto a "
        "circle around the rotation axis. `sigma` = 0.25 / 0.5 / 1 / 2 % at L0..L3.")

    def sample(self, level, context, seed, config) -> RingParams:
        return RingParams(level=level, gain_sd=self.value(level), seed=seed)

    def apply(self, state: SinogramState, params: RingParams, context) -> SinogramState:
        return state.replace(sinogram=apply_ring(state.sinogram, params))

    def record(self, params: RingParams, context) -> dict:
        return {"seed": params.seed, "gain_sd": float(params.gain_sd)}

    def params_from_record(self, record: dict) -> RingParams:
        return RingParams(level=record["level"], gain_sd=record["gain_sd"], seed=record["seed"])

    def phrase(self, record: dict, geometry: dict) -> str:
        return f"ring artifacts from detector gain errors of SD {100 * float(record['gain_sd']):g}%"
