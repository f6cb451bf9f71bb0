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

Acquisition sampling (how a scanner measures, not how a grid is sampled). A detector bin
does not read the line integral at its centre: it integrates the x-rays over its aperture,
and in a continuously rotating gantry each view integrates over the angle the gantry turns
while it is read. So the measurement of view ``k``, bin ``c`` is the average of the line
integrals over the box ``t in [c - a/2, c + a/2]`` bins (``a = detector_aperture``, a
fraction of the bin pitch) and ``theta in [theta_k - w/2, theta_k + w/2] * 180 / n_views``
degrees (``w = view_integration``, a fraction of the view interval). ``a = w = 1`` is an
integrating detector with no dead space on a continuously rotating gantry (the default);
``a = w = 0`` is point sampling at the bin centre and the view angle, scikit-image's
``radon`` model. The angular average is computed by the midpoint rule over
``view_subsamples`` sub-angles (see the projector backends for the aperture). Without the
two integrals, sharp high-contrast edges (metal, bone, skin) alias into fine moire at 360
views, an artifact of the simulation that no scanner shows.

A sparse-view scan keeps the full scan's integration interval per view: its views are
exact subsets of the 360, each exposed over the same half degree (sparse-view CT lowers the
dose by pulsing the tube on at fewer angles, not by integrating longer per view).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_N_VIEWS = 360
DEFAULT_DETECTOR_APERTURE = 1.0    # integrating detector, no dead space between bins
DEFAULT_VIEW_INTEGRATION = 1.0     # continuous rotation: a view integrates its whole interval
DEFAULT_VIEW_SUBSAMPLES = 4        # midpoint-rule sub-angles per view


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
    detector_aperture : float, default 1.0
        Width of each bin's sensitive aperture as a fraction of the bin pitch, in [0, 1]:
        the bin reads the mean line integral over that width (0: point sampling).
    view_integration : float, default 1.0
        Fraction of the view interval ``180 / n_views`` degrees over which each view
        integrates, in [0, 1] (1: continuous rotation; 0: an instantaneous view).
    view_subsamples : int, default 4
        Sub-angles of the midpoint rule for the view integration (forced to 1 when
        ``view_integration`` is 0).
    """

    image_size: int
    pixel_spacing_mm: float = 1.0
    n_views: int = DEFAULT_N_VIEWS
    n_detectors: int | None = None
    detector_aperture: float = DEFAULT_DETECTOR_APERTURE
    view_integration: float = DEFAULT_VIEW_INTEGRATION
    view_subsamples: int = DEFAULT_VIEW_SUBSAMPLES

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
        for name in ("detector_aperture", "view_integration"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a fraction in [0, 1], got {value!r}")
            object.__setattr__(self, name, float(value))
        subsamples = self.view_subsamples
        if isinstance(subsamples, bool) or not isinstance(subsamples, (int, np.integer)) or subsamples < 1:
            raise ValueError(f"view_subsamples must be a positive integer, got {subsamples!r}")
        object.__setattr__(self, "view_subsamples", int(subsamples) if self.view_integration > 0 else 1)

    @property
    def angles_deg(self) -> np.ndarray:
        """Projection angles in degrees, ``k * 180 / n_views`` for ``k = 0 .. n_views - 1``."""
        return np.arange(self.n_views, dtype=np.float64) * (180.0 / self.n_views)

    @property
    def angles_rad(self) -> np.ndarray:
        """Projection angles in radians."""
        return np.deg2rad(self.angles_deg)

    @property
    def view_interval_rad(self) -> float:
        """Angle between consecutive views, ``pi / n_views`` radians."""
        return math.pi / self.n_views

    @property
    def subangle_offsets_rad(self) -> np.ndarray:
        """Offsets of the view-integration sub-angles from each view angle (radians), midpoints
        of ``view_subsamples`` equal parts of ``[-w/2, w/2] * pi / n_views``."""
        s = self.view_subsamples
        width = self.view_integration * self.view_interval_rad
        return ((np.arange(s, dtype=np.float64) + 0.5) / s - 0.5) * width

    @property
    def subangles_rad(self) -> np.ndarray:
        """``(n_views, view_subsamples)``: the sub-angles of every view, radians."""
        return self.angles_rad[:, None] + self.subangle_offsets_rad[None, :]

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
            "detector_aperture": float(self.detector_aperture),
            "view_integration": float(self.view_integration),
            "view_subsamples": int(self.view_subsamples),
        }

    @classmethod
    def point_sampling(cls, image_size: int, pixel_spacing_mm: float = 1.0, **kwargs) -> "ParallelBeamGeometry":
        """The geometry with point samples at bin centres and view angles (scikit-image's model)."""
        return cls(image_size, pixel_spacing_mm, detector_aperture=0.0, view_integration=0.0, **kwargs)
