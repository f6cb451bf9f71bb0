"""Export built configs as a Hub-style dataset folder.

Layout written (the Hub's own convention, so ``load_dataset`` reads it locally and after a
push alike)::

    <out>/README.md                                   dataset card, YAML configs + dataset_info
    <out>/data/<config>/<split>-0000i-of-0000n.parquet  one folder per setting config
    <out>/data/references/<split>-...parquet          reference + clean FBP, once per slice
    <out>/images/*.png                                figures shown in the card

The ``all`` config has no files of its own: its YAML ``data_files`` list the setting
configs' files (one shared schema), so nothing is stored twice.

The folder is written under ``.<out>.partial`` beside it (with an ``.incomplete`` marker)
and renamed into place only when complete, so an interrupted build never leaves a
folder that looks finished. A finished export carries its manifest
(:data:`MANIFEST`: every file with its size and SHA-256, and the rows of each Parquet file),
which is both what ``ct-degradbench verify`` checks against and the marker that says the
folder is ours.

Nothing of a user's is deleted: an existing ``out`` is replaced only with ``overwrite`` and
only when it is empty or an export of ours holding nothing but the files its manifest lists;
the current directory, its ancestors, the home folder and ``/`` are never outputs. One build
writes to an output at a time (:func:`export_lock`).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCardData

from ctdegradbench.core.errors import OutputError
from ctdegradbench.core.outputs import protected_reason
from ctdegradbench.builder.dataset.features import SPLITS
from ctdegradbench.builder.dataset.options import ALL_CONFIG, REFERENCES_CONFIG
from ctdegradbench.builder.dataset.row_hash import file_row_hashes
from ctdegradbench.builder.simulate.settings import SETTINGS, get_setting

PARQUET_COMPRESSION = "zstd"          # ~10 % smaller than the default Snappy on HU arrays
MAX_SHARD_BYTES = 500 * 1024 ** 2     # uncompressed Arrow bytes per Parquet file
ROW_GROUP_ROWS = 64                   # rows per row group: ~20 MB at 512 x 512, cheap random access
INCOMPLETE_MARKER = ".incomplete"
MANIFEST = "ct-degradbench-manifest.json"   # every file of a finished export; marks the folder as ours
MANIFEST_FORMAT = 1


class ExportError(OutputError):
    """An export that cannot proceed (existing output, unwritable folder, ...)."""


@dataclass
class ExportSummary:
    """What an export wrote: rows and bytes per config and split."""

    out: Path
    rows: dict = field(default_factory=dict)      # config -> split -> rows
    bytes: dict = field(default_factory=dict)     # config -> split -> bytes on disk
    files: dict = field(default_factory=dict)     # config -> split -> [relative paths]

    def config_rows(self, config: str) -> int:
        return sum(self.rows.get(config, {}).values())

    def config_bytes(self, config: str) -> int:
        return sum(self.bytes.get(config, {}).values())

    @property
    def total_bytes(self) -> int:
        return sum(self.config_bytes(c) for c in self.bytes)


def partial_dir(out: Path) -> Path:
    """The sibling folder an export writes into before it is renamed to ``out``."""
    return out.parent / f".{out.name}.partial"


def read_manifest(folder: Path) -> dict | None:
    """The manifest of an export folder, or ``None`` when it has none (not an export of ours)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and isinstance(manifest.get("files"), dict) else None


def _foreign_files(folder: Path) -> list[str]:
    """Files in ``folder`` that are not part of its export (all of them if it has no manifest)."""
    manifest = read_manifest(folder)
    listed = set(manifest["files"]) | {MANIFEST} if manifest else set()
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if (p.is_file() or p.is_symlink()) and str(p.relative_to(folder)) not in listed)


def check_output(out: Path, overwrite: bool) -> None:
    """Raise ExportError unless a build may write ``out`` (see the module notes)."""
    out = Path(out)
    reason = protected_reason(out)
    if reason:
        raise ExportError(f"--out {out} {reason}; write the dataset into a folder of its own, "
                          "e.g. --out ct-degradbench")
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir() or out.is_symlink():
        raise ExportError(f"output path {out} exists and is not a folder")
    if not overwrite:
        raise ExportError(f"output folder {out} already exists; pass --overwrite to replace it "
                          "(only a CT-DegradBench export is ever replaced)")
    if any(out.iterdir()) and read_manifest(out) is None:
        raise ExportError(f"{out} is not a CT-DegradBench export (it has no {MANIFEST}); refusing to replace it: "
                          "choose another --out")
    foreign = _foreign_files(out)
    if foreign and read_manifest(out) is not None:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise ExportError(f"{out} holds files that are not part of its export ({shown}); move them away or choose "
                          "another --out")


LOCK_SIGNATURE = "ct-degradbench build lock"
CACHE_MARKER = ".ct-degradbench-cache"     # in a default cache folder that a build created (and may delete)


def lock_path(out: Path) -> Path:
    """The lock file of output ``out``: ``.<out>.lock`` beside it."""
    out = Path(out)
    return (out.parent if str(out.parent) else Path(".")) / f".{out.name}.lock"


