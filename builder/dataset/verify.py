"""``ct-degradbench verify``: prove that an exported folder is what its build wrote.

Four checks, in this order, each reported with exactly what it covered:

1. **Files.** Every file the manifest lists (``ct-degradbench-manifest.json``, written at
   export) exists with its recorded size and SHA-256, every Parquet file holds its recorded
   rows, no file outside the manifest sits in the folder, and every ``data_files`` pattern
   of the card's YAML matches files of the manifest (and every Parquet file is in a config).
   A changed pixel, a deleted file or folder, an edited card: each changes a hash. In a
   changed Parquet file, each row's content hash (``builder.dataset.row_hash``, recorded at
   export) names the rows that changed. Every split's rows equal the card's
   ``num_examples`` (what ``load_dataset`` checks).
2. **Rows** (all of them, no simulation). Each row's label, level, sample id, seeds,
   component types, component levels (the mixture rule's draw, replayed), severity
   parameters (each degradation's level table), prompt, bounding box, reference, patient and
   split agree with its metadata and the registry; and every reference x setting x level x
   realization of each config is present exactly once.
3. **References.** Each reference's clean FBP is re-simulated and compared bit for bit.
4. **Images.** A replay of degraded images from their metadata, compared bit for bit:
   ``n_samples`` images (default: 2 per config and level) spread so every config and level
   is covered, or every image with ``replay_all``. Rows are replayed per reference slice: all
   of a reference's chosen settings, levels and realizations from one prepared state (its
   clean sinogram and projector, :meth:`Simulator.replay_many`), the references shared by
   ``num_proc`` processes; the time of the first reference gives the estimate printed before
   the others start.

What this proves: the manifest and the row hashes show that the files are those the export
wrote, unless whoever edited them also rewrote the manifest (it is not signed); the row checks
hold whatever the manifest says; only a replay proves pixels against the physics, and the
report says how many rows were replayed (``--all``: every row, after printing an estimate of
its time).

Files are read straight from disk: ``datasets.load_dataset`` caches a local folder by its
name and YAML, not by content, so it could serve a stale copy of a changed file.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from ctdegradbench.core.errors import OptionError
from ctdegradbench.core.levels import LEVELS
from ctdegradbench.builder.core.seeding import (component_seed, levels_seed, make_sample_id, numpy_generator,
                                                sample_seed)
from ctdegradbench.builder.dataset.export import MANIFEST, file_sha256
from ctdegradbench.builder.dataset.reader import ExportedFolder, images
from ctdegradbench.builder.dataset.features import row_to_metadata
from ctdegradbench.builder.dataset.options import REFERENCES_CONFIG
from ctdegradbench.builder.degradations import REGISTRY
from ctdegradbench.builder.simulate.mixtures import setting_components
from ctdegradbench.builder.simulate.prompts import describe
from ctdegradbench.builder.simulate.settings import CLASS_NAMES, SETTINGS_BY_CODE
from ctdegradbench.builder.sources.reference import ReferenceSlice

DEFAULT_SAMPLES_PER_STRATUM = 2
MAX_LISTED_PROBLEMS = 40


@dataclass
class Problem:
    where: str
    what: str


@dataclass
class VerifyReport:
    """What was checked (one line per check) and every problem found."""

    folder: Path
    checked: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    replayed: int = 0          # degraded images re-simulated
    rows: int = 0              # degraded rows in the folder

    @property
    def ok(self) -> bool:
        return bool(self.checked) and not self.problems

    def problem(self, where: str, what: str) -> None:
        self.problems.append(Problem(where, what))

    def text(self) -> str:
        lines = [f"verify {self.folder}:"] + [f"  checked {line}" for line in self.checked]
        lines += ["  what this proves: the hashes show the files and rows are those the export wrote, unless the "
                  "manifest was rewritten too (it is not signed); the row checks hold whatever the manifest says; "
                  f"pixels are proven against the physics only for the {self.replayed} of {self.rows} degraded "
                  "images replayed" + ("" if self.replayed >= self.rows else " (--all replays every one)")]
        if self.ok:
            lines.append("OK: every check passed")
        else:
            lines.append(f"FAILED: {len(self.problems)} problem(s)")
            lines += [f"  {p.where}: {p.what}" for p in self.problems[:MAX_LISTED_PROBLEMS]]
            if len(self.problems) > MAX_LISTED_PROBLEMS:
                lines.append(f"  ... and {len(self.problems) - MAX_LISTED_PROBLEMS} more")
        return "\n".join(lines)


def reference_from_row(row: dict) -> ReferenceSlice:
    """Rebuild the ``ReferenceSlice`` of a ``references`` row."""
    return ReferenceSlice(hu=np.asarray(row["reference"], dtype=np.int16),
                          pixel_spacing_mm=float(row["pixel_spacing_mm"]), source=row["source"],
                          patient_id=row["patient_id"], series_id=row["series_id"],
                          slice_index=int(row["slice_index"]), info=dict(row["info"] or {}))


def _decoded_rows(path: Path, columns=None) -> list[dict]:
    """The rows of one Parquet file decoded with its embedded features (JSON, arrays)."""
    return list(_decoding(pq.read_table(path, columns=columns), str(path)))


def _decoding(table, name: str):
    """A ``datasets.Dataset`` over an Arrow table (decodes its embedded features); the fingerprint is
    given, not computed (hashing the table would cost more than reading it)."""
    import datasets
    import hashlib

    return datasets.Dataset(table, fingerprint=hashlib.sha256(name.encode()).hexdigest()[:16])


# ------------------------------------------------------------------ 1. files
def check_files(export: ExportedFolder, report: VerifyReport) -> dict[str, dict]:
    """Check 1; returns the manifest's Parquet entries that exist (``relative path -> entry``)."""
    folder, files = export.path, export.manifest["files"]
    good_bytes = 0
    parquet, changed = {}, set()
    for rel, entry in tqdm(sorted(files.items()), desc="hashing files", unit="file", leave=False):
        path = folder / rel
        if not path.is_file():
            report.problem(rel, "listed in the manifest but missing")
            continue
        if path.stat().st_size != entry["bytes"]:
            report.problem(rel, f"content changed since export ({path.stat().st_size} bytes, the manifest records "
                                f"{entry['bytes']})")
            changed.add(rel)
        elif file_sha256(path) != entry["sha256"]:
            report.problem(rel, "content changed since export (SHA-256 differs from the manifest)")
            changed.add(rel)
        else:
            good_bytes += entry["bytes"]
        if "rows" in entry:
            parquet[rel] = entry
            rows = pq.ParquetFile(path).metadata.num_rows
            if rows != entry["rows"]:
                report.problem(rel, f"{rows} rows, the manifest records {entry['rows']}")
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = str(path.relative_to(folder))
        if rel not in files and rel != MANIFEST:
            report.problem(rel, "not part of the export (absent from the manifest)")
    patterns = export.patterns
    covered = set()
    for config, splits in patterns.items():
        for pattern in (p for split_patterns in splits.values() for p in split_patterns):
            matched = [str(p.relative_to(folder)) for p in folder.glob(pattern)]
            if not matched:
                report.problem(f"README.md config {config}", f"data_files {pattern!r} match no file")
            covered.update(matched)
            for rel in matched:
                if rel not in files:
                    report.problem(f"README.md config {config}", f"data_files name {rel}, which the manifest lacks")
    for rel, entry in files.items():
        if "rows" in entry and rel not in covered:
            report.problem(rel, f"Parquet file of config {entry['config']} that no config of README.md names")
    named = check_row_hashes(folder, {rel: parquet[rel] for rel in changed if rel in parquet}, report)
    splits = check_card_counts(export, report)
    report.checked.append(f"{len(files)} files against the manifest ({good_bytes / 1e6:.1f} MB hashed), "
                          f"{len(patterns)} configs of README.md, rows of {splits} config splits against the card's "
                          f"num_examples" + (f", {named} changed rows named by their hashes" if changed else ""))
    return {rel: entry for rel, entry in parquet.items() if (folder / rel).is_file()}


