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
folder that looks finished.
"""

from __future__ import annotations

import math
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

from ctdegradbench.builder.core.errors import OutputError
from ctdegradbench.builder.dataset.features import SPLITS
from ctdegradbench.builder.simulate.settings import SETTINGS, get_setting

PARQUET_COMPRESSION = "zstd"          # ~10 % smaller than the default Snappy on HU arrays
MAX_SHARD_BYTES = 500 * 1024 ** 2     # uncompressed Arrow bytes per Parquet file
ROW_GROUP_ROWS = 64                   # rows per row group: ~20 MB at 512 x 512, cheap random access
INCOMPLETE_MARKER = ".incomplete"
REFERENCES_CONFIG = "references"
ALL_CONFIG = "all"


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


def start_export(out: Path, overwrite: bool = False) -> Path:
    """Check ``out`` can be written and create a fresh partial folder; return it."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise ExportError(f"output folder {out} already exists; pass --overwrite to replace it")
    if out.exists() and not out.is_dir():
        raise ExportError(f"output path {out} exists and is not a folder")
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create the output's parent folder {parent}: {exc.strerror}") from None
    work = partial_dir(out)
    if work.exists():
        shutil.rmtree(work)    # a previous interrupted export: restart it cleanly
    try:
        work.mkdir()
        (work / INCOMPLETE_MARKER).write_text("export in progress\n")
    except OSError as exc:
        raise ExportError(f"output folder {parent} is not writable: {exc.strerror}") from None
    return work


def finish_export(work: Path, out: Path) -> None:
    """Atomically move a finished partial folder into place (replacing ``out`` if present)."""
    (work / INCOMPLETE_MARKER).unlink()
    old = out.parent / f".{out.name}.old"
    if out.exists():
        if old.exists():
            shutil.rmtree(old)
        out.rename(old)
    work.rename(out)
    if old.exists():
        shutil.rmtree(old)


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
