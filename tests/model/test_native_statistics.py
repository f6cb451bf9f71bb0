"""Native statistics (measured by SeSpeCTImageProcessor at the slice's own spacing, before
resampling): physical units, so the same slice resampled gives the same values; the noise
statistic follows added noise; the old checkpoint (``use_native_statistics`` off) is unchanged."""

from __future__ import annotations

import numpy as np
import torch

from ctdegradbench.core.hu import AIR_HU
from ctdegradbench.model.image_processing_sespect import (NATIVE_STATISTICS, SeSpeCTImageProcessor,
                                                           native_statistics)

PSD_LOG10_TOL = 0.2      # log10 band power below both Nyquists: same slice at 0.7 and 1.4 mm pixels
METAL_AREA_TOL = 0.10    # relative metal area (bilinear edges of a 30 mm insert)
NOISE_FLOOR_HU = 2.0     # noise std measured on a noiseless phantom
NOISE_REL_TOL = 0.15     # measured / added white-noise std at 1 mm pixels


def phantom(spacing_mm: float = 0.7, side_mm: float = 360.0) -> np.ndarray:
    """A water ellipse with a bone disk and a 30 mm metal insert, in air, at ``spacing_mm``."""
    n = int(round(side_mm / spacing_mm))
    x = (np.arange(n) - (n - 1) / 2) * spacing_mm
    yy, xx = np.meshgrid(x, x, indexing="ij")
    img = np.full((n, n), AIR_HU, np.float32)
    img[(yy / 110) ** 2 + (xx / 150) ** 2 <= 1] = 40.0
    img[(yy - 30) ** 2 + xx ** 2 <= 20 ** 2] = 700.0
    img[yy ** 2 + (xx - 80) ** 2 <= 15 ** 2] = 3000.0
    return img


def index(name: str) -> int:
    return NATIVE_STATISTICS.index(name)


def test_statistics_independent_of_pixel_size():
    fine = phantom(0.7)
    coarse = SeSpeCTImageProcessor(pixel_spacing_mm=1.4).resample(fine, 0.7).numpy()
    a, b = native_statistics(fine, 0.7), native_statistics(coarse, 1.4)
    for band in NATIVE_STATISTICS[2:4]:                  # 0.05-0.2 lp/mm: below both Nyquists
        assert abs(a[index(band)] - b[index(band)]) < PSD_LOG10_TOL, (band, a, b)
    metal = index("metal_area_mm2")
    assert abs(a[metal] - b[metal]) < METAL_AREA_TOL * a[metal], (a[metal], b[metal])
    assert a[index("noise_soft_tissue_hu")] < NOISE_FLOOR_HU and b[index("noise_soft_tissue_hu")] < NOISE_FLOOR_HU


def test_noise_statistic_grows_with_added_noise():
    rng = np.random.default_rng(0)
    clean = phantom(1.0)
    noise = [native_statistics(clean + rng.normal(0, s, clean.shape).astype(np.float32), 1.0)
             [index("noise_soft_tissue_hu")] for s in (5.0, 20.0, 60.0)]
    assert noise[0] < noise[1] < noise[2], noise
    assert abs(noise[2] / 60.0 - 1) < NOISE_REL_TOL, noise


def test_processor_returns_statistics_beside_the_grid():
    proc = SeSpeCTImageProcessor(pixel_spacing_mm=4.0, image_size=96, native_statistics=True)
    out = proc([phantom(1.0), np.full((64, 64), np.nan, np.float32)], 1.0)
    assert out["pixel_values"].shape == (2, 96, 96)
    assert out["native_statistics"].shape == (2, len(NATIVE_STATISTICS))
    assert out["status"][1] != "ok" and torch.all(out["native_statistics"][1] == 0)
    assert "native_statistics" not in SeSpeCTImageProcessor(pixel_spacing_mm=4.0, image_size=96)(phantom(1.0), 1.0)


def test_model_fuses_statistics_and_old_config_keeps_flag_off():
    from ctdegradbench.model import SeSpeCTConfig, SeSpeCTForDegradationEstimation

    assert SeSpeCTConfig().use_native_statistics is False
    cfg = SeSpeCTConfig(label_names=["a", "b", "clean"], backbone="none", use_semantic_branch=False, image_size=64,
                        spectral_size=32, texture_size=16, pixel_spacing_mm=6.0, use_spacing_input=True,
                        use_native_statistics=True)
    model = SeSpeCTForDegradationEstimation(cfg).eval()
    batch = model.image_processor()([phantom(1.0)] * 2, 1.0)
    with torch.no_grad():
        out = model(**batch)
    assert out.logits.shape == (2, 3)
    cfg.use_native_statistics = False
    assert not hasattr(SeSpeCTForDegradationEstimation(cfg).sespect, "native_statistics_encoder")


