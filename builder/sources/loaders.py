"""Reference-CT sources: turn DICOM / NIfTI CT into ``ReferenceSlice`` objects.

Sources
-------
- ``"default"``: five real CT slices shipped inside the PyPI packages pydicom and pydicom-data
  (``DEFAULT_SOURCE_FILES``), so that the project builds without any download.
- a DICOM folder (or one DICOM file): grouped by SeriesInstanceUID, sorted by position.
- a NIfTI file or a folder of NIfTI files (nibabel), orientation from the affine or ``axes=``.

Every slice goes through the same steps, in this order:

1. **HU.** DICOM pixels are rescaled with the modality LUT (RescaleSlope / RescaleIntercept);
   NIfTI values are taken as HU (after the file's scl_slope / scl_inter). Values are rounded
   to int16; nothing is clipped: values below -1000 HU (scanner padding such as -2048 / -3024,
   or noise in air) are kept and counted in ``info["padding_pixels"]`` (the simulator maps them
   to air, see ``builder.hu``).
2. **Orientation.** Radiological view: anterior at the top (row index towards posterior),
   patient's right on the image's left (column index towards patient left); slices ordered
   inferior -> superior. See ``builder.dicom_io`` and ``builder.nifti_io``.
3. **Checks** (each failure is a counted skip, see below): finite values, at least
   ``MIN_IMAGE_PX`` pixels on each side, square pixels, values inside the int16 range.
4. **Square grid.** A non-square image is padded with air (-1000 HU) on both sides, centred,
   to a square of its longer side; the pixel spacing is unchanged.
5. **Selection** within each series: every ``stride``-th slice (counted from the inferior end),
   then slices whose body fraction (pixels above ``BODY_HU`` = -500 HU) is below
   ``min_body_fraction`` are dropped, then at most ``max_slices`` evenly spaced slices are kept.
   Between the stride and the body fraction, ``truncation`` applies (``builder.sources.truncation``)
   and every slice records ``info["metal_like_area_mm2"]`` (:func:`metal_like_area_mm2`); with
   ``max_metal_area_mm2``, the slices above it are skipped.
6. **Resampling** (only when ``image_size`` is given and differs): bilinear
   (``skimage.transform.resize``, order 1, anti-aliased when shrinking, range preserved) to
   ``image_size`` x ``image_size``; the pixel spacing is multiplied by old size / new size.
   Padding below -1000 HU is set to -1000 HU before resampling so that it does not bleed into
   the neighbouring tissue; ``info["padding_pixels"]`` still counts it on the source grid.
7. **Noise.** ``info["noise_sd_hu"]`` = ``estimate_noise_sd`` of the final slice.

Ids: ``slice_index`` is the position in the sorted series (before stride and filters), so a
slice keeps its ``reference_id`` whatever the selection options. The patient id is the DICOM
PatientID; when blank, ``study-<StudyInstanceUID>``, else the name of the folder holding the
series. The series id is the SeriesInstanceUID, else ``series-<SeriesNumber>``, else the folder
name. NIfTI: patient id = ``patient_id`` argument or the file name without ``.nii[.gz]``;
series id = the file name without ``.nii[.gz]``. ``source`` defaults to the name of the folder
given (the folder holding a single file). Patient ids end up in the published dataset: use
de-identified data.

Bad input never ends in a bare traceback: a problem with one file or slice is a counted skip
(``SourceResult.skipped``, reason -> count, with one example per reason in
``SourceResult.skip_examples``); when nothing is left, ``SourceError`` names the path and the
skip counts. Bad arguments raise ``ValueError`` / ``FileNotFoundError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from scipy import ndimage

from ctdegradbench.builder.sources import dicom_io
from ctdegradbench.builder.sources import nifti_io
from ctdegradbench.core.errors import InputError, InputNotFoundError, OptionError
from ctdegradbench.core.hu import AIR_HU, METAL_HU, PREVIEW_WINDOW_HU
from ctdegradbench.builder.sources.options import MIN_IMAGE_PX, SourceOptions
from ctdegradbench.builder.sources.reference import ReferenceSlice
from ctdegradbench.builder.sources.truncation import apply_truncation_mode

# A pixel above -500 HU is body (or table): halfway between air (-1000) and water (0), the usual
# threshold that separates air and lung-free tissue robustly even in noisy images.
BODY_HU = -500.0
# Row and column spacing must agree to this relative tolerance (square pixels).
SQUARE_PIXEL_RTOL = 1e-3
# Two slices of a series closer than this along the slice normal are the same position.
DUPLICATE_POSITION_MM = 0.01
# Soft tissue (fat edge to enhanced parenchyma) where the noise SD is estimated.
SOFT_TISSUE_HU = (-100.0, 200.0)
# Side of the square window of the local SD; 7 px holds 49 samples (sampling error of one
# local SD ~10 %) while staying inside organs at 0.5-1 mm pixels.
NOISE_WINDOW_PX = 7
# Gaussian smoothing (px) of the image used only to decide which pixels are soft tissue,
# so that the tissue mask does not follow the noise.
NOISE_MASK_SIGMA_PX = 2.0
# Fewer soft-tissue windows than this: no estimate (the median would not be robust).
NOISE_MIN_WINDOWS = 500
DEFAULT_SOURCE_NAME = "pydicom"
_INT16 = np.iinfo(np.int16)


class SourceError(InputError):
    """A reference-CT source yields no usable slice, or a default file is missing."""


# --------------------------------------------------------------------------------------------
# The default source
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DefaultSourceFile:
    """One file of the default source and what is known about where it came from.

    ``provenance`` and ``license`` hold only what the installed packages state (pydicom's
    ``data/test_files/README.txt``, the packages' LICENSE files) plus what the DICOM header shows;
    ``body_part`` is what the slice shows, checked visually.
    """

    file_name: str
    package: str
    body_part: str
    provenance: str
    license: str


_PYDICOM_LICENSE = (
    "pydicom: MIT (LICENSE, Darcy Mason and pydicom contributors); its test-file README says "
    "'I believe there is no restriction on using any of these files in this manner'; the licence "
    "of the upstream image is not stated"
)
_PYDICOM_DATA_LICENSE = (
    "pydicom-data: MIT (LICENSE, Copyright (c) 2020 Dicom in Python); pydicom's test-file README "
    "says 'I believe there is no restriction on using any of these files in this manner'; the "
    "licence of the upstream image is not stated"
)

DEFAULT_SOURCE_FILES: tuple[DefaultSourceFile, ...] = (
    DefaultSourceFile(
        "693_UNCR.dcm", "pydicom-data", "HEAD",
        "pydicom regression dataset for issue #693 (uncompressed version of the 693_J2K* files); "
        "header PatientID CQ500-CT-310, the naming of the CQ500 head-CT collection; "
        "scanner padding -3024 HU outside the reconstruction circle",
        _PYDICOM_DATA_LICENSE,
    ),
    DefaultSourceFile(
        "bad_sequence.dcm", "pydicom-data", "ABDOMEN",
        "pydicom anonymised test dataset for issue #1067, provided by GitHub user sylvainKritter; "
        "Siemens SOMATOM Definition AS+, kernel B30s, JPEG lossless; the header says "
        "BodyPartExamined NECK but the slice shows a lower thoracic vertebra with ribs, lung "
        "bases, liver and bowel (upper abdomen)",
        _PYDICOM_DATA_LICENSE,
    ),
    DefaultSourceFile(
        "explicit_VR-UN.dcm", "pydicom-data", "ABDOMEN",
        "pydicom test data from issue #968; original image from The Cancer Imaging Archive "
        "('freely available de-identified datasets'), JPEG 2000 lossless by gdcmconv --j2k; "
        "header PatientID PANCREAS_0001, BodyPartExamined PANCREAS; stored with rows running "
        "posterior -> anterior (orientation [1,0,0,0,-1,0]), flipped here",
        _PYDICOM_DATA_LICENSE,
    ),
    DefaultSourceFile(
        "J2K_pixelrep_mismatch.dcm", "pydicom", "HEAD",
        "pydicom test data from issue #1149 (JPEG 2000 codestream unsigned, Pixel Representation 1, "
        "Bits Stored 13); Hitachi Supria; gantry tilt 22 degrees, kept as acquired",
        _PYDICOM_LICENSE,
    ),
    DefaultSourceFile(
        "CT_small.dcm", "pydicom", "CHEST",
        "pydicom test data: 'CT1_UNC' of the NEMA WG04 compression samples "
        "(ftp://medical.nema.org/MEDICAL/Dicom/DataSets/WG04/), reduced to 128 x 128; GE "
        "HiSpeed-series 'RHAPSODE'; shows a thoracic vertebra between the lungs",
        _PYDICOM_LICENSE,
    ),
)


def _package_data_dir(package: str) -> Path:
    """Folder that holds the test files of ``package`` (found without importing pydicom's downloader)."""
    import importlib.util

    module = {"pydicom": "pydicom", "pydicom-data": "data_store"}[package]
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise SourceError(f"the default reference CT needs the package {package!r}: pip install {package}")
    base = Path(spec.origin).parent
    return base / "data" / "test_files" if package == "pydicom" else base / "data"


def default_source_paths() -> list[Path]:
    """Paths of the five default files inside the installed packages (no download)."""
    paths = []
    for entry in DEFAULT_SOURCE_FILES:
        path = _package_data_dir(entry.package) / entry.file_name
        if not path.is_file():
            raise SourceError(
                f"default reference file {entry.file_name} not found in {path.parent}: "
                f"reinstall the package {entry.package!r}"
            )
        paths.append(path)
    return paths


# --------------------------------------------------------------------------------------------
# Results and skip counting
# --------------------------------------------------------------------------------------------


UNREADABLE = "unreadable DICOM file"


class _SkipLog:
    """Counts skipped files / slices by reason and keeps the first example of each reason.

    A skip with ``other_object`` names a file that is no axial CT image slice at all (a licence
    or text file, a report or presentation state, another modality, a colour screen capture, a
    localizer), as opposed to a CT slice that could not be used (truncated, not decodable,
    multi-frame, without pixel spacing): a folder exported from a scanner holds such objects
    beside its slices. Their reasons are collected in ``other_objects``."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.examples: dict[str, str] = {}
        self.items: list[tuple[str, str]] = []       # (reason, where) of every skip
        self.other_objects: set[str] = set()

    def add(self, reason: str, where: str, count: int = 1, other_object: bool = False) -> None:
        if count <= 0:
            return
        self.counts[reason] = self.counts.get(reason, 0) + count
        self.examples.setdefault(reason, where)
        self.items.append((reason, where))
        if other_object:
            self.other_objects.add(reason)

    def describe(self) -> str:
        if not self.counts:
            return "nothing was skipped"
        return "; ".join(f"{reason}: {n} (e.g. {self.examples[reason]})" for reason, n in self.counts.items())


@dataclass
class SourceResult:
    """Slices of a source and what was skipped on the way (reason -> count)."""

    slices: list[ReferenceSlice]
    skipped: dict[str, int] = field(default_factory=dict)
    skip_examples: dict[str, str] = field(default_factory=dict)
    description: str = ""
    skipped_files: list[tuple[str, str]] = field(default_factory=list)   # (reason, where) of every skip
    other_objects: frozenset[str] = frozenset()   # the reasons that name no CT image slice at all (_SkipLog)

    @classmethod
    def from_log(cls, slices: list[ReferenceSlice], log: _SkipLog, description: str) -> "SourceResult":
        return cls(slices, dict(log.counts), dict(log.examples), description, list(log.items),
                   frozenset(log.other_objects))

    def is_other_object(self, reason: str) -> bool:
        """Whether files skipped for ``reason`` hold no axial CT image slice at all (a licence, a
        report, a localizer, another modality), not a CT slice that could not be used."""
        return reason in self.other_objects

    def summary(self) -> str:
        """One line: how many slices, patients and series, and the skip counts."""
        patients = {s.patient_key for s in self.slices}
        series = {(s.patient_key, s.series_id) for s in self.slices}
        skipped = ", ".join(f"{reason}: {n}" for reason, n in self.skipped.items()) or "none"
        return (f"{self.description}: {len(self.slices)} slices, {len(patients)} patients, "
                f"{len(series)} series; skipped: {skipped}")


def _result(slices: list[ReferenceSlice], log: _SkipLog, description: str, where: Path | str) -> SourceResult:
    if not slices:
        raise SourceError(f"no CT found in {where}: {log.describe()}")
    return SourceResult.from_log(slices, log, description)


# --------------------------------------------------------------------------------------------
# Pixels: checks, square grid, resampling, noise
# --------------------------------------------------------------------------------------------


def pad_to_square(hu: np.ndarray) -> np.ndarray:
    """Pad a 2-D image with air (-1000 HU), centred, to a square of its longer side."""
    rows, cols = hu.shape
    size = max(rows, cols)
    top, left = (size - rows) // 2, (size - cols) // 2
    out = np.full((size, size), AIR_HU, dtype=hu.dtype)
    out[top:top + rows, left:left + cols] = hu
    return out


def resample_square(hu: np.ndarray, pixel_spacing_mm: float, image_size: int) -> tuple[np.ndarray, float]:
    """Resample a square HU image to ``image_size`` px; returns (float image, new pixel spacing in mm).

    Bilinear (order 1) with anti-aliasing when shrinking (scikit-image's Gaussian pre-filter,
    sigma = (factor - 1) / 2). Values below -1000 HU are first set to -1000 HU (air). The field
    of view is unchanged, so the spacing becomes ``pixel_spacing_mm * N / image_size``.
    """
    from skimage.transform import resize

    size = hu.shape[0]
    if image_size == size:
        return hu.astype(np.float64), float(pixel_spacing_mm)
    image = np.maximum(hu.astype(np.float64), AIR_HU)
    out = resize(image, (image_size, image_size), order=1, anti_aliasing=image_size < size,
                 preserve_range=True, mode="edge")
    return out, float(pixel_spacing_mm) * size / image_size


def metal_like_area_mm2(hu: np.ndarray, pixel_spacing_mm: float) -> float:
    """Area (mm^2) of the pixels above ``METAL_HU`` in a slice of square ``pixel_spacing_mm`` pixels:
    metal already in the patient, or iodine contrast or a truncation rim at the top of the stored
    scale. A reference holding as much of it as a simulated implant shows metal artifacts of its
    own under every label (``SourceOptions.max_metal_area_mm2``)."""
    return float(np.count_nonzero(hu > METAL_HU)) * float(pixel_spacing_mm) ** 2


def body_fraction(hu: np.ndarray) -> float:
    """Fraction of pixels above ``BODY_HU`` (-500 HU): body, table and bone, not air or padding."""
    return float(np.count_nonzero(hu > BODY_HU)) / hu.size


def estimate_noise_sd(hu: np.ndarray) -> float:
    """Estimate the noise standard deviation (HU) of a CT slice from its soft tissue.

    Method: the sample SD of every ``NOISE_WINDOW_PX`` x ``NOISE_WINDOW_PX`` window whose
    pixels all lie in soft tissue (``SOFT_TISSUE_HU`` = -100..200 HU, decided on a copy smoothed
    with a Gaussian of ``NOISE_MASK_SIGMA_PX`` px so that the mask does not follow the noise,
    and eroded by the window so that no window straddles an edge to fat, air, lung or bone);
    the estimate is the median of these local SDs, divided by the median of a chi distribution
    with n - 1 degrees of freedom over sqrt(n - 1) (n = window pixels; 0.993 for 7 x 7) so that
    it is unbiased for white Gaussian noise. The median ignores the minority of windows that
    hold anatomy (vessels, organ borders).

    Limits: CT noise is spatially correlated; a window's SD misses the part of the variance
    that varies more slowly than the window, so smooth-kernel noise is underestimated (measured:
    by 12 % for white noise blurred by a Gaussian of 1 px, 24 % for 1.5 px; larger windows lose
    less but let in more anatomy), and remaining anatomical texture adds to it. It is a
    reference-noise indicator for metadata, not a calibrated measurement.

    Returns ``nan`` when fewer than ``NOISE_MIN_WINDOWS`` soft-tissue windows exist.
    """
    from scipy.stats import chi2

    image = np.asarray(hu, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"estimate_noise_sd expects a 2-D HU image, got shape {image.shape}")
    lo, hi = SOFT_TISSUE_HU
    smooth = ndimage.gaussian_filter(image, NOISE_MASK_SIGMA_PX)
    tissue = (smooth >= lo) & (smooth <= hi)
    window = np.ones((NOISE_WINDOW_PX, NOISE_WINDOW_PX), dtype=bool)
    centres = ndimage.binary_erosion(tissue, structure=window, border_value=0)
    if np.count_nonzero(centres) < NOISE_MIN_WINDOWS:
        return float("nan")
    n = NOISE_WINDOW_PX * NOISE_WINDOW_PX
    centred = image - image[centres].mean()  # reduces cancellation in E[x^2] - E[x]^2
    mean = ndimage.uniform_filter(centred, NOISE_WINDOW_PX, mode="reflect")
    mean_sq = ndimage.uniform_filter(centred * centred, NOISE_WINDOW_PX, mode="reflect")
    local_var = np.maximum(mean_sq[centres] - mean[centres] ** 2, 0.0) * n / (n - 1)
    chi_median = np.sqrt(chi2.ppf(0.5, n - 1) / (n - 1))
    return float(np.median(np.sqrt(local_var)) / chi_median)


@dataclass
class _Candidate:
    """A slice before its pixels are read: where it is, how to read it, its ids and facts."""

    slice_index: int
    where: str
    read: Callable[[], np.ndarray]  # float HU, radiological view, source grid
    spacing_mm: tuple[float, float]  # (row, column)
    patient_id: str
    series_id: str
    info: dict


def _checked_square(hu: np.ndarray, spacing_mm: tuple[float, float], where: str, log: _SkipLog):
    """Apply the per-slice checks; return the rounded square image (float) or None (counted skip)."""
    if not np.all(np.isfinite(hu)):
        log.add("non-finite values (NaN or inf)", f"{where}: {np.count_nonzero(~np.isfinite(hu))} pixels")
        return None
    if min(hu.shape) < MIN_IMAGE_PX:
        log.add(f"image smaller than {MIN_IMAGE_PX} px", f"{where}: {hu.shape[0]} x {hu.shape[1]} px")
        return None
    row_mm, col_mm = spacing_mm
    if not (row_mm > 0 and col_mm > 0) or abs(row_mm - col_mm) > SQUARE_PIXEL_RTOL * max(row_mm, col_mm):
        log.add("non-square or invalid pixel spacing", f"{where}: {row_mm} x {col_mm} mm")
        return None
    rounded = np.round(hu)
    if rounded.min() < _INT16.min or rounded.max() > _INT16.max:
        log.add("HU outside the int16 range",
                f"{where}: {rounded.min():.0f} .. {rounded.max():.0f} HU")
        return None
    return pad_to_square(rounded)


def _finish(square: np.ndarray, cand: _Candidate, source: str, image_size: int | None) -> ReferenceSlice:
    """Resample, round to int16 and attach ids and facts."""
    spacing = float(cand.spacing_mm[0])
    info = dict(cand.info)
    info["padding_pixels"] = int(np.count_nonzero(square < AIR_HU))
    if image_size is not None and image_size != square.shape[0]:
        image, spacing = resample_square(square, spacing, image_size)
    else:
        image = square
    hu = np.round(image).astype(np.int16)
    noise = estimate_noise_sd(hu)
    if np.isfinite(noise):
        info["noise_sd_hu"] = round(noise, 2)
    return ReferenceSlice(hu=hu, pixel_spacing_mm=spacing, source=source, patient_id=cand.patient_id,
                          series_id=cand.series_id, slice_index=cand.slice_index, info=info)


def _select_series(cands: list[_Candidate], *, source: str, stride: int, min_body_fraction: float,
                   max_slices: int | None, image_size: int | None, log: _SkipLog,
                   truncation: str = "keep", max_metal_area_mm2: float | None = None) -> list[ReferenceSlice]:
    """Stride, read + check, truncation, metal-like area, body-fraction filter, max_slices, then
    finish (see the module doc)."""
    on_stride = cands[::stride]
    if len(cands) > len(on_stride):
        log.add("between stride steps", f"{cands[1].where} (stride {stride})", len(cands) - len(on_stride))
    kept: list[tuple[_Candidate, np.ndarray]] = []
    for cand in on_stride:
        try:
            hu = cand.read()
        except Exception as err:  # decoder plugins raise many types; each is a counted skip
            log.add("pixel data could not be decoded", f"{cand.where}: {type(err).__name__}: {err}")
            continue
        cand.info["source_shape"] = [int(v) for v in hu.shape]
        square = _checked_square(hu, cand.spacing_mm, cand.where, log)
        if square is None:
            continue
        square, facts = apply_truncation_mode(square, truncation)   # see builder.sources.truncation
        cand.info.update(facts)
        if square is None:
            log.add("truncated: the body touches the field-of-view edge",
                    f"{cand.where}: {facts['border_body_fraction']:.3f} of the border in the body")
            continue
        area = metal_like_area_mm2(square, float(cand.spacing_mm[0]))
        cand.info["metal_like_area_mm2"] = round(area, 2)
        if max_metal_area_mm2 is not None and area > max_metal_area_mm2:
            log.add(f"more than {max_metal_area_mm2:g} mm^2 above {METAL_HU:g} HU (metal-like)",
                    f"{cand.where}: {area:.1f} mm^2")
            continue
        fraction = body_fraction(square)
        if fraction < min_body_fraction:
            log.add(f"body fraction below {min_body_fraction:g}", f"{cand.where}: {fraction:.3f}")
            continue
        cand.info["body_fraction"] = round(fraction, 4)
        kept.append((cand, square))
    if max_slices is not None and len(kept) > max_slices:
        chosen = np.unique(np.round(np.linspace(0, len(kept) - 1, max_slices)).astype(int))
        log.add("beyond max_slices", f"{kept[0][0].where} (max_slices {max_slices})", len(kept) - len(chosen))
        kept = [kept[i] for i in chosen]
    return [_finish(square, cand, source, image_size) for cand, square in kept]


def _check_options(stride: int, min_body_fraction: float, image_size: int | None, max_slices: int | None,
                   truncation: str = "keep", max_metal_area_mm2: float | None = None) -> None:
    """The loaders' keyword arguments, checked by the one declaration (:class:`SourceOptions`)."""
    SourceOptions.check_selection(stride=stride, min_body_fraction=min_body_fraction, image_size=image_size,
                                  max_slices=max_slices, truncation=truncation,
                                  max_metal_area_mm2=max_metal_area_mm2)


# --------------------------------------------------------------------------------------------
# DICOM
# --------------------------------------------------------------------------------------------


def _relative(path: Path, root: Path | None) -> str:
    if root is None:
        return path.name
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _dicom_candidates(paths: list[Path], root: Path | None, log: _SkipLog) -> list[list[_Candidate]]:
    """Read headers, drop non-images / non-CT / non-axial files (counted), group and sort series."""
    from pydicom.errors import InvalidDicomError
    from pydicom.uid import CTImageStorage, EnhancedCTImageStorage

    series: dict[str, list[tuple[dicom_io.DicomHeader, dicom_io.DisplayTransform]]] = {}
    for path in paths:
        where = _relative(path, root)
        try:
            header = dicom_io.read_header(path)
        except InvalidDicomError:
            log.add("not a DICOM file", where, other_object=True)
            continue
        except Exception as err:  # a truncated / corrupt file can fail anywhere in the parser
            log.add(UNREADABLE, f"{where}: {type(err).__name__}: {err}")
            continue
        if header.n_elements == 0:
            log.add(UNREADABLE, f"{where}: no data elements after the file meta header")
            continue
        if not header.has_pixel_data:
            if header.sop_class_uid in (CTImageStorage, EnhancedCTImageStorage):     # a CT slice cut off before its pixels
                log.add(UNREADABLE, f"{where}: a CT image without pixel data (truncated?)")
            else:
                log.add("no pixel data (non-image object)", where, other_object=True)
            continue
        if header.modality != "CT":
            log.add(f"modality {header.modality or 'missing'} (not CT)", where, other_object=True)
            continue
        if header.n_frames > 1:
            log.add("multi-frame image (not supported)", f"{where}: {header.n_frames} frames")
            continue
        if header.samples_per_pixel != 1:
            log.add("not a greyscale image", f"{where}: {header.samples_per_pixel} samples per pixel", other_object=True)
            continue
        if header.pixel_spacing_mm is None:
            log.add("no pixel spacing", where)
            continue
        transform = dicom_io.display_transform(header.orientation)
        if transform is None:
            log.add("non-axial orientation", f"{where}: {header.orientation}", other_object=True)
            continue
        key = header.series_uid or f"{path.parent}#{header.series_number}"
        series.setdefault(key, []).append((header, transform))
    return [_sorted_series(members, root, log) for _, members in sorted(series.items())]


def _sorted_series(members, root: Path | None, log: _SkipLog) -> list[_Candidate]:
    """Order one series inferior -> superior, drop duplicate positions, make ids and candidates."""
    positions = [dicom_io.slice_position_mm(h, t) for h, t in members]
    if all(p is not None for p in positions):
        order = sorted(range(len(members)), key=lambda i: (positions[i], members[i][0].instance_number or 0,
                                                            members[i][0].path.as_posix()))
    else:
        order = sorted(range(len(members)), key=lambda i: (members[i][0].instance_number is None,
                                                            members[i][0].instance_number or 0,
                                                            members[i][0].path.as_posix()))
        positions = [None] * len(members)
    first = members[order[0]][0]
    folder = first.path.parent
    folder_name = folder.name if root is None or folder != root else root.name
    patient = next((h.patient_id for h, _ in members if h.patient_id), "")
    study = next((h.study_uid for h, _ in members if h.study_uid), "")
    patient_id = patient or (f"study-{study}" if study else folder_name)
    series_id = first.series_uid or (f"series-{first.series_number}" if first.series_number else folder_name)

    cands: list[_Candidate] = []
    last_position = None
    for i in order:
        header, transform = members[i]
        where = _relative(header.path, root)
        position = positions[i]
        if position is not None and last_position is not None and abs(position - last_position) < DUPLICATE_POSITION_MM:
            log.add("duplicate slice position", f"{where}: {position:.2f} mm")
            continue
        last_position = position
        info = dict(header.facts)
        info.update(file=where, display_transform=transform.describe(), gantry_tilt_deg=transform.tilt_deg)
        if header.instance_number is not None:
            info["instance_number"] = header.instance_number
        if position is not None:
            info["position_mm"] = round(position, 3)
        cands.append(_Candidate(
            slice_index=len(cands), where=where,
            read=lambda path=header.path, t=transform: dicom_io.apply_display_transform(dicom_io.read_hu(path), t),
            spacing_mm=tuple(header.pixel_spacing_mm[::-1] if transform.transpose else header.pixel_spacing_mm),
            patient_id=patient_id, series_id=series_id, info=info,
        ))
    return cands


def _progress(items: list, what: str, unit: str):
    """``items`` with a progress bar on a terminal's stderr (count / total, the source's name),
    removed when done so the listing that follows stays clean; none when stderr is not a
    terminal (logs, pipes, tests keep one error line) or ``TQDM_DISABLE=1``."""
    from tqdm.auto import tqdm

    return tqdm(items, desc=f"reading {what}", unit=f" {unit}", leave=False, disable=None if len(items) > 1 else True)


def _load_dicom_paths(paths: list[Path], root: Path | None, *, source: str, stride: int,
                      min_body_fraction: float, image_size: int | None, max_slices: int | None,
                      log: _SkipLog, truncation: str = "keep",
                      max_metal_area_mm2: float | None = None) -> list[ReferenceSlice]:
    slices: list[ReferenceSlice] = []
    for cands in _progress(_dicom_candidates(paths, root, log), f"{source} (DICOM)", "series"):
        slices += _select_series(cands, source=source, stride=stride, min_body_fraction=min_body_fraction,
                                 max_slices=max_slices, image_size=image_size, log=log, truncation=truncation,
                                 max_metal_area_mm2=max_metal_area_mm2)
    return slices


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def load_dicom_files(paths, root, **options) -> SourceResult:
    """The axial CT slices of the DICOM files ``paths`` (ids relative to the folder ``root``),
    as :func:`load_dicom_folder` reads them; unlike it, finding no CT is not an error (every
    file is then in ``skipped_files``, with its reason)."""
    options = {"stride": 1, "min_body_fraction": 0.0, "image_size": None, "max_slices": None,
               "truncation": "keep", "max_metal_area_mm2": None, **options}
    _check_options(options["stride"], options["min_body_fraction"], options["image_size"], options["max_slices"],
                   options["truncation"], options["max_metal_area_mm2"])
    log = _SkipLog()
    root = Path(root)
    slices = _load_dicom_paths([Path(p) for p in paths], root, source=options.pop("source", None) or root.name,
                               log=log, **options)
    return SourceResult.from_log(slices, log, f"DICOM {root}")


def load_dicom_folder(path, *, stride: int = 1, min_body_fraction: float = 0.0, image_size: int | None = None,
                      max_slices: int | None = None, source: str | None = None, truncation: str = "keep",
                      max_metal_area_mm2: float | None = None) -> SourceResult:
    """Load the axial CT slices of every series under a DICOM folder (searched recursively).

    Parameters
    ----------
    path : str or Path
        A folder (or a single DICOM file).
    stride : int
        Keep every ``stride``-th slice of each sorted series, starting at the most inferior.
    min_body_fraction : float
        Drop slices whose fraction of pixels above -500 HU is below this (0 keeps all).
    image_size : int or None
        Resample every slice to this many pixels per side (None keeps the stored grid, padded
        to a square).
    max_slices : int or None
        At most this many slices per series, evenly spaced among those left.
    source : str or None
        The source part of the ids; default: the folder's name.
    truncation : {"keep", "skip", "pad"}
        What to do with slices whose body touches the image border (``builder.sources.truncation``):
        record ``info["truncated"]`` and keep them (default), skip them, or pad the patient out.
    max_metal_area_mm2 : float or None
        Skip slices with more than this area (mm^2) above ``METAL_HU`` (:func:`metal_like_area_mm2`,
        always recorded in ``info["metal_like_area_mm2"]``): metal already in the patient, or iodine
        contrast / a truncation rim saturating the scale. None keeps them all.

    Series are grouped by SeriesInstanceUID and sorted by ImagePositionPatient projected on the
    slice normal (InstanceNumber when a position is missing); of files at the same position
    the one with the lowest InstanceNumber (then file path) is kept. Files that are not DICOM, not
    images (no PixelData: SR, RTSTRUCT, DICOMDIR...), not CT, multi-frame, not greyscale or not
    axial, and duplicate positions, are counted in ``skipped``.
    """
    _check_options(stride, min_body_fraction, image_size, max_slices, truncation, max_metal_area_mm2)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"DICOM path {path} does not exist: expected a folder of DICOM files")
    root = path if path.is_dir() else path.parent
    files = _files_under(path) if path.is_dir() else [path]
    if not files:
        raise SourceError(f"no CT found in {path}: the folder holds no files")
    log = _SkipLog()
    slices = _load_dicom_paths(files, root, source=source or root.name, stride=stride,
                               min_body_fraction=min_body_fraction, image_size=image_size,
                               max_slices=max_slices, log=log, truncation=truncation,
                               max_metal_area_mm2=max_metal_area_mm2)
    return _result(slices, log, f"DICOM {path}", path)


def load_default_source(image_size: int | None = None, *, stride: int = 1, min_body_fraction: float = 0.0,
                        max_slices: int | None = None, truncation: str = "keep",
                        max_metal_area_mm2: float | None = None) -> SourceResult:
    """The five real CT slices shipped in pydicom / pydicom-data (``DEFAULT_SOURCE_FILES``).

    The selection options are those of the other loaders; each default series holds one
    slice, which ``stride`` and ``max_slices`` always keep.

    Source name ``"pydicom"``; one slice per patient and series. ``info["body_part"]`` is the
    body part the slice shows (``DefaultSourceFile.body_part``); the header's BodyPartExamined,
    when present, is kept as ``info["body_part_header"]``. Raises ``SourceError`` unless all five
    load (e.g. a JPEG 2000 / JPEG lossless decoder plugin is missing).
    """
    _check_options(stride, min_body_fraction, image_size, max_slices, truncation, max_metal_area_mm2)
    log = _SkipLog()
    paths = default_source_paths()
    slices = _load_dicom_paths(paths, None, source=DEFAULT_SOURCE_NAME, stride=stride,
                               min_body_fraction=min_body_fraction, image_size=image_size,
                               max_slices=max_slices, log=log, truncation=truncation,
                               max_metal_area_mm2=max_metal_area_mm2)
    if len(slices) != len(DEFAULT_SOURCE_FILES):
        raise SourceError(f"the default reference CT gave {len(slices)} of {len(DEFAULT_SOURCE_FILES)} "
                          f"slices: {log.describe()}")
    body_parts = {entry.file_name: entry.body_part for entry in DEFAULT_SOURCE_FILES}
    for s in slices:
        if "body_part" in s.info:
            s.info["body_part_header"] = s.info["body_part"]
        s.info["body_part"] = body_parts[s.info["file"]]
    order = {entry.file_name: i for i, entry in enumerate(DEFAULT_SOURCE_FILES)}
    slices.sort(key=lambda s: order[s.info["file"]])
    return _result(slices, log, "default (pydicom, pydicom-data)", "the default source")


# --------------------------------------------------------------------------------------------
# NIfTI
# --------------------------------------------------------------------------------------------


def _nifti_candidates(path: Path, root: Path, codes_given: tuple[str, str, str] | None,
                      patient_id: str | None, extra_info: dict, log: _SkipLog) -> list[_Candidate]:
    where = _relative(path, root)
    try:
        img, data = nifti_io.load_volume(path)
    except ValueError as err:
        log.add("not a 3-D volume", f"{where}: {err}")
        return []
    except Exception as err:  # nibabel, gzip and zlib raise different types for corrupt files
        log.add("unreadable NIfTI file", f"{where}: {type(err).__name__}: {err}")
        return []
    try:
        codes = codes_given or nifti_io.axes_from_header(img)
    except ValueError as err:
        log.add("no patient orientation in the header", f"{where}: {err}")
        return []
    volume = nifti_io.to_display_axes(data, codes)
    finite = volume if np.issubdtype(volume.dtype, np.integer) else volume[np.isfinite(volume)]
    if finite.size and finite.min() >= BODY_HU:
        log.add(f"no air (nothing below {BODY_HU:g} HU): not CT in HU", f"{where}: minimum {finite.min():g}")
        return []
    slice_mm, row_mm, col_mm = nifti_io.display_spacing_mm(img, codes)
    stem = nifti_io.nifti_stem(path)
    info = {"file": where, "axes": "".join(codes), "slice_spacing_mm": round(slice_mm, 4)}
    info.update(extra_info)
    return [
        _Candidate(slice_index=k, where=f"{where} slice {k}",
                   read=lambda k=k: np.asarray(volume[k], dtype=np.float64),
                   spacing_mm=(row_mm, col_mm), patient_id=patient_id or stem, series_id=stem, info=dict(info))
        for k in range(volume.shape[0])
    ]


def load_nifti(path, *, axes: str | None = None, stride: int = 1, min_body_fraction: float = 0.0,
               image_size: int | None = None, max_slices: int | None = None, patient_id: str | None = None,
               source: str | None = None, info: dict | None = None, truncation: str = "keep",
               max_metal_area_mm2: float | None = None) -> SourceResult:
    """Load the axial slices of a NIfTI CT volume, or of every ``.nii`` / ``.nii.gz`` under a folder.

    Parameters
    ----------
    path : str or Path
        A NIfTI file or a folder searched recursively; other files in it are counted as skipped.
    axes : str or None
        Orientation code of the stored array (see ``builder.nifti_io``), e.g. ``"LPS"`` for files
        whose array axes (x, y, z) grow towards patient left, posterior and superior while their
        affine holds the spacing only (the shared development volumes). None: from the affine.
    stride, min_body_fraction, image_size, max_slices, truncation, max_metal_area_mm2
        As in ``load_dicom_folder`` (per volume).
    patient_id : str or None
        Patient id for every volume (e.g. several series of one patient); default: file stem.
    source : str or None
        The source part of the ids; default: the folder's name (for a file, its folder's).
    info : dict or None
        Facts added to every slice's info (e.g. ``{"kernel": "B70f", "body_part": "CHEST"}``).

    Values are taken as HU. A volume without any value below -500 HU holds no air and is
    skipped as "not CT in HU"; slices with NaN / inf are skipped (counted).
    """
    _check_options(stride, min_body_fraction, image_size, max_slices, truncation, max_metal_area_mm2)
    codes = nifti_io.parse_axes(axes) if axes is not None else None
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"NIfTI path {path} does not exist: expected a .nii / .nii.gz file or a folder")
    root = path if path.is_dir() else path.parent
    log = _SkipLog()
    if path.is_dir():
        files = _files_under(path)
        if not files:
            raise SourceError(f"no CT found in {path}: the folder holds no files")
        for other in (f for f in files if not nifti_io.is_nifti_path(f)):
            log.add("not a NIfTI file", _relative(other, root))
        files = [f for f in files if nifti_io.is_nifti_path(f)]
    else:
        files = [path]
    slices: list[ReferenceSlice] = []
    for file in _progress(files, f"{source or root.name} (NIfTI)", "file"):
        cands = _nifti_candidates(file, root, codes, patient_id, dict(info or {}), log)
        slices += _select_series(cands, source=source or root.name, stride=stride,
                                 min_body_fraction=min_body_fraction, max_slices=max_slices,
                                 image_size=image_size, log=log, truncation=truncation,
                                 max_metal_area_mm2=max_metal_area_mm2)
    return _result(slices, log, f"NIfTI {path}", path)


