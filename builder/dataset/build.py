"""``ct-degradbench build``: simulate the requested configs and export the Hub-style folder.

Every reference slice is simulated once for all requested settings (one clean sinogram per
reference) through the ``all`` builder config restricted to those settings, and once more
for the ``references`` config (reference + clean FBP); the export then writes one folder of
Parquet files per setting config. The ``datasets`` cache beside the output keeps finished
builder runs, so a rerun after an interruption reuses them (the default cache is deleted
once the export is complete; one given with ``--cache-dir`` is kept); the output folder
itself appears only when complete (see :mod:`builder.export`).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ctdegradbench.builder.dataset.export import (ALL_CONFIG, REFERENCES_CONFIG, ExportSummary, card_metadata, finish_export, start_export,
                     write_configs)
from ctdegradbench.builder.simulate.settings import PAPER_SETTINGS, SETTINGS, get_setting


@dataclass
class BuildSummary:
    """Measured facts of one build."""

    export: ExportSummary
    seconds: float
    n_references: int
    skipped: dict

    def report(self) -> str:
        lines = [f"wrote {self.export.out}  ({self.export.total_bytes / 1e6:.1f} MB, {self.seconds:.1f} s, "
                 f"{self.n_references} reference slices)"]
        lines.append(f"{'config':<16}{'train':>8}{'valid':>8}{'test':>8}{'MB':>10}{'KB/row':>9}")
        for config in self.export.rows:
            rows = self.export.rows[config]
            total = self.export.config_rows(config)
            size = self.export.config_bytes(config)
            lines.append(f"{config:<16}{rows.get('train', 0):>8}{rows.get('validation', 0):>8}{rows.get('test', 0):>8}"
                         f"{size / 1e6:>10.1f}{size / max(total, 1) / 1e3:>9.0f}")
        simulated = sum(self.export.config_rows(c) for c in self.export.rows if c != REFERENCES_CONFIG)
        lines.append(f"{simulated} degraded rows at {simulated / max(self.seconds, 1e-9):.2f} rows/s, "
                     f"{self.n_references / max(self.seconds, 1e-9):.3f} reference slices/s")
        if self.skipped:
            lines.append("skipped while reading the source: "
                         + ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items())))
        return "\n".join(lines)


def settings_for(configs) -> tuple[str, ...]:
    """Setting codes of the requested config names (``all`` = the paper's ten), in table order."""
    if isinstance(configs, str):
        configs = [configs]
    known = [s.config_name for s in SETTINGS] + [ALL_CONFIG]
    codes = set()
    for name in configs:
        if name == ALL_CONFIG:
            codes.update(s.code for s in PAPER_SETTINGS)
        elif name in known:
            codes.add(get_setting(name).code)
        else:
            raise ValueError(f"unknown config {name!r}; expected one or more of {', '.join(known)}")
    return tuple(s.code for s in SETTINGS if s.code in codes)


def build_dataset(out, *, configs=("all",), source="default", source_options=None, realizations=1, seed=0,
                  device="cpu", simulation=None, num_proc=None, cache_dir=None, overwrite=False) -> BuildSummary:
    """Build ``configs`` from ``source`` and export them to the folder ``out``.

    Returns the measured :class:`BuildSummary`. Raises ValueError / ExportError with one
    clear line for bad arguments (unknown config, existing output without ``overwrite``,
    unwritable folder, a source without CT).
    """
    from ctdegradbench.builder.sources import load_source

    start = time.perf_counter()
    out = Path(out)
    settings = settings_for(configs)
    if num_proc is not None and num_proc < 1:
        raise ValueError(f"--num-proc must be a positive integer, got {num_proc}")
    source_options = dict(source_options or {})
    options = dict(source=str(source), realizations=realizations, seed=seed, device=device,
                   simulation=dict(simulation or {}), **source_options)
    own_cache = cache_dir is None        # the default cache is ours to delete once the export is complete
    cache_dir = Path(cache_dir) if cache_dir else out.parent / f".{out.name}.cache"
    source_result = load_source(str(source), **source_options)   # a bad source fails before any work
    work = start_export(out, overwrite=overwrite)    # fail early on an unwritable / existing output
    try:
        build = _build_into(work, out, settings, options, cache_dir, num_proc, source_result, start)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finish_export(work, out)
    if own_cache:
        shutil.rmtree(cache_dir, ignore_errors=True)
    return build


def _use_spawned_workers() -> None:
    """Make ``datasets``' worker pool spawn processes instead of forking them.

    A process forked after torch has run multithreaded work hangs at its next parallel torch
    operation (the OpenMP thread pool does not survive a fork), and the parent has run torch
    by the time the second split is generated. Spawned workers start clean.
    """
    import multiprocess

    if multiprocess.get_start_method(allow_none=True) != "spawn":
        multiprocess.set_start_method("spawn", force=True)


def _build_into(work, out, settings, options, cache_dir, num_proc, source_result, start) -> BuildSummary:
    from ctdegradbench.builder.dataset.hf_builder import CTDegradBench

    if num_proc is not None and num_proc > 1:
        _use_spawned_workers()
        options["threads"] = max(1, len(os.sched_getaffinity(0)) // num_proc)

    from ctdegradbench.builder.dataset.card import render_card
    from ctdegradbench.builder.dataset.figures import save_sample_grid

    references_builder = CTDegradBench(config_name=REFERENCES_CONFIG, cache_dir=str(cache_dir),
                                       source_result=source_result, **options)
    references_builder.download_and_prepare(num_proc=num_proc)
    references = references_builder.as_dataset()
    samples_builder = CTDegradBench(config_name=ALL_CONFIG, settings=settings, cache_dir=str(cache_dir),
                                    source_result=source_result, **options)
    samples_builder.download_and_prepare(num_proc=num_proc)
    samples = samples_builder.as_dataset()

    summary = ExportSummary(out)
    write_configs(work, samples, references, summary)
    figures = save_sample_grid(samples, references, work / "images" / "sample_grid.png")
    card_data = card_metadata(summary, samples_builder.info, references_builder.info)
    elapsed = time.perf_counter() - start
    n_references = sum(summary.rows.get(REFERENCES_CONFIG, {}).values())
    build = BuildSummary(summary, elapsed, n_references, dict(source_result.skipped))
    (work / "README.md").write_text(render_card(card_data, build, samples_builder.config, source_result, figures))
    return build
