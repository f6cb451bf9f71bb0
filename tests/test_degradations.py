"""Physical properties of the noise, blur, streak and aliasing operators (paper Eq. 5-11)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter1d

from ctdegradbench.builder.degradations.aliasing import AliasingParams, apply_aliasing, sample_aliasing
from ctdegradbench.builder.degradations.blur import BlurParams, apply_blur, gaussian_kernel, sample_blur
from ctdegradbench.builder.degradations.noise import NoiseParams, apply_noise, sample_noise
from ctdegradbench.builder.degradations.streak import (MAX_RUN_WIDTH, StreakParams, apply_streak, sample_streak, streak_mask,
                                         thick_shadow)
from ctdegradbench.builder.core.geometry import ParallelBeamGeometry
from ctdegradbench.builder.core.hu import hu_to_mu, mu_to_hu
from ctdegradbench.builder.projector import ParallelBeamProjector
from ctdegradbench.builder.core.seeding import numpy_generator
from ctdegradbench.builder.core.levels import LEVELS
from ctdegradbench.builder.degradations import REGISTRY
from phantoms import ellipse_hu

N = 96
PIXEL_MM = 2.0

# Sample variance of 1e5 log readings has a relative standard error of sqrt(2 / 1e5) = 0.45 %;
# the first-order (delta-method) variance (lambda + sigma_e^2) / lambda^2 is off by O(1 / lambda),
# about 0.2 % at lambda = 1350. 3 % leaves room for both and still fails on a wrong formula.
SINOGRAM_VARIANCE_RTOL = 0.03
# log(K) is biased by about -var / 2 (second order); allow the full variance as the bound.
SINOGRAM_MEAN_BIAS_FACTOR = 1.0
# Fitted exponent of image noise variance vs gamma: independent realizations per gamma on
# ~3000 correlated pixels give a slope error of a few hundredths; 0.15 fails a wrong scaling
# (gamma^1 gives 1, gamma^3 gives 3).
GAMMA_EXPONENT_TOL = 0.15
# float32 sums of ~100 line integrals of order 1 agree to ~1e-6 relative.
VIEW_SUM_RTOL = 1e-5
# Blur against scipy's gaussian_filter1d in float64 (same kernel, different summation order).
SCIPY_BLUR_ATOL = 1e-12
# FBP is linear: image streak energy scales with dL up to float32 rounding.
LINEARITY_RTOL = 1e-3


def round_trip(kind: str, params):
    """``params`` -> metadata record -> parameters, through the registry (what replay uses)."""
    degradation = REGISTRY[kind]
    return degradation.params_from_record(dict(degradation.record(params, None), level=params.level))


@pytest.fixture(scope="module")
def projector() -> ParallelBeamProjector:
    return ParallelBeamProjector(ParallelBeamGeometry(N, PIXEL_MM))


@pytest.fixture(scope="module")
def clean(projector) -> torch.Tensor:
    return projector(hu_to_mu(torch.as_tensor(ellipse_hu(N))))


def central_disk(n: int = N, fraction: float = 0.25) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n] - n // 2
    return yy ** 2 + xx ** 2 < (fraction * n) ** 2


# ----------------------------------------------------------------- noise
def test_noise_sinogram_variance_follows_poisson_gaussian_model():
    """Var(s_noisy) = (lambda + sigma_e^2) / lambda^2 with lambda = alpha I0 exp(-s) (Eq. 5-7)."""
    s = torch.full((200, 500), 2.0, dtype=torch.float64)
    for electronic in (0.0, 2000.0):   # quantum noise alone, then with a strong electronic part
        params = NoiseParams(level=0, gamma=1.0, i0=4e4, dose_fraction=0.25, electronic_variance=electronic,
                             delta=1.0, seed=11)
        noisy, clamped = apply_noise(s, params)
        lam = params.photons * math.exp(-2.0)
        expected = (lam + electronic) / lam ** 2
        assert clamped == 0
        assert float(noisy.var()) == pytest.approx(expected, rel=SINOGRAM_VARIANCE_RTOL)
        assert abs(float(noisy.mean()) - 2.0) <= SINOGRAM_MEAN_BIAS_FACTOR * expected


def test_noise_image_variance_grows_as_gamma_squared(projector, clean):
    region = central_disk()
    clean_image = mu_to_hu(projector.fbp(clean[None])[0]).numpy()
    gammas = np.array([1.0, 2.0, 2.5, 4.0])
    variances = []
    for i, gamma in enumerate(gammas):   # an independent realization for every gamma
        params = NoiseParams(level=0, gamma=float(gamma), i0=6.4e6, dose_fraction=0.25, electronic_variance=10.0,
                             delta=1.0, seed=100 + i)
        noisy, _ = apply_noise(clean, params)
        image = mu_to_hu(projector.fbp(noisy[None])[0]).numpy()
        variances.append(np.var((image - clean_image)[region]))
    slope = np.polyfit(np.log(gammas), np.log(variances), 1)[0]
    assert abs(slope - 2.0) < GAMMA_EXPONENT_TOL, f"variance ~ gamma^{slope:.3f}"
    print(f"image noise variance ~ gamma^{slope:.3f}")


def test_noise_gamma_zero_is_identity(clean):
    params = NoiseParams(level=0, gamma=0.0, i0=6.4e6, dose_fraction=0.25, electronic_variance=10.0,
                         delta=1.0, seed=3)
    noisy, _ = apply_noise(clean, params)
    assert torch.equal(noisy, clean)


def test_noise_seeds_reproduce_and_differ(clean):
    a, _ = apply_noise(clean, sample_noise(2, seed=5))
    b, _ = apply_noise(clean, sample_noise(2, seed=5))
    c, _ = apply_noise(clean, sample_noise(2, seed=6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.dtype == clean.dtype and a.shape == clean.shape


def test_noise_negative_readings_are_clamped_and_counted():
    """Behind a line integral of 20, 1e6 * exp(-20) = 2e-3 photons arrive: the electronic noise
    drives about half of the readings negative, and they must be clamped, counted and finite."""
    s = torch.full((50, 80), 20.0)
    params = NoiseParams(level=0, gamma=1.0, i0=4e6, dose_fraction=0.25, electronic_variance=10.0, delta=1.0, seed=1)
    noisy, clamped = apply_noise(s, params)
    assert torch.isfinite(noisy).all()
    floor = math.log(params.photons / params.delta)      # a clamped bin reads delta counts
    assert clamped == int(torch.isclose(noisy, torch.tensor(floor), rtol=0, atol=1e-5).sum())
    assert 0 < clamped < s.numel()
    assert float(noisy.max()) == pytest.approx(floor, abs=1e-5)


def test_noise_sampler_uses_severity_table():
    for level in LEVELS:
        params = sample_noise(level, seed=1)
        assert params.gamma == REGISTRY['noise'].levels[level]
        assert round_trip("noise", params) == params


@pytest.mark.parametrize("field, value", [("gamma", -1.0), ("gamma", float("nan")), ("i0", 0.0),
                                          ("dose_fraction", 0.0), ("dose_fraction", 1.5),
                                          ("electronic_variance", -1.0), ("delta", 0.0), ("seed", -1),
                                          ("level", 4)])
def test_noise_invalid_parameters_raise(field, value):
    good = dict(level=0, gamma=1.0, i0=6.4e6, dose_fraction=0.25, electronic_variance=10.0, delta=1.0, seed=0)
    with pytest.raises(ValueError, match=field.split("_")[0]):
        NoiseParams(**{**good, field: value})


# ------------------------------------------------------------------ blur
def test_blur_matches_scipy_gaussian_filter():
    rng = np.random.default_rng(0)
    s = rng.random((7, 60))
    for sigma in REGISTRY['blur'].levels:
        ours = apply_blur(torch.as_tensor(s), BlurParams(level=0, sigma_bins=sigma)).numpy()
        reference = gaussian_filter1d(s, sigma, axis=-1, mode="constant", truncate=4.0)
        np.testing.assert_allclose(ours, reference, rtol=0, atol=SCIPY_BLUR_ATOL)


def test_blur_conserves_each_view_sum(clean):
    for level in LEVELS:
        blurred = apply_blur(clean, sample_blur(level))
        torch.testing.assert_close(blurred.sum(dim=-1), clean.sum(dim=-1), rtol=VIEW_SUM_RTOL, atol=0)


def test_blur_lowers_high_frequency_energy_monotonically(clean):
    def high_frequency_energy(s):
        spectrum = torch.fft.rfft(s.to(torch.float64), dim=-1).abs() ** 2
        freqs = torch.fft.rfftfreq(s.shape[-1])
        return float(spectrum[..., freqs > 0.25].sum())

    energies = [high_frequency_energy(clean)]
    energies += [high_frequency_energy(apply_blur(clean, sample_blur(level))) for level in LEVELS]
    assert all(a > b for a, b in zip(energies, energies[1:])), energies


def test_blur_sigma_zero_is_identity(clean):
    assert torch.equal(apply_blur(clean, BlurParams(level=0, sigma_bins=0.0)), clean)
    assert gaussian_kernel(0.0) == [1.0]
    nearly = apply_blur(clean, BlurParams(level=0, sigma_bins=0.1))   # kernel radius 0: exact identity
    assert torch.equal(nearly, clean)


@pytest.mark.parametrize("sigma", [-0.5, float("nan"), float("inf")])
def test_blur_invalid_sigma_raises(sigma):
    with pytest.raises(ValueError, match="sigma_bins"):
        BlurParams(level=0, sigma_bins=sigma)


def test_blur_sampler_uses_severity_table():
    assert [sample_blur(level).sigma_bins for level in LEVELS] == list(REGISTRY['blur'].levels)
    with pytest.raises(ValueError, match="level"):
        sample_blur(4)


# ---------------------------------------------------------------- streak
def test_streak_mask_follows_its_definition(clean):
    params = sample_streak(3, clean, numpy_generator(7), seed=7, n_runs=20)
    shadow = thick_shadow(clean)
    assert len(params.views) == 20 and len(set(params.views)) == 20
    assert all(1 <= w <= MAX_RUN_WIDTH for w in params.widths)
    assert all(shadow[v, b] for v, b in zip(params.views, params.bins))   # runs start in the thick shadow
    mask = streak_mask(params, tuple(clean.shape))
    assert int(mask.sum()) == sum(params.widths)
    streaked = apply_streak(clean, params)
    torch.testing.assert_close(streaked - clean, params.delta_l * mask, rtol=0, atol=1e-6)
    assert params.delta_l == REGISTRY['streak'].levels[3] > 0   # outliers add attenuation


def test_streak_zero_amplitude_is_identity(clean):
    params = sample_streak(0, clean, numpy_generator(1), seed=1)
    zero = StreakParams(level=0, delta_l=0.0, views=params.views, bins=params.bins, widths=params.widths, seed=1)
    assert torch.equal(apply_streak(clean, zero), clean)


def test_streak_mask_distribution_is_the_same_at_every_level(clean):
    """Severity is set by dL alone: the same seed draws the same mask at every level."""
    masks = {(p.views, p.bins, p.widths) for p in
             (sample_streak(level, clean, numpy_generator(42), seed=42) for level in LEVELS)}
    assert len(masks) == 1


def test_streak_seeds_reproduce_and_differ(clean):
    a = sample_streak(1, clean, numpy_generator(5), seed=5)
    b = sample_streak(1, clean, numpy_generator(5), seed=5)
    c = sample_streak(1, clean, numpy_generator(6), seed=6)
    assert a == b
    assert (a.views, a.bins, a.widths) != (c.views, c.bins, c.widths)
    assert round_trip("streak", a) == a


def test_streak_image_energy_scales_with_amplitude(projector, clean):
    base = sample_streak(0, clean, numpy_generator(9), seed=9)
    clean_image = projector.fbp(clean[None])[0]
    rms = []
    for delta_l in REGISTRY['streak'].levels:
        params = StreakParams(level=0, delta_l=delta_l, views=base.views, bins=base.bins, widths=base.widths, seed=9)
        image = projector.fbp(apply_streak(clean, params)[None])[0]
        rms.append(float((image - clean_image).pow(2).mean().sqrt()))
    ratios = np.array(rms) / rms[0]
    np.testing.assert_allclose(ratios, np.array(REGISTRY['streak'].levels) / REGISTRY['streak'].levels[0],
                               rtol=LINEARITY_RTOL)


def test_streak_invalid_inputs_raise(clean):
    rng = numpy_generator(0)
    with pytest.raises(ValueError, match="n_runs"):
        sample_streak(0, clean, rng, seed=0, n_runs=0)
    with pytest.raises(ValueError, match="n_runs"):
        sample_streak(0, clean, rng, seed=0, n_runs=clean.shape[0] + 1)
    with pytest.raises(ValueError, match="shadow"):
        sample_streak(0, torch.zeros_like(clean), rng, seed=0)
    with pytest.raises(ValueError, match="delta_l"):
        StreakParams(level=0, delta_l=-0.5, views=(1,), bins=(2,), widths=(1,), seed=0)
    with pytest.raises(ValueError, match="widths"):
        StreakParams(level=0, delta_l=0.5, views=(1,), bins=(2,), widths=(MAX_RUN_WIDTH + 1,), seed=0)
    with pytest.raises(ValueError, match="equal lengths"):
        StreakParams(level=0, delta_l=0.5, views=(1, 2), bins=(2,), widths=(1,), seed=0)
    with pytest.raises(ValueError, match="outside"):
        apply_streak(clean, StreakParams(level=0, delta_l=0.5, views=(1,), bins=(clean.shape[1] - 1,),
                                         widths=(2,), seed=0))


# -------------------------------------------------------------- aliasing
def test_fewer_views_give_larger_error(projector, clean):
    """Aliasing error (sparse-view FBP minus the full-scan FBP) grows as views are removed."""
    full = projector.fbp(clean[None])[0]
    errors = []
    for n_views in (360,) + tuple(REGISTRY['aliasing'].levels):
        sparse, views = apply_aliasing(clean, AliasingParams(level=0, n_views=n_views), projector.geometry)
        image = projector.fbp(sparse[None], views=views)[0]
        errors.append(float((image - full).pow(2).mean()))
    assert errors[0] == 0.0
    assert all(a < b for a, b in zip(errors, errors[1:])), errors


def test_aliasing_keeps_an_exact_subset_of_the_views(projector, clean):
    for level in LEVELS:
        params = sample_aliasing(level)
        sparse, views = apply_aliasing(clean, params, projector.geometry)
        assert params.n_views == REGISTRY['aliasing'].levels[level] == len(views)
        np.testing.assert_array_equal(views, projector.geometry.view_subset(params.n_views))
        assert torch.equal(sparse, clean[torch.as_tensor(views)])
        assert round_trip("aliasing", params) == params


def test_aliasing_all_views_is_identity(projector, clean):
    full, views = apply_aliasing(clean, AliasingParams(level=0, n_views=360), projector.geometry)
    assert torch.equal(full, clean)
    assert torch.equal(projector.fbp(full[None], views=views), projector.fbp(clean[None]))


def test_aliasing_invalid_parameters_raise(projector, clean):
    with pytest.raises(ValueError, match="divisor"):
        apply_aliasing(clean, AliasingParams(level=0, n_views=100), projector.geometry)
    with pytest.raises(ValueError, match="n_views"):
        AliasingParams(level=0, n_views=0)
    with pytest.raises(ValueError, match="full scan"):
        apply_aliasing(clean[:180], AliasingParams(level=0, n_views=90), projector.geometry)
    with pytest.raises(ValueError, match="level"):
        sample_aliasing(-1)
