"""Physical properties of the noise, blur, streak and aliasing operators (paper Eq. 5-11)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter1d

from ctdegradbench.builder.degradations.aliasing import AliasingParams, apply_aliasing, sample_aliasing
from ctdegradbench.builder.degradations.blur import BlurParams, apply_blur, gaussian_kernel, sample_blur
from ctdegradbench.builder.degradations.noise import NoiseParams, apply_noise, effective_dose_fraction, sample_noise
from ctdegradbench.builder.degradations.streak import (DELTA_L_LEVELS, STARVED_PHOTONS_LEVELS, StreakParams,
                                                       apply_streak, sample_streak, starvation_threshold,
                                                       streak_errors, streak_mask)
from ctdegradbench.builder.core.geometry import ParallelBeamGeometry
from ctdegradbench.core.hu import hu_to_mu, mu_to_hu
from ctdegradbench.builder.projector import ParallelBeamProjector
from ctdegradbench.core.levels import LEVELS
from ctdegradbench.builder.degradations import REGISTRY
from ctdegradbench.builder.sources.phantoms import ellipse_hu

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
# Noise variance of Eq. 8 at gamma vs a scan at alpha / gamma^2: the same first-order quantum
# variance; 2e5 samples per case give a 0.3 % standard error, electronic noise at 1e4
# photons adds 0.1 % to one and 1.6 % to the other at gamma 4, so 4 % holds both and fails a
# wrong exponent (alpha / gamma changes the variance 4-fold at gamma 4).
EFFECTIVE_DOSE_RTOL = 0.04


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


def test_noise_at_gamma_is_the_quantum_noise_of_dose_alpha_over_gamma_squared():
    """Eq. 8 at gamma has the variance of an unscaled scan at the dose fraction alpha / gamma^2."""
    s = torch.full((400, 500), 1.0, dtype=torch.float64)
    for gamma in (2.0, 4.0):
        scaled, _ = apply_noise(s, NoiseParams(level=0, gamma=gamma, i0=4e5, dose_fraction=0.25,
                                               electronic_variance=10.0, delta=1.0, seed=3))
        alpha = effective_dose_fraction(0.25, gamma)
        low_dose, _ = apply_noise(s, NoiseParams(level=0, gamma=1.0, i0=4e5, dose_fraction=alpha,
                                                 electronic_variance=10.0, delta=1.0, seed=4))
        assert float(scaled.var()) == pytest.approx(float(low_dose.var()), rel=EFFECTIVE_DOSE_RTOL)
    assert effective_dose_fraction(0.25, 2.0) == 1 / 16


def test_noise_flux_is_per_mm_of_detector():
    """The same dose on a finer grid: photons per bin scale with the bin width."""
    fine, coarse = sample_noise(0, seed=1, pixel_spacing_mm=0.5), sample_noise(0, seed=1, pixel_spacing_mm=1.0)
    assert coarse.i0 == pytest.approx(2 * fine.i0)
    assert fine.i0_per_mm == coarse.i0_per_mm


def test_noise_seeds_reproduce_and_differ(clean):
    a, _ = apply_noise(clean, sample_noise(2, seed=5, pixel_spacing_mm=PIXEL_MM))
    b, _ = apply_noise(clean, sample_noise(2, seed=5, pixel_spacing_mm=PIXEL_MM))
    c, _ = apply_noise(clean, sample_noise(2, seed=6, pixel_spacing_mm=PIXEL_MM))
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
        params = sample_noise(level, seed=1, pixel_spacing_mm=PIXEL_MM)
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
        blurred = apply_blur(clean, sample_blur(level, PIXEL_MM))
        torch.testing.assert_close(blurred.sum(dim=-1), clean.sum(dim=-1), rtol=VIEW_SUM_RTOL, atol=0)


def test_blur_lowers_high_frequency_energy_monotonically(clean):
    def high_frequency_energy(s):
        spectrum = torch.fft.rfft(s.to(torch.float64), dim=-1).abs() ** 2
        freqs = torch.fft.rfftfreq(s.shape[-1])
        return float(spectrum[..., freqs > 0.25].sum())

    energies = [high_frequency_energy(clean)]
    energies += [high_frequency_energy(apply_blur(clean, sample_blur(level, PIXEL_MM))) for level in LEVELS]
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


def test_blur_sampler_uses_severity_table_in_mm():
    assert [sample_blur(level, 0.7).sigma_mm for level in LEVELS] == list(REGISTRY['blur'].levels)
    assert [sample_blur(level, 0.5).sigma_bins for level in LEVELS] == [2 * v for v in REGISTRY['blur'].levels]
    assert round_trip("blur", sample_blur(2, 0.8)) == sample_blur(2, 0.8)
    with pytest.raises(ValueError, match="level"):
        sample_blur(4, 0.7)


# ---------------------------------------------------------------- streak
def test_streak_rays_are_the_highest_line_integrals(clean):
    """M selects exactly the top fraction of the object's rays by clean line integral."""
    params = sample_streak(3, clean, PIXEL_MM, seed=7, fraction=0.05)
    mask = streak_mask(clean, params).bool()
    positive = clean[clean > 0]
    assert int(mask.sum()) == math.ceil(0.05 * positive.numel())
    assert float(clean[mask].min()) >= float(clean[~mask].max())       # no unselected ray is more attenuated
    assert params.threshold == starvation_threshold(clean, 0.05)


# The photon levels reproduce the paper's dL as the RMS line-integral error of the threshold ray
# within this relative tolerance (Monte Carlo with STREAK_DRAWS rays).
STREAK_CALIBRATION_RTOL = 0.05
STREAK_DRAWS = 200_000


