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
from ctdegradbench.builder.degradations.record import make_component
from ctdegradbench.builder.simulate.settings import ALIASING, check_level, severity_value


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

    def component(self, order: int) -> dict:
        """This subsampling as a metadata component (no random draws, so no seed)."""
        return make_component(type=ALIASING, level=self.level, order=order, n_views=int(self.n_views))

    @classmethod
    def from_component(cls, component: dict) -> "AliasingParams":
        return cls(level=component["level"], n_views=int(component["n_views"]))


def sample_aliasing(level: int) -> AliasingParams:
    """Sparse-view parameters of severity ``level``: ``N`` from the severity table (deterministic)."""
    return AliasingParams(level=check_level(level), n_views=int(severity_value(ALIASING, level)))


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
