"""``ct-degradbench build --engine ray``: the simulation sharded over a Ray cluster.

The reference slices of each split (the same patient split as the local build,
:func:`~ctdegradbench.builder.dataset.splits.split_slices`) are cut into shards of
``shard_size`` consecutive slices. One Ray task per shard receives its slices as arrays
(so the workers need no access to the source), prepares each slice once (clean sinogram
and clean FBP) and simulates the requested settings with the seeds of the sample ids,
exactly as the local builder's ``_generate_examples`` does. The rows are encoded with the
builder's features by ``datasets``' own ``ArrowWriter`` and come back as Arrow IPC bytes.

The driver stores each finished shard in the build cache (``<cache>/ray/``, written to a
temporary name and renamed, so a file there is always complete) and finally concatenates the
shard files, memory-mapped, in split and shard order: the same rows in the same order as
the local build, handed to the same export (:func:`~ctdegradbench.builder.dataset.export.write_configs`),
hence the same Parquet bytes.

Failures. Ray reruns the task of a worker that dies (``max_retries``); a build that stops
(driver killed, Ctrl-C, cluster lost) leaves the finished shards in the cache, and a rerun
with the same options simulates only the missing ones. A shard file is named by the hash of
everything its rows depend on (options, package version, the slices' ids and pixels), so a
changed option never reuses a stale shard and no row is ever stored twice.

Memory. A worker holds one shard: its slices and its encoded rows (about 20 MB per 512 px
reference for the ten paper settings). The driver holds the reference slices (as the local
build does), at most ``2 x`` the cluster's CPUs shards in flight in Ray's object store, and
one shard's result while it writes it; the output is read back memory-mapped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import time
from pathlib import Path

from ctdegradbench.core.errors import CTDegradBenchError, OptionError
from ctdegradbench.core.levels import LEVELS
from ctdegradbench.builder.dataset.features import SPLITS, reference_features, sample_features, sample_to_row
from ctdegradbench.builder.dataset.hf_builder import reference_row
from ctdegradbench.builder.dataset.splits import split_slices

SHARD_FOLDER = "ray"          # under the build cache
MAX_RETRIES = 3               # reruns of a shard whose worker died
IN_FLIGHT_PER_CPU = 2         # shards submitted ahead per cluster CPU (bounds the object store's use)


class BuildError(CTDegradBenchError):
    """A Ray build that cannot finish now (its finished shards stay in the cache)."""


def import_ray():
    """The ``ray`` module, or an OptionError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise OptionError("--engine ray needs the ray package: pip install 'ct-degradbench[ray]'") from None
    return ray


@dataclasses.dataclass(frozen=True, eq=False)
class Shard:
    """``slices`` (consecutive reference slices of one split) simulated by one Ray task."""

    split: str
    index: int
    slices: tuple
    key: str                  # hash of everything the shard's rows depend on

    @property
    def stem(self) -> str:
        return f"{self.split}-{self.index:05d}-{self.key[:16]}"


def _slice_digest(ref) -> str:
    """Identity and pixels of one reference slice (what its rows are computed from)."""
    digest = hashlib.sha256()
    digest.update(json.dumps([ref.reference_id, float(ref.pixel_spacing_mm), ref.patient_key,
                              repr(sorted(ref.info.items()))]).encode())
    digest.update(str(ref.hu.dtype).encode() + str(ref.hu.shape).encode())
    digest.update(ref.hu.tobytes())
    return digest.hexdigest()


def plan_shards(options, slices) -> list[Shard]:
    """Every shard of the build, in output order (split order, then source order)."""
    from importlib.metadata import version

    common = json.dumps({"version": version("ct-degradbench"), "settings": list(options.settings),
                         "simulation": options.simulation.to_dict(), "image_size": options.source.image_size},
                        sort_keys=True, default=str)
    shards = []
    by_split = split_slices(slices, options.split_fractions, options.simulation.seed)
    for split in SPLITS:
        group = by_split.get(split, [])
        for index, start in enumerate(range(0, len(group), options.shard_size)):
            part = tuple(group[start:start + options.shard_size])
            key = hashlib.sha256("\n".join([common, split] + [_slice_digest(r) for r in part]).encode()).hexdigest()
            shards.append(Shard(split, index, part, key))
    return shards