def check_row_hashes(folder: Path, changed: dict[str, dict], report: VerifyReport) -> int:
    """Name the rows of changed Parquet files whose content hash differs from the manifest's; returns how many."""
    from ctdegradbench.builder.dataset.row_hash import file_row_hashes

    named = 0
    for rel, entry in sorted(changed.items()):
        recorded = entry.get("row_sha256")
        if not isinstance(recorded, list):
            report.problem(rel, "the manifest records no row hashes (an older export): the changed rows cannot be "
                                "named")
            continue
        try:
            hashes = file_row_hashes(folder / rel)
            ids = pq.read_table(folder / rel, columns=["reference_id" if entry["config"] == REFERENCES_CONFIG
                                                      else "sample_id"]).column(0).to_pylist()
        except Exception as err:      # a file too damaged to read as Parquet
            report.problem(rel, f"not readable as Parquet ({type(err).__name__}: {err})")
            continue
        for index, (now, then) in enumerate(itertools.zip_longest(hashes, recorded)):
            if now != then:
                named += 1
                what = ("row missing" if now is None else "row not in the export" if then is None
                        else "row content changed since export")
                report.problem(f"{rel} row {index}" + (f" ({ids[index]})" if index < len(ids) else ""), what)
    return named


def check_card_counts(export: ExportedFolder, report: VerifyReport) -> int:
    """Rows of every config split (from its Parquet files) against the card's ``num_examples``; returns
    how many config splits were compared."""
    compared = 0
    for name, splits in export.files.items():
        for split, files in splits.items():
            rows = 0
            for path in files:
                try:
                    rows += pq.ParquetFile(path).metadata.num_rows
                except Exception:       # reported by the file checks
                    pass
            compared += 1
            expected = export.num_examples(name, split)
            if expected is None:
                report.problem(f"README.md config {name}", f"split {split} has no num_examples in dataset_info")
            elif rows != expected:
                report.problem(f"README.md config {name}", f"split {split} holds {rows} rows but the card's "
                                                             f"num_examples is {expected}")
    return compared


