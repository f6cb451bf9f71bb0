"""Throughput of the simulator against an earlier version of itself, in one run.

Both versions simulate the same real slices (the middle body slice of the first
``--references`` series of ``../shared/ct``): ``Simulator.prepare`` and ``run`` of the paper's
ten settings at L0..L3 (40 images per slice), ``--threads`` torch threads. The earlier version
is a commit of this repository (``--baseline``, default the commit before the physics-fidelity
work), exported with ``git archive`` into a temporary folder and imported first on
``PYTHONPATH``; nothing in the repository changes. Each version runs in its own process,
alternating, ``--repeats`` times per version; the best time per slice is kept (the machine
may be shared).

    python benchmarks/bench_versions.py [--baseline 4e51f76] [--references 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BASELINE = "4e51f76"


def child(references: int, threads: int) -> None:
    import time

    import torch

    from ctdegradbench.builder.simulate.settings import PAPER_SETTINGS
    from ctdegradbench.builder.simulate.config import SimulationConfig
    from ctdegradbench.builder.simulate.simulator import Simulator
    from ctdegradbench.builder.sources import load_source

    torch.set_num_threads(threads)
    paths = sorted((ROOT.parent / "shared" / "ct").glob("*.nii.gz"))[:references]
    refs = []
    for path in paths:
        slices = load_source(path, nifti_axes="LPS", min_body_fraction=0.1, max_slices=3).slices
        refs.append(slices[len(slices) // 2])
    simulator = Simulator(SimulationConfig())
    simulator.run(simulator.prepare(refs[0]), settings=["S1", "S5"], levels=(0,))     # warm-up (spectrum, plans)
    times = []
    for ref in refs:
        start = time.perf_counter()
        samples = simulator.run(simulator.prepare(ref), settings=[s.code for s in PAPER_SETTINGS])
        times.append(time.perf_counter() - start)
        assert len(samples) == 40
    print(json.dumps({"times": times, "ids": [r.reference_id for r in refs]}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="git commit of the earlier version")
    parser.add_argument("--references", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.references, args.threads)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        package = Path(tmp) / "pkg" / "ctdegradbench"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline, "builder"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(package)], input=archive, check=True)
        runs = {"baseline": [], "current": []}
        for _ in range(args.repeats):
            for name in ("baseline", "current"):
                env = dict(os.environ)
                if name == "baseline":
                    env["PYTHONPATH"] = str(package.parent) + os.pathsep + env.get("PYTHONPATH", "")
                out = subprocess.run([sys.executable, __file__, "--child", "--references", str(args.references),
                                      "--threads", str(args.threads)], env=env, check=True, capture_output=True,
                                     text=True).stdout
                runs[name].append(json.loads(out.strip().splitlines()[-1]))
        best = {name: [min(r["times"][i] for r in rs) for i in range(args.references)] for name, rs in runs.items()}
        ids = runs["current"][0]["ids"]
        for i, rid in enumerate(ids):
            print(f"{rid}: baseline {best['baseline'][i]:.1f} s, current {best['current'][i]:.1f} s "
                  f"(40 images; ratio {best['current'][i] / best['baseline'][i]:.2f})")
        total_b, total_c = sum(best["baseline"]), sum(best["current"])
        print(f"total: baseline {args.baseline} {total_b:.1f} s, current {total_c:.1f} s: current / baseline "
              f"= {total_c / total_b:.2f} (best of {args.repeats}, {args.threads} torch threads)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
