"""Load a SeSpeCT checkpoint folder the way a Hub user does: transformers alone, ``trust_remote_code``.

    python remote_code_check.py FOLDER [EXPECTED.json]

Runs with only transformers, torch, torchvision, safetensors, numpy (and pydicom for the DICOM
input); never imports ``ctdegradbench`` (an import hook makes any attempt fail). Checks, on a
synthetic water-and-bone phantom slice (a 300 mm disk of 40 HU with a 30 mm disk of 700 HU, in
air, at 0.7 mm pixels):

- ``AutoConfig`` / ``AutoModel`` (the trunk) / ``AutoModelForImageClassification`` (the heads) /
  ``AutoImageProcessor`` resolve to the folder's classes through ``auto_map``;
- the trunk's embedding is the head model's fused embedding; the logits cover ``id2label``;
- ``pipeline("image-classification", model=FOLDER, trust_remote_code=True)`` returns the model's
  class and softmax score (and severity) for an HU array with ``pixel_spacing=`` and for a
  ``pydicom.Dataset`` of the same slice;
- with EXPECTED.json (``{"probabilities": [...]}`` computed by the package on the same slice),
  the probabilities agree within ``PROBABILITY_ATOL``.

Prints one ``ok ...`` line per check; exits non-zero on the first failure.
"""

from __future__ import annotations

import importlib.abc
import json
import sys

PROBABILITY_ATOL = 1e-5    # float32 softmax of identical weights and input, two loaders
EMBEDDING_ATOL = 1e-5      # the trunk alone vs inside the head model, same weights


class _BlockPackage(importlib.abc.MetaPathFinder):
    """Make ``import ctdegradbench`` fail: the remote code must not need the package."""

    def find_spec(self, name, path=None, target=None):
        if name == "ctdegradbench" or name.startswith("ctdegradbench."):
            raise ImportError(f"{name} imported while loading remote code: the checkpoint is not self-contained")
        return None


import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import (AutoConfig, AutoImageProcessor, AutoModel,  # noqa: E402
                          AutoModelForImageClassification, pipeline)

SPACING_MM = 0.7


def phantom(side: int = 512) -> np.ndarray:
    """HU slice: air, a 300 mm water-like disk (40 HU) and a 30 mm bone-like disk (700 HU)."""
    y, x = (np.mgrid[:side, :side] - (side - 1) / 2) * SPACING_MM
    hu = np.full((side, side), -1000.0, dtype=np.float32)
    hu[np.hypot(y, x) < 150] = 40.0
    hu[np.hypot(y - 60, x + 40) < 15] = 700.0
    return hu


def dicom_of(hu: np.ndarray):
    """An in-memory CT DICOM dataset of ``hu`` (stored = HU + 1024, RescaleIntercept -1024)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = CTImageStorage, generate_uid(), "CT"
    ds.Rows, ds.Columns = hu.shape
    ds.PixelSpacing = [SPACING_MM, SPACING_MM]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelData = np.round(hu + 1024).astype(np.uint16).tobytes()
    return ds


def main(folder: str, expected: str | None = None) -> None:
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    trunk = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    model = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)
    names = {type(o).__name__ for o in (config, trunk, model, processor)}
    assert names == {"SeSpeCTConfig", "SeSpeCTModel", "SeSpeCTForDegradationEstimation", "SeSpeCTImageProcessor"}, names
    assert all(type(o).__module__.startswith("transformers_modules.") for o in (config, trunk, model, processor))
    print("ok auto classes:", ", ".join(sorted(names)))

    hu = phantom()
    batch = processor(hu, pixel_spacing=SPACING_MM)
    assert batch["status"] == ["ok"], batch["status"]
    with torch.no_grad():
        out = model(**batch)
        embedding = trunk(**batch).last_hidden_state
    assert out.logits.shape == (1, len(config.id2label)) and out.severity.shape == (1,)
    assert torch.isfinite(out.logits).all() and torch.isfinite(out.severity).all()
    torch.testing.assert_close(embedding, out.fused_embedding, atol=EMBEDDING_ATOL, rtol=0)
    probabilities = out.logits.softmax(-1)[0]
    best = int(probabilities.argmax())
    print(f"ok model: {config.id2label[best]} p={float(probabilities[best]):.4f} severity={float(out.severity[0]):.3f}")
    if expected:
        want = torch.tensor(json.loads(open(expected).read())["probabilities"])
        torch.testing.assert_close(probabilities, want, atol=PROBABILITY_ATOL, rtol=0)
        print("ok same probabilities as the package")

    classify = pipeline("image-classification", model=folder, trust_remote_code=True)
    assert type(classify).__name__ == "SeSpeCTImageClassificationPipeline", type(classify)
    top = classify(hu, pixel_spacing=SPACING_MM)[0]
    assert top["label"] == config.id2label[best], (top, config.id2label[best])
    assert abs(top["score"] - float(probabilities[best])) < PROBABILITY_ATOL, (top, float(probabilities[best]))
    print(f"ok pipeline (HU array + pixel_spacing): {top}")
    try:
        ds = dicom_of(hu)
    except ImportError:
        print("skip pipeline (DICOM): pydicom is not installed")
    else:
        top_dicom = classify(ds)[0]
        assert top_dicom["label"] == top["label"] and abs(top_dicom["score"] - top["score"]) < PROBABILITY_ATOL
        print(f"ok pipeline (pydicom Dataset): {top_dicom}")
    assert "ctdegradbench" not in sys.modules
    print("ok without ctdegradbench")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        raise SystemExit(__doc__)
    assert "ctdegradbench" not in sys.modules
    sys.meta_path.insert(0, _BlockPackage())      # only when run as a script (the tests import phantom())
    main(*sys.argv[1:])
