"""DICOM facts for the reference-CT sources: headers, patient orientation, Hounsfield units.

This module only reads and converts; what to skip and what to report is decided in
``builder.sources``.

Conventions
-----------
DICOM patient coordinates are LPS: +x towards the patient's left, +y towards posterior,
+z towards superior (head), whatever the patient position on the table (HFS, FFS, prone).
``ImageOrientationPatient`` holds two unit vectors in that frame: the first triplet is the
direction in which the *column index* grows along a row, the second the direction in which
the *row index* grows down a column. The reference slices use the radiological display
convention: row index growing towards posterior (anterior at the top) and column index
growing towards the patient's left (patient right on the image's left), i.e. a target
orientation of ``[1, 0, 0, 0, 1, 0]``. ``display_transform`` finds the transpose / flips that
bring any axial orientation there; a gantry tilt (slice normal not along z) is kept as acquired
and reported in degrees.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# A slice is axial when its normal is within 45 degrees of the patient's z axis; beyond that
# it is closer to a sagittal or coronal reconstruction and the anatomy convention no longer holds.
AXIAL_MAX_TILT_DEG = 45.0

# pydicom warns about header values that break the VR rules (e.g. the hex "UIDs" of
# bad_sequence.dcm); the values are still read, and they are only used as ids here.
_IGNORED_WARNINGS = "Invalid value for VR"


@dataclass(frozen=True)
class DicomHeader:
    """What the sources need from one DICOM file, read without decoding its pixels.

    Empty strings mean "absent or blank" for text fields; ``None`` means absent for the others.
    ``pixel_spacing_mm`` is (row spacing, column spacing) as in the DICOM PixelSpacing tag.
    """

    path: Path
    n_elements: int
    has_pixel_data: bool
    sop_class_uid: str
    modality: str
    n_frames: int
    samples_per_pixel: int
    patient_id: str
    study_uid: str
    series_uid: str
    series_number: str
    instance_number: int | None
    orientation: tuple[float, ...] | None
    position_mm: tuple[float, float, float] | None
    pixel_spacing_mm: tuple[float, float] | None
    facts: dict


@dataclass(frozen=True)
class DisplayTransform:
    """How to bring stored pixels to the radiological view, and the slice geometry.

    Applied in this order: transpose, then flip rows (vertical), then flip columns.
    ``superior_normal`` is the unit slice normal in LPS, signed to point towards the head,
    so that ``position . superior_normal`` grows from inferior to superior.
    """

    transpose: bool
    flip_rows: bool
    flip_cols: bool
    tilt_deg: float
    superior_normal: tuple[float, float, float]

    def describe(self) -> str:
        steps = [name for name, on in (("transpose", self.transpose), ("flip rows", self.flip_rows),
                                       ("flip columns", self.flip_cols)) if on]
        return ", ".join(steps) if steps else "none"


def dcmread(path: Path, *, pixels: bool):
    """``pydicom.dcmread`` with pixel data deferred (``pixels=False``) or read (``pixels=True``).

    Raises ``pydicom.errors.InvalidDicomError`` for a file that is not DICOM and other
    exceptions for a file that is DICOM but cannot be parsed.
    """
    import pydicom

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_IGNORED_WARNINGS)
        if pixels:
            return pydicom.dcmread(str(path))
        # Values larger than 1 KiB (the pixel data) are read only when accessed.
        return pydicom.dcmread(str(path), defer_size=1024)


def _text(ds, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "/".join(str(v).strip() for v in value if str(v).strip())
    return str(value).strip()


def _float(ds, keyword: str) -> float | None:
    value = ds.get(keyword)
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


def _floats(ds, keyword: str, count: int) -> tuple[float, ...] | None:
    value = ds.get(keyword)
    try:
        values = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return values if len(values) == count else None


def read_header(path: Path) -> DicomHeader:
    """Read the header of one DICOM file (pixels deferred)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_IGNORED_WARNINGS)
        ds = dcmread(path, pixels=False)
        instance = _float(ds, "InstanceNumber")
        facts = {
            "modality": _text(ds, "Modality"),
            "kernel": _text(ds, "ConvolutionKernel"),
            "slice_thickness_mm": _float(ds, "SliceThickness"),
            "kvp": _float(ds, "KVP"),
            "manufacturer": _text(ds, "Manufacturer"),
            "scanner_model": _text(ds, "ManufacturerModelName"),
            "body_part": _text(ds, "BodyPartExamined"),
            "series_description": _text(ds, "SeriesDescription"),
        }
        return DicomHeader(
            path=Path(path),
            n_elements=len(ds),
            has_pixel_data="PixelData" in ds,
            sop_class_uid=_text(ds, "SOPClassUID"),
            modality=_text(ds, "Modality").upper(),
            n_frames=int(_float(ds, "NumberOfFrames") or 1),
            samples_per_pixel=int(_float(ds, "SamplesPerPixel") or 1),
            patient_id=_text(ds, "PatientID"),
            study_uid=_text(ds, "StudyInstanceUID"),
            series_uid=_text(ds, "SeriesInstanceUID"),
            series_number=_text(ds, "SeriesNumber"),
            instance_number=None if instance is None else int(instance),
            orientation=_floats(ds, "ImageOrientationPatient", 6),
            position_mm=_floats(ds, "ImagePositionPatient", 3),
            pixel_spacing_mm=_floats(ds, "PixelSpacing", 2),
            facts={k: v for k, v in facts.items() if v not in (None, "")},
        )


