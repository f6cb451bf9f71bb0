"""The one reader of an exported CT-DegradBench folder (what ``ct-degradbench build --out DIR`` writes).

Layout: ``README.md`` (dataset card; its YAML front matter lists ``configs`` with ``data_files``
per split and ``dataset_info`` with each split's ``num_examples``), ``data/<config>/<split>-*.parquet``,
the manifest ``ct-degradbench-manifest.json`` and the preview images. Setting configs hold degraded
rows (``image``: int16 HU); the ``references`` config holds, per reference slice, ``reference`` (the
original slice) and ``clean_fbp`` (its noise-free reconstruction), both int16 HU.

:class:`ExportedFolder` parses the card once and offers three ways to read rows:

- :meth:`ExportedFolder.load`: ``datasets.load_dataset`` of the folder (features decoded; what
  training reads), with one-line errors for a missing split, empty data or missing columns;
- :meth:`ExportedFolder.rows` / :meth:`ExportedFolder.batches`: the Parquet files read with pyarrow,
  columns selectable, images as int16 arrays, nothing copied into a ``datasets`` cache (which keys a
  local folder by its name, not its content) and memory bounded by one batch;
- :meth:`ExportedFolder.references` and :func:`with_references`: the join of degraded rows to the
  reference images of their ``reference_id``.

Every module that reads an export (verify, push, evaluate, bench, train) goes through this one.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Iterator

import numpy as np

from ctdegradbench.core.errors import InputError, InputNotFoundError
from ctdegradbench.builder.dataset.options import ALL_CONFIG, REFERENCES_CONFIG

#: Reference images a degraded row can be compared with (columns of the ``references`` config).
TARGETS = ("reference", "clean_fbp")
#: Label and metadata columns every setting row of a build has.
LABEL_COLUMNS = ("label", "level", "setting", "patient_key", "reference_id")


def parse_front_matter(readme: Path) -> dict:
    """The YAML front matter (between the leading ``---`` lines) of a dataset card, as a mapping.

    Raises :class:`InputError` naming the file when there is none, it does not parse, or it is
    not a mapping."""
    import yaml

    text = readme.read_text(encoding="utf-8")
    match = re.match(r"\A---[ \t]*\r?\n(.*?)^---[ \t]*$", text, flags=re.DOTALL | re.MULTILINE)
    if match is None:
        raise InputError(f"{readme} has no YAML front matter (a block between '---' lines at the top); "
                         f"is {readme.parent} a CT-DegradBench export?")
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError as err:
        raise InputError(f"{readme}: YAML front matter does not parse: {' '.join(str(err).split())}") from None
    if not isinstance(meta, dict):
        raise InputError(f"{readme}: YAML front matter is not a mapping")
    return meta


def data_file_patterns(config: dict) -> dict[str, list[str]]:
    """``split -> path patterns`` of one ``configs:`` entry (``data_files`` as str, list or dicts;
    a pattern without a split is ``train``'s, as in ``datasets``)."""
    data_files = config.get("data_files")
    entries = data_files if isinstance(data_files, list) else [data_files]
    out: dict[str, list[str]] = {}
    for entry in entries:
        if entry is None:
            continue
        split = entry.get("split", "train") if isinstance(entry, dict) else "train"
        paths = entry.get("path") if isinstance(entry, dict) else entry
        out.setdefault(split, []).extend([paths] if isinstance(paths, str) else list(paths or []))
    return out


@contextmanager
def quiet_datasets():
    """Silence ``datasets``' info/warning lines (e.g. "Repo card metadata block was not found")
    while a local export is loaded; errors still raise."""
    import datasets

    level = datasets.logging.get_verbosity()
    card_logger = logging.getLogger("huggingface_hub.repocard")
    card_level = card_logger.level
    datasets.logging.set_verbosity_error()
    card_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        datasets.logging.set_verbosity(level)
        card_logger.setLevel(card_level)


def images(table, column: str) -> np.ndarray:
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


def _columns(table, columns, image_columns) -> dict[str, np.ndarray]:
    """Columns of a pyarrow table as arrays (2-D image columns as (rows, H, W) int16)."""
    out = {}
    for name in columns:
        if name in image_columns:
            out[name] = images(table, name)
        else:
            out[name] = np.asarray(table.column(name).to_pylist())
    return out


class ExportedFolder:
    """An exported dataset folder; the card's front matter is parsed once, on opening.

    ``files[config][split]`` are the Parquet paths the card's ``data_files`` patterns match.
    """

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise InputNotFoundError(f"dataset folder {self.path} does not exist: expected the output of "
                                     "ct-degradbench build --out DIR")
        self.readme = self.path / "README.md"
        if not self.readme.is_file():
            raise InputError(f"{self.path} has no README.md dataset card: pass a folder written by "
                             "ct-degradbench build --out DIR")
        self.card = parse_front_matter(self.readme)
        if not isinstance(self.card.get("configs"), list) or not self.card["configs"]:
            raise InputError(f"{self.readme}: YAML front matter has no 'configs:' list")

    def __repr__(self) -> str:
        return f"ExportedFolder({str(self.path)!r})"

    # ------------------------------------------------------------------ the card
    @cached_property
    def patterns(self) -> dict[str, dict[str, list[str]]]:
        """``config -> split -> data_files path patterns`` as the card declares them."""
        return {c.get("config_name"): data_file_patterns(c) for c in self.card["configs"] if isinstance(c, dict)}

    @cached_property
    def files(self) -> dict[str, dict[str, list[Path]]]:
        """``config -> split -> Parquet files`` (sorted) that the card's patterns match."""
        return {config: {split: sorted({p for pattern in pats for p in self.path.glob(pattern) if p.is_file()})
                         for split, pats in splits.items()}
                for config, splits in self.patterns.items()}

    @property
    def configs(self) -> list[str]:
        """The configs the card declares, in its order."""
        return list(self.patterns)

    def splits(self, config: str) -> list[str]:
        """The splits of ``config`` that have files."""
        return [s for s, paths in self._config(config).items() if paths]

    def num_examples(self, config: str, split: str) -> int | None:
        """The card's ``num_examples`` of ``config``/``split`` (``None`` when the card has none)."""
        for info in self.card.get("dataset_info") or []:
            if isinstance(info, dict) and info.get("config_name") == config:
                for entry in info.get("splits") or []:
                    if isinstance(entry, dict) and entry.get("name") == split:
                        return entry.get("num_examples")
        return None

    def setting_configs(self) -> list[str]:
        """Configs holding degraded rows, the paper's settings first (S1..S5, M1..M5), then any
        other setting config in name order (a dataset may hold settings added later)."""
        from ctdegradbench.builder.simulate.settings import SETTINGS

        known = [s.config_name for s in SETTINGS if s.config_name in self.patterns]
        others = sorted(c for c in self.patterns if c not in known and c not in (ALL_CONFIG, REFERENCES_CONFIG))
        return known + others

    def has_split(self, config: str, split: str) -> bool:
        return bool(self.files.get(config, {}).get(split))

    def _config(self, config: str) -> dict[str, list[Path]]:
        if config not in self.files:
            raise InputError(f"config {config!r} is not in {self.path} (it has: {', '.join(sorted(self.files))})")
        return self.files[config]

    def data_files(self, config: str, split: str) -> list[Path]:
        """The Parquet files of ``config``/``split``; raises naming what exists if there are none."""
        paths = self._config(config).get(split, [])
        if not paths:
            have = ", ".join(self.splits(config)) or "none"
            raise InputError(f"config {config!r} of {self.path} has no {split!r} files (splits with files: {have})")
        return paths

    def fingerprint(self, config: str, split: str) -> list:
        """Names and sizes of the files of ``config``/``split`` and of the references: results
        computed from the same fingerprint are reused, any other are recomputed."""
        paths = self.data_files(config, split) + self.reference_files()
        return [[str(p.relative_to(self.path)), p.stat().st_size] for p in paths]

    def features(self, config: str, split: str):
        """The ``datasets.Features`` embedded in the Parquet files of ``config``/``split`` (e.g. the
        label's class names: ``features(...)["label"].names``)."""
        import datasets
        import pyarrow.parquet as pq

        return datasets.Features.from_arrow_schema(pq.read_schema(self.data_files(config, split)[0]))

    @cached_property
    def manifest(self) -> dict | None:
        """The export's manifest (every file with its size and SHA-256), ``None`` when it has none."""
        from ctdegradbench.builder.dataset.export import read_manifest

        return read_manifest(self.path)

    # ------------------------------------------------------------- datasets
    def load(self, config: str, split: str | None = None, require=()):
        """``datasets.load_dataset`` of this folder's ``config`` (a ``DatasetDict``, or one ``Dataset``
        with ``split``). Raises a one-line :class:`InputError` for a missing config or split, no
        readable data, no rows (counted from the Parquet footers, before ``datasets`` fails on them), or
        a missing or null ``require`` column (labels of a build)."""
        import datasets

        by_split = self._config(config)
        files = [f for s in ([split] if split else by_split) for f in by_split.get(s, [])]
        if not files:
            have = ", ".join(self.splits(config)) or "none"
            raise InputError(f"{self.path} holds no readable {config!r} data (no {split or 'data'!r} files; splits "
                             f"with files: {have}): build it with ct-degradbench build --out DIR")
        if sum(_parquet_rows(f) for f in files) == 0:
            where = f"split {split!r} of config {config!r}" if split else f"config {config!r}"
            raise InputError(f"{self.path} has no rows in {where} ({len(files)} Parquet file(s), 0 rows: an empty "
                             "export): build it from more slices")
        try:
            with quiet_datasets():
                loaded = datasets.load_dataset(str(self.path), config, split=split)
        except ValueError as err:
            raise InputError(f"{self.path} has no split {split!r} in config {config!r}: "
                             f"{(str(err).strip().splitlines() or [''])[0]}") from None
        except (datasets.exceptions.DatasetsError, FileNotFoundError) as err:   # EmptyDatasetError is one
            first = (str(err).strip().splitlines() or [""])[0]
            raise InputError(f"{self.path} holds no readable {config!r} data ({type(err).__name__}: {first}): "
                             "build it with ct-degradbench build --out DIR") from None
        parts = loaded.values() if isinstance(loaded, datasets.DatasetDict) else [loaded]
        for part in parts:
            missing = sorted(set(require) - set(part.column_names))
            if missing:
                raise InputError(f"{self.path} config {config!r} lacks the column(s) {', '.join(missing)} "
                                 "(labels and metadata of a ct-degradbench build are needed)")
            empty = {name: part.data.column(name).null_count for name in require}
            empty = {name: n for name, n in empty.items() if n}
            if empty:
                raise InputError(f"{self.path} config {config!r} has rows without "
                                 + ", ".join(f"{name!r} ({n} of {len(part)} rows)" for name, n in empty.items())
                                 + " (labels and metadata of a ct-degradbench build are needed)")
        return loaded

    # -------------------------------------------------------------- pyarrow
    def rows(self, config: str, split: str, columns=None) -> dict[str, np.ndarray]:
        """``columns`` (default: every one) of every row of ``config``/``split`` as arrays; image
        columns as (rows, H, W) int16."""
        chunks = list(self.batches(config, split, columns=columns))
        if not chunks:
            return {name: np.asarray([]) for name in columns or ()}
        return {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]}

    def batches(self, config: str, split: str, batch_size: int = 64, columns=None) -> Iterator[dict[str, np.ndarray]]:
        """Rows of ``config``/``split`` in file order, ``batch_size`` at a time, as ``{column: array}``."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        for path in self.data_files(config, split):
            parquet = pq.ParquetFile(path)
            names = parquet.schema_arrow.names
            wanted = list(names if columns is None else columns)
            missing = [c for c in wanted if c not in names]
            if missing:
                raise InputError(f"{path} lacks the column(s) {', '.join(missing)} (labels and metadata of a "
                                 "ct-degradbench build are needed)")
            image_columns = {c for c in wanted if c in ("image", *TARGETS)}
            for record_batch in parquet.iter_batches(batch_size=batch_size, columns=wanted):
                yield _columns(pa.Table.from_batches([record_batch]), wanted, image_columns)

    def reference_files(self) -> list[Path]:
        """Parquet files of the ``references`` config (every split)."""
        return [p for split_paths in self.files.get(REFERENCES_CONFIG, {}).values() for p in split_paths]

    def references(self, reference_ids, targets=TARGETS) -> dict[str, dict[str, np.ndarray]]:
        """``{reference_id: {target: int16 HU}}`` for the ids asked for, read from the ``references``
        config; a missing config or id is a one-line :class:`InputError`."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        wanted = set(reference_ids)
        found: dict[str, dict[str, np.ndarray]] = {}
        paths = self.reference_files()
        if not paths:
            raise InputError(f"{self.path} has no '{REFERENCES_CONFIG}' config: the full-reference metrics and "
                             "the drift need the reference images; rebuild the dataset with its references")
        for path in paths:
            ids = pq.read_table(path, columns=["reference_id"]).column("reference_id")
            if not any(i in wanted for i in ids.to_pylist()):
                continue
            table = pq.read_table(path, columns=["reference_id", *targets])
            table = table.filter(pc.is_in(table["reference_id"], value_set=pa.array(sorted(wanted))))
            arrays = {target: images(table, target) for target in targets}
            for i, rid in enumerate(table.column("reference_id").to_pylist()):
                found[rid] = {target: arrays[target][i] for target in targets}
        missing = sorted(wanted - set(found))
        if missing:
            raise InputError(f"{len(missing)} reference ids of the rows are not in the references config of "
                             f"{self.path}, e.g. {missing[0]!r}: the folder mixes builds")
        return found

    def with_references(self, config: str, split: str | None = None):
        """:meth:`load` of ``config`` joined to its reference images (:func:`with_references`)."""
        return with_references(self.load(config, split, require=("reference_id",)), self.load(REFERENCES_CONFIG))


