"""Start-up time of the ``ct-degradbench`` command: ``--version``, every ``--help`` and a bad
option per command (each must answer with one error line, status 2, without importing torch).

Each case runs in a fresh interpreter (``python -c`` calling ``ct_degradbench.main``) ``--repeats``
times; the table gives the fastest and the median wall time in seconds, the exit status and the
heavy modules the process had imported when it ended (torch, datasets, transformers, scipy).

    python benchmarks/startup_times.py [--repeats 5] [--pythonpath DIR:DIR]

``--pythonpath`` runs another checkout's sources with this interpreter (how the numbers of main
d9f4ab4 were taken: its folders linked as ``ctdegradbench/<part>`` in a temporary folder).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

CASES = (
    ("--version",), ("--help",),
    ("build", "--help"), ("sources", "--help"), ("figure", "--help"), ("verify", "--help"),
    ("predict", "--help"), ("train", "--help"), ("evaluate", "--help"), ("app", "--help"),
    ("bench", "--help"), ("bench", "iqa", "--help"), ("leaderboard", "push", "--help"),
    ("build", "--image-size", "10"), ("build", "--dose-fraction", "2"), ("build", "--no-such-flag"),
    ("sources", "--stride", "0"), ("figure", "--level", "7"), ("verify", "x", "--samples", "-1"),
    ("predict", "x.npy", "--pixel-spacing", "-1"), ("train", "--dataset", "d", "--out", "o", "--epochs", "0"),
    ("evaluate", "--dataset", "d", "--split", "nope"), ("app", "--port", "0"),
    ("bench", "iqa", "--dataset", ".", "--out", "o", "--batch-size", "0"),
)
HEAVY = ("torch", "datasets", "transformers", "scipy")
PROGRAM = ("import sys\nimport ct_degradbench\ntry:\n    rc = ct_degradbench.main(sys.argv[1:])\n"
           "except SystemExit as exc:\n    rc = exc.code\n"
           "print('RESULT', rc, *[m for m in %r if m in sys.modules], file=sys.stderr)\n" % (HEAVY,))


def run_case(argv, pythonpath: str | None, cwd: str) -> tuple[float, str]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROGRAM, *argv], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300)
    wall = time.perf_counter() - start
    result = next((line for line in done.stderr.splitlines() if line.startswith("RESULT")), "RESULT ? (crashed)")
    return wall, result.split(" ", 1)[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pythonpath", default=None)
    args = parser.parse_args(argv)
    print(f"{'command':<52} {'min s':>6} {'median s':>8}  status heavy-modules")
    with tempfile.TemporaryDirectory() as cwd:           # bad options must leave nothing behind
        for case in CASES:
            times, result = [], ""
            for _ in range(args.repeats):
                wall, result = run_case(case, args.pythonpath, cwd)
                times.append(wall)
            print(f"{' '.join(case):<52} {min(times):6.2f} {statistics.median(times):8.2f}  {result}")
        left = os.listdir(cwd)
    print(f"files left in the working folder: {left or 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
