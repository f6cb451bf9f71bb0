"""Dataset schema: the ``datasets.Features`` of every config, and the mapping between a
simulated sample (its metadata dict) and a dataset row.

One schema is shared by every setting config (``single_*``, ``mixture_*``), so the ``all``
config can point at their files. Physical parameters are typed columns; the metadata
the simulator needs for replay that has no column of its own (simulation config, device,
dtype, backend, reference facts, ...) is kept in the ``metadata`` JSON column, and
:func:`row_to_metadata` reassembles the simulator's metadata dict exactly.

Pixels are lossless Hounsfield units as ``int16`` arrays (``Array2D``), stored in Zstandard
Parquet: about the size of 16-bit PNG, several times faster to load and free to encode (the
measurement is in the README). ``np.asarray(row["image"], np.int16)`` gives HU directly;
``ds.with_format("torch", columns=["image"], dtype=torch.int16)`` gives int16 tensors (without
``dtype`` datasets' torch formatter widens every integer array to int64).

What the Hub's dataset viewer shows is the ``preview`` column (``datasets.Image``): each image
as an 8-bit greyscale PNG in the soft-tissue window :data:`PREVIEW_WINDOW_HU`, for looking only;
every number comes from the exact HU in ``image``.
"""

from __future__ import annotations

import io

import datasets
import numpy as np

from ctdegradbench.core.hu import PREVIEW_WINDOW_HU
from ctdegradbench.builder.degradations import component_fields
from ctdegradbench.builder.simulate.settings import CLASS_NAMES

SPLITS: tuple[str, ...] = ("train", "validation", "test")


_SCALAR = {"str": datasets.Value("string"), "int": datasets.Value("int64"), "float": datasets.Value("float64")}
_LIST = {"list[int]": datasets.List(datasets.Value("int64")), "list[float]": datasets.List(datasets.Value("float64"))}

# Top-level metadata keys that have a typed column of their own (same name in row and metadata).
_TYPED_KEYS = ("sample_id", "reference_id", "patient_key", "setting", "level", "realization", "seed",
               "pixel_spacing_mm", "fbp_filter", "simulator_version")


# What each column of a sample row means (shown in the dataset card).
SAMPLE_FIELD_DOCS: dict[str, str] = {
    "sample_id": "deterministic id: reference_id/setting/L<level>/r<realization>",
    "reference_id": "source/patient/series/slice of the reference slice (join key of the references config)",
    "patient_key": "source/patient: the unit of the patient-level split",
    "setting": "S1..S5 (single degradation) or M1..M5 (mixture)",
    "label": "class label: the paper's setting name (S1_noise .. M5_m+b+n, ids 0..9; clean 10 and S6_ring 11 opt-in)",
    "level": "severity level 0..3 (L0 mildest); for mixtures the maximum of the component levels",
    "realization": "index of the random realization of this reference, setting and level",
    "image": "degraded image, int16 Hounsfield units (the exact data)",
    "preview": f"the image as an 8-bit PNG, window {PREVIEW_WINDOW_HU[0]:g}..{PREVIEW_WINDOW_HU[1]:g} HU "
               "(for the dataset viewer; not for measurement)",
    "prompt": "structured natural-language description of the degradation",
    "bbox": "metal bounding box [x_min, y_min, x_max, y_max] in pixels (inclusive); empty without metal",
    "components": "every applied degradation operator with its level and drawn parameters, in application order",
    "seed": "seed of the sample, derived from the build seed and the sample id",
    "pixel_spacing_mm": "pixel side in mm (also the detector bin width)",
    "geometry": "parallel-beam geometry: image size, pixel spacing, views over [0, 180), detector bins, and the "
                "acquisition sampling (bin aperture and view interval integrated, sub-angles per view)",
    "fbp_filter": "ramp filter of the filtered backprojection",
    "simulator_version": "version of ct-degradbench that simulated the row",
    "reference_kernel": "reconstruction kernel of the reference series, when known",
    "reference_slice_thickness_mm": "slice thickness of the reference series in mm, when known",
    "reference_noise_sd_hu": "estimated noise SD of the reference slice itself, in HU",
    "metadata": "JSON: the rest of the simulator metadata needed for exact replay (config, device, dtype, ...)",
}


def _component_feature() -> dict:
    feature = {}
    for name, (kind, _) in component_fields().items():
        feature[name] = _SCALAR[kind] if kind in _SCALAR else _LIST[kind]
    return feature


