"""SeSpeCT's image processor: CT slices in HU with their pixel spacing -> the model's physical grid.

Self-contained (imports numpy, torch and transformers only), so it is copied next to a saved
checkpoint and loads with ``AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)``
like the configuration and modeling files (``preprocessor_config.json`` holds its fields).

Inputs: HU arrays with their pixel spacing in mm, or DICOM datasets (``pydicom.Dataset``; HU from
the stored values with ``RescaleSlope`` / ``RescaleIntercept``, spacing from ``PixelSpacing``).

The model works on a fixed physical grid: ``pixel_spacing_mm`` millimetres per pixel and a
field of view of ``image_size * pixel_spacing_mm`` millimetres. Each slice is

1. checked (:meth:`SeSpeCTImageProcessor.slice_status`): non-finite values, a pixel spacing
   outside the trained range, values that are not CT numbers, no body in the slice -> a status
   other than ``"ok"``; the model's answer for such a slice is that status, not a class;
2. cleaned of scanner padding (a constant value below -1024 HU, e.g. -2048 or -3024, filling
   the outside of the reconstruction circle) -> air, -1000 HU;
3. resampled to ``pixel_spacing_mm`` (bilinear, anti-aliased when shrinking) with its own row
   and column spacing, never stretched to fill the grid;
4. centred on the body (centroid of the pixels above ``body_hu``) and padded with air or cropped
   to ``image_size`` x ``image_size``.

Besides the grid, the processor returns each slice's native pixel spacing (the model takes it
as an input: a slice stored at 3 mm pixels is expected to look smoother than one at 0.7 mm) and,
with ``native_statistics=True``, a few physical statistics measured on the slice at its native
spacing, before resampling (which averages the noise texture away): see :func:`native_statistics`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature

AIR_HU = -1000.0   # air (mu = 0); the value of ctdegradbench.core.hu.AIR_HU, copied: this file is self-contained
BODY_HU = -500.0   # tissue threshold: pixels above are body (air, lung parenchyma and padding are below)
STATUS_OK = "ok"
STATUS_NON_FINITE = "non_finite"            # NaN or infinite pixels
STATUS_SPACING = "spacing_out_of_range"     # pixel spacing outside the trained range
STATUS_NON_CT = "non_ct_values"             # values that are not Hounsfield units of a CT slice
STATUS_NO_BODY = "no_body"                  # too little tissue in the slice to judge
STATUSES = (STATUS_OK, STATUS_NON_FINITE, STATUS_SPACING, STATUS_NON_CT, STATUS_NO_BODY)

# Native statistics (physical units, measured before resampling); see native_statistics().
SOFT_TISSUE_HU = (-100.0, 200.0)     # soft-tissue mask for the noise estimate
AIR_MASK_HU = (-1100.0, -900.0)      # air mask (inside the reconstruction; padding is air after remove_padding)
MASK_EROSION_MM = 3.0                # masks eroded by this, so edges do not count as noise
HIGH_PASS_SIGMA_MM = 1.5             # residual = slice - Gaussian(sigma in mm): the noise texture
PSD_BANDS_LP_MM = ((0.05, 0.1), (0.1, 0.2), (0.2, 0.35))   # bands of the residual's power spectrum
NPS_BANDS_LP_MM = ((0.1, 0.2), (0.2, 0.3), (0.3, 0.45), (0.45, 0.6), (0.6, 0.8))   # soft-tissue noise power spectrum
METAL_HU = 2500.0                    # metal threshold (HU)
STREAK_BAND_LP_MM = (0.03, 0.2)      # band of the directional (streak) measure
STREAK_SECTORS = 12                  # angular sectors over 180 degrees
TAPER_FRACTION = 0.2                 # Tukey taper of the slice before its FFT (a cut field of view has no edge jump)
NATIVE_STATISTICS = ("noise_soft_tissue_hu", "noise_air_hu",
                     *(f"log10_psd_{lo:g}_{hi:g}_lp_mm" for lo, hi in PSD_BANDS_LP_MM),
                     "metal_area_mm2", "max_hu", "streak_anisotropy",
                     *(f"log10_nps_soft_tissue_{lo:g}_{hi:g}_lp_mm" for lo, hi in NPS_BANDS_LP_MM))


def _mad_std(values: np.ndarray) -> float:
    """Robust standard deviation: 1.4826 x median absolute deviation (0 without values)."""
    if values.size < 16:
        return 0.0
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def _erode(mask: np.ndarray, radius_px: int) -> np.ndarray:
    """Binary erosion with a square of side ``2 radius_px + 1`` pixels (min-pooling; pixels beyond the
    image are left out). Separable: the minimum over a square is the minimum over its rows of the
    minimum along each row, so a column pass then a row pass give the same result, ``2 radius_px + 1``
    times faster."""
    if radius_px < 1:
        return mask
    t = -torch.from_numpy(mask.astype(np.float32))[None, None]
    side = 2 * radius_px + 1
    t = F.max_pool2d(t, (side, 1), stride=1, padding=(radius_px, 0))
    t = F.max_pool2d(t, (1, side), stride=1, padding=(0, radius_px))
    return (-t)[0, 0].numpy() > 0.5


def _band_log_means(psd: np.ndarray, f: np.ndarray, bands, nyquist: float) -> list[float]:
    """log10 of the mean of ``psd`` over each band ``(lo, hi)`` of radial frequency ``f`` (lp/mm), taken
    below ``nyquist`` (the corners of the 2-D spectrum beyond it are sampled along one diagonal only);
    a band of which less than a quarter lies below ``nyquist`` repeats the band below it."""
    out, last = [], 0.0
    for lo, hi in bands:
        top = min(hi, nyquist)
        sel = (f >= lo) & (f < top)
        if top - lo >= 0.25 * (hi - lo) and np.count_nonzero(sel) >= 4:
            last = float(np.log10(psd[sel].mean() + 1e-6))
        out.append(last)
    return out


def _tukey(n: int, fraction: float = TAPER_FRACTION) -> np.ndarray:
    """Tukey window of ``n`` samples: cosine tapers over ``fraction / 2`` of each end, 1 between."""
    x = (np.arange(n) + 0.5) / n
    edge = fraction / 2
    ramp = np.clip(np.minimum(x, 1 - x) / edge, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * ramp)


def native_statistics(hu: np.ndarray, pixel_spacing) -> np.ndarray:
    """Physical statistics of one HU slice at its native ``(row, column)`` spacing in mm, in the
    order of ``NATIVE_STATISTICS`` (float32):

    * noise std (HU) in eroded soft tissue and in eroded air: 1.4826 x MAD of the high-pass
      residual (of the slice minus its median, Tukey-tapered at the borders: ``TAPER_FRACTION``) ``hu - Gaussian(HIGH_PASS_SIGMA_MM)`` (the filter in mm, so spacing-independent);
    * log10 of the residual's mean power spectral density (HU^2 mm^2) in bands of physical
      frequency ``PSD_BANDS_LP_MM`` (lp/mm), each taken below the Nyquist frequency (the corners of
      the 2-D spectrum beyond it are sampled along one diagonal only); a band of which less than a
      quarter lies below the Nyquist frequency repeats the band below it;
    * area (mm^2) of the pixels above ``METAL_HU`` and the maximum HU;
    * streak anisotropy: max / median over ``STREAK_SECTORS`` angular sectors of the residual's
      power in ``STREAK_BAND_LP_MM`` (1 for isotropic noise, large for streaks);
    * log10 of the noise power spectrum inside the eroded soft tissue (the residual there, zero
      elsewhere, normalised by the soft-tissue area; HU^2 mm^2) in the bands ``NPS_BANDS_LP_MM``,
      below the Nyquist frequency as above.
    """
    rows, cols = SeSpeCTImageProcessor.spacing_pair(pixel_spacing)
    hu = SeSpeCTImageProcessor.remove_padding(np.asarray(hu, dtype=np.float32))
    h, w = hu.shape
    fy = np.fft.fftfreq(h, d=rows)[:, None]          # lp/mm
    fx = np.fft.rfftfreq(w, d=cols)[None, :]
    f2 = fy ** 2 + fx ** 2
    taper = np.outer(_tukey(h), _tukey(w)).astype(np.float32)   # no wrap-around edge from a cut field of view
    spectrum = np.fft.rfft2((hu - np.median(hu)) * taper)
    spectrum *= 1.0 - np.exp(-2.0 * math.pi ** 2 * HIGH_PASS_SIGMA_MM ** 2 * f2)   # high pass
    # the residual of the tapered slice is the taper times the slice's own (the taper varies over
    # far more than HIGH_PASS_SIGMA_MM): undo it where the taper is not small, leave out the rest
    inside = taper > 0.3
    residual = np.fft.irfft2(spectrum, s=(h, w)) / np.maximum(taper, 0.3)
    radius = int(round(MASK_EROSION_MM / math.sqrt(rows * cols)))
    soft = _erode((hu > SOFT_TISSUE_HU[0]) & (hu < SOFT_TISSUE_HU[1]), radius) & inside
    air = _erode((hu > AIR_MASK_HU[0]) & (hu < AIR_MASK_HU[1]), radius) & inside
    psd = np.abs(spectrum) ** 2 * (rows * cols) / (h * w * float(np.mean(taper ** 2)))   # HU^2 mm^2
    f = np.sqrt(f2)
    nyquist = 0.5 / max(rows, cols)       # lp/mm: the disc of frequencies both axes sample
    bands = _band_log_means(psd, f, PSD_BANDS_LP_MM, nyquist)
    # the residual's noise power spectrum inside soft tissue alone (HU^2 mm^2): the texture of the
    # noise (a smooth kernel's falls to nothing towards the Nyquist frequency, added quantum noise
    # after a ramp filter does not), without the anatomy's edges
    n_soft = np.count_nonzero(soft)
    soft_psd = (np.abs(np.fft.rfft2(np.where(soft, residual, 0.0))) ** 2 * (rows * cols) / max(n_soft, 1)
                if n_soft >= 16 else np.zeros_like(psd))
    nps = _band_log_means(soft_psd, f, NPS_BANDS_LP_MM, nyquist)
    sel = (f >= STREAK_BAND_LP_MM[0]) & (f < STREAK_BAND_LP_MM[1])
    angle = np.mod(np.arctan2(np.broadcast_to(fy, f.shape), np.broadcast_to(fx, f.shape)), math.pi)
    sector = np.minimum((angle / math.pi * STREAK_SECTORS).astype(np.int64), STREAK_SECTORS - 1)
    power = np.bincount(sector[sel], weights=psd[sel], minlength=STREAK_SECTORS)
    streak = float(power.max() / max(np.median(power), 1e-6)) if sel.any() else 1.0
    metal = float(np.count_nonzero(hu > METAL_HU) * rows * cols)
    return np.array([_mad_std(residual[soft]), _mad_std(residual[air]), *bands, metal, float(hu.max()), streak,
                     *nps], dtype=np.float32)


def dicom_hu(dataset) -> tuple[np.ndarray, tuple[float, float]]:
    """``(HU array, (row, column) pixel spacing in mm)`` of one single-frame DICOM CT slice
    (anything with ``pixel_array`` and ``PixelSpacing``, e.g. a ``pydicom.Dataset``):
    ``HU = stored value * RescaleSlope + RescaleIntercept`` (slope 1, intercept 0 when absent)."""
    name = getattr(dataset, "filename", None) or "DICOM dataset"
    spacing = getattr(dataset, "PixelSpacing", None)
    if spacing is None:
        raise ValueError(f"{name}: no PixelSpacing (0028,0030): the model needs the pixel side in mm")
    try:
        stored = np.asarray(dataset.pixel_array)
    except Exception as err:       # no pixel data, an undecodable transfer syntax, ...
        raise ValueError(f"{name}: cannot read its pixel data ({type(err).__name__}: {err})") from None
    if stored.ndim != 2:
        raise ValueError(f"{name}: expected one 2-D slice, got pixel data of shape {stored.shape}")
    slope = float(getattr(dataset, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(dataset, "RescaleIntercept", 0.0) or 0.0)
    rows, cols = (float(v) for v in spacing)
    return stored.astype(np.float32) * slope + intercept, (rows, cols)


def _is_dicom(image) -> bool:
    """A DICOM dataset (pydicom ``Dataset`` / ``FileDataset``, or anything holding ``PixelData``)."""
    return type(image).__name__ in ("Dataset", "FileDataset") or hasattr(image, "PixelData")


class SeSpeCTImageProcessor(BaseImageProcessor):
    """HU slices + pixel spacing (or DICOM datasets) -> ``pixel_values`` on the model grid,
    native spacing, status.

    Args:
        pixel_spacing_mm: model grid spacing (mm / pixel).
        image_size: grid side in pixels (field of view ``image_size * pixel_spacing_mm`` mm).
        spacing_range_mm: ``[min, max]`` native pixel spacing the model was trained on; a slice
            outside gets the status ``spacing_out_of_range``.
        hu_range: ``[low, high]`` HU of a CT slice without metal; more than ``non_ct_fraction`` of
            the pixels below ``low - 200`` (padding excluded; noise in air reaches ``low``) or above
            ``high`` (metal covers far less of a slice) gives ``non_ct_values``, as does a slice with
            tissue whose 1st-99th percentile span is below ``min_dynamic_range_hu``.
        body_hu: tissue threshold (HU); ``min_body_area_mm2`` of tissue is needed (``no_body``).
        native_statistics: also return ``native_statistics`` (:func:`native_statistics`, measured
            before resampling) for a model with ``use_native_statistics``.
    """

    model_input_names = ["pixel_values", "pixel_spacing"]
    # Written by ``save_pretrained`` and given back to ``__init__`` by ``from_pretrained``.
    _saved_keys = ("auto_map", "image_processor_type", "processor_class")

    def __init__(self, pixel_spacing_mm: float = 1.0, image_size: int = 384, spacing_range_mm=(0.4, 6.0),
                 hu_range=(-1100.0, 4000.0), non_ct_fraction: float = 0.02, min_dynamic_range_hu: float = 50.0,
                 body_hu: float = BODY_HU, min_body_area_mm2: float = 2000.0,
                 native_statistics: bool = False, **saved):
        unknown = sorted(set(saved) - set(self._saved_keys))
        if unknown:
            raise TypeError(f"SeSpeCTImageProcessor got unknown argument(s) {', '.join(unknown)}")
        super().__init__(**{k: v for k, v in saved.items() if k == "auto_map"})
        if not pixel_spacing_mm > 0 or int(image_size) < 32:
            raise ValueError(f"need pixel_spacing_mm > 0 and image_size >= 32, got {pixel_spacing_mm}, {image_size}")
        lo, hi = (float(v) for v in spacing_range_mm)
        if not 0 < lo < hi:
            raise ValueError(f"spacing_range_mm must be [min, max] with 0 < min < max, got {spacing_range_mm!r}")
        self.pixel_spacing_mm = float(pixel_spacing_mm)
        self.image_size = int(image_size)
        self.spacing_range_mm = (lo, hi)
        self.hu_range = tuple(float(v) for v in hu_range)
        self.non_ct_fraction = float(non_ct_fraction)
        self.min_dynamic_range_hu = float(min_dynamic_range_hu)
        self.body_hu = float(body_hu)
        self.min_body_area_mm2 = float(min_body_area_mm2)
        self.native_statistics = bool(native_statistics)

    @classmethod
    def from_config(cls, config) -> "SeSpeCTImageProcessor":
        """The processor of a SeSpeCT config whose ``pixel_spacing_mm`` is set."""
        if getattr(config, "pixel_spacing_mm", None) is None:
            raise ValueError("this SeSpeCT config has no pixel_spacing_mm (a pixel-grid checkpoint): it resizes "
                             "slices itself and has no physical-grid processor")
        return cls(pixel_spacing_mm=config.pixel_spacing_mm, image_size=config.image_size,
                   spacing_range_mm=config.spacing_range_mm,
                   native_statistics=bool(getattr(config, "use_native_statistics", False)))

    # ------------------------------------------------------------------ checks
    @staticmethod
    def spacing_pair(pixel_spacing) -> tuple[float, float]:
        """``(row, column)`` spacing in mm from a number or a pair; raises ValueError naming the value."""
        values = np.atleast_1d(np.asarray(pixel_spacing, dtype=float)).ravel()
        if values.size == 1:
            values = np.repeat(values, 2)
        if values.size != 2 or not np.all(np.isfinite(values)) or np.any(values <= 0):
            raise ValueError(f"pixel spacing must be one positive number or a (row, column) pair in mm, got "
                             f"{pixel_spacing!r}")
        return float(values[0]), float(values[1])

    @staticmethod
    def remove_padding(hu: np.ndarray) -> np.ndarray:
        """Scanner padding (the minimum value, below -1024 HU, on >= 1 % of the pixels) -> air."""
        low = float(hu.min())
        if low < AIR_HU - 100 and np.mean(hu == low) >= 0.01:
            hu = np.where(hu == low, AIR_HU, hu)
        return hu

    def slice_status(self, hu: np.ndarray, pixel_spacing) -> str:
        """The status of one slice (``"ok"`` or why the model cannot answer); see the class docstring."""
        hu = np.asarray(hu)
        if not np.all(np.isfinite(hu)):
            return STATUS_NON_FINITE
        rows, cols = self.spacing_pair(pixel_spacing)
        lo, hi = self.spacing_range_mm
        if not (lo <= rows <= hi and lo <= cols <= hi):
            return STATUS_SPACING
        hu = self.remove_padding(hu.astype(np.float32))
        if np.mean(hu < self.hu_range[0] - 200) > self.non_ct_fraction or \
                np.mean(hu > self.hu_range[1]) > self.non_ct_fraction:
            return STATUS_NON_CT
        if np.count_nonzero(hu > self.body_hu) * rows * cols < self.min_body_area_mm2:
            return STATUS_NO_BODY
        p1, p99 = np.percentile(hu[::2, ::2], [1, 99])   # every 4th pixel: the range, at a quarter of the cost
        if p99 - p1 < self.min_dynamic_range_hu:         # tissue but no contrast: not a CT slice
            return STATUS_NON_CT
        return STATUS_OK

    # ------------------------------------------------------------------ geometry
    def resample(self, hu: np.ndarray, pixel_spacing) -> torch.Tensor:
        """``(H, W)`` HU at ``pixel_spacing`` -> HU at the model spacing (each axis by its own factor;
        bilinear, anti-aliased when shrinking; the physical extent is kept)."""
        rows, cols = self.spacing_pair(pixel_spacing)
        x = torch.as_tensor(np.asarray(hu, dtype=np.float32))
        h, w = x.shape
        size = (max(1, round(h * rows / self.pixel_spacing_mm)), max(1, round(w * cols / self.pixel_spacing_mm)))
        if size == (h, w):
            return x
        return F.interpolate(x[None, None], size=size, mode="bilinear", align_corners=False,
                             antialias=size[0] < h or size[1] < w)[0, 0]

    def fit_grid(self, hu: torch.Tensor) -> torch.Tensor:
        """Centre the body (centroid of pixels above ``body_hu``; the image centre without any)
        and pad with air or crop to ``image_size`` x ``image_size``."""
        n = self.image_size
        h, w = hu.shape
        body = (hu > self.body_hu).to(torch.float32)
        total = float(body.sum())
        if total > 0:
            cy = float((body.sum(1) * torch.arange(h, dtype=torch.float32)).sum()) / total
            cx = float((body.sum(0) * torch.arange(w, dtype=torch.float32)).sum()) / total
        else:
            cy, cx = (h - 1) / 2, (w - 1) / 2
        top, left = int(round(cy - (n - 1) / 2)), int(round(cx - (n - 1) / 2))
        out = torch.full((n, n), AIR_HU, dtype=hu.dtype)
        src_r0, src_c0 = max(top, 0), max(left, 0)
        src_r1, src_c1 = min(top + n, h), min(left + n, w)
        if src_r1 > src_r0 and src_c1 > src_c0:
            out[src_r0 - top:src_r1 - top, src_c0 - left:src_c1 - left] = hu[src_r0:src_r1, src_c0:src_c1]
        return out

    def to_grid(self, hu: np.ndarray, pixel_spacing) -> torch.Tensor:
        """One slice (assumed ``ok``) on the model grid: padding removed, resampled, centred."""
        return self.fit_grid(self.resample(self.remove_padding(np.asarray(hu, dtype=np.float32)), pixel_spacing))

    def __call__(self, images, pixel_spacing=None, return_tensors=None) -> BatchFeature:
        """Process slices.

        Args:
            images: one ``(H, W)`` HU array (numpy or torch) or DICOM dataset, or a sequence of
                them (sizes may differ).
            pixel_spacing: for HU arrays, one spacing for all (a number or a ``(row, column)``
                pair, mm) or one per slice; DICOM datasets carry their own (give none).
            return_tensors: accepted for transformers' pipelines; the result holds torch tensors.

        Returns:
            ``BatchFeature`` with ``pixel_values`` ``(B, N, N)`` float32 HU on the grid (air for
            slices whose status is not ok), ``pixel_spacing`` ``(B,)`` native mean pixel spacing
            in mm, ``status``: list of B strings, and with ``native_statistics`` set
            ``native_statistics`` ``(B, len(NATIVE_STATISTICS))`` (zeros for slices not ok).
        """
        if return_tensors not in (None, "pt"):
            raise ValueError(f"SeSpeCTImageProcessor returns torch tensors (return_tensors='pt'), "
                             f"got {return_tensors!r}")
        if _is_dicom(images) or (isinstance(images, (np.ndarray, torch.Tensor)) and np.ndim(images) == 2):
            images = [images]
        images = list(images)
        if any(_is_dicom(im) for im in images):
            if pixel_spacing is not None:
                raise ValueError("DICOM datasets carry their own PixelSpacing: give no pixel_spacing with them")
            if not all(_is_dicom(im) for im in images):
                raise ValueError("give either DICOM datasets or HU arrays with pixel_spacing, not a mix")
            images, spacings = zip(*(dicom_hu(ds) for ds in images))
        elif pixel_spacing is None:
            raise ValueError("HU arrays need pixel_spacing (mm per pixel: one number, a (row, column) pair, or one "
                             "per slice); DICOM datasets carry theirs")
        else:
            spacings = pixel_spacing
            if np.ndim(pixel_spacing) == 0 or (np.ndim(pixel_spacing) == 1 and len(pixel_spacing) == 2
                                               and len(images) != 2):
                spacings = [pixel_spacing] * len(images)
        images = [np.asarray(im.numpy() if isinstance(im, torch.Tensor) else im) for im in images]
        if any(im.ndim != 2 for im in images):
            raise ValueError(f"each image must be a 2-D HU slice, got shapes {[im.shape for im in images]}")
        if len(spacings) != len(images):
            raise ValueError(f"got {len(images)} images and {len(spacings)} pixel spacings: give one for all or one "
                             f"per image")
        grids, native, status, stats = [], [], [], []
        for im, sp in zip(images, spacings):
            state = self.slice_status(im, sp)
            status.append(state)
            rows, cols = self.spacing_pair(sp)
            native.append(math.sqrt(rows * cols))
            grids.append(self.to_grid(im, sp) if state == STATUS_OK
                         else torch.full((self.image_size, self.image_size), AIR_HU))
            if self.native_statistics:
                stats.append(native_statistics(im, sp) if state == STATUS_OK
                             else np.zeros(len(NATIVE_STATISTICS), np.float32))
        out = {"pixel_values": torch.stack(grids), "pixel_spacing": torch.tensor(native, dtype=torch.float32),
               "status": status}
        if self.native_statistics:
            out["native_statistics"] = torch.from_numpy(np.stack(stats))
        return BatchFeature(out)

    preprocess = __call__


SeSpeCTImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = ["SeSpeCTImageProcessor", "dicom_hu", "native_statistics", "NATIVE_STATISTICS",
           "STATUSES", "STATUS_OK", "STATUS_NON_FINITE", "STATUS_SPACING", "STATUS_NON_CT",
           "STATUS_NO_BODY"]