# ------------------------------------------------------------------- 2. rows
def _row_problems(meta: dict, row: dict, config: str, references: dict) -> list[str]:
    """What is inconsistent in one sample row (empty when nothing)."""
    problems = []
    setting = SETTINGS_BY_CODE.get(meta["setting"])
    if setting is None:
        return [f"unknown setting {meta['setting']!r}"]
    if setting.config_name != config:
        problems.append(f"setting {setting.code} stored in config {config}")
    if CLASS_NAMES[row["label"]] != setting.class_name:
        problems.append(f"label {CLASS_NAMES[row['label']]} but setting {setting.code} is {setting.class_name}")
    sample_id = make_sample_id(meta["reference_id"], meta["setting"], meta["level"], meta["realization"])
    if meta["sample_id"] != sample_id:
        problems.append(f"sample_id {meta['sample_id']!r} but its fields make {sample_id!r}")
    seed = sample_seed(int(meta["config"]["seed"]), sample_id)
    if meta["seed"] != seed:
        problems.append(f"seed {meta['seed']} but the build seed and sample id give {seed}")
    components = sorted(meta["components"], key=lambda c: c["order"])
    types = [c["type"] for c in components]
    if types != list(setting.components) or [c["order"] for c in components] != list(range(len(types))):
        return problems + [f"components {types} but setting {setting.code} applies {list(setting.components)}"]
    if meta["level"] not in LEVELS:
        return problems + [f"level {meta['level']} outside {LEVELS}"]
    expected = [lv for _, lv in setting_components(setting, meta["level"], numpy_generator(levels_seed(seed)))]
    levels = [c["level"] for c in components]
    if levels != expected:
        problems.append(f"component levels {levels} but the mixture draw for level L{meta['level']} gives {expected}")
    for c in components:
        degradation = REGISTRY[c["type"]]
        if c["level"] in LEVELS and c[degradation.parameter] != degradation.value(c["level"]):
            problems.append(f"{c['type']} {degradation.parameter} {c[degradation.parameter]} but level "
                            f"L{c['level']} means {degradation.value(c['level'])}")
        if c["seed"] is not None and c["seed"] != component_seed(seed, c["order"], c["type"]):
            problems.append(f"{c['type']} seed {c['seed']} differs from the one derived from the sample seed")
    if meta["prompt"] != describe(meta):
        problems.append("prompt differs from the description of its metadata")
    boxes = [c["bbox"] for c in components if c.get("bbox")]
    expected_box = ([min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
                     max(b[3] for b in boxes)] if boxes else [])
    if list(row["bbox"]) != expected_box:
        problems.append(f"bbox {list(row['bbox'])} but its components give {expected_box}")
    ref = references.get(meta["reference_id"])
    if ref is None:
        problems.append(f"reference {meta['reference_id']!r} is not in the references config")
    else:
        for key in ("patient_key", "pixel_spacing_mm"):
            if meta[key] != ref[key]:
                problems.append(f"{key} {meta[key]!r} but its reference has {ref[key]!r}")
        if meta["split"] != ref["split"]:
            problems.append(f"in split {meta['split']} but its reference (patient) is in {ref['split']}")
    return problems