def simulate_shard(slices, settings, simulation, image_size: int, driver_version: str
                   ) -> tuple[bytes, bytes, int, float]:
    """Rows of one shard as Arrow IPC streams ``(references, samples, n_samples, cpu_seconds)``.

    The same rows as the local builder (``CTDegradBench._generate_examples`` of the
    ``references`` and the samples config) encoded as it encodes them; each slice is
    prepared once for both. A worker whose ct-degradbench differs from the driver's refuses
    (its rows would record another simulator version). ``cpu_seconds``: the worker process's
    CPU time for the shard (the cost model, independent of other load on the node).
    """
    import pyarrow as pa
    import torch
    from datasets.arrow_writer import ArrowWriter

    from ctdegradbench.builder.simulate.simulator import Simulator, simulator_version

    if simulator_version() != driver_version:
        raise OptionError(f"a Ray worker has ct-degradbench {simulator_version()}, the driver {driver_version}; "
                          "install the same version on every node")

    cpu_start = time.process_time()
    torch.set_num_threads(1)           # one CPU per task: Ray runs as many tasks as the node has CPUs
    simulator = Simulator(simulation)
    ref_features, sample_feats = reference_features(image_size), sample_features(image_size)
    ref_stream, sample_stream = pa.BufferOutputStream(), pa.BufferOutputStream()
    ref_writer = ArrowWriter(features=ref_features, stream=ref_stream)
    sample_writer = ArrowWriter(features=sample_feats, stream=sample_stream)
    for ref in slices:
        prepared = simulator.prepare(ref)
        ref_writer.write(ref_features.encode_example(reference_row(ref, prepared.clean_fbp_hu)))
        for sample in simulator.run(prepared, settings=settings):
            sample_writer.write(sample_feats.encode_example(sample_to_row(sample)))
    ref_writer.finalize()
    n_samples, _ = sample_writer.finalize()
    return (ref_stream.getvalue().to_pybytes(), sample_stream.getvalue().to_pybytes(), n_samples,
            time.process_time() - cpu_start)


def shard_paths(folder: Path, shard: Shard) -> tuple[Path, Path]:
    """``(references, samples)`` Arrow files of a finished shard."""
    return folder / f"{shard.stem}.references.arrow", folder / f"{shard.stem}.samples.arrow"


def _store(folder: Path, shard: Shard, references: bytes, samples: bytes) -> None:
    """Write a shard's two files under temporary names, then rename them (samples last: it
    marks the shard done)."""
    for path, data in zip(shard_paths(folder, shard), (references, samples)):
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        tmp.replace(path)


def _done(folder: Path, shard: Shard) -> bool:
    return all(p.is_file() for p in shard_paths(folder, shard))


