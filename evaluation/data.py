"""Degraded rows of an exported CT-DegradBench folder in batches, for evaluation.

The folder is read by :class:`ctdegradbench.builder.dataset.reader.ExportedFolder` (the one reader
of an export: card, configs, splits, Parquet rows with pyarrow, references); this module only
shapes its batches into :class:`PairBatch` (row facts and int16 HU images).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ctdegradbench.builder.dataset.reader import ExportedFolder

#: Columns of a setting row that evaluation reads besides the image.
ROW_COLUMNS = ("sample_id", "reference_id", "patient_key", "setting", "label", "level")


@dataclass
class PairBatch:
    """A batch of degraded images with their row facts (images in int16 HU, (B, H, W))."""

    sample_id: np.ndarray
    reference_id: np.ndarray
    patient_key: np.ndarray
    setting: np.ndarray
    level: np.ndarray
    image: np.ndarray

    def __len__(self) -> int:
        return len(self.sample_id)

    def select(self, mask: np.ndarray) -> "PairBatch":
        """The rows where ``mask`` (bool, one per row) is true."""
        return PairBatch(*(getattr(self, name)[mask] for name in
                           ("sample_id", "reference_id", "patient_key", "setting", "level", "image")))


def iter_batches(folder: ExportedFolder, config: str, split: str, batch_size: int) -> Iterator[PairBatch]:
    """Degraded rows of ``config``/``split`` in file order, ``batch_size`` at a time."""
    for batch in folder.batches(config, split, batch_size, columns=[*ROW_COLUMNS, "image"]):
        yield PairBatch(sample_id=batch["sample_id"], reference_id=batch["reference_id"],
                        patient_key=batch["patient_key"], setting=batch["setting"],
                        level=batch["level"].astype(np.int64), image=batch["image"])


def read_rows(folder: ExportedFolder, config: str, split: str) -> dict[str, np.ndarray]:
    """The row columns (:data:`ROW_COLUMNS`, no images) of ``config``/``split``, as arrays."""
    return folder.rows(config, split, columns=ROW_COLUMNS)
