"""Read a CT-DegradBench dataset folder for evaluation: configs, splits and image pairs.

A dataset folder is what ``ct-degradbench build`` exports (or a Hub snapshot of it):
``README.md`` whose YAML front matter lists ``configs`` with ``data_files`` per split, and
``data/<config>/<split>-*.parquet``. Setting configs hold degraded rows (``image``: int16 HU);
the ``references`` config holds, per reference slice, ``reference`` (the original slice) and
``clean_fbp`` (its noise-free reconstruction), both int16 HU.

Rows are read from the Parquet files with pyarrow, row group by row group, so nothing is
copied into a ``datasets`` cache (which keys local folders by name, not content) and memory
stays bounded by one batch of images plus the references the split needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import yaml

from ctdegradbench.core.errors import InputError, InputNotFoundError
from ctdegradbench.builder.simulate.settings import SETTINGS

REFERENCES_CONFIG = "references"
ALL_CONFIG = "all"
#: Columns of a setting row that evaluation reads besides the image.
ROW_COLUMNS = ("sample_id", "reference_id", "patient_key", "setting", "label", "level")
#: Reference images a pair can be compared with.
TARGETS = ("reference", "clean_fbp")


def _front_matter(readme: Path) -> dict:
    text = readme.read_text(encoding="utf-8")
    match = re.match(r"\A---[ \t]*\r?\n(.*?)^---[ \t]*$", text, flags=re.DOTALL | re.MULTILINE)
    if match is None:
        raise InputError(f"{readme} has no YAML front matter; is {readme.parent} a CT-DegradBench export?")
    meta = yaml.safe_load(match.group(1))
    if not isinstance(meta, dict) or not isinstance(meta.get("configs"), list):
        raise InputError(f"{readme}: YAML front matter has no 'configs:' list")
    return meta


def _patterns(entry) -> list[str]:
    paths = entry.get("path") if isinstance(entry, dict) else entry
    return [paths] if isinstance(paths, str) else list(paths or [])


@dataclass(frozen=True)
class DatasetFolder:
    """A dataset folder and its declared configs: ``files[config][split]`` -> Parquet paths."""

    path: Path
    files: dict

    @classmethod
    def open(cls, path) -> "DatasetFolder":
        path = Path(path)
        if not path.is_dir():
            raise InputNotFoundError(f"dataset folder {path} does not exist")
        readme = path / "README.md"
        if not readme.is_file():
            raise InputError(f"{path} has no README.md; pass a folder written by `ct-degradbench build`")
        files: dict[str, dict[str, list[Path]]] = {}
        for config in _front_matter(readme)["configs"]:
            name = config.get("config_name")
            data_files = config.get("data_files")
            entries = data_files if isinstance(data_files, list) else [data_files]
            for entry in entries:
                split = entry.get("split", "train") if isinstance(entry, dict) else "train"
                matched = sorted(p for pattern in _patterns(entry) for p in path.glob(pattern) if p.is_file())
                files.setdefault(name, {}).setdefault(split, []).extend(matched)
        return cls(path, files)

    def setting_configs(self) -> list[str]:
        """Configs holding degraded rows, the paper's settings first (S1..S5, M1..M5), then any
        other setting config in name order (a dataset may hold settings added later)."""
        known = [s.config_name for s in SETTINGS if s.config_name in self.files]
        others = sorted(c for c in self.files if c not in known and c not in (ALL_CONFIG, REFERENCES_CONFIG))
        return known + others

    def split_files(self, config: str, split: str) -> list[Path]:
        """The Parquet files of ``config``/``split``; raises naming what exists if there are none."""
        if config not in self.files:
            raise InputError(f"config {config!r} is not in {self.path} (it has: {', '.join(sorted(self.files))})")
        paths = self.files[config].get(split, [])
        if not paths:
            have = ", ".join(sorted(s for s, p in self.files[config].items() if p)) or "none"
            raise InputError(f"config {config!r} of {self.path} has no {split!r} files (splits with files: {have})")
        return paths

    def has_split(self, config: str, split: str) -> bool:
        return bool(self.files.get(config, {}).get(split))

    def fingerprint(self, config: str, split: str) -> list:
        """Names and sizes of the files of ``config``/``split`` and of the references: results
        computed from the same fingerprint are reused, any other are recomputed."""
        paths = self.split_files(config, split)
        refs = [p for split_paths in self.files.get(REFERENCES_CONFIG, {}).values() for p in split_paths]
        return [[str(p.relative_to(self.path)), p.stat().st_size] for p in paths + refs]


def _images(table, column: str) -> np.ndarray:
    """An ``Array2D`` int16 column of a pyarrow table as an (rows, H, W) int16 array."""
    array = table.column(column).combine_chunks()
    storage = array.storage if hasattr(array, "storage") else array
    rows = len(storage)
    if rows == 0:
        return np.zeros((0, 0, 0), dtype=np.int16)
    inner = storage.flatten()
    height = len(inner) // rows
    values = inner.flatten().to_numpy(zero_copy_only=False)
    return values.reshape(rows, height, -1).astype(np.int16, copy=False)


def read_rows(folder: DatasetFolder, config: str, split: str) -> dict[str, np.ndarray]:
    """The row columns (:data:`ROW_COLUMNS`, no images) of ``config``/``split``, as arrays."""
    import pyarrow.parquet as pq

    columns: dict[str, list] = {name: [] for name in ROW_COLUMNS}
    for path in folder.split_files(config, split):
        table = pq.read_table(path, columns=list(ROW_COLUMNS))
        for name in ROW_COLUMNS:
            columns[name].extend(table.column(name).to_pylist())
    return {name: np.asarray(values) for name, values in columns.items()}


def read_references(folder: DatasetFolder, reference_ids) -> dict[str, dict[str, np.ndarray]]:
    """``{reference_id: {"reference": HU, "clean_fbp": HU}}`` for the ids asked for (int16)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    wanted = set(reference_ids)
    found: dict[str, dict[str, np.ndarray]] = {}
    paths = [p for split_paths in folder.files.get(REFERENCES_CONFIG, {}).values() for p in split_paths]
    if not paths:
        raise InputError(f"{folder.path} has no '{REFERENCES_CONFIG}' config: the full-reference metrics and "
                         "the drift need the reference images; rebuild the dataset with its references")
    for path in paths:
        ids = pq.read_table(path, columns=["reference_id"]).column("reference_id")
        if not any(i in wanted for i in ids.to_pylist()):
            continue
        table = pq.read_table(path, columns=["reference_id", *TARGETS])
        table = table.filter(pc.is_in(table["reference_id"], value_set=pa.array(sorted(wanted))))
        images = {target: _images(table, target) for target in TARGETS}
        for i, rid in enumerate(table.column("reference_id").to_pylist()):
            found[rid] = {target: images[target][i] for target in TARGETS}
    missing = sorted(wanted - set(found))
    if missing:
        raise InputError(f"{len(missing)} reference ids of the rows are not in the references config of "
                         f"{folder.path}, e.g. {missing[0]!r}: the folder mixes builds")
    return found


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


def iter_batches(folder: DatasetFolder, config: str, split: str, batch_size: int) -> Iterator[PairBatch]:
    """Degraded rows of ``config``/``split`` in file order, ``batch_size`` at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for path in folder.split_files(config, split):
        parquet = pq.ParquetFile(path)
        for record_batch in parquet.iter_batches(batch_size=batch_size, columns=[*ROW_COLUMNS, "image"]):
            table = pa.Table.from_batches([record_batch])
            yield PairBatch(
                sample_id=np.asarray(table.column("sample_id").to_pylist()),
                reference_id=np.asarray(table.column("reference_id").to_pylist()),
                patient_key=np.asarray(table.column("patient_key").to_pylist()),
                setting=np.asarray(table.column("setting").to_pylist()),
                level=np.asarray(table.column("level").to_pylist(), dtype=np.int64),
                image=_images(table, "image"),
            )

