"""``ct-degradbench build``: simulate the requested configs and export the Hub-style folder.

Every reference slice is simulated once for all requested settings (one clean sinogram per
reference) through the ``all`` builder config restricted to those settings, and once more
for the ``references`` config (reference + clean FBP); the export then writes one folder of
Parquet files per setting config. The ``datasets`` cache beside the output keeps finished
builder runs, so a rerun after an interruption reuses them (the default cache is deleted
once the export is complete; one given with ``--cache-dir`` is kept); the output folder
itself appears only when complete (see :mod:`builder.export`).

``--engine ray`` shards the simulation over a Ray cluster instead (:mod:`.ray_engine`); the
export that follows is the same code, so the output bytes are the same.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
import time
from dataclasses import dataclass

import datasets

from ctdegradbench.core.errors import OutputError
from ctdegradbench.core.interrupts import bounded_interrupt
from ctdegradbench.builder.dataset.export import (CACHE_MARKER, abandon_export, ExportSummary, card_metadata, check_output,
                                                  export_lock, finish_export, output_error, start_export, write_configs,
                                                  write_manifest)
from ctdegradbench.builder.dataset.features import SPLITS, reference_features, sample_features
from ctdegradbench.core.benchmark import eval_yaml_content, write_eval_yaml_file
from ctdegradbench.builder.dataset.options import ALL_CONFIG, REFERENCES_CONFIG, BuildOptions
from ctdegradbench.builder.simulate.resolution import check_resolution
from ctdegradbench.builder.simulate.settings import get_setting


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
        empty = [split for split in SPLITS if not self.export.rows.get(REFERENCES_CONFIG, {}).get(split)]
        if empty:
            lines.append(f"note: the {' and '.join(empty)} split{'s are' if len(empty) > 1 else ' is'} empty: "
                         "splits are by patient and the source has too few patients for every split")
        if self.skipped:
            lines.append("skipped while reading the source: "
                         + ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items())))
        return "\n".join(lines)


def build_dataset(options: BuildOptions, *, progress=None) -> BuildSummary:
    """Build ``options.configs`` from ``options.source`` and export them to ``options.out``.

    Every option was validated when ``options`` was made; here the output is checked and
    locked and the source read before any simulation starts. Returns the measured
    :class:`BuildSummary`. A problem the user can fix raises a
    :class:`~ctdegradbench.core.errors.CTDegradBenchError` with one clear line; an
    interrupted or failed build leaves any existing output untouched (and the builder cache,
    so a rerun resumes).
    """
    from ctdegradbench.builder.sources import load_sources

    if not isinstance(options, BuildOptions):
        raise TypeError(f"build_dataset takes a BuildOptions, got {type(options).__name__}")
    start = time.perf_counter()
    if options.engine == "ray":
        from ctdegradbench.builder.dataset.ray_engine import import_ray

        import_ray()                                # not installed: say so before reading anything
    out = options.out
    cache_dir = options.cache_dir or out.parent / f".{out.name}.cache"
    check_output(out, options.overwrite)            # fail before locking, reading or simulating anything
    if options.cache_dir is None:
        _check_default_cache(cache_dir)
    # Ctrl-C: the normal unwinding below, bounded (a worker pool that never joins cannot keep the build alive)
    with bounded_interrupt(lambda: abandon_export(out)), export_lock(out):
        check_output(out, options.overwrite)        # again, now that no other build can change it
        if options.cache_dir is None:
            _claim_default_cache(cache_dir)
        source_result = load_sources(options.source)
        if not options.allow_uncalibrated_grid:
            for ref in source_result.slices:
                check_resolution(ref.pixel_spacing_mm, ref.image_size, where=f"reference {ref.reference_id}")
        work = start_export(out, options.overwrite)
        try:
            build = _build_into(work, options, cache_dir, source_result, start)
        except OSError as exc:
            shutil.rmtree(work, ignore_errors=True)
            raise output_error(exc, work) from None
        except BaseException as exc:
            shutil.rmtree(work, ignore_errors=True)
            if _interrupted(exc):          # datasets' worker pool replaces Ctrl-C by its own TimeoutError
                raise KeyboardInterrupt from None
            cause = _cause(exc, OSError)   # e.g. a full disk while datasets writes its cache
            if cause is not None:
                raise output_error(cause, cache_dir) from None
            raise
        finish_export(work, out, options.overwrite)
    if options.cache_dir is None and (cache_dir / CACHE_MARKER).is_file():   # ours: delete once exported
        shutil.rmtree(cache_dir, ignore_errors=True)
    return build


def _check_default_cache(cache_dir) -> None:
    """Refuse a default cache folder that a build did not create (a user's, or one kept with --cache-dir)."""
    if (cache_dir.exists() or cache_dir.is_symlink()) and not (cache_dir / CACHE_MARKER).is_file():
        raise OutputError(f"{cache_dir} exists and was not made by a build's default cache; pass --cache-dir "
                          f"{cache_dir} to use (and keep) it, or move it away")


def _claim_default_cache(cache_dir) -> None:
    """Create the default cache folder with its marker (so that the build may delete it when done)."""
    _check_default_cache(cache_dir)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        (cache_dir / CACHE_MARKER).write_text("default cache of a ct-degradbench build; deleted when it ends\n")
    except OSError as exc:
        raise output_error(exc, cache_dir) from None


def _cause(exc: BaseException, kind: type) -> BaseException | None:
    """The first exception of type ``kind`` in the chain of ``exc`` (itself, its cause, its context)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kind):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was raised while handling, a KeyboardInterrupt."""
    return _cause(exc, KeyboardInterrupt) is not None


@contextlib.contextmanager
def _workers_ignore_interrupts():
    """Start worker processes that never see Ctrl-C, so that only this process reacts to it.

    A terminal sends Ctrl-C (SIGINT) to every process of its group; a worker that received it
    would print its own traceback. While a child is spawned here (``datasets`` starts its pool's
    workers inside this block), SIGINT is blocked in this thread: the child inherits the
    blocked signal through fork and exec and never receives it, and a Ctrl-C that arrives
    meanwhile is held and delivered to this process as soon as the child has started.
    """
    import multiprocess.process

    start = multiprocess.process.BaseProcess.start

    def start_without_interrupts(process):
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            start(process)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    multiprocess.process.BaseProcess.start = start_without_interrupts
    try:
        yield
    finally:
        multiprocess.process.BaseProcess.start = start


def _use_spawned_workers() -> None:
    """Make ``datasets``' worker pool spawn processes instead of forking them.

    A process forked after torch has run multithreaded work hangs at its next parallel torch
    operation (the OpenMP thread pool does not survive a fork), and the parent has run torch
    by the time the second split is generated. Spawned workers start clean.
    """
    import multiprocess

    if multiprocess.get_start_method(allow_none=True) != "spawn":
        multiprocess.set_start_method("spawn", force=True)


def _announce(line: str) -> None:
    """A progress line on stderr (the datasets bars that follow show each split's count and total)."""
    print(f"ct-degradbench build: {line}", file=sys.stderr, flush=True)


def _build_into(work, options: BuildOptions, cache_dir, source_result, start) -> BuildSummary:
    from ctdegradbench.builder.dataset.card import render_card
    from ctdegradbench.builder.dataset.figures import save_card_figures

    if options.engine == "ray":
        from ctdegradbench.builder.dataset.ray_engine import simulate_on_ray

        n = len(source_result.slices)
        _announce(f"steps 1-2/3 on Ray: {n} reference slices in shards of {options.shard_size} -> the references "
                  f"and configs {', '.join(options.configs)} (settings {' '.join(options.settings)})")
        samples, references = simulate_on_ray(options, source_result, cache_dir)
        sample_info = datasets.DatasetInfo(features=sample_features(options.source.image_size))
        reference_info = datasets.DatasetInfo(features=reference_features(options.source.image_size))
    else:
        samples, references, sample_info, reference_info = _simulate_local(options, cache_dir, source_result)

    summary = ExportSummary(options.out)
    _announce(f"step 3/3: writing Parquet, figures and the card into {options.out}")
    write_configs(work, samples, references, summary)
    figures = save_card_figures(samples, references, work)
    card_data = card_metadata(summary, sample_info, reference_info)
    elapsed = time.perf_counter() - start
    n_references = sum(summary.rows.get(REFERENCES_CONFIG, {}).values())
    build = BuildSummary(summary, elapsed, n_references, dict(source_result.skipped))
    (work / "README.md").write_text(render_card(card_data, build, options, source_result, figures), encoding="utf-8")
    if any(summary.rows[c].get("test") for c in summary.rows if c != REFERENCES_CONFIG and get_setting(c).in_paper):
        write_eval_yaml_file(work, eval_yaml_content())      # the leaderboard tasks (config all, split test)
    write_manifest(work, summary)
    return build


def _simulate_local(options: BuildOptions, cache_dir, source_result):
    """The ``datasets`` builder on this machine (``--num-proc`` workers): the samples and
    references ``DatasetDict``s and their builders' infos."""
    from ctdegradbench.builder.dataset.hf_builder import CTDegradBench
    from ctdegradbench.builder.dataset.splits import split_slices

    if options.threads is not None:
        _use_spawned_workers()
    config = dict(source=options.source, simulation=options.simulation, split_fractions=options.split_fractions,
                  threads=options.threads)
    by_split = split_slices(source_result.slices, options.split_fractions, options.simulation.seed)   # decided once
    references_builder = CTDegradBench(config_name=REFERENCES_CONFIG, cache_dir=str(cache_dir),
                                       slices_by_split=by_split, **config)
    samples_builder = CTDegradBench(config_name=ALL_CONFIG, settings=options.settings, cache_dir=str(cache_dir),
                                    slices_by_split=by_split, **config)
    n = len(source_result.slices)
    with _workers_ignore_interrupts() if options.threads is not None else contextlib.nullcontext():
        _announce(f"step 1/3: references config: {n} reference slices -> {n} rows (reference + clean FBP)")
        references_builder.download_and_prepare(num_proc=options.num_proc)
        per_slice = samples_builder.config.rows_per_slice
        _announce(f"step 2/3: configs {', '.join(options.configs)} (settings "
                  f"{' '.join(samples_builder.config.settings)}): {n} reference slices x {per_slice} rows "
                  f"= {n * per_slice} rows")
        samples_builder.download_and_prepare(num_proc=options.num_proc)
    return (samples_builder.as_dataset(), references_builder.as_dataset(), samples_builder.info,
            references_builder.info)