def check_rows(folder: Path, parquet: dict, report: VerifyReport) -> tuple[dict, dict, list]:
    """Check 2 on every sample row; returns (references by id, replay config per reference, sample locations)."""
    references, samples, seen = {}, [], {}
    for rel, entry in parquet.items():
        if entry["config"] == REFERENCES_CONFIG:
            for row in pq.read_table(folder / rel, columns=["reference_id", "patient_key", "pixel_spacing_mm"]
                                     ).to_pylist():
                references[row["reference_id"]] = dict(row, split=entry["split"])
    configs: dict[str, dict] = {}
    checked = 0
    for rel, entry in tqdm(sorted(parquet.items()), desc="checking rows", unit="file", leave=False):
        if entry["config"] == REFERENCES_CONFIG:
            continue
        columns = [c for c in pq.ParquetFile(folder / rel).schema_arrow.names if c != "image"]
        for index, row in enumerate(_decoded_rows(folder / rel, columns)):
            meta = dict(row_to_metadata(row), prompt=row["prompt"], split=entry["split"])
            for what in _row_problems(meta, row, entry["config"], references):
                report.problem(f"{rel} row {index} ({meta['sample_id']})", what)
            configs.setdefault(meta["reference_id"], dict(meta["config"], backend=meta["backend"]))
            samples.append((rel, index, entry["config"], meta["level"], meta["reference_id"]))
            seen.setdefault(entry["config"], {}).setdefault(meta["sample_id"], []).append(f"{rel} row {index}")
            checked += 1
    expected = check_coverage(seen, references, configs, report)
    report.rows = checked
    report.checked.append(f"{checked} sample rows (labels, levels, ids, seeds, components, severity parameters, "
                          f"prompts, boxes, references, splits) against their metadata and the registry; "
                          f"{expected} reference x setting x level x realization each present exactly once")
    return references, configs, samples


def check_coverage(seen: dict[str, dict[str, list]], references: dict, configs: dict, report: VerifyReport) -> int:
    """Every reference x setting x level x realization of each config present exactly once (``seen``:
    config -> sample id -> where it was found). Returns how many were expected."""
    from ctdegradbench.builder.simulate.settings import get_setting

    counts = [int(c.get("realizations", 1)) for c in configs.values()]
    default = max(set(counts), key=counts.count) if counts else 1
    total = 0
    for config, rows in sorted(seen.items()):
        code = get_setting(config).code
        for reference_id in sorted(references):
            realizations = int(configs.get(reference_id, {}).get("realizations", default))
            for level in LEVELS:
                for realization in range(realizations):
                    total += 1
                    sample_id = make_sample_id(reference_id, code, level, realization)
                    where = rows.get(sample_id, [])
                    if not where:
                        report.problem(f"config {config}", f"{sample_id} is missing (no row)")
                    elif len(where) > 1:
                        report.problem(f"config {config}", f"{sample_id} appears {len(where)} times: "
                                                           + ", ".join(where[:3]))
    return total


