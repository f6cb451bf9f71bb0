"""HU <-> mu conversion (paper Eq. 2 and 4): round trip, air clipping, padding, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ctdegradbench.core.hu import AIR_HU, MU_WATER_PER_MM, count_below_air, hu_to_mu, mu_to_hu

# Round trip HU -> mu -> HU in float32: mu ~ 0.02 carries ~1e-9 absolute rounding, i.e.
# about 1e-4 HU at 3000 HU (measured 2.4e-4 HU max on [-1000, 3000]).
ROUND_TRIP_HU_ATOL_FLOAT32 = 1e-3


def test_water_and_air_anchor_points():
    assert hu_to_mu(np.array([0.0]))[0] == pytest.approx(MU_WATER_PER_MM)
    assert hu_to_mu(np.array([AIR_HU]))[0] == 0.0
    assert mu_to_hu(MU_WATER_PER_MM) == pytest.approx(0.0)
    assert mu_to_hu(0.0) == pytest.approx(AIR_HU)
    # Dense bone: +1000 HU is twice water's attenuation.
    assert hu_to_mu(np.array([1000.0]))[0] == pytest.approx(2 * MU_WATER_PER_MM)


def test_round_trip_numpy_and_torch():
    hu = np.linspace(-1000.0, 3000.0, 4001)
    np.testing.assert_allclose(mu_to_hu(hu_to_mu(hu)), hu, atol=1e-9)
    hu32 = torch.linspace(-1000.0, 3000.0, 4001)
    assert float((mu_to_hu(hu_to_mu(hu32)) - hu32).abs().max()) <= ROUND_TRIP_HU_ATOL_FLOAT32
    custom = 0.0206
    np.testing.assert_allclose(mu_to_hu(hu_to_mu(hu, custom), custom), hu, atol=1e-9)


def test_padding_below_air_maps_to_air_and_is_counted():
    hu = np.array([[-3024, -2048, -1024], [-1000, 0, 500]], dtype=np.int16)
    mu = hu_to_mu(hu)
    assert mu.dtype == np.float32                       # integer input -> float32
    np.testing.assert_array_equal(mu[0], 0.0)           # padding and air noise -> air
    assert mu[1, 0] == 0.0 and mu[1, 1] == pytest.approx(MU_WATER_PER_MM)
    assert count_below_air(hu) == 3
    assert count_below_air(torch.from_numpy(hu)) == 3
    mu_t = hu_to_mu(torch.from_numpy(hu))
    assert mu_t.dtype == torch.float32 and float(mu_t[0].abs().max()) == 0.0


def test_float_dtype_is_kept():
    assert hu_to_mu(np.zeros(3, dtype=np.float64)).dtype == np.float64
    assert hu_to_mu(torch.zeros(3, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize("bad", [0.0, -0.0192])
def test_bad_mu_water_raises(bad):
    with pytest.raises(ValueError, match="mu_water"):
        hu_to_mu(np.zeros(2), mu_water=bad)
    with pytest.raises(ValueError, match="mu_water"):
        mu_to_hu(np.zeros(2), mu_water=bad)