def _parquet_rows(path: Path) -> int:
    """The number of rows of one Parquet file, from its footer (no data read)."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def load_many(folders, config: str, split: str, require=()):
    """``split`` of ``config`` from every folder (each an :class:`ExportedFolder`), concatenated;
    returns ``(dataset, parts)``, a part per folder that holds the split.

    Splits are by patient, so a build of one or two patients has no validation or test split; such
    a folder adds no rows to that split while another folder holds it (e.g. a user's one-patient
    export trained beside a full build). It must still have ``config``, and its card must count no
    rows there: a split the card counts but whose files are gone is an error, as is a split no
    folder holds."""
    import datasets

    exported = [ExportedFolder(folder) for folder in folders]
    if not exported:
        raise InputError("no dataset folder given: pass the output of ct-degradbench build --out DIR")
    holding = [folder for folder in exported if folder.has_split(config, split)]
    for folder in exported if holding else ():
        if folder not in holding:
            folder.splits(config)                        # the config itself must be there
            counted = folder.num_examples(config, split)
            if counted:
                raise InputError(f"{folder.path}: its card counts {counted} rows in split {split!r} of config "
                                 f"{config!r} but it holds no files of them: build it again with ct-degradbench "
                                 "build --out DIR")
    parts = [folder.load(config, split, require=require) for folder in holding or exported]
    return (parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)), parts


def with_references(samples, references):
    """Attach each sample's reference and clean-FBP images, joined by ``reference_id``.

    ``samples`` is a ``Dataset`` or ``DatasetDict`` of a setting config and ``references``
    the ``references`` config (a ``Dataset`` or ``DatasetDict``; all its splits are used).
    Returns the same kind of object whose rows also hold ``reference`` and ``clean_fbp``;
    all three images come back as ``np.int16`` HU arrays::

        ds = load_dataset("ct-degradbench", "mixture_m5")
        refs = load_dataset("ct-degradbench", "references")
        pairs = with_references(ds, refs)
        row = pairs["test"][0]   # row["image"], row["reference"], row["clean_fbp"]
    """
    import datasets

    if isinstance(samples, datasets.DatasetDict):
        return datasets.DatasetDict({name: with_references(split, references) for name, split in samples.items()})
    refs = references
    if isinstance(refs, datasets.DatasetDict):
        refs = datasets.concatenate_datasets(list(refs.values()))
    index = {rid: i for i, rid in enumerate(refs["reference_id"])}
    missing = sorted(set(samples["reference_id"]) - set(index))
    if missing:
        raise ValueError(f"{len(missing)} reference ids of the samples are not in the references config, "
                         f"e.g. {missing[0]!r}: pass the references config of the same build")
    ref_images = refs.select_columns(list(TARGETS)).with_format("numpy")

    def attach(batch):
        rows = [index[rid] for rid in batch["reference_id"]]
        looked_up = ref_images[rows]
        batch["image"] = [np.asarray(x, dtype=np.int16) for x in batch["image"]]
        for target in TARGETS:
            batch[target] = [np.asarray(x, dtype=np.int16) for x in looked_up[target]]
        return batch

    return samples.with_transform(attach)