def _geometry_feature() -> dict:
    return {"image_size": datasets.Value("int64"), "pixel_spacing_mm": datasets.Value("float64"),
            "n_views": datasets.Value("int64"), "n_detectors": datasets.Value("int64"),
            "detector_aperture": datasets.Value("float64"), "view_integration": datasets.Value("float64"),
            "view_subsamples": datasets.Value("int64")}


def image_feature(image_size: int) -> datasets.Array2D:
    """A square HU image of side ``image_size`` stored as int16."""
    return datasets.Array2D(shape=(None, int(image_size)), dtype="int16")


def preview_png(image_hu, window=PREVIEW_WINDOW_HU) -> dict:
    """``image_hu`` as an 8-bit greyscale PNG (a ``datasets.Image`` value): HU ``window[0]`` ->
    grey 0, ``window[1]`` -> 255, linear and clipped, rounded to the nearest grey level."""
    from PIL import Image

    lo, hi = window
    grey = np.clip(np.rint((np.asarray(image_hu, np.float32) - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(grey, mode="L").save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def sample_features(image_size: int) -> datasets.Features:
    """Features of a degraded-sample row (every ``single_*`` / ``mixture_*`` config)."""
    return datasets.Features({
        "sample_id": datasets.Value("string"),
        "reference_id": datasets.Value("string"),
        "patient_key": datasets.Value("string"),
        "setting": datasets.Value("string"),
        "label": datasets.ClassLabel(names=list(CLASS_NAMES)),
        "level": datasets.Value("int64"),
        "realization": datasets.Value("int64"),
        "image": image_feature(image_size),
        "preview": datasets.Image(),
        "prompt": datasets.Value("string"),
        "bbox": datasets.List(datasets.Value("int64")),
        "components": datasets.List(_component_feature()),
        "seed": datasets.Value("int64"),
        "pixel_spacing_mm": datasets.Value("float64"),
        "geometry": _geometry_feature(),
        "fbp_filter": datasets.Value("string"),
        "simulator_version": datasets.Value("string"),
        "reference_kernel": datasets.Value("string"),
        "reference_slice_thickness_mm": datasets.Value("float64"),
        "reference_noise_sd_hu": datasets.Value("float64"),
        "metadata": datasets.Json(),
    })


def reference_features(image_size: int) -> datasets.Features:
    """Features of the ``references`` config: one row per reference slice."""
    return datasets.Features({
        "reference_id": datasets.Value("string"),
        "patient_key": datasets.Value("string"),
        "source": datasets.Value("string"),
        "patient_id": datasets.Value("string"),
        "series_id": datasets.Value("string"),
        "slice_index": datasets.Value("int64"),
        "pixel_spacing_mm": datasets.Value("float64"),
        "reference": image_feature(image_size),
        "preview": datasets.Image(),
        "clean_fbp": image_feature(image_size),
        "kernel": datasets.Value("string"),
        "slice_thickness_mm": datasets.Value("float64"),
        "noise_sd_hu": datasets.Value("float64"),
        "info": datasets.Json(),
    })


def _reference_fact(metadata: dict, key: str):
    return (metadata.get("reference_info") or {}).get(key)


def sample_to_row(sample) -> dict:
    """A ``DegradedSample`` (builder.simulate) as a row of :func:`sample_features`."""
    meta = sample.metadata
    row = {key: meta[key] for key in _TYPED_KEYS}
    kernel = _reference_fact(meta, "kernel")
    thickness = _reference_fact(meta, "slice_thickness_mm")
    noise_sd = _reference_fact(meta, "noise_sd_hu")
    row.update({
        "label": CLASS_NAMES.index(meta["class_name"]),
        "image": sample.image_hu,
        "preview": preview_png(sample.image_hu),
        "prompt": sample.prompt,
        "bbox": list(sample.bbox),
        "components": meta["components"],
        "geometry": meta["geometry"],
        "reference_kernel": None if kernel is None else str(kernel),
        "reference_slice_thickness_mm": None if thickness is None else float(thickness),
        "reference_noise_sd_hu": None if noise_sd is None else float(noise_sd),
        "metadata": {k: v for k, v in meta.items()
                     if k not in _TYPED_KEYS and k not in ("components", "geometry", "class_name")},
    })
    return row


def row_to_metadata(row: dict) -> dict:
    """Reassemble the simulator's metadata dict from a dataset row (inverse of :func:`sample_to_row`)."""
    meta = {key: row[key] for key in _TYPED_KEYS}
    meta["class_name"] = CLASS_NAMES[row["label"]] if isinstance(row["label"], int) else row["label"]
    meta["components"] = [dict(c) for c in row["components"]]
    meta["geometry"] = dict(row["geometry"])
    meta.update(row["metadata"] or {})
    return meta
