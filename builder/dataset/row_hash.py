"""Per-row content hashes of an export's Parquet files (recorded in the manifest, checked by verify).

A row's hash is the SHA-256 of its pixel arrays (``image`` / ``reference`` / ``clean_fbp``: dtype,
shape and bytes, in that column order) followed by the JSON of every other column (sorted keys).
An edited pixel, a changed label or level, or two images swapped between rows changes the hash
of each row concerned, so verify names the rows. Rows are read in record batches of
:data:`BATCH_ROWS`, so a 500 MB shard is never held whole.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ARRAY_COLUMNS = ("image", "reference", "clean_fbp")   # pixel columns, hashed as raw bytes
BATCH_ROWS = 64


def _pixels(column: pa.Array, i: int) -> np.ndarray:
    """Row ``i`` of a (nested) list column as a flat numpy array, with its shape."""
    cell = column.slice(i, 1)
    shape = []
    while pa.types.is_list(cell.type) or pa.types.is_large_list(cell.type) or pa.types.is_fixed_size_list(cell.type):
        shape.append(len(cell.flatten()) // max(len(cell), 1))
        cell = cell.flatten()
    return np.asarray(cell.to_numpy(zero_copy_only=False)), tuple(shape)


def batch_row_hashes(batch: pa.RecordBatch) -> list[str]:
    """The hash of every row of ``batch`` (module notes)."""
    names = batch.schema.names
    arrays = [n for n in ARRAY_COLUMNS if n in names]
    others = batch.select([n for n in names if n not in arrays]).to_pylist()
    columns = {n: batch.column(names.index(n)) for n in arrays}
    hashes = []
    for i, rest in enumerate(others):
        digest = hashlib.sha256()
        for name in arrays:
            values, shape = _pixels(columns[name], i)
            digest.update(f"{name}:{values.dtype.str}:{shape}:".encode())
            digest.update(np.ascontiguousarray(values).tobytes())
        digest.update(json.dumps(rest, sort_keys=True, default=str).encode())
        hashes.append(digest.hexdigest())
    return hashes


def file_row_hashes(path) -> list[str]:
    """The hash of every row of one Parquet file, in row order."""
    hashes: list[str] = []
    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
        hashes += batch_row_hashes(batch)
    return hashes
