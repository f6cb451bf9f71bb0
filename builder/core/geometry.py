"""Parallel-beam acquisition geometry, kept apart from the projector that uses it.

Conventions (stated once, used everywhere):

* The image is an ``N x N`` grid of square pixels of side ``pixel_spacing_mm``; array
  index ``[row, col]``; the rotation centre is pixel ``[N // 2, N // 2]`` and the
  detector centre is bin ``n_detectors // 2`` (scikit-image's convention for
  ``radon``/``iradon``, so our sinograms and reconstructions line up with theirs).
* A ray at angle ``theta`` hits detector position ``t = x cos(theta) - y sin(theta)``
  (in pixels) where ``x = col - N // 2`` and ``y = row - N // 2`` (rows grow downwards).
* ``n_views`` projection angles are spread uniformly over ``[0, 180)`` degrees:
  ``theta_k = k * 180 / n_views``.
* The detector has ``n_detectors`` bins of width ``pixel_spacing_mm`` (one bin per
  pixel width), centred on the rotation axis; the default count
  ``ceil(sqrt(2) * N)`` covers the image diagonal so no ray through the grid is lost.
* Sinograms are arrays of shape ``(..., n_views, n_detectors)``: views along the
  second-to-last axis, detector bins along the last axis (scikit-image's ``radon``
  returns the transpose, ``(n_detectors, n_views)``).
* Sparse-view acquisitions (aliasing, paper Eq. 11) use a subset of the full views:
  ``view_subset(n)`` returns every ``360 / n``-th view of the 360, so 180, 90, 60 and
  45 views are exact subsets of the full scan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_N_VIEWS = 360


def default_detector_count(image_size: int) -> int:
    """Number of detector bins covering the diagonal of an ``image_size`` grid."""
    return math.ceil(math.sqrt(2) * image_size)


@dataclass(frozen=True)
class ParallelBeamGeometry:
    """A 2-D parallel-beam scan of an ``image_size x image_size`` slice.

    Parameters
    ----------
    image_size : int
        Side ``N`` of the square image grid, in pixels (at least 16).
    pixel_spacing_mm : float
        Side of one pixel in millimetres; also the width of one detector bin. Line
        integrals computed on this geometry are in the units of ``mu`` times mm.
    n_views : int, default 360
        Number of projection angles, uniformly spread over ``[0, 180)`` degrees.
    n_detectors : int or None, default None
        Number of detector bins; ``None`` means ``ceil(sqrt(2) * image_size)``.
    """

    image_size: int
    pixel_spacing_mm: float = 1.0
    n_views: int = DEFAULT_N_VIEWS
    n_detectors: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.image_size, (int, np.integer)) or self.image_size < 16:
            raise ValueError(f"image_size must be an integer >= 16 pixels, got {self.image_size!r}")
        if not (isinstance(self.pixel_spacing_mm, (int, float, np.floating)) and
                math.isfinite(self.pixel_spacing_mm) and self.pixel_spacing_mm > 0):
            raise ValueError(f"pixel_spacing_mm must be a positive finite number of mm, got {self.pixel_spacing_mm!r}")
        if not isinstance(self.n_views, (int, np.integer)) or self.n_views < 1:
            raise ValueError(f"n_views must be a positive integer, got {self.n_views!r}")
        if self.n_detectors is None:
            object.__setattr__(self, "n_detectors", default_detector_count(int(self.image_size)))
        elif not isinstance(self.n_detectors, (int, np.integer)) or self.n_detectors < self.image_size:
            raise ValueError(
                f"n_detectors must be an integer >= image_size ({self.image_size}), got {self.n_detectors!r}")

    @property
    def angles_deg(self) -> np.ndarray:
        """Projection angles in degrees, ``k * 180 / n_views`` for ``k = 0 .. n_views - 1``."""
        return np.arange(self.n_views, dtype=np.float64) * (180.0 / self.n_views)

    @property
    def angles_rad(self) -> np.ndarray:
        """Projection angles in radians."""
        return np.deg2rad(self.angles_deg)

    @property
    def detector_positions_mm(self) -> np.ndarray:
        """Signed distance of each detector-bin centre from the rotation axis, in mm."""
        centre = self.n_detectors // 2
        return (np.arange(self.n_detectors, dtype=np.float64) - centre) * self.pixel_spacing_mm

    @property
    def sinogram_shape(self) -> tuple[int, int]:
        """``(n_views, n_detectors)``."""
        return (self.n_views, int(self.n_detectors))

    def view_subset(self, n_views: int) -> np.ndarray:
        """Indices of an evenly spaced subset of ``n_views`` of this geometry's views.

        ``n_views`` must divide ``self.n_views`` (so 180, 90, 60 and 45 of 360 are exact
        subsets); the subset always starts at view 0.
        """
        if not isinstance(n_views, (int, np.integer)) or n_views < 1 or self.n_views % n_views:
            raise ValueError(
                f"sparse-view count must be a positive divisor of {self.n_views}, got {n_views!r}")
        return np.arange(0, self.n_views, self.n_views // n_views)

    def to_dict(self) -> dict:
        """Plain-typed description, stored in every sample's metadata."""
        return {
            "image_size": int(self.image_size),
            "pixel_spacing_mm": float(self.pixel_spacing_mm),
            "n_views": int(self.n_views),
            "n_detectors": int(self.n_detectors),
        }