class Progress:
    """Rows done / total and the rate, one line per finished shard on stderr; at the end the
    workers' CPU time per row (the cost model of the build)."""

    def __init__(self, total_rows: int, done_rows: int, n_shards: int, n_todo: int, stream=None):
        self.total, self.done, self.start_done = total_rows, done_rows, done_rows
        self.n_shards, self.todo, self.finished = n_shards, n_todo, 0
        self.stream, self.start = stream or sys.stderr, time.perf_counter()
        self.cpu_seconds, self.rows_simulated = 0.0, 0
        if done_rows:
            print(f"ray: resuming, {n_shards - n_todo}/{n_shards} shards ({done_rows} rows) already in the cache",
                  file=self.stream, flush=True)

    def shard_done(self, rows: int, cpu_seconds: float = 0.0) -> None:
        self.done += rows
        self.finished += 1
        self.cpu_seconds += cpu_seconds
        self.rows_simulated += rows
        elapsed = time.perf_counter() - self.start
        rate = (self.done - self.start_done) / max(elapsed, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        print(f"ray: shard {self.finished}/{self.todo}  rows {self.done}/{self.total}  {rate:.2f} rows/s  "
              f"eta {eta:.0f} s", file=self.stream, flush=True)

    def finish(self) -> None:
        if self.rows_simulated:
            print(f"ray: {self.rows_simulated} rows in {time.perf_counter() - self.start:.1f} s, "
                  f"{self.cpu_seconds:.1f} worker CPU-s ({self.cpu_seconds / self.rows_simulated:.2f} CPU-s per row, "
                  "one row = one reference x setting x level)", file=self.stream, flush=True)


def _connect(ray, options) -> None:
    """Join the cluster of ``--address``, or start Ray on this machine (``--num-proc`` CPUs)."""
    if ray.is_initialized():
        return
    quiet = dict(log_to_driver=False, logging_level="WARNING")
    if options.address is None:
        ray.init(address="local", num_cpus=options.num_proc or len(os.sched_getaffinity(0)),
                 include_dashboard=False, **quiet)
    else:
        try:
            ray.init(address=options.address, **quiet)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise OptionError(f"--address {options.address}: cannot reach a Ray cluster there "
                              f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


def simulate_on_ray(options, source_result, cache_dir: Path, progress=None):
    """Simulate every shard not yet in ``cache_dir`` on Ray; return ``(samples, references)``
    as ``DatasetDict``s read memory-mapped from the shard files, in output order."""
    import datasets

    ray = import_ray()
    folder = Path(cache_dir) / SHARD_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    shards = plan_shards(options, source_result.slices)
    todo = [s for s in shards if not _done(folder, s)]
    stored = sum(len(s.slices) for s in shards) - sum(len(s.slices) for s in todo)
    rows_per_slice = len(options.settings) * len(LEVELS) * options.simulation.realizations
    progress = progress or Progress(rows_per_slice * len(source_result.slices),
                                    rows_per_slice * stored,
                                    len(shards), len(todo))
    if todo:
        started_here = not ray.is_initialized()
        _connect(ray, options)
        try:
            _run_shards(ray, options, folder, todo, progress)
        finally:
            if started_here:
                ray.shutdown()
    samples, references = {}, {}
    for split in SPLITS:
        files = [shard_paths(folder, s) for s in shards if s.split == split]
        if files:
            references[split] = datasets.concatenate_datasets([datasets.Dataset.from_file(str(r)) for r, _ in files])
            samples[split] = datasets.concatenate_datasets([datasets.Dataset.from_file(str(s)) for _, s in files])
    return datasets.DatasetDict(samples), datasets.DatasetDict(references)


def _run_shards(ray, options, folder: Path, todo: list[Shard], progress) -> None:
    from ctdegradbench.builder.simulate.simulator import simulator_version

    gpus = 1 if options.simulation.device.startswith("cuda") else 0     # --device cuda: one GPU per task
    if gpus and not ray.cluster_resources().get("GPU"):
        raise OptionError(f"--device {options.simulation.device}: the Ray cluster has no GPU; use --device cpu")
    task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=MAX_RETRIES)(simulate_shard)
    settings, simulation, size = options.settings, options.simulation, options.source.image_size
    version = simulator_version()
    limit = max(1, IN_FLIGHT_PER_CPU * int(ray.cluster_resources().get("CPU", 1)))
    pending, queue = {}, list(todo)
    while queue or pending:
        while queue and len(pending) < limit:
            shard = queue.pop(0)
            pending[task.remote(list(shard.slices), settings, simulation, size, version)] = shard
        ready, _ = ray.wait(list(pending), num_returns=1)
        shard = pending.pop(ready[0])
        try:
            references, samples, n_samples, cpu_seconds = ray.get(ready[0])
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, CTDegradBenchError):
                raise exc.cause from None           # a problem the user can fix, as the local build says it
            raise
        except ray.exceptions.RayError as exc:      # worker died MAX_RETRIES + 1 times, node or cluster lost
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BuildError(f"Ray lost shard {shard.stem} ({first}); the finished shards are kept in "
                             f"{folder}, rerun the same command to resume") from None
        _store(folder, shard, references, samples)
        del references, samples
        progress.shard_done(n_samples, cpu_seconds)
    progress.finish()
