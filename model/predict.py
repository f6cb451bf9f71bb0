"""``ct-degradbench predict``: degradation type, severity and class probabilities per CT slice.

Inputs (each path is read on its own; a bad one is reported and the others still run):

- DICOM: a file or a folder (every axial CT series under it), through the builder's loader,
  so orientation (ImageOrientationPatient), rescale and padding are handled as in the dataset;
- NIfTI (``.nii`` / ``.nii.gz``): every axial slice, orientation from the affine or ``nifti_axes``;
- 16-bit PNG: one slice, ``HU = value - png_offset`` (default 1024: 0 is -1024 HU);
- ``.npy``: a 2-D slice or a 3-D stack ``(slices, H, W)``, already in HU.
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


@dataclass
class Prediction:
    name: str
    label: str
    severity: float          # continuous s_hat clipped to [0, max_level]
    level: int               # rounded severity
    probabilities: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The predictions row ``bench tasks`` reads (``sample_id`` = the slice name), plus ``level``."""
        from ctdegradbench.evaluation.tasks import prediction_row

        return {**prediction_row(self.name, self.label, self.severity, self.probabilities), "level": self.level}


def read_slices(path, *, nifti_axes=None, png_offset: float = PNG_OFFSET_HU) -> list[SliceInput]:
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
        return [SliceInput(f"{path.name}[{i}]" if len(arr) > 1 else path.name, arr[i].astype(np.float32))
                for i in range(len(arr))]
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
        return [SliceInput(path.name, arr.astype(np.float32) - float(png_offset))]
    from ctdegradbench.builder.sources import load_source

    try:
        result = load_source(str(path), nifti_axes=nifti_axes)
    except (InputError, ValueError, FileNotFoundError) as err:
        raise InputError(f"{path}: {err}") from err
    return [SliceInput(s.reference_id if path.is_dir() or len(result.slices) > 1 else path.name,
                       s.hu.astype(np.float32)) for s in result.slices]


def predict_slices(model, slices: list[SliceInput], batch_size: int = 8) -> list[Prediction]:
    """Run ``model`` on HU slices (each resized by the model to its grid)."""
    import torch

    cfg = model.config
    out = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(slices), batch_size):
            chunk = slices[start:start + batch_size]
            grid = [model.preprocess(torch.from_numpy(s.hu)) for s in chunk]   # square + resize each slice
            result = model(pixel_values=torch.cat(grid))
            for s, probs, sev in zip(chunk, result.probabilities.numpy(), result.severity.numpy()):
                severity = float(np.clip(sev, 0, cfg.max_level))
                out.append(Prediction(s.name, cfg.label_names[int(probs.argmax())], severity,
                                      int(np.clip(np.rint(sev), 0, cfg.max_level)),
                                      {n: float(p) for n, p in zip(cfg.label_names, probs)}))
    return out


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


NAME_WIDTH = 56   # widest slice name in the table; longer ones lose their middle


def short_name(name: str, width: int = NAME_WIDTH) -> str:
    """``name`` in at most ``width`` characters: its start (source / patient) and its end
    (series tail / slice index) with ``...`` between, never cut from one side only."""
    if len(name) <= width:
        return name
    head = (width - 3) // 2
    return name[:head] + "..." + name[-(width - 3 - head):]


def format_table(predictions: list[Prediction], top: int = 3) -> str:
    width = max([5] + [len(short_name(p.name)) for p in predictions])
    lines = [f"{'slice':<{width}} {'type':<12} {'severity':>8} {'level':>5}  top classes"]
    for p in predictions:
        best = sorted(p.probabilities.items(), key=lambda kv: -kv[1])[:top]
        lines.append(f"{short_name(p.name):<{width}} {p.label:<12} {p.severity:>8.2f} {'L' + str(p.level):>5}  "
                     + ", ".join(f"{k} {v:.2f}" for k, v in best))
    return "\n".join(lines)


def to_json(predictions: list[Prediction], errors: dict) -> str:
    return json.dumps({"predictions": [p.to_dict() for p in predictions], "errors": errors}, indent=1)