# --------------------------------------------------------------------------------------------
# Dispatch, table, preview
# --------------------------------------------------------------------------------------------


def is_nifti_source(spec) -> bool:
    """Whether ``spec`` is read as NIfTI: a ``.nii`` / ``.nii.gz`` file or a folder holding one."""
    if spec == "default":
        return False
    path = Path(spec)
    if path.is_file():
        return nifti_io.is_nifti_path(path)
    return path.is_dir() and any(nifti_io.is_nifti_path(f) for f in _files_under(path))


def load_source(spec, **options) -> SourceResult:
    """Load ``"default"``, a DICOM folder / file, a NIfTI file or a folder of NIfTI files.

    A folder holding any ``.nii`` / ``.nii.gz`` file is read as NIfTI (other files are counted
    as skipped); any other folder as DICOM. ``options`` go to the loader; ``nifti_axes`` (the
    NIfTI orientation override, ``load_nifti(axes=...)``) only applies to NIfTI sources and is an
    error elsewhere; ``None`` means no override.
    """
    axes = options.pop("nifti_axes", None)
    if spec != "default" and not Path(spec).exists():
        raise InputNotFoundError(
            f"reference CT source {str(spec)!r} not found: expected 'default', a DICOM folder, "
            "a NIfTI file (.nii / .nii.gz) or a folder of NIfTI files")
    nifti = is_nifti_source(spec)
    if axes is not None and not nifti:
        raise OptionError(f"--nifti-axes {axes!r} only applies to NIfTI sources, but {spec} is not NIfTI")
    if spec == "default":
        return load_default_source(**options)
    path = Path(spec)
    if path.is_dir() and not _files_under(path):
        raise SourceError(f"no CT found in {path}: the folder holds no files")
    if nifti:
        return load_nifti(path, axes=axes, **options)
    return load_dicom_folder(path, **options)


