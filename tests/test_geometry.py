"""ParallelBeamGeometry: defaults, conventions, sparse-view subsets, input checking."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ctdegradbench.builder.core.geometry import DEFAULT_N_VIEWS, ParallelBeamGeometry, default_detector_count


def test_defaults_cover_the_image_diagonal():
    geometry = ParallelBeamGeometry(512, pixel_spacing_mm=0.7)
    assert geometry.n_views == DEFAULT_N_VIEWS == 360
    assert geometry.n_detectors == default_detector_count(512) == math.ceil(math.sqrt(2) * 512) == 725
    assert geometry.sinogram_shape == (360, 725)
    # Every pixel centre projects onto a detector bin (centre +- half a bin) at every angle.
    half_diagonal_mm = math.sqrt(2) * (512 // 2) * 0.7
    assert np.abs(geometry.detector_positions_mm).max() + 0.5 * 0.7 >= half_diagonal_mm


def test_angles_are_uniform_over_half_turn():
    geometry = ParallelBeamGeometry(64, n_views=360)
    np.testing.assert_allclose(geometry.angles_deg, np.arange(360) * 0.5)
    np.testing.assert_allclose(geometry.angles_rad, np.deg2rad(np.arange(360) * 0.5))
    assert geometry.angles_deg.max() < 180.0


def test_detector_is_centred_on_bin_d_over_2():
    geometry = ParallelBeamGeometry(64, pixel_spacing_mm=0.5)
    positions = geometry.detector_positions_mm
    assert positions[geometry.n_detectors // 2] == 0.0
    np.testing.assert_allclose(np.diff(positions), 0.5)


@pytest.mark.parametrize("n_views", [180, 90, 60, 45])
def test_sparse_views_are_exact_subsets(n_views):
    geometry = ParallelBeamGeometry(64)
    subset = geometry.view_subset(n_views)
    assert len(subset) == n_views and subset[0] == 0
    np.testing.assert_array_equal(np.diff(subset), 360 // n_views)
    np.testing.assert_allclose(geometry.angles_deg[subset], np.arange(n_views) * (180.0 / n_views))


@pytest.mark.parametrize("bad", [0, 7, 361, -45, 2.5])
def test_view_subset_rejects_non_divisors(bad):
    with pytest.raises(ValueError, match="divisor of 360"):
        ParallelBeamGeometry(64).view_subset(bad)


@pytest.mark.parametrize("kwargs, match", [
    (dict(image_size=8), "image_size"),
    (dict(image_size=64.0), "image_size"),
    (dict(image_size=64, pixel_spacing_mm=0.0), "pixel_spacing_mm"),
    (dict(image_size=64, pixel_spacing_mm=float("nan")), "pixel_spacing_mm"),
    (dict(image_size=64, n_views=0), "n_views"),
    (dict(image_size=64, n_detectors=32), "n_detectors"),
])
def test_bad_geometry_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ParallelBeamGeometry(**kwargs)


def test_to_dict_is_plain_and_round_trips():
    geometry = ParallelBeamGeometry(np.int64(128), pixel_spacing_mm=0.75, n_views=180)
    described = geometry.to_dict()
    assert described == {"image_size": 128, "pixel_spacing_mm": 0.75, "n_views": 180, "n_detectors": 182,
                         "detector_aperture": 1.0, "view_integration": 1.0, "view_subsamples": 4}
    assert all(type(v) in (int, float) for v in described.values())
    assert ParallelBeamGeometry(**described) == geometry
