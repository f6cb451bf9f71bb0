"""Reference CT: DICOM folders, NIfTI files and the default slices shipped in PyPI packages,
turned into ``ReferenceSlice`` objects (HU, radiological orientation, provenance)."""

from ctdegradbench.builder.sources.loaders import (BODY_HU, DEFAULT_SOURCE_FILES, DEFAULT_SOURCE_NAME, MIN_IMAGE_PX,
                                                   SourceError, SourceResult, body_fraction, default_source_paths,
                                                   estimate_noise_sd, format_table, load_default_source,
                                                   load_dicom_folder, load_nifti, load_source, load_sources,
                                                   provenance,
                                                   save_preview)
from ctdegradbench.builder.sources.options import SourceOptions
from ctdegradbench.builder.sources.reference import ReferenceSlice

__all__ = ["BODY_HU", "DEFAULT_SOURCE_FILES", "DEFAULT_SOURCE_NAME", "MIN_IMAGE_PX", "ReferenceSlice", "SourceOptions", "SourceError",
           "SourceResult", "body_fraction", "default_source_paths", "estimate_noise_sd", "format_table",
           "load_default_source", "load_dicom_folder", "load_nifti", "load_source", "load_sources", "provenance", "save_preview"]
