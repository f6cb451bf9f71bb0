"""Reference CT: DICOM folders, NIfTI files and the default slices shipped in PyPI packages,
turned into ``ReferenceSlice`` objects (HU, radiological orientation, provenance).

The names are imported from their modules on first use, so that the ``ct-degradbench``
command can read ``builder.sources.options`` without loading scipy.
"""

import importlib

# name -> module of this package that defines it
_EXPORTS = {**{name: "loaders" for name in (
    "BODY_HU", "DEFAULT_SOURCE_FILES", "DEFAULT_SOURCE_NAME", "SourceError", "SourceResult",
    "body_fraction", "default_source_paths", "estimate_noise_sd", "format_table", "load_default_source",
    "load_dicom_folder", "load_nifti", "load_source", "load_sources", "provenance", "save_preview")},
    "SourceOptions": "options", "MIN_IMAGE_PX": "options", "ReferenceSlice": "reference"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"ctdegradbench.builder.sources.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'ctdegradbench.builder.sources' has no attribute {name!r}")
