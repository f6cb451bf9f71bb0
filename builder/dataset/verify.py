"""``ct-degradbench verify``: replay a random sample of rows from their metadata.

Each chosen row is re-simulated from its reference (the ``references`` config) and its
metadata alone (every drawn parameter and seed is stored), and compared with the stored
image pixel for pixel. Replay is exact on the device and dtype that built the row; a row
that does not replay is reported with the number of differing pixels and the largest
difference in HU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from ctdegradbench.builder.dataset.features import row_to_metadata
from ctdegradbench.builder.sources.reference import ReferenceSlice


@dataclass
class Mismatch:
    sample_id: str
    differing_pixels: int
    max_abs_diff_hu: int


@dataclass
class VerifyReport:
    folder: Path
    checked: int = 0
    mismatches: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.checked > 0 and not self.mismatches

    def text(self) -> str:
        lines = [f"verified {self.checked} rows of {self.folder}: "
                 f"{self.checked - len(self.mismatches)} replay exactly, {len(self.mismatches)} do not"]
        for m in self.mismatches:
            lines.append(f"  MISMATCH {m.sample_id}: {m.differing_pixels} pixels differ, "
                         f"max |diff| {m.max_abs_diff_hu} HU")
        return "\n".join(lines)


def reference_from_row(row: dict) -> ReferenceSlice:
    """Rebuild the ``ReferenceSlice`` of a ``references`` row."""
    return ReferenceSlice(hu=np.asarray(row["reference"], dtype=np.int16),
                          pixel_spacing_mm=float(row["pixel_spacing_mm"]), source=row["source"],
                          patient_id=row["patient_id"], series_id=row["series_id"],
                          slice_index=int(row["slice_index"]), info=dict(row["info"] or {}))


class _ParquetRows:
    """Random access to the rows of one config's Parquet files, read straight from disk.

    ``datasets.load_dataset`` caches a local folder by its name and YAML, not by the files'
    contents, so a changed file can be served from a stale cache; verification must read
    the bytes as they are. Only the row group holding a requested row is read and decoded.
    """

    def __init__(self, folder: Path, config: str):
        import datasets

        try:
            data_files = datasets.load_dataset_builder(str(folder), config).config.data_files
        except ValueError as exc:
            raise ValueError(f"{folder} has no loadable {config!r} config ({exc}); is it an exported "
                             f"CT-DegradBench folder?") from None
        self._locations = []          # global row -> (file, row group, offset)
        self.files = [f for split in data_files.values() for f in split]
        self._group_key, self._group = None, None
        for path in self.files:
            meta = pq.ParquetFile(path).metadata
            for group in range(meta.num_row_groups):
                self._locations += [(path, group, k) for k in range(meta.row_group(group).num_rows)]

    def __len__(self) -> int:
        return len(self._locations)

    def column(self, name: str) -> list:
        return [v for path in self.files for v in pq.read_table(path, columns=[name]).column(name).to_pylist()]

    def __getitem__(self, i: int) -> dict:
        import datasets

        path, group, offset = self._locations[i]
        if self._group_key != (path, group):        # rows are visited in order: read each group once
            self._group = datasets.Dataset(pq.ParquetFile(path).read_row_group(group))
            self._group_key = (path, group)
        return self._group[offset]


def verify_folder(folder, n_samples: int = 20, seed: int = 0, device: str | None = None,
                  config: str = "all") -> VerifyReport:
    """Replay ``n_samples`` randomly chosen rows of ``config`` (default: every setting) of an
    exported folder; return the report."""
    from ctdegradbench.builder.simulate.simulator import SimulationConfig, Simulator

    folder = Path(folder)
    if not (folder / "README.md").is_file():
        raise FileNotFoundError(f"{folder} is not an exported dataset folder (no README.md)")
    if n_samples < 1:
        raise ValueError(f"--samples must be a positive integer, got {n_samples}")
    samples = _ParquetRows(folder, config)
    references = _ParquetRows(folder, "references")
    ref_index = {rid: i for i, rid in enumerate(references.column("reference_id"))}
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(samples), size=min(n_samples, len(samples)), replace=False)

    report = VerifyReport(folder)
    simulators: dict[str, Simulator] = {}
    for i in tqdm(sorted(int(i) for i in chosen), desc="replaying rows", unit="row"):
        row = samples[i]
        meta = row_to_metadata(row)
        if meta["reference_id"] not in ref_index:
            raise ValueError(f"row {meta['sample_id']!r} names reference {meta['reference_id']!r}, "
                             f"which the references config lacks")
        ref = reference_from_row(references[ref_index[meta["reference_id"]]])
        config = dict(meta["config"], backend=meta["backend"])   # the backend that built the row, not "auto"
        if device is not None:
            config["device"] = device
        key = json.dumps(config, sort_keys=True)
        if key not in simulators:
            simulators[key] = Simulator(SimulationConfig(**config))
        replayed = simulators[key].replay(ref, meta)
        stored = np.asarray(row["image"], dtype=np.int16)
        report.checked += 1
        if not np.array_equal(replayed, stored):
            diff = np.abs(replayed.astype(np.int32) - stored.astype(np.int32))
            report.mismatches.append(Mismatch(meta["sample_id"], int(np.count_nonzero(diff)), int(diff.max())))
    return report