def _lock_is_ours(lock: Path) -> bool:
    """Whether an existing ``lock`` file is a build's lock (empty, or starting with the signature)."""
    try:
        return lock.is_file() and not lock.is_symlink() and (
            lock.stat().st_size == 0 or lock.read_text(encoding="utf-8", errors="replace").startswith(LOCK_SIGNATURE))
    except OSError:
        return False


@contextlib.contextmanager
def export_lock(out: Path):
    """Hold the lock of output ``out`` (the file ``.<out>.lock`` beside it) for one build.

    The lock is an advisory ``flock``: the system releases it when the holding process ends,
    however it ends, so a crashed build never blocks the next one. A file of that name that is
    not a build's lock is never touched (the build is refused); the lock file is removed when
    the build ends.
    """
    out = Path(out)
    lock = lock_path(out)
    for _attempt in range(5):
        if (lock.exists() or lock.is_symlink()) and not _lock_is_ours(lock):
            raise ExportError(f"{lock} exists and is not a ct-degradbench build lock; move it away "
                              "(the build keeps its lock there)")
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            handle = open(lock, "a+")
        except OSError as exc:
            raise ExportError(f"cannot create the output's folder {lock.parent}: {exc.strerror}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip().removeprefix(LOCK_SIGNATURE).strip(": ") or "another process"
            handle.close()
            raise ExportError(f"another build is writing {out} ({holder}); wait for it to finish") from None
        try:
            same = os.stat(lock).st_ino == os.fstat(handle.fileno()).st_ino
        except OSError:
            same = False
        if same:
            break
        handle.close()          # the previous holder removed the file between our open and lock: retry
    else:
        raise ExportError(f"could not lock {lock}: another build keeps replacing it")
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{LOCK_SIGNATURE}: pid {os.getpid()} since "
                     f"{datetime.datetime.now().isoformat(timespec='seconds')}\n")
        handle.flush()
        yield
    finally:
        try:
            lock.unlink()       # still held: no other build can be using this file
        except OSError:
            pass
        handle.close()


def abandon_export(out: Path) -> None:
    """Last-resort cleanup of an export this process gave up (a forced exit after Ctrl-C): the
    partial folder of ``out`` when it is an unfinished export, and ``out``'s lock when this
    process wrote it. Never raises; touches nothing else."""
    out = Path(out)
    work, lock = partial_dir(out), lock_path(out)
    if (work / INCOMPLETE_MARKER).is_file():
        shutil.rmtree(work, ignore_errors=True)
    try:
        if lock.is_file() and not lock.is_symlink() and f"pid {os.getpid()} " in lock.read_text(encoding="utf-8"):
            lock.unlink()
    except (OSError, UnicodeDecodeError):
        pass


