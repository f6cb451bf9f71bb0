"""Synthetic CT phantoms (HU arrays and reference slices): digital references for the tests, the
benchmarks and the physics figures (shapes and HU values named in each docstring)."""

from __future__ import annotations

import numpy as np

from ctdegradbench.builder.sources.reference import ReferenceSlice


def body_volume(seed: int, depth: int = 2, size: int = 64) -> np.ndarray:
    """A body-like HU volume in NIfTI axes (x, y, z) = (column, row, slice): a soft-tissue
    ellipse with two lungs and a spine, mild noise, and scanner padding (-2048) in the corners."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - size / 2 + 0.5
    scale = size / 64
    vol = np.full((size, size, depth), -1000, dtype=np.int16)
    for z in range(depth):
        hu = np.full((size, size), -1000.0)
        hu[(xx / (27 * scale)) ** 2 + (yy / (22 * scale)) ** 2 <= 1] = 40
        for cx in (-12 * scale, 12 * scale):
            hu[((xx - cx) / (8 * scale)) ** 2 + (yy / (11 * scale)) ** 2 <= 1] = -820
        hu[xx ** 2 + (yy - 14 * scale) ** 2 <= 16 * scale ** 2] = 700
        hu += rng.normal(0, 8, hu.shape) * (hu > -900)
        hu[(np.abs(xx) > 30 * scale) & (np.abs(yy) > 30 * scale)] = -2048
        vol[:, :, z] = np.round(hu).T.astype(np.int16)
    return vol


def ellipse_hu(n: int) -> np.ndarray:
    """Water ellipse with a bone insert and an air hole, inside the image circle."""
    yy, xx = np.mgrid[:n, :n] - n // 2
    hu = np.full((n, n), -1000, np.int16)
    hu[(yy / (0.40 * n)) ** 2 + (xx / (0.45 * n)) ** 2 < 1] = 40
    hu[(yy - 0.05 * n) ** 2 + (xx + 0.15 * n) ** 2 < (0.08 * n) ** 2] = 900
    hu[(yy + 0.12 * n) ** 2 + (xx - 0.18 * n) ** 2 < (0.06 * n) ** 2] = -1000
    return hu


def torso_hu(n: int = 128) -> np.ndarray:
    """Soft-tissue ellipse (110 x 76 px: 220 x 152 mm at 2 mm pixels) with a bone insert, in air."""
    yy, xx = np.mgrid[:n, :n] - n // 2
    hu = np.full((n, n), -1000, np.int16)
    hu[(xx / 55.0) ** 2 + (yy / 38.0) ** 2 <= 1] = 40
    hu[(xx + 30) ** 2 + (yy - 8) ** 2 < 25] = 1000
    return hu


def shepp_logan_mu(n: int) -> np.ndarray:
    """Shepp-Logan phantom resized to ``n``, scaled to mu of about water (1/mm)."""
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    return (resize(shepp_logan_phantom(), (n, n), order=1, anti_aliasing=True) * 0.02).astype(np.float32)


def reference_phantom(n: int, pixel_mm: float, slice_index: int = 0) -> ReferenceSlice:
    """A reference slice: body ellipse, bone, lung, one pixel of scanner padding, acquisition facts."""
    yy, xx = np.mgrid[:n, :n] - n // 2
    hu = np.full((n, n), -1024, np.int16)
    hu[(yy / (0.42 * n)) ** 2 + (xx / (0.46 * n)) ** 2 < 1] = 30
    hu[(yy - 0.05 * n) ** 2 + (xx + 0.2 * n) ** 2 < (0.07 * n) ** 2] = 1000
    hu[(yy + 0.15 * n) ** 2 + (xx - 0.1 * n) ** 2 < (0.05 * n) ** 2] = -800
    hu[0, 0] = -3024   # scanner padding: treated as air and counted
    return ReferenceSlice(hu, pixel_mm, "phantom", "patient-1", "series-1", slice_index,
                          info={"kernel": "B30f", "slice_thickness_mm": 3.0, "noise_sd_hu": np.float64(8.5)})


def body_disk(size: int = 64, radius_px: float = 24.0, body_hu: int = 40) -> np.ndarray:
    """A water-like disk in air (int16 HU)."""
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    hu = np.full((size, size), -1000, dtype=np.int16)
    hu[np.hypot(x, y) < radius_px] = body_hu
    return hu


def marked_volume(n_slices: int = 5, size: int = 64) -> np.ndarray:
    """Display-order volume (slice inferior->superior, row anterior->posterior, column right->left)
    of a body disk with markers that break every symmetry: one per slice at a slice-dependent
    place, plus a fixed anterior-left marker."""
    vol = np.stack([body_disk(size) for _ in range(n_slices)]).astype(np.int16)
    for k in range(n_slices):
        vol[k, 20 + 3 * k, 24] = 300 + 100 * k  # moves posterior with the slice index
    vol[:, 22, 40] = 1500  # anterior (small row), patient left (large column)
    return vol


def pelvis_hu(n: int = 128) -> np.ndarray:
    """Pelvis-like slice (2 mm pixels at 128 px): soft-tissue ellipse 240 x 160 mm, two femoral
    heads (bone ring, cancellous core) in the lateral thirds, a vertebral body posterior of centre."""
    yy, xx = np.mgrid[:n, :n] - n // 2
    s = n / 128
    hu = np.full((n, n), -1000, np.int16)
    hu[(xx / (60 * s)) ** 2 + (yy / (40 * s)) ** 2 <= 1] = 40
    for cx in (-38 * s, 38 * s):
        r = np.hypot(xx - cx, yy)
        hu[r <= 11 * s] = 900
        hu[r <= 9 * s] = 300
    r = np.hypot(xx, yy - 18 * s)
    hu[r <= 8 * s] = 800
    hu[r <= 6.5 * s] = 250
    return hu


def head_with_teeth_hu(n: int = 512, pixel_mm: float = 0.45) -> np.ndarray:
    """Head slice at the level of the upper teeth: soft-tissue ellipse 150 x 190 mm, a bone
    ring (maxilla), and 10 teeth (enamel 2500 HU, 7 mm) on a parabolic arch in front."""
    yy, xx = (np.mgrid[:n, :n] - n // 2) * pixel_mm
    hu = np.full((n, n), -1000.0)
    hu[(xx / 75) ** 2 + (yy / 95) ** 2 <= 1] = 40
    ring = (xx / 70) ** 2 + (yy / 90) ** 2
    hu[(ring <= 1) & (ring >= 0.85)] = 900
    for k in range(10):
        u = (k - 4.5) / 4.5
        cx, cy = 22 * u, -70 + 22 * u ** 2
        hu[np.hypot(xx - cx, yy - cy) <= 3.5] = 2500
    return hu.astype(np.int16)