# ------------------------------------------------------ 3-4. re-simulation
class _Replayer:
    """Simulators per recorded configuration, and prepared references (one at a time)."""

    def __init__(self, device: str | None):
        self.device = device
        self.simulators: dict[str, object] = {}
        self.prepared_key, self.prepared = None, None
        self.prepare_seconds: list[float] = []       # measured preparations (clean sinogram + FBP)

    def simulator(self, config: dict):
        from ctdegradbench.builder.simulate.config import SimulationConfig
        from ctdegradbench.builder.simulate.simulator import Simulator

        config = dict(config) if self.device is None else dict(config, device=self.device)
        key = json.dumps(config, sort_keys=True)
        if key not in self.simulators:
            self.simulators[key] = Simulator(SimulationConfig(**config))
        return self.simulators[key]

    def prepare(self, reference: ReferenceSlice, config: dict):
        import time

        key = (reference.reference_id, json.dumps(config, sort_keys=True))
        if key != self.prepared_key:
            simulator = self.simulator(config)
            start = time.perf_counter()
            self.prepared_key, self.prepared = key, simulator.prepare(reference)
            self.prepare_seconds.append(time.perf_counter() - start)
        return self.prepared


def _compare(report: VerifyReport, where: str, replayed: np.ndarray, stored: np.ndarray) -> bool:
    difference = _difference(replayed, stored)
    if difference is not None:
        report.problem(where, difference)
    return difference is None


def check_references(folder: Path, parquet: dict, configs: dict, replayer: _Replayer,
                     report: VerifyReport) -> dict[str, ReferenceSlice]:
    """Check 3; returns the references by id."""
    from ctdegradbench.builder.simulate.config import SimulationConfig

    default = dict(SimulationConfig().to_dict(), backend=None)
    references, equal, total = {}, 0, 0
    files = [rel for rel, entry in sorted(parquet.items()) if entry["config"] == REFERENCES_CONFIG]
    for rel in files:
        for index, row in enumerate(tqdm(_decoded_rows(folder / rel), desc=f"replaying {rel}", unit="reference",
                                         leave=False)):
            reference = reference_from_row(row)
            references[reference.reference_id] = reference
            config = configs.get(reference.reference_id, default)
            if config.get("backend") is None:
                config = dict(config, backend="auto")
            prepared = replayer.prepare(reference, config)
            total += 1
            equal += _compare(report, f"{rel} row {index} ({reference.reference_id}) clean_fbp",
                              prepared.clean_fbp_hu, np.asarray(row["clean_fbp"], dtype=np.int16))
    report.checked.append(f"{total} references: clean FBP re-simulated, {equal} identical")
    return references


def choose_replays(samples: list, n_samples: int | None, replay_all: bool, seed: int) -> list:
    """The sample locations to replay: all, or ``n_samples`` (default 2 per config and level)
    spread round-robin over the (config, level) strata so that each is covered when there are
    at least as many samples as strata."""
    if replay_all:
        return list(samples)
    strata: dict[tuple, list] = {}
    for item in samples:
        strata.setdefault((item[2], item[3]), []).append(item)
    if n_samples is None:
        n_samples = DEFAULT_SAMPLES_PER_STRATUM * len(strata)
    rng = np.random.default_rng(seed)
    shuffled = [list(rng.permutation(len(items))) for items in strata.values()]
    chosen = []
    for round_ in itertools.count():
        added = False
        for (key, items), order in zip(strata.items(), shuffled):
            if len(chosen) == n_samples:
                return chosen
            if round_ < len(order):
                chosen.append(items[order[round_]])
                added = True
        if not added:
            return chosen


