"""SeSpeCT's command options (``train``, ``predict``, ``evaluate``) and the training defaults,
declared once with ``option()`` and validated once in ``__post_init__``. Light (no torch), so the
commands answer ``--help`` and a bad option at once; :mod:`~ctdegradbench.model.train` takes its
defaults from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ctdegradbench.core.errors import OptionError
from ctdegradbench.core.hu import PNG_OFFSET_HU
from ctdegradbench.core.options import check_declared, option

# What --ablate can switch off, and the config change each makes.
ABLATIONS = {
    "semantic": {"use_semantic_branch": False},
    "spectral": {"use_spectral_branch": False},
    "image": {"use_image_branch": False},
    "embedding": {"semantic_use_embedding": False},
    "reg": {"lambda_reg": 0.0},
    "rank": {"lambda_rank": 0.0},
    "con": {"lambda_con": 0.0},
    "native": {"use_native_statistics": False},
}
BACKBONE_CHOICES = ("efficientnet_lite0", "open_clip", "none")
DEFAULT_EPOCHS = 15
DEFAULT_BATCH_SIZE = 64
DEFAULT_LR = 1e-3
DEFAULT_WEIGHT_DECAY = 1e-4
PATCH_CNN_EPOCHS = 25
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True, kw_only=True)
class TrainOptions:
    """``ct-degradbench train``."""

    dataset: tuple[Path, ...] = option(help="one or more folders written by ct-degradbench build (their splits are "
                                       "concatenated; a build of too few patients for a split adds no rows to it)",
                                       type=Path, many=True, metavar="DIR")
    out: Path = option(help="output folder of the checkpoint and its model card", type=Path)
    backbone: str = option("none", "none (the shipped model): no frozen backbone, the spectral and image branches on "
                           "the physical grid (1 mm pixels, 384 mm field of view, native spacing as input), ten "
                           "classes + clean, trained with coarser-pixel and cropped-FOV views; efficientnet_lite0 / "
                           "open_clip: the paper's semantic branch on the pixel grid (ten classes; open_clip needs "
                           "--open-clip-model)", choices=BACKBONE_CHOICES)
    open_clip_model: str | None = option(None, "open_clip model: hf-hub:ORG/NAME (needs the Hub or its cache), "
                                         "local-dir:/path, or a built-in name with --backbone-weights")
    backbone_weights: str | None = option(None, "backbone weights file (EfficientNet .pth; open_clip checkpoint or "
                                          "pretrained tag)", none_means="the packaged ImageNet EfficientNet-Lite0")
    ablate: tuple[str, ...] = option((), "switch parts off: branches (semantic, spectral, image, embedding = the "
                                     "projected global embedding, native = the native statistics) or loss terms (reg, rank, con); default: none",
                                     nargs="*", choices=tuple(ABLATIONS), metavar="PART")
    epochs: int = option(DEFAULT_EPOCHS, "training epochs", minimum=1)
    batch_size: int = option(DEFAULT_BATCH_SIZE, "batch size (the ranking and contrastive terms need pairs)",
                             minimum=2)
    lr: float = option(DEFAULT_LR, "AdamW learning rate, cosine-decayed to 0", above=0)
    seed: int = option(0, "seed of initialisation and batch order", minimum=0)
    ensemble: int = option(1, "members trained one at a time (seeds --seed, --seed + 1, ...) and averaged in one "
                           "checkpoint (--backbone none only; the shipped checkpoint merges three runs of 3)", minimum=1)
    patch_cnn: int = option(0, "also train a patch CNN of this width end to end on full-resolution body patches and "
                            "the slice at 6 mm, fused with the members (--backbone none; the shipped checkpoint: 16); "
                            "0: none", minimum=0, metavar="WIDTH")
    patch_cnn_epochs: int = option(PATCH_CNN_EPOCHS, "epochs of the patch CNN", minimum=1)
    merge: tuple[Path, ...] = option((), "instead of training: one ensemble checkpoint holding every member of "
                                     "these checkpoints (written by train --backbone none, the same architecture), "
                                     "measured on --dataset; default: none (train)", type=Path, many=True,
                                     metavar="CHECKPOINT")
    cache_dir: Path | None = option(None, "frozen-feature cache", type=Path,
                                    none_means="$CTDEGRADBENCH_CACHE or ~/.cache/ct-degradbench, sespect-features/")
    progress: bool = option(True, "no progress bars", flag="--no-progress", negate=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dataset", tuple(Path(d) for d in self.dataset))
        object.__setattr__(self, "ablate", tuple(self.ablate))
        object.__setattr__(self, "merge", tuple(Path(d) for d in self.merge))
        check_declared(self)
        if self.merge and self.patch_cnn:
            raise OptionError(f"--merge puts existing checkpoints together; --patch-cnn {self.patch_cnn} trains a new "
                              "patch CNN: train it in a run of its own, then merge that checkpoint")
        if self.patch_cnn and self.backbone != "none":
            raise OptionError(f"--patch-cnn {self.patch_cnn} needs --backbone none (the patches are cut from the "
                              f"physical grid), got --backbone {self.backbone}")
        if self.merge and self.ensemble > 1:
            raise OptionError(f"--merge puts the members of existing checkpoints together; --ensemble {self.ensemble} "
                              "trains new ones: give one of them")


@dataclass(frozen=True, kw_only=True)
class PredictOptions:
    """``ct-degradbench predict``."""

    files: tuple[Path, ...] = option(help="DICOM file/folder, .nii[.gz], .png, .npy", type=Path, positional=True,
                                     nargs="+", metavar="FILE")
    model: Path | None = option(None, "checkpoint folder", type=Path, none_means="the shipped checkpoint")
    json: bool = option(False, "print JSON instead of a table")
    nifti_axes: str | None = option(None, "patient direction of each NIfTI axis (e.g. LPS) when the affine has none",
                                    none_means="the file's affine")
    png_offset: float = option(float(PNG_OFFSET_HU), f"16-bit PNG holds HU + this offset (0 is {-PNG_OFFSET_HU} HU)")
    pixel_spacing: float | None = option(None, "pixel side in mm of .npy / .png inputs (required for them: they "
                                         "carry none; DICOM and NIfTI give their own)", type=float, above=0,
                                         unit=" mm", metavar="MM")

    def __post_init__(self) -> None:
        check_declared(self)


@dataclass(frozen=True, kw_only=True)
class EvaluateOptions:
    """``ct-degradbench evaluate``."""

    model: Path | None = option(None, "checkpoint folder", type=Path, none_means="the shipped checkpoint")
    dataset: tuple[Path, ...] = option(help="exported dataset folders", type=Path, many=True, metavar="DIR")
    split: str = option("test", "split", choices=SPLITS)
    json: bool = option(False, "print the metrics as JSON")
    out: Path | None = option(None, "metrics JSON file to write; `leaderboard show / push` read it", type=Path,
                              none_means="sespect_eval_<split>.json in the current folder")
    predictions: Path | None = option(None, "per-row predictions (.jsonl: sample_id, label, severity, "
                                      "probabilities) to write, the file `bench tasks --predictions` reads", type=Path,
                                      metavar="FILE", none_means="<--out without .json>_predictions.jsonl")
    batch_size: int = option(8, "slices per forward pass", minimum=1)
    n_boot: int = option(1000, "bootstrap resamples over patients for the accuracy CIs, overall and per source "
                         "(0: no CIs)", flag="--bootstrap", minimum=0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dataset", tuple(Path(d) for d in self.dataset))
        check_declared(self)
