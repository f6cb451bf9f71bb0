"""Benchmark: build throughput of ``--engine ray`` (1 and 2 local workers) against the local
engine (one process, and ``--num-proc 2``) on the same sources, and the cost model.

What it measures. The same ``ct-degradbench build`` (default: the paper's ten settings on
``--max-slices`` slices of each series of ``../shared/ct``, 512 x 512) run once per engine, in
this process, one after the other:

* ``local``: the ``datasets`` builder in one process (torch's default threads: all cores);
* ``local --num-proc 2``: two worker processes, cores / 2 threads each;
* ``ray 1`` / ``ray 2``: a Ray instance started on this machine with 1 or 2 CPUs, one task
  (one torch thread) per CPU, shards of ``--shard-size`` slices.

Each row gives the wall time of the whole build (reading the sources, simulating, exporting;
for Ray also starting the Ray instance, reported on its own in the ``ray start`` column,
measured as ``ray.init`` + one no-op task + ``ray.shutdown`` before the builds), degraded rows
per second, and the cost model: **core-seconds per reference per setting** =
wall x cores used / (references x settings) (inflated when other work shares the cores).
The cost model behind the README's estimates for 1,000 and 10,000 slices on N cores is measured
apart, load-independent: the **CPU time** (``time.process_time``) of one shard task with one
torch thread on the first slice, after a warm-up: ``hours = slices x 10 settings x cost / N``
(the shards are independent, so N workers divide it; add the start of the cluster and the
export, which is single-process and I/O bound).

The outputs are checked for bit identity: every Parquet file of every engine has the same
SHA-256 (from the export's manifest); exit status 1 otherwise.

The machine this runs on may be shared: ratios from one run are meaningful, absolute times
are not. Run from the repository root (needs ``pip install -e ".[ray]"``)::

    python benchmarks/bench_build_scale.py [--source ../shared/ct] [--max-slices 1] [--engines local num-proc-2 ray-1 ray-2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINES = {                         # name -> (engine, num_proc)
    "local": ("local", None),
    "num-proc-2": ("local", 2),
    "ray-1": ("ray", 1),
    "ray-2": ("ray", 2),
}
PROJECT_SLICES = (1_000, 10_000)
PROJECT_CORES = (2, 16, 64, 256)


def ray_start_seconds(cpus: int) -> float:
    """Seconds to start a local Ray instance with ``cpus`` CPUs, run one no-op task and stop it."""
    import ray

    start = time.perf_counter()
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    ray.get(ray.remote(lambda: None).remote())
    ray.shutdown()
    return time.perf_counter() - start


def cpu_seconds_per_reference_setting(source, settings, simulation, image_size: int) -> float:
    """The cost model: CPU seconds of one torch thread per reference slice and setting (all four
    levels), measured in this process with :func:`ray_engine.simulate_shard` on the first slice
    (after one warm-up run): process CPU time, so other load on the machine does not count."""
    from ctdegradbench.builder.dataset.ray_engine import simulate_shard
    from ctdegradbench.builder.simulate.simulator import simulator_version
    from ctdegradbench.builder.sources import load_sources

    ref = load_sources(source).slices[:1]
    simulate_shard(ref, settings, simulation, image_size, simulator_version())        # warm-up
    *_, cpu = simulate_shard(ref, settings, simulation, image_size, simulator_version())
    return cpu / len(settings)


def cores_used(engine: str, num_proc: int | None) -> int:
    if engine == "ray":
        return num_proc
    return len(os.sched_getaffinity(0)) if num_proc is None else min(num_proc, len(os.sched_getaffinity(0)))


def parquet_digests(out: Path) -> dict[str, str]:
    from ctdegradbench.builder.dataset.export import read_manifest

    return {name: entry["sha256"] for name, entry in read_manifest(out)["files"].items() if name.endswith(".parquet")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", default=str(ROOT.parent / "shared" / "ct"))
    p.add_argument("--nifti-axes", default="LPS")
    p.add_argument("--max-slices", type=int, default=1, help="slices per series; default 1")
    p.add_argument("--image-size", type=int, default=512)
    p.add_argument("--configs", nargs="+", default=["all"])
    p.add_argument("--shard-size", type=int, default=1)
    p.add_argument("--engines", nargs="+", default=list(ENGINES), choices=list(ENGINES))
    p.add_argument("--work", type=Path, default=None, help="folder for the outputs (default: a temporary one)")
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = p.parse_args(argv)
    if not Path(args.source).exists():
        raise FileNotFoundError(f"source {args.source} does not exist; pass --source")

    from ctdegradbench.builder.dataset.build import build_dataset
    from ctdegradbench.builder.dataset.options import BuildOptions
    from ctdegradbench.builder.sources.options import SourceOptions

    work = Path(args.work or tempfile.mkdtemp(prefix="bench-build-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    source = SourceOptions(sources=(args.source,), nifti_axes=args.nifti_axes, max_slices=args.max_slices,
                           image_size=args.image_size)
    starts = {n: ray_start_seconds(n) for n in sorted({ENGINES[e][1] for e in args.engines if ENGINES[e][0] == "ray"})}
    results, digests = [], {}
    for name in args.engines:
        engine, num_proc = ENGINES[name]
        out = work / name
        options = BuildOptions(out=out, configs=tuple(args.configs), num_proc=num_proc, engine=engine,
                               shard_size=args.shard_size, overwrite=True, source=source)
        start = time.perf_counter()
        summary = build_dataset(options)
        wall = time.perf_counter() - start
        n_settings = len(options.settings)
        rows = sum(summary.export.config_rows(c) for c in summary.export.rows if c != "references")
        cores = cores_used(engine, num_proc)
        results.append({"engine": name, "cores": cores, "references": summary.n_references, "settings": n_settings,
                        "rows": rows, "wall_s": wall, "rows_per_s": rows / wall,
                        "ray_start_s": starts.get(num_proc) if engine == "ray" else None,
                        "core_s_per_reference_setting": wall * cores / (summary.n_references * n_settings)})
        digests[name] = parquet_digests(out)
        print(f"{name}: {wall:.1f} s, {rows} rows", file=sys.stderr, flush=True)

    print(f"\n{results[0]['references']} reference slices x {results[0]['settings']} settings x 4 levels, "
          f"{args.image_size} px, shards of {args.shard_size} slice(s)\n")
    print("| engine | cores | wall s | ray start s | rows/s | core-s per reference per setting |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        start = f"{r['ray_start_s']:.1f}" if r["ray_start_s"] is not None else "-"
        print(f"| {r['engine']} | {r['cores']} | {r['wall_s']:.1f} | {start} | {r['rows_per_s']:.2f} | "
              f"{r['core_s_per_reference_setting']:.2f} |")
    cost = cpu_seconds_per_reference_setting(source, options.settings, options.simulation, args.image_size)
    print(f"\ncost model: {cost:.2f} CPU-s per reference per setting (one torch thread, process CPU time, "
          f"so other load does not count); hours for the ten settings on N cores:\n")
    print("| slices | " + " | ".join(f"{n} cores" for n in PROJECT_CORES) + " |")
    print("|---:|" + "---:|" * len(PROJECT_CORES))
    for slices in PROJECT_SLICES:
        print(f"| {slices:,} | " + " | ".join(f"{slices * 10 * cost / n / 3600:.2f}" for n in PROJECT_CORES) + " |")
    same = all(d == digests[args.engines[0]] for d in digests.values())
    print(f"\nParquet files identical across engines: {'yes' if same else 'NO'} "
          f"({len(digests[args.engines[0]])} files)")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "cost_core_s_per_reference_setting": cost,
                                         "identical": same}, indent=1) + "\n")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