def load_sources(options) -> SourceResult:
    """Every source of a :class:`~ctdegradbench.builder.sources.options.SourceOptions` in one result.

    ``nifti_axes`` applies to the NIfTI sources among them (an error when there is none).
    Slices keep their order, source after source; skip counts are summed. Two sources with
    the same folder name would give their patients the same keys: that is refused.
    """
    kwargs = options.loader_options()
    axes = kwargs.pop("nifti_axes")
    nifti = {spec: is_nifti_source(spec) for spec in options.sources}
    if axes is not None and not any(nifti.values()):
        raise OptionError(f"--nifti-axes {axes!r} only applies to NIfTI sources, but none of "
                          f"{', '.join(options.sources)} is NIfTI")
    results = [load_source(spec, nifti_axes=axes if nifti[spec] else None, **kwargs) for spec in options.sources]
    if len(results) == 1:
        return results[0]
    names: dict[str, str] = {}
    for spec, result in zip(options.sources, results):
        for name in {s.source for s in result.slices}:
            if names.setdefault(name, spec) != spec:
                raise OptionError(f"sources {names[name]} and {spec} have the same name {name!r}, so their patients "
                                  "would share keys; give them folders of different names")
    skipped: dict[str, int] = {}
    examples: dict[str, str] = {}
    for result in results:
        for reason, count in result.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + count
            examples.setdefault(reason, result.skip_examples.get(reason, ""))
    return SourceResult([s for r in results for s in r.slices], skipped, examples,
                        " + ".join(r.description for r in results), [item for r in results for item in r.skipped_files],
                        frozenset().union(*(r.other_objects for r in results)))


