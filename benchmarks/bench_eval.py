"""Throughput of the benchmark's scorers: images per second per IQA metric and per encoder.

Inputs: the middle slice of each real CT volume in ``../shared/ct`` (NIfTI, 512 x 512), each
paired with a copy degraded by Gaussian noise of SD 40 HU (the content matters little for
speed), windowed to [-300, 300] HU -> [0, 1]. A batch of ``--batch`` pairs is scored
``--repeats`` times after one warm-up call; the best time counts (the machines are shared).
An IQA metric scores one (degraded, target) pair per image: ``bench iqa`` with two targets
costs twice that. An encoder embeds one image per image (targets are embedded once per
reference slice and cached). Printed: seconds per batch, images per second, ms per image.

    python benchmarks/bench_eval.py [--threads 2] [--batch 4] [--repeats 2] [--size 512]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

SHARED_CT = Path(__file__).resolve().parents[1].parent / "shared" / "ct"


def real_slices(n: int) -> list[np.ndarray]:
    import nibabel as nib

    paths = sorted(SHARED_CT.glob("*.nii.gz"))
    if not paths:
        raise FileNotFoundError(f"no NIfTI volumes in {SHARED_CT}: this benchmark reads real CT slices from there")
    slices = []
    for path in paths:
        img = nib.load(str(path))
        slices.append(np.asarray(img.dataobj[:, :, img.shape[2] // 2], dtype=np.float32).T)
    return [slices[i % len(slices)] for i in range(n)]


def best_time(fn, repeats: int) -> float:
    fn()                                   # warm-up (first call builds caches, allocates)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--size", type=int, default=512, help="crop / pad side in pixels")
    parser.add_argument("--metrics", nargs="+", default=None, help="default: every offline metric of the registry")
    parser.add_argument("--encoders", nargs="+", default=["efficientnet_lite0", "efficientnet_lite0@512",
                                                           "st_lpips_alex", "st_lpips_vgg"])
    args = parser.parse_args()

    import torch

    from ctdegradbench.evaluation.encoders import build_encoder
    from ctdegradbench.evaluation.iqa import METRICS, window_hu

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    refs = np.stack([s[:args.size, :args.size] for s in real_slices(args.batch)])
    noisy = refs + rng.normal(0, 40, refs.shape).astype(np.float32)
    y = torch.from_numpy(window_hu(refs)[:, None])
    x = torch.from_numpy(window_hu(noisy)[:, None])
    print(f"{args.batch} real {refs.shape[1]} x {refs.shape[2]} slices, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, best of {args.repeats}")
    print(f"{'scorer':<26} {'s/batch':>9} {'images/s':>9} {'ms/image':>9}")
    names = args.metrics or [m.name for m in METRICS.values() if m.offline]
    for name in names:
        metric = METRICS[name]
        try:
            scorer = metric.build("cpu", {})
        except Exception as err:  # noqa: BLE001 - report and go on (e.g. pypiqe not installed)
            print(f"{name:<26} skipped: {err}")
            continue
        t = best_time(lambda: scorer(x, y) if metric.full_reference else scorer(x), args.repeats)
        print(f"{'iqa:' + name:<26} {t:9.3f} {args.batch / t:9.2f} {1000 * t / args.batch:9.1f}")
    for spec in args.encoders:
        encoder = build_encoder(spec)
        t = best_time(lambda: encoder.embed(x), args.repeats)
        print(f"{'encoder:' + spec:<26} {t:9.3f} {args.batch / t:9.2f} {1000 * t / args.batch:9.1f}")


if __name__ == "__main__":
    main()