def start_export(out: Path, overwrite: bool = False) -> Path:
    """Check ``out`` can be written and create a fresh partial folder; return it.

    Call it while holding :func:`export_lock`.
    """
    out = Path(out)
    check_output(out, overwrite)
    work = partial_dir(out)
    if work.exists():
        if not (work / INCOMPLETE_MARKER).is_file():
            raise ExportError(f"{work} exists and is not an unfinished export of ours; move it away")
        shutil.rmtree(work)    # a previous interrupted export: restart it cleanly
    try:
        work.mkdir()
        (work / INCOMPLETE_MARKER).write_text("export in progress\n")
    except OSError as exc:
        raise ExportError(f"cannot write the output's folder {out.parent}: {exc.strerror}") from None
    return work


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(work: Path, summary: ExportSummary) -> dict:
    """Write :data:`MANIFEST` listing every file of ``work`` with its size and SHA-256, and for
    each Parquet file its config, split, rows and each row's hash (``builder.dataset.row_hash``).
    Returns the manifest."""
    parquet = {path: (config, split) for config, splits in summary.files.items()
               for split, paths in splits.items() for path in paths}
    files = {}
    for path in sorted(p for p in work.rglob("*") if p.is_file() and p.name not in (INCOMPLETE_MARKER, MANIFEST)):
        rel = str(path.relative_to(work))
        entry = {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
        if rel in parquet:
            entry.update(config=parquet[rel][0], split=parquet[rel][1],
                         rows=pq.ParquetFile(path).metadata.num_rows, row_sha256=file_row_hashes(path))
        files[rel] = entry
    from importlib.metadata import version

    manifest = {"format": MANIFEST_FORMAT, "ct_degradbench_version": version("ct-degradbench"),
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "files": files}
    (work / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def finish_export(work: Path, out: Path, overwrite: bool) -> None:
    """Move a finished partial folder into place, replacing an export of ours at ``out``.

    The export being replaced is first renamed to a fresh ``.<out>.old-XXXX`` folder (a name
    nobody else holds), then removed.
    """
    import tempfile

    check_output(out, overwrite)     # nothing of a user's appeared there meanwhile
    (work / INCOMPLETE_MARKER).unlink()
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        out.rename(old)              # onto the empty folder just made
    try:
        work.rename(out)
    except OSError:
        if old is not None:
            old.rename(out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def output_error(exc: OSError, where) -> ExportError:
    """An OSError while writing ``where`` as one line (a full disk says so)."""
    what = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
    return ExportError(f"cannot write {exc.filename or where}: {what}")


def shard_tables(table: pa.Table, max_bytes: int = MAX_SHARD_BYTES) -> list[pa.Table]:
    """Split ``table`` into consecutive pieces of at most ``max_bytes`` (at least one piece)."""
    n_shards = max(1, math.ceil(table.nbytes / max_bytes))
    per = math.ceil(table.num_rows / n_shards) if table.num_rows else 0
    return [table.slice(i * per, per) for i in range(n_shards)]


def write_split(table: pa.Table, folder: Path, split: str) -> list[Path]:
    """Write one split as ``<split>-0000i-of-0000n.parquet`` files; the schema (with its
    ``huggingface`` features metadata) is embedded in every file."""
    folder.mkdir(parents=True, exist_ok=True)
    shards = shard_tables(table)
    paths = []
    for i, shard in enumerate(shards):
        path = folder / f"{split}-{i:05d}-of-{len(shards):05d}.parquet"
        pq.write_table(shard, path, compression=PARQUET_COMPRESSION, row_group_size=ROW_GROUP_ROWS)
        paths.append(path)
    return paths


def _arrow_table(ds: datasets.Dataset) -> pa.Table:
    if ds._indices is not None:
        ds = ds.flatten_indices()
    return ds.data.table


def write_configs(work: Path, samples: datasets.DatasetDict, references: datasets.DatasetDict | None,
                  summary: ExportSummary) -> None:
    """Write every setting config present in ``samples`` (and the references) under ``work/data``."""
    for split, ds in samples.items():
        table = _arrow_table(ds)
        for setting in SETTINGS:
            part = table.filter(pc.equal(table["setting"], setting.code))
            if part.num_rows:
                _record(work, summary, setting.config_name, split, part)
    if references is not None:
        for split, ds in references.items():
            _record(work, summary, REFERENCES_CONFIG, split, _arrow_table(ds))


def _record(work: Path, summary: ExportSummary, config: str, split: str, table: pa.Table) -> None:
    paths = write_split(table, work / "data" / config, split)
    summary.rows.setdefault(config, {})[split] = table.num_rows
    summary.bytes.setdefault(config, {})[split] = sum(p.stat().st_size for p in paths)
    summary.files.setdefault(config, {})[split] = [str(p.relative_to(work)) for p in paths]


def card_metadata(summary: ExportSummary, sample_info: datasets.DatasetInfo,
                  reference_info: datasets.DatasetInfo | None) -> DatasetCardData:
    """YAML front matter: ``configs`` (data_files per split) and ``dataset_info`` (features, sizes)."""
    card = DatasetCardData(license="other", task_categories=["image-classification"],
                           tags=["medical", "computed-tomography", "image-quality", "artifacts", "physics-simulation"])
    setting_configs = [s.config_name for s in SETTINGS if s.config_name in summary.rows]
    paper_configs = [c for c in setting_configs if get_setting(c).in_paper]   # what `all` points at
    configs, infos = {}, {}
    for config in setting_configs + ([REFERENCES_CONFIG] if REFERENCES_CONFIG in summary.rows else []):
        configs[config] = {"data_files": [{"split": split, "path": f"data/{config}/{split}-*.parquet"}
                                          for split in SPLITS if split in summary.rows[config]]}
        info = reference_info if config == REFERENCES_CONFIG else sample_info
        infos[config] = _sized_info(info, config, summary)
    if paper_configs:
        configs[ALL_CONFIG] = {"default": True, "data_files": [
            {"split": split, "path": [f"data/{c}/{split}-*.parquet" for c in paper_configs
                                      if split in summary.rows[c]]}
            for split in SPLITS if any(split in summary.rows[c] for c in paper_configs)]}
        all_summary = ExportSummary(summary.out)
        for split in SPLITS:
            rows = sum(summary.rows[c].get(split, 0) for c in paper_configs)
            if rows:
                all_summary.rows.setdefault(ALL_CONFIG, {})[split] = rows
                all_summary.bytes.setdefault(ALL_CONFIG, {})[split] = sum(
                    summary.bytes[c].get(split, 0) for c in paper_configs)
        infos[ALL_CONFIG] = _sized_info(sample_info, ALL_CONFIG, all_summary)
    DatasetInfosDict(infos).to_dataset_card_data(card)
    MetadataConfigs(configs).to_dataset_card_data(card)
    return card


def _sized_info(info: datasets.DatasetInfo, config: str, summary: ExportSummary) -> datasets.DatasetInfo:
    splits = datasets.SplitDict()
    for split, rows in summary.rows[config].items():
        splits.add(datasets.SplitInfo(name=split, num_examples=rows, num_bytes=summary.bytes[config][split]))
    return datasets.DatasetInfo(features=info.features, config_name=config, splits=splits,
                                download_size=summary.config_bytes(config),
                                dataset_size=summary.config_bytes(config))
