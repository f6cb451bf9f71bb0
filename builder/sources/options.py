"""Source options: which reference CT to read and how to select and grid its slices.

Declared once (:class:`SourceOptions`), shared by the command line, the Python API and the
dataset builder config, and validated once, in ``__post_init__``: source paths are checked
first, so a mistyped path is reported before anything heavy is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ctdegradbench.core.errors import InputNotFoundError
from ctdegradbench.core.hu import METAL_HU
from ctdegradbench.core.options import check_declared, check_int, option
from ctdegradbench.builder.sources.truncation import TRUNCATION_MODES

DEFAULT_SOURCE = "default"
# Smallest image the builder reads or grids (pixels per side): a stored slice below it is skipped
# (counted), an ``image_size`` below it refused. The severity levels need more (``--image-size``
# from 256 px, ``builder.simulate.resolution``).
MIN_IMAGE_PX = 64     # the paper's slices are 512 px; the projector needs bins for streaks and aliasing


@dataclass(frozen=True)
class SourceOptions:
    """Reference CT and slice selection.

    Parameters
    ----------
    sources : tuple of str, default ("default",)
        ``"default"`` (the real CT slices shipped in pydicom / pydicom-data), DICOM folders or
        files, NIfTI files or folders of NIfTI files; several sources are read into one
        dataset (patients stay distinct: their keys start with the source folder's name).
    stride : int, default 1
        Keep every ``stride``-th slice of each series.
    max_slices : int or None
        At most this many slices per series, evenly spaced after the stride.
    min_body_fraction : float, default 0
        Skip slices whose fraction of pixels above -500 HU is smaller (nearly empty slices).
    image_size : int, default 512
        Side of the square grid every slice is resampled / padded to (pixel spacing tracked).
    nifti_axes : str or None
        Patient direction of each NIfTI array axis (e.g. ``"LPS"``) for files whose affine holds
        no orientation; applies to the NIfTI sources only. ``None`` reads it from the affine.
    truncation : {"keep", "skip", "pad"}, default "keep"
        Slices whose body touches the image border (a truncated patient): keep them (flagged
        in their metadata), skip them, or pad the patient out (see ``sources/truncation.py``).
    max_metal_area_mm2 : float or None
        Skip slices with more than this area (mm^2) above ``METAL_HU`` (2500 HU; the area is
        always recorded as ``info["metal_like_area_mm2"]``): metal already in the patient, or iodine
        contrast / a truncation rim at the top of the stored scale. Such a reference shows metal
        artifacts of its own under every label; the smallest simulated implant (3 mm steel,
        S5 L0) is 7.1 mm^2. None keeps every slice.
    """

    sources: tuple[str, ...] = option(
        (DEFAULT_SOURCE,), "reference CT: 'default' (shipped in pydicom/pydicom-data), a DICOM folder or file, a NIfTI "
        "file or folder; repeat for several sources", flag="--source", repeat=True, metavar="SOURCE")
    stride: int = option(1, "keep every N-th slice of each series", minimum=1)
    max_slices: int | None = option(None, "at most this many slices per series", type=int, minimum=1,
                                    none_means="every slice")
    min_body_fraction: float = option(0.0, "skip slices with a smaller fraction of pixels above -500 HU (1 would "
                                      "skip every slice with air in it)", minimum=0, below=1)
    image_size: int = option(512, "square grid side in pixels (pixel spacing tracked); build: the calibrated "
                             "size or more unless --allow-uncalibrated-grid", minimum=MIN_IMAGE_PX,
                             unit=" px")
    nifti_axes: str | None = option(None, "patient direction of each NIfTI array axis (e.g. LPS) when the affine "
                                    "has none", type=str, metavar="AXES", none_means="the file's affine")
    truncation: str = option("keep", "slices whose body touches the image border: keep (flagged), skip, or pad the "
                             "patient out", choices=TRUNCATION_MODES)
    max_metal_area_mm2: float | None = option(
        None, f"skip slices with more than this area above {METAL_HU:g} HU (metal already in the patient, saturated "
        "contrast, a truncation rim: metal artifacts under every label); the smallest simulated implant is 7.1 mm^2",
        flag="--max-metal-area", type=float, minimum=0, unit=" mm^2", metavar="MM2",
        none_means="keep every slice")

    def __post_init__(self) -> None:
        sources = (self.sources,) if isinstance(self.sources, (str, Path)) else tuple(self.sources)
        if not sources:
            raise InputNotFoundError("--source needs at least one reference CT ('default' or a path), got none")
        sources = tuple(str(s) for s in sources)
        for source in sources:
            if source != DEFAULT_SOURCE and not Path(source).exists():
                raise InputNotFoundError(
                    f"reference CT source {source!r} not found: expected 'default', a DICOM folder or file, a NIfTI "
                    "file (.nii / .nii.gz) or a folder of NIfTI files")
        object.__setattr__(self, "sources", sources)
        check_declared(self)
        if self.nifti_axes is not None:
            from ctdegradbench.builder.sources.nifti_io import parse_axes

            object.__setattr__(self, "nifti_axes", "".join(parse_axes(self.nifti_axes)))

    @classmethod
    def check_selection(cls, *, stride, min_body_fraction, image_size, max_slices, truncation="keep",
                        max_metal_area_mm2=None) -> None:
        """The slice-selection checks of the loaders' keyword arguments (``image_size`` may be
        ``None`` there: the stored grid); the same declarations and messages as the options."""
        probe = object.__new__(cls)
        for name, value in (("stride", stride), ("min_body_fraction", min_body_fraction), ("max_slices", max_slices),
                            ("truncation", truncation), ("max_metal_area_mm2", max_metal_area_mm2)):
            object.__setattr__(probe, name, value)
        check_int(cls, "image_size", image_size, minimum=MIN_IMAGE_PX, allow_none=True)
        object.__setattr__(probe, "image_size", MIN_IMAGE_PX)       # checked above (None allowed here)
        object.__setattr__(probe, "nifti_axes", None)
        object.__setattr__(probe, "sources", ())
        check_declared(probe)

    def loader_options(self) -> dict:
        """Keyword arguments of :func:`~ctdegradbench.builder.sources.load_source` (all but the sources)."""
        return {"stride": self.stride, "max_slices": self.max_slices, "min_body_fraction": self.min_body_fraction,
                "image_size": self.image_size, "nifti_axes": self.nifti_axes, "truncation": self.truncation,
                "max_metal_area_mm2": self.max_metal_area_mm2}
