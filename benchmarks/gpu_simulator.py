"""One-shot check of the full simulator on a CUDA GPU: throughput, exact replay, CPU agreement.

Self-contained (no ``../shared``): the slice is scikit-image's Shepp-Logan phantom scaled to
a body-like HU range at 512 x 512, 0.8 mm pixels. Settings without metal only by default,
since the metal model needs ``spekpy`` (``--settings`` can add S5, M3, M5 where it is
installed). Prints, for the GPU: setting-levels per second for all requested settings of one
reference (warm), whether every sample replays bit-exactly from its metadata on the GPU, and
the largest HU difference to the same samples simulated on the CPU with the same backend
(``interp``; float rounding of the two devices differs, so a few HU of difference on single
pixels are expected, the noise realisations themselves differ because torch's CPU and CUDA
generators differ: noise settings are compared by their noise SD instead).

    python3 benchmarks/gpu_simulator.py [--settings S1 S2 ...] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


from ctdegradbench.builder.sources.reference import ReferenceSlice  # noqa: E402
from ctdegradbench.builder.simulate.settings import get_setting  # noqa: E402
from ctdegradbench.builder.simulate.config import SimulationConfig  # noqa: E402
from ctdegradbench.builder.simulate.simulator import Simulator  # noqa: E402

NON_METAL = ("S1", "S2", "S3", "S4", "M1", "M2", "M4")


def phantom_reference(size: int = 512) -> ReferenceSlice:
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    phantom = resize(shepp_logan_phantom(), (size, size), order=1, anti_aliasing=True)
    hu = np.where(phantom > 0.01, -100 + 1000 * phantom, -1000)      # air outside, 0..900 HU inside
    return ReferenceSlice(hu=np.round(hu).astype(np.int16), pixel_spacing_mm=0.8, source="phantom",
                          patient_id="shepp-logan", series_id="0", slice_index=0)


def timed_run(simulator, reference, settings, repeats):
    simulator.run(reference, settings=settings)                       # warm-up (plans, kernels)
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        samples = simulator.run(reference, settings=settings)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return samples, min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", nargs="+", default=list(NON_METAL))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    settings = [get_setting(s).code for s in args.settings]
    reference = phantom_reference()
    print(f"device {args.device}: {torch.cuda.get_device_name() if args.device == 'cuda' else 'cpu'}; "
          f"torch {torch.__version__}; settings {settings}")

    gpu = Simulator(SimulationConfig(device=args.device, backend="interp"))
    samples, seconds = timed_run(gpu, reference, settings, args.repeats)
    print(f"GPU: {len(samples)} setting-levels in {seconds:.3f} s = {len(samples) / seconds:.1f} setting-levels/s "
          f"(best of {args.repeats}, one 512 x 512 reference)")

    exact = sum(np.array_equal(gpu.replay(reference, s.metadata), s.image_hu) for s in samples)
    print(f"GPU replay from metadata: {exact}/{len(samples)} bit-exact")

    cpu = Simulator(SimulationConfig(device="cpu", backend="interp"))
    cpu_samples, cpu_seconds = timed_run(cpu, reference, settings, 1)
    print(f"CPU (interp, {torch.get_num_threads()} threads): {len(cpu_samples) / cpu_seconds:.1f} setting-levels/s")
    worst = {}
    for g, c in zip(samples, cpu_samples):
        diff = np.abs(g.image_hu.astype(np.int32) - c.image_hu.astype(np.int32))
        if any(comp["type"] == "noise" for comp in g.metadata["components"]):
            ratio = np.std(g.image_hu.astype(float) - gpu_clean(gpu, reference)) / max(
                np.std(c.image_hu.astype(float) - gpu_clean(cpu, reference)), 1e-9)
            worst[g.sample_id] = f"noise SD ratio GPU/CPU {ratio:.3f}"
        else:
            worst[g.sample_id] = f"max |HU diff| {int(diff.max())}, pixels differing {int(np.count_nonzero(diff))}"
    for sid, text in worst.items():
        print(f"  {sid}: {text}")
    return 0 if exact == len(samples) else 1


_CLEAN = {}


def gpu_clean(simulator, reference):
    key = id(simulator)
    if key not in _CLEAN:
        _CLEAN[key] = simulator.prepare(reference).clean_fbp_hu.astype(float)
    return _CLEAN[key]


if __name__ == "__main__":
    raise SystemExit(main())