class _RowReader:
    """Rows of Parquet files by index, one decoded row group per file kept (the most recent files)."""

    KEEP_FILES = 12

    def __init__(self, folder: Path):
        self.folder, self.files, self.groups = folder, {}, {}

    def row(self, rel: str, index: int) -> dict:
        if rel not in self.files:
            meta = pq.ParquetFile(self.folder / rel).metadata
            starts = np.cumsum([0] + [meta.row_group(i).num_rows for i in range(meta.num_row_groups)])
            self.files[rel] = (pq.ParquetFile(self.folder / rel), starts)
        handle, starts = self.files[rel]
        group = int(np.searchsorted(starts, index, side="right") - 1)
        cached = self.groups.pop(rel, None)
        if cached is None or cached[0] != group:
            table = handle.read_row_group(group)
            facts = table.drop([c for c in ("image", "preview") if c in table.column_names])
            cached = (group, _decoding(facts, f"{rel}/{group}"), table)
        self.groups[rel] = cached                     # most recent last
        while len(self.groups) > self.KEEP_FILES:
            self.groups.pop(next(iter(self.groups)))
        offset = int(index - starts[group])
        # the image straight from Arrow (int16 HU), the other columns decoded by their features
        return dict(cached[1][offset], image=images(cached[2].slice(offset, 1), "image")[0])


def _difference(replayed: np.ndarray, stored: np.ndarray) -> str | None:
    """What differs between a replayed and a stored image (``None``: bit for bit equal)."""
    if replayed.shape != stored.shape:
        return f"image shape {stored.shape}, the replay gives {replayed.shape}"
    if np.array_equal(replayed, stored):
        return None
    diff = np.abs(replayed.astype(np.int32) - stored.astype(np.int32))
    return f"{int(np.count_nonzero(diff))} pixels differ from the replay, max |difference| {int(diff.max())} HU"


def replay_reference(folder: Path, reference: ReferenceSlice, items: list, replayer: _Replayer,
                     reader: _RowReader | None = None) -> list[tuple[str, str | None]]:
    """Replay the rows ``items`` (``(rel, index)``) of one reference from one prepared state per
    recorded configuration (:meth:`Simulator.replay_many`); returns ``(where, difference or None)``
    per row, in the order of ``items``."""
    reader = reader or _RowReader(folder)
    rows = [reader.row(rel, index) for rel, index in items]
    metas = [row_to_metadata(row) for row in rows]
    groups: dict[str, list[int]] = {}
    for i, meta in enumerate(metas):
        groups.setdefault(json.dumps(dict(meta["config"], backend=meta["backend"]), sort_keys=True), []).append(i)
    found: dict[int, tuple[str, str | None]] = {}
    for key, indices in groups.items():
        config = json.loads(key)
        prepared = replayer.prepare(reference, config)
        images = replayer.simulator(config).replay_many(prepared, [metas[i] for i in indices])
        for i, image in zip(indices, images):
            rel, index = items[i]
            found[i] = (f"{rel} row {index} ({metas[i]['sample_id']})",
                        _difference(image, np.asarray(rows[i]["image"], dtype=np.int16)))
    return [found[i] for i in range(len(items))]


_WORKER: dict = {}


def _worker_start(device: str | None, threads: int) -> None:
    """A replay process: ``threads`` torch threads (the machine's cores shared by the processes)."""
    import torch

    torch.set_num_threads(max(1, threads))
    _WORKER["replayer"] = _Replayer(device)


def _worker_replay(folder: Path, reference: ReferenceSlice, items: list) -> list[tuple[str, str | None]]:
    return replay_reference(folder, reference, items, _WORKER["replayer"])