def provenance(ref: ReferenceSlice) -> dict:
    """``{"origin": ..., "license": ...}`` of a slice for the dataset card: the recorded facts
    of the default files, or a note that a user source's licence is the user's to state."""
    if ref.source == DEFAULT_SOURCE_NAME:
        for entry in DEFAULT_SOURCE_FILES:
            if entry.file_name == ref.info.get("file"):
                return {"origin": f"{entry.package}: {entry.file_name}; {entry.provenance}", "license": entry.license}
    return {"origin": "user-provided source", "license": "not recorded: state the licence of your reference CT"}


def _fmt(value, spec: str = "") -> str:
    if value is None or value == "":
        return "-"
    return format(value, spec) if spec else str(value)


def format_table(slices: list[ReferenceSlice]) -> str:
    """A plain-text table: id, size, spacing, body part, kernel, kVp, slice thickness, noise SD, HU range,
    metal-like area (mm^2 above ``METAL_HU``, what ``--max-metal-area`` screens)."""
    header = ("reference_id", "px", "mm/px", "body part", "kernel", "kVp", "thick mm", "noise SD", "HU min..max",
              "metal mm2")
    rows = [header]
    for s in slices:
        info = s.info
        rows.append((
            s.reference_id, str(s.image_size), f"{s.pixel_spacing_mm:.3f}", _fmt(info.get("body_part")),
            _fmt(info.get("kernel")), _fmt(info.get("kvp"), "g"), _fmt(info.get("slice_thickness_mm"), "g"),
            _fmt(info.get("noise_sd_hu"), ".1f"), f"{int(s.hu.min())}..{int(s.hu.max())}",
            _fmt(info.get("metal_like_area_mm2"), ".1f"),
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def save_preview(slices: list[ReferenceSlice], path, window: tuple[float, float] = PREVIEW_WINDOW_HU,
                 max_images: int = 25, columns: int = 5) -> Path:
    """Write a PNG grid of the slices (grey window ``window`` in HU) titled with id, body part, spacing.

    With more than ``max_images`` slices, ``max_images`` evenly spaced ones are shown and the
    figure title says so. Returns the path written.
    """
    from matplotlib.figure import Figure

    from ctdegradbench.core.plotting import save_png

    if not slices:
        raise ValueError("save_preview needs at least one slice, got none")
    lo, hi = window
    if not lo < hi:
        raise ValueError(f"window must be (low HU, high HU) with low < high, got {window!r}")
    shown = slices
    if len(slices) > max_images:
        picks = np.unique(np.round(np.linspace(0, len(slices) - 1, max_images)).astype(int))
        shown = [slices[i] for i in picks]
    cols = min(columns, len(shown))
    rows = int(np.ceil(len(shown) / cols))
    fig = Figure(figsize=(3.6 * cols, 4.2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, s in zip(axes.ravel(), shown):
        ax.imshow(s.hu, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        rid = s.reference_id
        short = rid if len(rid) <= 44 else rid[:20] + "..." + rid[-21:]
        ax.set_title(f"{short}\n{s.info.get('body_part', '-')}  {s.image_size} px  {s.pixel_spacing_mm:.3f} mm/px",
                     fontsize=7)
    title = f"reference CT, window [{lo:g}, {hi:g}] HU"
    if len(shown) < len(slices):
        title += f" (showing {len(shown)} of {len(slices)} slices)"
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0.0, 0.0, 1.0, 1.0 - 0.3 / fig.get_figheight()))  # room for the title
    return save_png(fig, path, dpi=100)