def display_transform(orientation: tuple[float, ...] | None) -> DisplayTransform | None:
    """The transform from stored pixels to the radiological view, or ``None`` if not axial.

    A missing orientation is taken as the standard axial one ``[1, 0, 0, 0, 1, 0]``
    (no transform, no tilt). The row and column directions are matched to the patient axis
    they are closest to; the slice is axial when they are x and y (in either order) and the
    slice normal lies within ``AXIAL_MAX_TILT_DEG`` of z.
    """
    if orientation is None:
        orientation = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    along_row = np.asarray(orientation[:3], dtype=float)   # column index grows this way
    down_col = np.asarray(orientation[3:], dtype=float)    # row index grows this way
    normal = np.cross(along_row, down_col)
    norm = float(np.linalg.norm(normal))
    if norm < 1e-6:
        return None
    normal = normal / norm
    tilt_deg = float(np.degrees(np.arccos(min(1.0, abs(normal[2])))))
    row_axis, col_axis = int(np.argmax(np.abs(along_row))), int(np.argmax(np.abs(down_col)))
    if {row_axis, col_axis} != {0, 1} or tilt_deg > AXIAL_MAX_TILT_DEG:
        return None
    transpose = row_axis == 1  # columns run anterior/posterior: swap rows and columns
    if transpose:
        along_row, down_col = down_col, along_row
    superior = normal if normal[2] > 0 else -normal
    return DisplayTransform(
        transpose=transpose,
        flip_rows=bool(down_col[1] < 0),   # rows must grow towards posterior (+y)
        flip_cols=bool(along_row[0] < 0),  # columns must grow towards patient left (+x)
        tilt_deg=round(tilt_deg, 2),
        superior_normal=tuple(float(v) for v in superior),
    )


def apply_display_transform(pixels: np.ndarray, transform: DisplayTransform) -> np.ndarray:
    """Transpose / flip a 2-D pixel array as ``transform`` says (a contiguous copy)."""
    out = pixels.T if transform.transpose else pixels
    if transform.flip_rows:
        out = out[::-1, :]
    if transform.flip_cols:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def slice_position_mm(header: DicomHeader, transform: DisplayTransform) -> float | None:
    """Position of the slice along its head-pointing normal in mm (``None`` without IPP)."""
    if header.position_mm is None:
        return None
    return float(np.dot(header.position_mm, transform.superior_normal))


def read_hu(path: Path) -> np.ndarray:
    """Decode the pixels of a single-frame image and rescale them to HU (float64, stored orientation).

    The modality LUT (RescaleSlope / RescaleIntercept, or a Modality LUT Sequence) is applied
    by ``pydicom.pixels.apply_modality_lut``; nothing is clipped.
    """
    from pydicom.pixels import apply_modality_lut

    ds = dcmread(path, pixels=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_IGNORED_WARNINGS)
        stored = ds.pixel_array
        return np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
