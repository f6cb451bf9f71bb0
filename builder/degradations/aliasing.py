"""Aliasing: sparse-view acquisition (paper Eq. 11).

Physics. FBP needs the angular sampling to match the detector sampling (about
``pi / 2 * N`` views for an ``N``-pixel object); with fewer views the backprojected
lines no longer fill in between each other, and every edge sends out a fan of fine
streaks (view aliasing) that grows as the view count drops. We keep ``N`` evenly spaced
views of the full scan::

    s_N = R_{Theta_N}(mu),     N in {180, 90, 60, 45} of 360 views

``Theta_N`` is ``geometry.view_subset(N)``: every ``360 / N``-th view, starting at view 0,
so the sparse scan is an exact subset of the full one (the same rays, fewer of them), and
FBP reconstructs it with ``views=`` those indices (its angular weight ``pi / (2 N)`` keeps
the HU scale). ``N`` equal to the full view count is the identity. Nothing is random.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ctdegradbench.builder.core.geometry import ParallelBeamGeometry
from ctdegradbench.core.levels import check_level
from ctdegradbench.builder.degradations.base import Degradation, SinogramState, register

VIEW_LEVELS = (180, 90, 60, 45)     # views kept of the 360 at L0..L3 (paper Eq. 11)


@dataclass(frozen=True)
class AliasingParams:
    """Sparse-view subsampling.

    Attributes
    ----------
    level : int
        Severity level 0..3.
    n_views : int
        Views kept of the full scan; must divide the full view count.
    """

    level: int
    n_views: int

    def __post_init__(self) -> None:
        check_level(self.level)
        n = self.n_views
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n_views must be a positive integer number of views, got {n!r}")


def sample_aliasing(level: int) -> AliasingParams:
    """Sparse-view parameters of severity ``level``: ``N`` from the severity table (deterministic)."""
    return AliasingParams(level=level, n_views=VIEW_LEVELS[check_level(level)])


def aliasing_views(params: AliasingParams, geometry: ParallelBeamGeometry) -> np.ndarray:
    """Indices of the kept views, ``geometry.view_subset(n_views)`` (ValueError if it does not divide)."""
    return geometry.view_subset(int(params.n_views))


def apply_aliasing(sinogram: torch.Tensor, params: AliasingParams,
                   geometry: ParallelBeamGeometry) -> tuple[torch.Tensor, np.ndarray]:
    """Keep the sparse views of a full-scan sinogram ``(..., V, D)``.

    Returns the sparse sinogram ``(..., N, D)`` and the kept view indices, to pass to
    ``projector.fbp(..., views=indices)``.
    """
    if not isinstance(sinogram, torch.Tensor) or not sinogram.is_floating_point():
        raise ValueError(f"sinogram must be a floating-point torch.Tensor, got {type(sinogram).__name__}")
    if sinogram.shape[-2] != geometry.n_views:
        raise ValueError(f"aliasing subsamples a full scan of {geometry.n_views} views, "
                         f"got a sinogram of shape {tuple(sinogram.shape)}")
    views = aliasing_views(params, geometry)
    return sinogram[..., torch.as_tensor(views, device=sinogram.device), :], views


@register
class Aliasing(Degradation):
    """Sparse-view aliasing (paper Eq. 11); see the module docstring."""

    name = "aliasing"
    title = "aliasing artifacts"
    parameter = "n_views"
    unit = "views of 360"
    levels = VIEW_LEVELS
    fields = {"n_views": ("int", "number of views kept of the full scan")}
    physics = (
        "**Aliasing** (sparse views, Eq. 11). FBP needs about `pi/2 N` views for an `N`-pixel object; with "
        "fewer, every edge sends out a fan of fine streaks. The scan keeps `N` evenly spaced views of the "
        "full scan (every `360/N`-th, starting at view 0: the same rays, fewer of them) and FBP reconstructs "
        "them with the angular weight `pi/(2N)`.")

    def sample(self, level, context, seed, config) -> AliasingParams:
        return sample_aliasing(level)

    def apply(self, state: SinogramState, params: AliasingParams, context) -> SinogramState:
        if state.views is not None:
            raise ValueError("aliasing can be applied once per sample")
        sparse, views = apply_aliasing(state.sinogram, params, context.geometry)
        return state.replace(sinogram=sparse, views=views)

    def record(self, params: AliasingParams, context) -> dict:
        return {"n_views": int(params.n_views)}

    def params_from_record(self, record: dict) -> AliasingParams:
        return AliasingParams(level=record["level"], n_views=int(record["n_views"]))

    def phrase(self, record: dict, geometry: dict) -> str:
        return f"sparse-view aliasing from {int(record['n_views'])} of {int(geometry['n_views'])} views"