def test_streak_photon_levels_give_the_papers_rms_error():
    """On rays at the threshold (N = N_star), RMS(e) = dL of the paper at every level."""
    clean = np.full((STREAK_DRAWS // 500, 500), 3.0)
    for level, (photons, delta_l) in enumerate(zip(STARVED_PHOTONS_LEVELS, DELTA_L_LEVELS)):
        params = sample_streak(level, clean, PIXEL_MM, seed=level, fraction=1.0, threshold=3.0)
        assert params.photons == photons and params.delta_l == delta_l
        rms = float(np.sqrt(np.mean(streak_errors(clean, params) ** 2)))
        assert abs(rms - delta_l) <= STREAK_CALIBRATION_RTOL * delta_l, (level, rms, delta_l)


def test_streak_error_grows_with_ray_attenuation():
    """Fewer photons behind more attenuation: the error's RMS grows with s beyond the threshold."""
    s = np.repeat(np.array([2.0, 2.5, 3.0, 3.5]), 50_000).reshape(4, -1)
    params = sample_streak(0, s, PIXEL_MM, seed=3, fraction=1.0, threshold=2.0)
    rms = np.sqrt(np.mean(streak_errors(s, params) ** 2, axis=1))
    assert np.all(np.diff(rms) > 0), rms
    assert rms[-1] > 2 * rms[0]          # N falls by e^1.5 = 4.5x: the noise alone would double


def test_streak_errors_only_on_starved_rays_with_both_signs(clean):
    params = sample_streak(0, clean, PIXEL_MM, seed=7, fraction=0.05)
    delta = apply_streak(clean, clean, params) - clean
    mask = streak_mask(clean, params).bool()
    assert torch.equal(delta[~mask], torch.zeros_like(delta[~mask]))
    positive = float((delta[mask] > 0).float().mean())
    assert 0.3 < positive < 0.7                                         # noise: both signs at L0


def test_streak_seeds_reproduce_and_differ(clean):
    a = sample_streak(1, clean, PIXEL_MM, seed=5)
    assert a == sample_streak(1, clean, PIXEL_MM, seed=5)
    assert round_trip("streak", a) == a
    assert torch.equal(apply_streak(clean, clean, a), apply_streak(clean, clean, a))
    c = sample_streak(1, clean, PIXEL_MM, seed=6)
    assert not torch.equal(apply_streak(clean, clean, a), apply_streak(clean, clean, c))


def test_streak_image_error_grows_with_level(projector, clean):
    clean_image = projector.fbp(clean[None])[0]
    rms = []
    for level in LEVELS:
        params = sample_streak(level, clean, PIXEL_MM, seed=9)
        image = projector.fbp(apply_streak(clean, clean, params)[None])[0]
        rms.append(float((image - clean_image).pow(2).mean().sqrt()))
    assert np.all(np.diff(rms) > 0), rms


def test_streak_invalid_inputs_raise(clean):
    with pytest.raises(ValueError, match="no ray"):
        sample_streak(0, torch.zeros_like(clean), PIXEL_MM, seed=0)
    good = dict(level=0, photons=24.0, fraction=0.02, threshold=1.0, electronic_variance=10.0, delta=1.0, seed=0)
    for field, value in (("photons", 0.0), ("fraction", 0.0), ("fraction", 1.5), ("electronic_variance", -1.0),
                         ("delta", 0.0)):
        with pytest.raises(ValueError, match=field.split("_")[0]):
            StreakParams(**{**good, field: value})


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


# ------------------------------------------------ physical units: MTF in lp/mm
# Blur MTF measured from image power spectra (ratio of the blurred to the clean FBP), at
# 0.1-0.4 lp/mm, vs exp(-2 pi^2 sigma^2 f^2): the estimate from a noise-free phantom is exact
# up to the windowing leakage between frequency rings, measured below 0.02 in MTF.
MTF_ATOL = 0.03


@pytest.mark.parametrize("spacing, size", [(0.57, 160), (0.98, 96)])
def test_blur_level_has_the_same_mtf_in_lp_per_mm_at_any_pixel_spacing(spacing, size):
    """S2 L2 on a 0.57 mm and a 0.98 mm grid of the same 90 mm object: the blur's MTF is the
    Gaussian of sigma_mm in lp/mm on both (the bins it becomes differ by 1.7x)."""
    from ctdegradbench.builder.degradations.blur import measured_mtf

    yy, xx = (np.mgrid[:size, :size] - size // 2) * spacing                 # mm
    rng = np.random.default_rng(0)
    hu = np.where(np.hypot(xx, yy) < 40, 40.0, -1000.0)
    for _ in range(30):                                                      # texture: small inserts
        cx, cy, r = rng.uniform(-28, 28), rng.uniform(-28, 28), rng.uniform(1, 4)
        hu[np.hypot(xx - cx, yy - cy) < r] = rng.uniform(-200, 800)
    projector = ParallelBeamProjector(ParallelBeamGeometry(size, spacing))
    clean = projector(hu_to_mu(torch.as_tensor(hu, dtype=torch.float32)))
    params = sample_blur(2, spacing)
    images = projector.fbp(torch.stack([clean, apply_blur(clean, params)])).numpy().astype(np.float64)
    frequencies = (0.1, 0.2, 0.3, 0.4)
    measured = measured_mtf(images[0], images[1], spacing, frequencies)
    expected = [math.exp(-2 * math.pi ** 2 * params.sigma_mm ** 2 * f ** 2) for f in frequencies]
    np.testing.assert_allclose(measured, expected, atol=MTF_ATOL)
