"""SeSpeCT inference speed (slices per second) on this machine's CPU, from HU slices to predictions.

    python benchmarks/bench_inference.py [--model DIR] [--size 512] [--spacing 0.7] [--batch 8] [--threads 2]
        [--repeats 5]

Times the full pipeline (a physical-grid model: the image processor's checks, resampling and
centring from ``--spacing`` mm pixels, then the model; a pixel-grid model: its resizing, frozen
backbone, FFTs and trainable branches) of the shipped checkpoint (or ``--model``) on random HU
slices, after one warm-up batch; prints the median over ``--repeats`` batches and the time per stage.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the shipped one)")
    parser.add_argument("--size", type=int, default=512, help="slice side in pixels (default 512)")
    parser.add_argument("--spacing", type=float, default=0.7, help="pixel spacing of the slices, mm (default 0.7)")
    parser.add_argument("--batch", type=int, default=8, help="slices per forward pass (default 8)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--repeats", type=int, default=5, help="timed batches (default 5)")
    args = parser.parse_args(argv)

    import torch

    from ctdegradbench.model.predict import load_model

    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    import numpy as np

    x = torch.randn(args.batch, args.size, args.size) * 300
    physical = getattr(model.config, "pixel_spacing_mm", None) is not None
    if physical:            # a body (soft tissue + noise) in air, so the processor answers "ok"
        yy, xx = np.mgrid[:args.size, :args.size] - args.size / 2
        x = torch.where(torch.from_numpy(xx ** 2 + yy ** 2 < (0.4 * args.size) ** 2), 40.0 + x / 10, -1024.0 + x / 30)
        processor = model.image_processor()

    def features(batch):
        if not physical:
            return model.frozen_features(batch)
        grid = processor(list(batch.numpy()), args.spacing)
        return model.frozen_features(grid["pixel_values"], grid["pixel_spacing"], grid.get("native_statistics"))

    with torch.no_grad():
        model(frozen=features(x))
        times, frozen_times = [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            frozen = features(x)
            t_frozen = time.perf_counter() - t
            model(frozen=frozen)
            times.append(time.perf_counter() - t)
            frozen_times.append(t_frozen)
    total = statistics.median(times)
    print(f"{args.batch / total:.1f} slices/s ({args.size} px" + (f" at {args.spacing:g} mm" if physical else "")
          + f", batch {args.batch}, {args.threads} threads; "
          f"{'processor + ' if physical else ''}frozen stage {statistics.median(frozen_times) / args.batch * 1e3:.1f} ms/slice, total "
          f"{total / args.batch * 1e3:.1f} ms/slice, median of {args.repeats})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
