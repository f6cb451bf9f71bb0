"""NIfTI facts for the reference-CT sources: array axes, patient orientation, spacing.

This module only reads and reorders; what to skip and what to report is decided in
``builder.sources``.

Orientation codes
-----------------
An orientation is three letters, one per array axis (x, y, z) of the stored volume, each the
patient direction in which that axis's index grows: one of L/R, one of A/P, one of S/I
(nibabel's ``aff2axcodes`` convention). A standard NIfTI whose affine maps voxels to RAS+
world coordinates with a positive diagonal has codes ``"RAS"``.

By default the codes come from the file's affine (``nibabel.aff2axcodes``). That is right
only when the affine really places the voxels in patient space. Some files store the voxel
spacing alone in the affine (a diagonal affine) while their array follows another layout; the
shared development volumes in ``../shared/ct`` are such files: x grows towards the patient's
left, y towards posterior, z from inferior to superior, i.e. codes ``"LPS"``, while nibabel
reads their affine as ``"RAS"``, which would show them rotated by 180 degrees. Such files need
the codes given explicitly (``axes="LPS"``). A file whose qform and sform codes are both 0
carries no patient orientation at all and is refused unless ``axes`` is given.

The reference slices use the radiological view: slice index inferior -> superior, row index
towards posterior, column index towards the patient's left.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ctdegradbench.core.errors import OptionError

_PAIRS = (("L", "R"), ("P", "A"), ("I", "S"))
NIFTI_SUFFIXES = (".nii", ".nii.gz")

# NIfTI spatial units -> mm; "unknown" is read as mm, the unit of every CT NIfTI writer we know.
_UNIT_TO_MM = {"mm": 1.0, "meter": 1000.0, "micron": 1e-3, "unknown": 1.0}


def is_nifti_path(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def nifti_stem(path: Path) -> str:
    """File name without ``.nii`` / ``.nii.gz``."""
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def parse_axes(axes: str) -> tuple[str, str, str]:
    """Validate an orientation code such as ``"LPS"`` (one letter of each pair L/R, A/P, S/I)."""
    codes = tuple(str(axes).upper())
    pair_of = {letter: i for i, pair in enumerate(_PAIRS) for letter in pair}
    if len(codes) != 3 or any(c not in pair_of for c in codes) or len({pair_of[c] for c in codes}) != 3:
        raise OptionError(
            f"axes={axes!r} is not an orientation code: expected three letters, one of L/R, one of "
            "A/P and one of S/I, each the patient direction an array axis grows towards (e.g. 'LPS')"
        )
    return codes  # type: ignore[return-value]


def axes_from_header(img) -> tuple[str, str, str]:
    """Orientation codes of a NIfTI image from its affine; refuse files without an orientation."""
    import nibabel as nib

    header = img.header
    if int(header["qform_code"]) == 0 and int(header["sform_code"]) == 0:
        raise ValueError(
            "its qform_code and sform_code are both 0, so the affine gives no patient orientation: "
            "pass axes= (e.g. axes='LPS')"
        )
    if spacing_only(img.affine):
        raise ValueError(
            "its affine holds the voxel spacing only (a positive diagonal, origin 0), which writers produce "
            "when they do not know the orientation: check it with `ct-degradbench sources --source FILE "
            "--nifti-axes LPS --preview p.png` (anterior at the top, patient right on the image's left; try "
            "RAS too) and pass --nifti-axes"
        )
    return tuple(nib.aff2axcodes(img.affine))  # type: ignore[return-value]


def spacing_only(affine) -> bool:
    """Whether a NIfTI affine holds the voxel spacing and nothing else: a positive diagonal
    3 x 3 part and a zero origin. Scanner exports place the origin at the first voxel's
    patient position (never exactly 0) and flip axes into RAS, so such an affine carries no
    orientation information."""
    affine = np.asarray(affine, dtype=float)
    linear = affine[:3, :3]
    return bool(np.allclose(linear, np.diag(np.diag(linear))) and np.all(np.diag(linear) > 0)
                and np.allclose(affine[:3, 3], 0.0))


def to_display_axes(volume: np.ndarray, codes: tuple[str, str, str]) -> np.ndarray:
    """Reorder a 3-D volume to (slice inferior->superior, row anterior->posterior, column right->left).

    Returns a view (no copy).
    """
    index = {c: i for i, c in enumerate(codes)}
    slice_axis = index.get("S", index.get("I"))
    row_axis = index.get("P", index.get("A"))
    col_axis = index.get("L", index.get("R"))
    out = np.transpose(volume, (slice_axis, row_axis, col_axis))
    if codes[slice_axis] == "I":
        out = out[::-1]
    if codes[row_axis] == "A":
        out = out[:, ::-1]
    if codes[col_axis] == "R":
        out = out[:, :, ::-1]
    return out


def display_spacing_mm(img, codes: tuple[str, str, str]) -> tuple[float, float, float]:
    """(slice, row, column) spacing in mm for the axes order of ``to_display_axes``."""
    unit = img.header.get_xyzt_units()[0] or "unknown"
    scale = _UNIT_TO_MM.get(unit, 1.0)
    zooms = [float(z) * scale for z in img.header.get_zooms()[:3]]
    zooms += [1.0] * (3 - len(zooms))  # a 2-D image has no slice spacing
    index = {c: i for i, c in enumerate(codes)}
    return (
        zooms[index.get("S", index.get("I"))],
        zooms[index.get("P", index.get("A"))],
        zooms[index.get("L", index.get("R"))],
    )


def load_volume(path: Path):
    """Open a NIfTI file and return ``(img, data)`` with data as a 3-D array (values after scl_slope).

    2-D images become one slice; a 4-D image with a single volume is squeezed. Raises
    ``ValueError`` for other shapes; nibabel / gzip errors propagate for unreadable files.
    """
    import nibabel as nib

    img = nib.load(str(path))
    data = np.asanyarray(img.dataobj)
    if data.ndim == 2:
        data = data[:, :, np.newaxis]
    elif data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"array shape {data.shape} is not a 3-D volume (expected x, y, z)")
    return img, data
