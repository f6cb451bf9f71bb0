"""The resolution at which the severity levels mean their labels.

The levels are physical (:mod:`builder.degradations`): a detector blur of 0.56-1.75 mm,
photon counts of starved rays per detector bin, 3-15 mm of steel-equivalent metal, a flux per mm
of detector, 180-45 views of a 360-view scan. They are calibrated on the pixel grids of
clinical 512 x 512 slices, 0.56-0.98 mm. On a coarser grid they stop meaning their labels:
the smallest blur (0.56 mm) falls below half a pixel and L0..L1 become indistinguishable,
a 3 mm implant covers one pixel, a starved bin spans a wider path, and the number
of detector bins across the patient drops so far that 45 views no longer undersample it
(sparse-view aliasing needs about ``pi/2`` views per detector bin across the object, so its
strength depends on the bins, not on the millimetres).

Rule: the simulation grid's pixel spacing must be at most :data:`MAX_PIXEL_SPACING_MM`
(1.0 mm: a 512 px image of a field of view up to 512 mm, every clinical body protocol) and
the image at least :data:`CALIBRATED_IMAGE_SIZE` pixels across (256: with at most 1 mm pixels
that is a field of view of at least 256 mm, a head; smaller images hold fewer bins than the
view levels were calibrated for). ``--image-size 64`` on a 350 mm field of view (5.5 mm
pixels) fails both.
"""

from __future__ import annotations

from ctdegradbench.core.errors import OptionError

MAX_PIXEL_SPACING_MM = 1.0
CALIBRATED_IMAGE_SIZE = 256


def _calibration(where: str, problems: list[str], advice: str) -> OptionError:
    return OptionError(
        f"{where}: {' and '.join(problems)}; the severity levels (blur sigma from 0.56 mm, starved "
        f"bins, 3 mm metal, sparse views of a 360-view scan) are calibrated on pixels of at most "
        f"{MAX_PIXEL_SPACING_MM:g} mm and images of at least {CALIBRATED_IMAGE_SIZE} px: {advice}")


def check_image_size(image_size: int, where: str) -> None:
    """Raise OptionError unless ``image_size >= 256`` (before any slice, and so any spacing, is known)."""
    if image_size < CALIBRATED_IMAGE_SIZE:
        raise _calibration(where, [f"image size {image_size} px is below {CALIBRATED_IMAGE_SIZE} px"],
                           f"use an image size of at least {CALIBRATED_IMAGE_SIZE} px")


def check_resolution(pixel_spacing_mm: float, image_size: int, where: str = "the reference") -> None:
    """Raise OptionError unless ``pixel_spacing_mm <= 1.0`` and ``image_size >= 256`` (module docstring)."""
    problems = []
    if not pixel_spacing_mm <= MAX_PIXEL_SPACING_MM + 1e-9:
        problems.append(f"pixel spacing {pixel_spacing_mm:.3g} mm is above {MAX_PIXEL_SPACING_MM:g} mm")
    if image_size < CALIBRATED_IMAGE_SIZE:
        problems.append(f"image size {image_size} px is below {CALIBRATED_IMAGE_SIZE} px")
    if problems:
        fov = pixel_spacing_mm * image_size
        needed = max(CALIBRATED_IMAGE_SIZE, int(-(-fov // MAX_PIXEL_SPACING_MM)))
        raise _calibration(where, problems, f"use an image size of at least {needed} px for this {fov:.0f} mm "
                                            "field of view")
