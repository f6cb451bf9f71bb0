"""One-shot check of the projector on a CUDA GPU: correctness, determinism, adjoint, timings.

Self-contained: needs torch, numpy, scipy and scikit-image only (no finufft, nibabel or
../shared); the images are scikit-image's Shepp-Logan phantom resized to 512 x 512 and
smoothed random images. Prints

1. correctness of the GPU "interp" backend against the same backend on the CPU and against
   scikit-image (relative L2, forward and FBP);
2. determinism on the GPU: each slice bit-identical alone, inside batches of 8 and 64 and on a
   repeated call (forward, FBP, FBP on a 45-view subset);
3. the adjoint identity <A x, y> = <x, A^T y> on the GPU (float32 and float64);
4. seconds per slice of forward projection and FBP at batch 1, 8 and 64 on the GPU
   (warm-up, then torch.cuda.synchronize around the best of 3), with peak GPU memory, next
   to scikit-image's radon / iradon on the CPU for one slice.

Run from the repository root:  python3 benchmarks/gpu_check.py   (about 1-2 minutes)
``--device cpu`` runs the same script on the CPU (a dry run of the script itself).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


from ctdegradbench.builder.core.geometry import ParallelBeamGeometry  # noqa: E402
from ctdegradbench.builder.projector import ParallelBeamProjector, resolve_backend  # noqa: E402

N = 512
MU_SCALE = 0.02  # phantom intensities scaled to mu of about water, 1/mm


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    a = a.detach().double().cpu()
    b = b.detach().double().cpu()
    return float((a - b).norm() / b.norm())


def make_images(count: int, seed: int = 0) -> torch.Tensor:
    """Shepp-Logan at 512 plus smoothed random images (a seeded generator), mu in 1/mm."""
    from scipy.ndimage import gaussian_filter
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    base = resize(shepp_logan_phantom(), (N, N), order=1, anti_aliasing=True)
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:N, :N] - N // 2
    body = (rows ** 2 + cols ** 2) < (0.45 * N) ** 2
    images = [base]
    for _ in range(count - 1):
        smooth = gaussian_filter(rng.standard_normal((N, N)), sigma=rng.uniform(1.0, 6.0))
        images.append(np.clip(0.5 + 0.8 * smooth / smooth.std(), 0, None) * body)
    return torch.from_numpy((np.stack(images) * MU_SCALE).astype(np.float32))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_time(fn, device, repeats=3):
    fn()                                   # warm-up
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def check_correctness(images, device):
    print("\n1. correctness (relative L2)")
    geometry = ParallelBeamGeometry(N)
    gpu = ParallelBeamProjector(geometry, device=device, backend="interp")
    cpu = ParallelBeamProjector(geometry, device="cpu", backend="interp")
    x = images[:2]
    sino_gpu = gpu(x.to(device))
    sino_cpu = cpu(x)
    print(f"   forward  {device.type} vs cpu interp: {rel_l2(sino_gpu, sino_cpu):.2e}")
    fbp_gpu = gpu.fbp(sino_cpu.to(device))
    fbp_cpu = cpu.fbp(sino_cpu)
    print(f"   FBP      {device.type} vs cpu interp: {rel_l2(fbp_gpu, fbp_cpu):.2e}")
    views = geometry.view_subset(60)
    print(f"   FBP 60 views {device.type} vs cpu: "
          f"{rel_l2(gpu.fbp(sino_cpu[:, views].to(device), views=views), cpu.fbp(sino_cpu[:, views], views=views)):.2e}")

    from skimage.transform import iradon, radon
    theta = geometry.angles_deg
    t0 = time.perf_counter()
    sk_sino = radon(x[0].double().numpy(), theta, circle=False)
    t_radon = time.perf_counter() - t0
    t0 = time.perf_counter()
    sk_fbp = iradon(sk_sino, theta, output_size=N, filter_name="ramp", circle=False)
    t_iradon = time.perf_counter() - t0
    print(f"   forward  {device.type} vs skimage radon : {rel_l2(sino_gpu[0], torch.from_numpy(sk_sino.T)):.2e}")
    ours = gpu.fbp(torch.from_numpy(sk_sino.T.astype(np.float32)).to(device))
    print(f"   FBP      {device.type} vs skimage iradon: {rel_l2(ours, torch.from_numpy(sk_fbp)):.2e}")
    return t_radon, t_iradon


def check_determinism(images, device):
    print("\n2. determinism (bit-identical results per slice)")
    geometry = ParallelBeamGeometry(N)
    projector = ParallelBeamProjector(geometry, device=device, backend="interp")
    x = images.to(device)
    views = geometry.view_subset(45)
    sino64 = projector(x)
    checks = {
        "forward": (sino64, lambda v: projector(v), x),
        "FBP": (projector.fbp(sino64), lambda v: projector.fbp(v), sino64),
        "FBP 45 views": (projector.fbp(sino64[:, views], views=views),
                         lambda v: projector.fbp(v, views=views), sino64[:, views].contiguous()),
    }
    all_ok = True
    for name, (batched, op, inputs) in checks.items():
        b = len(inputs)
        sub = max(1, min(8, b // 2))
        alone = sorted({0, 1, b // 2, b - 1})
        results = {
            f"repeat (batch {b})": torch.equal(op(inputs), batched),
            f"batch {sub} vs {b}": torch.equal(op(inputs[:sub]), batched[:sub]),
            f"slices {alone} alone vs {b}": all(torch.equal(op(inputs[i]), batched[i]) for i in alone),
        }
        all_ok &= all(results.values())
        print(f"   {name:<13} " + ", ".join(f"{k}: {'identical' if v else 'DIFFERS'}" for k, v in results.items()))
    print(f"   => {'all bit-identical' if all_ok else 'NOT DETERMINISTIC'}")


def check_adjoint(device):
    print("\n3. adjoint identity <Ax, y> vs <x, A^T y>")
    geometry = ParallelBeamGeometry(N)
    gen = torch.Generator().manual_seed(3)
    for dtype in (torch.float32, torch.float64):
        projector = ParallelBeamProjector(geometry, device=device, dtype=dtype, backend="interp")
        x = torch.rand(2, N, N, generator=gen, dtype=torch.float64).to(device, dtype)
        y = torch.rand(2, *geometry.sinogram_shape, generator=gen, dtype=torch.float64).to(device, dtype)
        lhs = float((projector(x).double() * y.double()).sum())
        rhs = float((x.double() * projector.T(y).double()).sum())
        print(f"   {str(dtype):<14} relative difference {abs(lhs - rhs) / abs(lhs):.2e}")


def check_timings(images, device, batches, t_radon, t_iradon):
    print(f"\n4. timings, seconds per {N}x{N} slice (360 views, {ParallelBeamGeometry(N).n_detectors} bins)")
    geometry = ParallelBeamGeometry(N)
    projector = ParallelBeamProjector(geometry, device=device, backend="interp")
    print(f"   {'method':<26}{'batch':>6}{'forward':>10}{'FBP':>10}{'fwd x':>8}{'FBP x':>8}{'peak GiB':>10}")
    print(f"   {'skimage radon/iradon, CPU':<26}{1:>6}{t_radon:>10.4f}{t_iradon:>10.4f}{1.0:>8.1f}{1.0:>8.1f}{'-':>10}")
    for batch in batches:
        x = images[:batch].to(device)
        sino = projector(x)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t_fwd = best_time(lambda: projector(x), device) / batch
        t_fbp = best_time(lambda: projector.fbp(sino), device) / batch
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
        print(f"   {'ours interp, ' + device.type:<26}{batch:>6}{t_fwd:>10.4f}{t_fbp:>10.4f}"
              f"{t_radon / t_fwd:>8.1f}{t_iradon / t_fbp:>8.1f}{peak:>10.2f}")


def main(argv=None) -> int:
    global N
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--size", type=int, default=512, help="image size (512; smaller for a dry run)")
    args = parser.parse_args(argv)
    N = args.size
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device visible to torch; run with --device cpu for a dry run")
        return 1
    t_start = time.perf_counter()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"gpu_check: torch {torch.__version__}, device {name}, "
          f"auto backend here = {resolve_backend('auto', device)}")
    images = make_images(max(args.batches))
    t_radon, t_iradon = check_correctness(images, device)
    check_determinism(images[:max(args.batches)], device)
    check_adjoint(device)
    check_timings(images, device, args.batches, t_radon, t_iradon)
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