def check_images(folder: Path, chosen: list, references: dict, replayer: _Replayer, report: VerifyReport,
                 log=None, num_proc: int = 1) -> None:
    """Check 4 on the chosen sample locations, one reference slice at a time: all of a reference's
    chosen rows are replayed from one prepared state (:func:`replay_reference`), the references
    shared by ``num_proc`` processes. The first reference is replayed here first; from its time
    the estimate of the whole is printed (``log``, default stderr) before the others start."""
    import os
    import sys
    import time

    log = log or (lambda text: tqdm.write(text, file=sys.stderr))
    started = time.perf_counter()
    by_reference: dict[str, list] = {}
    for item in sorted(chosen, key=lambda item: (item[4], item[2], item[3], item[0], item[1])):
        if item[4] in references:     # else reported by the row check
            by_reference.setdefault(item[4], []).append((item[0], item[1]))
    strata = {(item[2], item[3]) for item in chosen}
    total = sum(len(items) for items in by_reference.values())
    results: list[tuple[str, str | None]] = []
    progress = tqdm(total=total, desc="replaying images", unit="image", leave=False)
    jobs = list(by_reference.items())
    if jobs:
        reference_id, items = jobs[0]
        t0 = time.perf_counter()
        results += replay_reference(folder, references[reference_id], items, replayer)
        first = time.perf_counter() - t0
        progress.update(len(items))
        rest = total - len(items)
        workers = min(num_proc, len(jobs) - 1) or 1
        estimate = first + first / len(items) * rest / workers
        log(f"replaying {total} images of {len(jobs)} references: about {estimate / 60:.1f} min with {workers} "
            f"process(es) (measured {first:.1f} s for the {len(items)} images of the first reference)")
    if num_proc > 1 and len(jobs) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        threads = (os.cpu_count() or 1) // min(num_proc, len(jobs) - 1)
        with ProcessPoolExecutor(max_workers=min(num_proc, len(jobs) - 1), mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_worker_start, initargs=(replayer.device, threads)) as pool:
            futures = {pool.submit(_worker_replay, folder, references[rid], items): len(items)
                       for rid, items in jobs[1:]}
            for future in as_completed(futures):
                results += future.result()
                progress.update(futures[future])
    else:
        reader = _RowReader(folder)
        for reference_id, items in jobs[1:]:
            results += replay_reference(folder, references[reference_id], items, replayer, reader)
            progress.update(len(items))
    progress.close()
    equal = 0
    for where, difference in sorted(results):
        if difference is None:
            equal += 1
        else:
            report.problem(where, difference)
    report.replayed = len(chosen)
    report.checked.append(f"{len(chosen)} images re-simulated over {len(strata)} (config, level) strata, {equal} "
                          f"identical (of {report.rows} degraded rows; {len(jobs)} references, {num_proc} "
                          f"process(es), {time.perf_counter() - started:.0f} s)")


def verify_folder(folder, n_samples: int | None = None, replay_all: bool = False, seed: int = 0,
                  device: str | None = None, num_proc: int = 1) -> VerifyReport:
    """Run the four checks of the module docstring on an exported folder and return the report
    (``num_proc``: processes replaying images, one reference slice at a time each)."""
    if isinstance(num_proc, bool) or not isinstance(num_proc, int) or num_proc < 1:
        raise OptionError(f"--num-proc must be an integer >= 1, got {num_proc!r}")
    if n_samples is not None and (isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 0):
        raise OptionError(f"--samples must be an integer >= 0, got {n_samples!r}")
    export = ExportedFolder(folder)
    folder = export.path
    report = VerifyReport(folder)
    if export.manifest is None:
        report.problem(MANIFEST, "missing or unreadable: the folder is not a complete CT-DegradBench export")
        return report
    parquet = check_files(export, report)
    _, configs, samples = check_rows(folder, parquet, report)
    replayer = _Replayer(device)
    references = check_references(folder, parquet, configs, replayer, report)
    check_images(folder, choose_replays(samples, n_samples, replay_all, seed), references, replayer, report,
                 num_proc=num_proc)
    return report