def test_masked_air_view_keeps_the_body_and_lungs():
    """mask_outside_body (training augmentation): constant air outside the body, the body and
    the air inside it (lungs) untouched."""
    from ctdegradbench.model.data import AUG_MASKED_AIR_HU, mask_outside_body

    rng = np.random.default_rng(0)
    img = phantom(1.0) + rng.normal(0, 10, (360, 360)).astype(np.float32)
    n = img.shape[0]
    yy, xx = np.meshgrid(np.arange(n) - n / 2, np.arange(n) - n / 2, indexing="ij")
    lung = (yy + 40) ** 2 + (xx + 60) ** 2 <= 25 ** 2
    img[lung] = -850.0
    out = mask_outside_body(img, 1.0)
    assert np.all(out[0] == AUG_MASKED_AIR_HU)
    assert np.all(out[lung] == -850.0) and np.array_equal(out[n // 2, n // 2], img[n // 2, n // 2])
    assert native_statistics(out, 1.0)[index("noise_air_hu")] < NOISE_FLOOR_HU


def test_a_drawn_acquisition_acquires_a_pair_alike_and_keeps_the_extent():
    """draw_acquisition / Acquisition.apply: the same draw applied to a degraded slice and its clean
    pair gives the same geometry (crop, pixel size), and resampling keeps the physical extent."""
    from ctdegradbench.model.data import Acquisition, draw_acquisition

    img = phantom(0.7)
    acquisition = Acquisition(crop=(slice(50, 350), slice(40, 400)), spacing_mm=2.1, antialias=True, mask=False)
    out, spacing = acquisition.apply(img, 0.7)
    assert out.shape == (100, 120) and spacing == 2.1             # 300 x 360 px of 0.7 mm -> 2.1 mm pixels
    rng = np.random.default_rng(3)
    for _ in range(20):
        drawn = draw_acquisition(img, 0.7, rng)
        (a, sa), (b, sb) = drawn.apply(img, 0.7), drawn.apply(img + 5.0, 0.7)
        assert a.shape == b.shape and sa == sb
        assert np.isclose(a.shape[0] * sa, img.shape[0] * 0.7) or drawn.crop is not None


def test_coarser_pixels_hide_added_noise_but_not_metal():
    """degradation_visible: quantum noise after FBP (noise power rising with frequency, like the ramp
    filter's) added to a slice with anatomical clutter (power-law spectrum, 1/f^3) and its own FBP
    noise is visible at the stored 0.7 mm pixels; resampled (anti-aliased) to 4 mm pixels, the
    averaging hides it under the anatomy. A metal insert stays visible at any pixel size."""
    from ctdegradbench.model.data import Acquisition, degradation_visible

    rng = np.random.default_rng(0)
    clean = phantom(0.7)
    n = clean.shape[0]
    f = np.hypot(np.fft.fftfreq(n, 0.7)[:, None], np.fft.fftfreq(n, 0.7)[None, :])
    f[0, 0] = f[0, 1]

    def field(exponent: float, std_hu: float) -> np.ndarray:      # noise power ~ f^exponent, given std
        x = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=(n, n))) * f ** (exponent / 2)))
        return (x * std_hu / x.std()).astype(np.float32)

    clean = np.where(clean > -500, clean + field(-3, 60.0), clean) + field(1, 10.0)
    noisy = clean + field(1, 20.0)
    metal = clean.copy()
    metal[(np.arange(n)[:, None] - n // 3) ** 2 + (np.arange(n)[None, :] - n // 2) ** 2 <= 8 ** 2] = 3000.0
    assert degradation_visible(noisy, clean, 0.7) and degradation_visible(metal, clean, 0.7)
    coarse = Acquisition(crop=None, spacing_mm=4.0, antialias=True, mask=False)
    (c, s), (d, _), (m, _) = coarse.apply(clean, 0.7), coarse.apply(noisy, 0.7), coarse.apply(metal, 0.7)
    assert not degradation_visible(d, c, s)
    assert degradation_visible(m, c, s)


NPS_LOG10_TOL = 0.1      # log10 soft-tissue NPS of white noise against sigma^2 * pixel area


def test_soft_tissue_nps_of_white_noise_is_sigma_squared_times_pixel_area():
    """White noise of std sigma (HU) on pixels of p mm has a flat noise power spectrum sigma^2 p^2
    (HU^2 mm^2): the soft-tissue NPS bands above the high pass measure it at 0.7 and 1.0 mm pixels
    (the bands above a slice's Nyquist frequency repeat the band below)."""
    from ctdegradbench.model.image_processing_sespect import NPS_BANDS_LP_MM

    rng = np.random.default_rng(0)
    for spacing in (0.7, 1.0):
        img = phantom(spacing)
        img[img > 500] = 40.0                                   # soft tissue only: no bone, no metal
        noisy = img + rng.normal(0, 20.0, img.shape).astype(np.float32)
        stats = native_statistics(noisy, spacing)
        expected = np.log10(20.0 ** 2 * spacing ** 2)
        for lo, hi in NPS_BANDS_LP_MM[2:]:                      # above 0.3 lp/mm the high pass passes > 98 %
            if hi <= 0.5 / spacing:
                value = stats[index(f"log10_nps_soft_tissue_{lo:g}_{hi:g}_lp_mm")]
                assert abs(value - expected) < NPS_LOG10_TOL, (spacing, lo, hi, value, expected)


def test_erosion_is_scipys_square_erosion_with_the_outside_left_out():
    """The processor's separable erosion (a column pass then a row pass) equals scipy's binary erosion
    by a full square, pixels beyond the image counting as inside the mask (border_value 1)."""
    from scipy import ndimage

    from ctdegradbench.model.image_processing_sespect import _erode

    rng = np.random.default_rng(3)
    for shape, radius in (((40, 60), 1), ((97, 31), 4), ((128, 128), 9)):
        mask = rng.random(shape) < 0.93
        mask[shape[0] // 3:shape[0] // 2, :] = True            # a band, so something survives the erosion
        expected = ndimage.binary_erosion(mask, structure=np.ones((2 * radius + 1,) * 2, bool), border_value=1)
        assert np.array_equal(_erode(mask, radius), expected)
