"""A reference CT slice: the clean input of the simulator, with its provenance.

Every slice carries a stable ``reference_id`` built from (source, patient, series, slice
index); it seeds every random draw made for the slice and groups slices by patient for
the train / validation / test split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def id_part(value) -> str:
    """Make ``value`` safe inside an id (letters, digits, ``.``, ``_``, ``-``; others become ``_``)."""
    text = _ID_UNSAFE.sub("_", str(value)).strip("_")
    return text or "unknown"


def make_reference_id(source: str, patient_id: str, series_id: str, slice_index: int) -> str:
    """``source/patient/series/slice`` with each part made id-safe and the slice zero-padded."""
    return f"{id_part(source)}/{id_part(patient_id)}/{id_part(series_id)}/{int(slice_index):04d}"


def source_of(patient_key: str) -> str:
    """The source part of a ``source/patient`` key (:attr:`ReferenceSlice.patient_key`)."""
    return patient_key.split("/", 1)[0]


@dataclass(frozen=True)
class ReferenceSlice:
    """One axial reference slice on a square grid, in Hounsfield units.

    Attributes
    ----------
    hu : np.ndarray of int16, shape (N, N)
        Hounsfield units as stored by the scanner after rescale (values below -1000 HU,
        such as scanner padding, are kept here; the simulator treats them as air).
        Rows run anterior -> posterior, columns patient right -> left (radiological view).
    pixel_spacing_mm : float
        Side of one (square) pixel in mm, after any resampling.
    source, patient_id, series_id : str
    slice_index : int
        Index of the slice within its series, ordered inferior -> superior.
    info : dict
        Acquisition facts when known (``kernel``, ``slice_thickness_mm``, ``kvp``,
        ``manufacturer``, ``body_part``, ``noise_sd_hu``, ...); missing facts are absent.
    """

    hu: np.ndarray
    pixel_spacing_mm: float
    source: str
    patient_id: str
    series_id: str
    slice_index: int
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        hu = self.hu
        if not isinstance(hu, np.ndarray) or hu.ndim != 2 or hu.shape[0] != hu.shape[1]:
            raise ValueError(f"reference slice must be a square 2-D array, got {getattr(hu, 'shape', type(hu))}")
        if hu.dtype != np.int16:
            raise ValueError(f"reference slice must hold int16 HU, got dtype {hu.dtype}")
        if not (self.pixel_spacing_mm > 0):
            raise ValueError(f"pixel_spacing_mm must be positive, got {self.pixel_spacing_mm!r}")

    @property
    def reference_id(self) -> str:
        return make_reference_id(self.source, self.patient_id, self.series_id, self.slice_index)

    @property
    def patient_key(self) -> str:
        """``source/patient``: the unit of the patient-level split."""
        return f"{id_part(self.source)}/{id_part(self.patient_id)}"

    @property
    def image_size(self) -> int:
        return int(self.hu.shape[0])
