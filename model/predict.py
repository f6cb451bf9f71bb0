"""``ct-degradbench predict``: degradation type, severity and class probabilities per CT slice.

Inputs (each path is read on its own; a bad one is reported and the others still run):

- DICOM: a file or a folder (every axial CT series under it), through the builder's loader,
  so orientation (ImageOrientationPatient), rescale and padding are handled as in the dataset;
- NIfTI (``.nii`` / ``.nii.gz``): every axial slice, orientation from the affine or ``nifti_axes``;
- 16-bit PNG: one slice, ``HU = value - png_offset`` (default 1024: 0 is -1024 HU);
- ``.npy``: a 2-D slice or a 3-D stack ``(slices, H, W)``, already in HU.

Pixel spacing: DICOM (PixelSpacing) and NIfTI (the affine) carry it; a PNG or ``.npy`` has none,
so ``pixel_spacing`` (``--pixel-spacing``) is required for them by a physical-grid model
(``config.pixel_spacing_mm``), which resamples every slice to its own grid. A slice the model
cannot judge (no body, non-finite or non-CT values, a pixel spacing outside the trained range)
gets that status as its answer instead of a class (``Prediction.status``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ctdegradbench.builder.core.errors import InputError, InputNotFoundError

PNG_OFFSET_HU = 1024


@dataclass
class SliceInput:
    name: str
    hu: np.ndarray
    pixel_spacing_mm: float | None = None   # native pixel side in mm (None: unknown)


@dataclass
class Prediction:
    name: str
    label: str | None        # class name; None when the status is not "ok"
    severity: float | None   # continuous s_hat clipped to [0, max_level]; None for "clean" or no answer
    level: int | None        # rounded severity
    probabilities: dict = field(default_factory=dict)
    status: str = "ok"       # "ok" or why the model cannot answer (see image_processing_sespect.STATUSES)

    def to_dict(self) -> dict:
        return {"slice": self.name, "status": self.status, "label": self.label,
                "severity": None if self.severity is None else round(self.severity, 4), "level": self.level,
                "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()}}


def read_slices(path, *, nifti_axes=None, png_offset: float = PNG_OFFSET_HU,
                pixel_spacing: float | None = None) -> list[SliceInput]:
    """The HU slices of one input path (see the module docstring). Raises InputError / InputNotFoundError."""
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"{path} does not exist")
    name = path.name.lower()
    if name.endswith(".npy"):
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as err:
            raise InputError(f"{path}: not a readable .npy array ({type(err).__name__}: {err})") from err
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3 or not np.issubdtype(arr.dtype, np.number) or min(arr.shape[1:]) < 16:
            raise InputError(f"{path}: expected a 2-D HU slice or a (slices, H, W) stack, got shape {arr.shape} "
                             f"dtype {arr.dtype}")
        return [SliceInput(f"{path.name}[{i}]" if len(arr) > 1 else path.name, arr[i].astype(np.float32),
                           pixel_spacing) for i in range(len(arr))]
    if name.endswith(".png"):
        from PIL import Image

        try:
            with Image.open(path) as img:
                arr = np.asarray(img)
        except Exception as err:
            raise InputError(f"{path}: not a readable PNG ({type(err).__name__}: {err})") from err
        if arr.ndim != 2 or arr.dtype != np.uint16:
            raise InputError(f"{path}: expected a 16-bit greyscale PNG (HU + {png_offset:g}), got mode with shape "
                             f"{arr.shape} dtype {arr.dtype}")
        return [SliceInput(path.name, arr.astype(np.float32) - float(png_offset), pixel_spacing)]
    from ctdegradbench.builder.sources import load_source

    try:
        result = load_source(str(path), nifti_axes=nifti_axes)
    except (InputError, ValueError, FileNotFoundError) as err:
        raise InputError(f"{path}: {err}") from err
    return [SliceInput(s.reference_id if path.is_dir() or len(result.slices) > 1 else path.name,
                       s.hu.astype(np.float32), float(s.pixel_spacing_mm)) for s in result.slices]


def predict_slices(model, slices: list[SliceInput], batch_size: int = 8) -> list[Prediction]:
    """Run ``model`` on HU slices: a physical-grid model resamples each slice with its pixel
    spacing (``SeSpeCTImageProcessor``) and answers a status for slices it cannot judge; a
    pixel-grid (legacy) model resizes each slice to its grid."""
    import torch

    cfg = model.config
    physical = getattr(cfg, "pixel_spacing_mm", None) is not None
    if physical:
        missing = [s.name for s in slices if s.pixel_spacing_mm is None]
        if missing:
            raise InputError(f"{missing[0]}: no pixel spacing known (a .npy or .png slice): give --pixel-spacing MM, "
                             f"the pixel side in mm (this model works on a {cfg.pixel_spacing_mm:g} mm grid)")
        processor = model.image_processor()
    clean = getattr(cfg, "clean_label", None)
    out = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(slices), batch_size):
            chunk = slices[start:start + batch_size]
            if physical:
                batch = processor([s.hu for s in chunk], [s.pixel_spacing_mm for s in chunk])
                result = model(pixel_values=batch["pixel_values"], pixel_spacing=batch["pixel_spacing"])
                status = batch["status"]
            else:
                grid = [model.preprocess(torch.from_numpy(s.hu)) for s in chunk]   # square + resize each slice
                result = model(pixel_values=torch.cat(grid))
                status = ["ok"] * len(chunk)
            for s, state, probs, sev in zip(chunk, status, result.probabilities.numpy(), result.severity.numpy()):
                if state != "ok":
                    out.append(Prediction(s.name, None, None, None, {}, state))
                    continue
                label = cfg.label_names[int(probs.argmax())]
                severity = None if label == clean else float(np.clip(sev, 0, cfg.max_level))
                out.append(Prediction(s.name, label, severity,
                                      None if severity is None else int(np.clip(np.rint(sev), 0, cfg.max_level)),
                                      {n: float(p) for n, p in zip(cfg.label_names, probs)}))
    return out


def status_warning(predictions: list[Prediction]) -> str | None:
    """One warning line counting the slices without an answer, by status (None when all are ok)."""
    counts = {}
    for p in predictions:
        if p.status != "ok":
            counts[p.status] = counts.get(p.status, 0) + 1
    if not counts:
        return None
    return (f"warning: {sum(counts.values())} of {len(predictions)} slices have no answer: "
            + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))


def load_model(model_dir=None):
    """A SeSpeCT model from ``model_dir`` (default: the shipped checkpoint)."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    import ctdegradbench.model as sespect

    hf_logging.disable_progress_bar()
    folder = Path(model_dir) if model_dir else sespect.default_checkpoint()
    if not (folder / "config.json").is_file():
        raise InputNotFoundError(f"no SeSpeCT checkpoint in {folder} (config.json missing): give --model a folder "
                                 "written by ct-degradbench train")
    return AutoModel.from_pretrained(str(folder)).eval()


def format_table(predictions: list[Prediction], top: int = 3) -> str:
    lines = [f"{'slice':<40} {'type':<12} {'severity':>8} {'level':>5}  top classes"]
    for p in predictions:
        if p.status != "ok":
            lines.append(f"{p.name[-40:]:<40} {p.status}")
            continue
        best = sorted(p.probabilities.items(), key=lambda kv: -kv[1])[:top]
        severity = f"{p.severity:>8.2f} {'L' + str(p.level):>5}" if p.severity is not None else f"{'-':>8} {'-':>5}"
        lines.append(f"{p.name[-40:]:<40} {p.label:<12} {severity}  " + ", ".join(f"{k} {v:.2f}" for k, v in best))
    return "\n".join(lines)


def to_json(predictions: list[Prediction], errors: dict) -> str:
    return json.dumps({"predictions": [p.to_dict() for p in predictions], "errors": errors}, indent=1)
