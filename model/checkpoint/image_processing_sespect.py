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
as an input: a slice stored at 3 mm pixels is expected to look smoother than one at 0.7 mm).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature

AIR_HU = -1000.0   # air (mu = 0); the value of ctdegradbench.core.hu.AIR_HU, copied: this file is self-contained
STATUS_OK = "ok"
STATUS_NON_FINITE = "non_finite"            # NaN or infinite pixels
STATUS_SPACING = "spacing_out_of_range"     # pixel spacing outside the trained range
STATUS_NON_CT = "non_ct_values"             # values that are not Hounsfield units of a CT slice
STATUS_NO_BODY = "no_body"                  # too little tissue in the slice to judge
STATUSES = (STATUS_OK, STATUS_NON_FINITE, STATUS_SPACING, STATUS_NON_CT, STATUS_NO_BODY)


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
    """

    model_input_names = ["pixel_values", "pixel_spacing"]
    # Written by ``save_pretrained`` and given back to ``__init__`` by ``from_pretrained``.
    _saved_keys = ("auto_map", "image_processor_type", "processor_class")

    def __init__(self, pixel_spacing_mm: float = 1.0, image_size: int = 384, spacing_range_mm=(0.4, 6.0),
                 hu_range=(-1100.0, 4000.0), non_ct_fraction: float = 0.02, min_dynamic_range_hu: float = 50.0,
                 body_hu: float = -500.0, min_body_area_mm2: float = 2000.0, **saved):
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

    @classmethod
    def from_config(cls, config) -> "SeSpeCTImageProcessor":
        """The processor of a SeSpeCT config whose ``pixel_spacing_mm`` is set."""
        if getattr(config, "pixel_spacing_mm", None) is None:
            raise ValueError("this SeSpeCT config has no pixel_spacing_mm (a pixel-grid checkpoint): it resizes "
                             "slices itself and has no physical-grid processor")
        return cls(pixel_spacing_mm=config.pixel_spacing_mm, image_size=config.image_size,
                   spacing_range_mm=config.spacing_range_mm)

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
            in mm, ``status``: list of B strings.
        """
        if return_tensors not in (None, "pt"):
            raise ValueError(f"SeSpeCTImageProcessor returns torch tensors (return_tensors='pt'), got {return_tensors!r}")
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
        grids, native, status = [], [], []
        for im, sp in zip(images, spacings):
            state = self.slice_status(im, sp)
            status.append(state)
            rows, cols = self.spacing_pair(sp)
            native.append(math.sqrt(rows * cols))
            grids.append(self.to_grid(im, sp) if state == STATUS_OK
                         else torch.full((self.image_size, self.image_size), AIR_HU))
        return BatchFeature({"pixel_values": torch.stack(grids),
                             "pixel_spacing": torch.tensor(native, dtype=torch.float32), "status": status})

    preprocess = __call__


SeSpeCTImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = ["SeSpeCTImageProcessor", "dicom_hu", "STATUSES", "STATUS_OK", "STATUS_NON_FINITE", "STATUS_SPACING", "STATUS_NON_CT",
           "STATUS_NO_BODY"]
