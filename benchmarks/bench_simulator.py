"""Benchmark: the full simulator (all 40 setting-levels of one reference) against scikit-image.

What it measures. On the same real 512 x 512 slices of ``../shared/ct`` (the middle slice of
``--references`` series), in the same run:

* **ours**: ``Simulator.prepare`` (mu map, one forward projection, clean FBP) then
  ``Simulator.run`` of the 28 non-metal setting-levels (S1-S4, M1, M2, M4 x L0-L3) and of the
  12 metal ones (S5, M3, M5), all from the one clean sinogram, ``--threads`` torch threads
  (default 2; the "auto" projector backend, nufft on the CPU).
* **scikit-image**: the same pipeline written carefully with scikit-image, numpy and scipy:
  ``skimage.transform.radon`` once per reference (``circle=False``, the 360 angles
  ``k * 0.5`` deg, float64), times the pixel spacing (line integrals in mm, the same
  ``HU -> mu`` map, :func:`builder.hu.hu_to_mu`); the clean FBP; then per setting-level the
  degradation operators in numpy / scipy, applied in the setting's order with the
  *parameters our simulator drew* (read back from each sample's metadata with
  each degradation's ``params_from_record`` (the registry), so both pipelines degrade with the same
  parameters; drawing them is not timed on this side):

  - noise (Eq. 5-8): ``np.random.Generator`` (PCG64 seeded with the component seed) Poisson
    counts + Gaussian electronic noise, negative readings set to 0, log with the stabiliser,
    residual scaled by gamma;
  - blur (Eq. 9): ``scipy.ndimage.gaussian_filter1d`` along the detector, zero outside,
    ``truncate=4`` (our kernel);
  - streak (Eq. 10): ``s + M * e`` with the mask ``M`` of the clean sinogram's rays at or
    above the recorded starvation threshold and the starvation errors ``e`` of the recorded
    seed (``streak_errors``, shared);
  - aliasing (Eq. 11): the columns of the kept views, reconstructed with their angles;
  - metal: **the metal forward model is shared**: our ``MetalSimulator`` (polychromatic,
    its density-map projections by our projector) produces the metal sinogram, converted
    to a float64 numpy array; its time (the 12 metal sinograms, made before their FBPs) is
    reported on its own line and is included in the scikit-image total (both pipelines pay it);
    like ours it computes the noise-free shadow and the fine views once per level
    (``shadow_reading``, ``fine_views``), and the metal's fine-view correction is
    ``iradon`` of the 1080 fine views (Hann) minus ``iradon`` of the 360-view increment
    (ramp), once per level, blurred in the image plane for M5 (``blur_image``) as ours;

  and ``skimage.transform.iradon`` (``filter_name="ramp"``, linear interpolation,
  ``circle=False``, output 512) per setting-level, divided by the pixel spacing, then
  ``HU = round(mu_to_hu(mu))`` as int16. scikit-image has no batched ``iradon`` and
  ``iradon`` holds the GIL (threads do not help, measured), so the 41 ``iradon`` calls of a
  reference are spread over ``--sk-workers`` processes (default 2, the same two cores ours
  uses) while the main process prepares the next degraded sinograms. No redundant work: one
  ``radon`` per reference, each sinogram reconstructed once.

Warm-up: both pipelines run once on an extra slice (not timed) so that FFT plans, the
x-ray spectrum, attenuation tables and the worker processes exist before timing. Each stage
is then timed ``--repeats`` times per reference and pipeline (alternating) and the best time
is kept: on a shared machine, competing load slows a 2-thread torch run far more than a
single-threaded one, and the minimum is the least disturbed measurement of each.

One difference in physics, in scikit-image's favour: ``radon`` samples each ray at a point,
while our projector integrates each bin over its aperture and each view over its angular
interval (4 sub-views, the acquisition sampling of ``ParallelBeamGeometry``). So the clean
sinograms differ slightly, and the streak mask (the rays above a threshold of the clean
sinogram) differs too, which is why S3 L3 agrees least.

Fairness check: on every timed reference the script prints the PSNR (window [-300, 300] HU
-> [0, 1]) between our image and scikit-image's for deterministic settings (same parameters,
so only the projector and FBP differ): S2 blur L1 must exceed ``AGREEMENT_PSNR_DB`` (45 dB;
the exit status is 1 otherwise); S3 streak L3, S4 aliasing L3 and S5 metal L3 are printed for
information: they hold the sharpest content (one-bin outlier spikes, 45-view aliasing, metal
edges), where the default nufft backend's Fourier-domain backprojection and ``iradon``'s
linear interpolation differ most. It also prints the ratio of the image noise (RMS of degraded minus
clean FBP in the body) of S1 noise L1 between the pipelines (different random streams, same
statistics: expected close to 1) and the mean absolute difference of SSIM against the
reference over the 40 setting-levels.

The machine this runs on may be shared: ratios from one run are meaningful, absolute
times are not. Run from the repository root::

    python benchmarks/bench_simulator.py [--references 2] [--repeats 2] [--threads 2] [--sk-workers 2]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from scipy.ndimage import gaussian_filter1d  # noqa: E402
from skimage.metrics import peak_signal_noise_ratio, structural_similarity  # noqa: E402
from skimage.transform import iradon, radon  # noqa: E402

from ctdegradbench.builder.core.geometry import ParallelBeamGeometry  # noqa: E402
from ctdegradbench.core.hu import hu_to_mu, mu_to_hu  # noqa: E402
from ctdegradbench.builder.degradations.streak import streak_errors  # noqa: E402
from ctdegradbench.builder.simulate.settings import ALIASING, BLUR, LEVELS, METAL, NOISE, STREAK  # noqa: E402
from ctdegradbench.builder.simulate.settings import PAPER_SETTINGS as SETTINGS  # noqa: E402  (the ten of the paper)

SHARED_CT = ROOT.parent / "shared" / "ct"
IMAGE_SIZE = 512
NIFTI_AXES = "LPS"
MIN_BODY_FRACTION = 0.10
WINDOW_HU = (-300.0, 300.0)
INT16_MIN, INT16_MAX = -32768, 32767
# Pipelines agree when our image and scikit-image's differ by less than this (PSNR in the
# window): our nufft projector is within ~2.4e-3 relative L2 of iradon (builder/projector.py).
AGREEMENT_PSNR_DB = 45.0
AGREEMENT_CHECKS = (("S2", 1), ("S3", 3), ("S4", 3), ("S5", 3))
NOISE_CHECK = ("S1", 1)


# ------------------------------------------------------- scikit-image side
def sk_fbp_hu(sinogram_dv: np.ndarray, theta_deg: np.ndarray, pixel_spacing_mm: float) -> np.ndarray:
    """``iradon`` (ramp, linear, circle=False) of a ``(D, V)`` sinogram of line integrals -> int16 HU."""
    mu = iradon(sinogram_dv, theta=theta_deg, output_size=IMAGE_SIZE, filter_name="ramp",
                interpolation="linear", circle=False) / pixel_spacing_mm
    return np.clip(np.round(mu_to_hu(mu)), INT16_MIN, INT16_MAX).astype(np.int16)


def sk_fbp_mu(sinogram_dv: np.ndarray, theta_deg: np.ndarray, pixel_spacing_mm: float,
              filter_name: str = "ramp") -> np.ndarray:
    """``iradon`` of a ``(D, V)`` sinogram -> mu (1/mm), float64."""
    return iradon(sinogram_dv, theta=theta_deg, output_size=IMAGE_SIZE, filter_name=filter_name,
                  interpolation="linear", circle=False) / pixel_spacing_mm


def sk_metal_correction(fine_dv, fine_theta, coarse_dv, theta, pixel_spacing_mm) -> np.ndarray:
    """The metal's fine-view correction (as ``FineViews.correction``): mu, float64."""
    return (sk_fbp_mu(fine_dv, fine_theta, pixel_spacing_mm, "hann")
            - sk_fbp_mu(coarse_dv, theta, pixel_spacing_mm))


def sk_fbp_hu_corrected(sinogram_dv, theta_deg, pixel_spacing_mm, correction_mu) -> np.ndarray:
    """``sk_fbp_hu`` plus a correction image (mu) before the rounding."""
    mu = sk_fbp_mu(sinogram_dv, theta_deg, pixel_spacing_mm) + correction_mu
    return np.clip(np.round(mu_to_hu(mu)), INT16_MIN, INT16_MAX).astype(np.int16)


def sk_noise(sino: np.ndarray, p) -> np.ndarray:
    """Eq. 5-8 in numpy with ``np.random.Generator(PCG64(seed))``."""
    rng = np.random.default_rng(p.seed)
    counts = rng.poisson(p.photons * np.exp(-sino))
    reading = np.maximum(counts + math.sqrt(p.electronic_variance) * rng.standard_normal(sino.shape), 0.0)
    noisy = -np.log((reading + p.delta) / p.photons)
    return sino + p.gamma * (noisy - sino)


def sk_blur(sino: np.ndarray, p) -> np.ndarray:
    """Eq. 9: Gaussian along the detector axis (axis 0 of a ``(D, V)`` sinogram), zeros outside."""
    if p.sigma_bins == 0:
        return sino
    return gaussian_filter1d(sino, p.sigma_bins, axis=0, mode="constant", cval=0.0, truncate=4.0)


def sk_streak(sino: np.ndarray, clean: np.ndarray, p) -> np.ndarray:
    """Eq. 10 as our operator: starvation errors on the rays whose clean line integral reaches
    the threshold (``streak_errors``, shared so that both pipelines draw the same counts;
    ``(D, V)`` here)."""
    return sino + streak_errors(clean.T.astype(np.float32), p).T


class SkimagePipeline:
    """The scikit-image version of ``Simulator.prepare`` + ``run`` for one reference.

    ``metal_sinogram(params)`` is the shared metal forward model (our ``MetalSimulator``);
    its time accumulates in ``metal_seconds``.
    """

    def __init__(self, reference, pool: ProcessPoolExecutor | None, metal_sinogram):
        self.ref = reference
        self.spacing = float(reference.pixel_spacing_mm)
        self.theta = ParallelBeamGeometry(IMAGE_SIZE, self.spacing).angles_deg
        self.pool = pool
        self.metal_sinogram = metal_sinogram
        self.metal_seconds = 0.0

    def _fbp(self, sino_dv: np.ndarray, theta: np.ndarray):
        if self.pool is None:
            return _Done(sk_fbp_hu(sino_dv, theta, self.spacing))
        return self.pool.submit(sk_fbp_hu, sino_dv, theta, self.spacing)

    def prepare(self) -> np.ndarray:
        """One ``radon`` per reference (kept as ``self.sinogram``, ``(D, V)``); returns the clean FBP."""
        mu = hu_to_mu(self.ref.hu.astype(np.float64))
        self.sinogram = radon(mu, theta=self.theta, circle=False) * self.spacing
        return self._fbp(self.sinogram, self.theta).result()

    def degrade(self, components: list[tuple[str, object]], metal_sino: np.ndarray | None = None):
        """Apply ``(type, params)`` in order to the clean sinogram: ``(sinogram (D, V'), angles, blurs)``.

        A metal component (first, it replaces the clean sinogram) takes ``metal_sino``;
        ``blurs``: the detector blurs applied after it (for the metal's fine-view correction).
        """
        sino, theta, blurs = self.sinogram, self.theta, []
        for kind, p in components:
            if kind == METAL:
                if metal_sino is None:
                    raise ValueError("a metal component needs its metal sinogram (metal_sino)")
                sino = metal_sino
            elif kind == BLUR:
                sino = sk_blur(sino, p)
                blurs.append(p.sigma_bins)
            elif kind == STREAK:
                sino = sk_streak(sino, self.sinogram, p)
            elif kind == ALIASING:
                views = ParallelBeamGeometry(IMAGE_SIZE, self.spacing).view_subset(int(p.n_views))
                sino, theta = sino[:, views], theta[views]
            elif kind == NOISE:
                sino = sk_noise(sino, p)
            else:
                raise ValueError(f"unknown degradation type {kind!r}")
        return sino, theta, blurs

    def run(self, plans: list[list[tuple[str, object]]]) -> list[np.ndarray]:
        """HU images of every plan; the FBPs run in the pool while the next sinograms are made.

        The metal sinograms (shared model) are made first, before any FBP is submitted, so
        that ``metal_seconds`` times them alone (not competing with the FBP workers).
        """
        start = time.perf_counter()
        metal = [self.metal_sinogram(plan[0][1]) if plan[0][0] == METAL else None for plan in plans]
        self.metal_seconds += time.perf_counter() - start
        corrections: dict = {}        # one fine-view correction per level (noise-free metal increment)
        for m in metal:
            if m is not None and id(m[1]) not in corrections:
                fine_theta = np.arange(m[1].fine.shape[0]) * (180.0 / m[1].fine.shape[0])
                args = (m[1].fine.numpy().T.astype(np.float64), fine_theta,
                        m[1].coarse.numpy().T.astype(np.float64), self.theta, self.spacing)
                corrections[id(m[1])] = (self.pool.submit(sk_metal_correction, *args) if self.pool is not None
                                         else _Done(sk_metal_correction(*args)))
        futures = []
        for components, m in zip(plans, metal):
            if m is None:
                futures.append(self._fbp(*self.degrade(components)[:2]))
                continue
            sino, theta, blurs = self.degrade(components, m[0].T.astype(np.float64))
            correction = corrections[id(m[1])].result()
            if blurs:
                import torch

                from ctdegradbench.builder.degradations.blur import blur_image

                for sigma in blurs:
                    correction = blur_image(torch.as_tensor(correction), sigma).numpy()
            futures.append(self.pool.submit(sk_fbp_hu_corrected, sino, theta, self.spacing, correction)
                           if self.pool is not None else _Done(sk_fbp_hu_corrected(sino, theta, self.spacing,
                                                                                   correction)))
        return [f.result() for f in futures]


class _Done:
    """A finished result with the ``Future.result()`` interface (no pool)."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


def _warm_worker(_index: int) -> bool:
    """Touch skimage's iradon in a worker (imports, FFT setup)."""
    sk_fbp_hu(np.zeros((int(math.ceil(math.sqrt(2) * IMAGE_SIZE)), 4)), np.arange(4) * 45.0, 1.0)
    return True


# -------------------------------------------------------------- helpers
def window(hu: np.ndarray) -> np.ndarray:
    low, high = WINDOW_HU
    return np.clip((np.asarray(hu, dtype=np.float64) - low) / (high - low), 0.0, 1.0)


def load_references(count: int) -> list:
    """The middle slice (body fraction >= 0.1) of the first ``count`` series of ``../shared/ct``."""
    from ctdegradbench.builder.sources import load_source

    paths = sorted(SHARED_CT.glob("*.nii.gz"))
    if len(paths) < count:
        raise FileNotFoundError(f"need {count} NIfTI volumes in {SHARED_CT}, found {len(paths)}")
    refs = []
    for path in paths[:count]:
        slices = load_source(path, nifti_axes=NIFTI_AXES, min_body_fraction=MIN_BODY_FRACTION, max_slices=3,
                             image_size=IMAGE_SIZE).slices
        refs.append(slices[len(slices) // 2])
    return refs


def sample_plans(samples) -> list[list[tuple[str, object]]]:
    """``[(type, params), ...]`` of each sample, in application order, from its metadata."""
    from ctdegradbench.builder.degradations import get_degradation

    return [[(c["type"], get_degradation(c["type"]).params_from_record(c)) for c in sorted(s.metadata["components"], key=lambda c: c["order"])]
            for s in samples]


# ----------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per reference and pipeline (best kept)")
    parser.add_argument("--references", type=int, default=2, help="timed reference slices (+1 for warm-up)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for our simulator")
    parser.add_argument("--sk-workers", type=int, default=2, help="processes running scikit-image's iradon")
    parser.add_argument("--backend", default="auto", help="our projector backend (SimulationConfig.backend)")
    args = parser.parse_args(argv)
    if min(args.references, args.threads, args.repeats) < 1 or args.sk_workers < 0:
        raise ValueError(f"--references, --threads and --repeats must be >= 1 and --sk-workers >= 0, got {vars(args)}")

    # The pool forks before torch starts any thread; workers use numpy / scikit-image only.
    pool = (ProcessPoolExecutor(args.sk_workers, mp_context=multiprocessing.get_context("fork"))
            if args.sk_workers > 0 else None)
    if pool is not None:
        if not all(pool.map(_warm_worker, range(args.sk_workers))):
            raise RuntimeError("a scikit-image worker process failed its warm-up")

    import torch

    torch.set_num_threads(args.threads)
    from ctdegradbench.builder.degradations.metal import MetalSimulator
    from ctdegradbench.builder.simulate.config import SimulationConfig
    from ctdegradbench.builder.simulate.simulator import Simulator

    refs = load_references(args.references + 1)
    warm, timed = refs[-1], refs[:-1]
    config = SimulationConfig(backend=args.backend)
    sim = Simulator(config)
    metal_settings = [s.code for s in SETTINGS if METAL in s.components]
    plain_settings = [s.code for s in SETTINGS if METAL not in s.components]
    print(f"torch {torch.__version__}, torch.get_num_threads() = {torch.get_num_threads()}; our projector backend "
          f"{sim.projector(ParallelBeamGeometry(IMAGE_SIZE, 1.0)).backend!r}; "
          f"scikit-image iradon in {args.sk_workers} worker process(es)")
    print(f"reference slices (512 x 512): {[r.reference_id for r in timed]}; warm-up on {warm.reference_id}")

    def run_ours(ref):
        times = {}
        start = time.perf_counter()
        prepared = sim.prepare(ref)
        times["prepare"] = time.perf_counter() - start
        start = time.perf_counter()
        plain = sim.run(prepared, settings=plain_settings, levels=LEVELS)
        times["28 non-metal"] = time.perf_counter() - start
        start = time.perf_counter()
        metal = sim.run(prepared, settings=metal_settings, levels=LEVELS)
        times["12 metal"] = time.perf_counter() - start
        times["total"] = sum(times.values())
        return prepared, plain + metal, times

    # Shared metal forward model for the scikit-image side: one MetalSimulator per geometry
    # (built untimed, like ours inside the Simulator), its context prepared per reference (timed).
    metal_sims: dict = {}

    def skimage_side(ref, prepared, samples):
        key = (prepared.geometry.image_size, prepared.geometry.pixel_spacing_mm)
        if key not in metal_sims:
            metal_sims[key] = MetalSimulator(prepared.projector)
        msim = metal_sims[key]
        context = {}

        def metal_sinogram(params):
            """(metal sinogram (V, D), FineViews): shadow and fine views once per level, as ours."""
            if "c" not in context:
                context["c"] = msim.prepare(ref.hu)
            level_key = (params.objects, params.material)
            if level_key not in context:
                shadow = msim.shadow_reading(context["c"], params)
                context[level_key] = (shadow, msim.fine_views(context["c"], params, shadow))
            shadow, fine_views = context[level_key]
            return msim.simulate(context["c"], params, shadow=shadow).sinogram.cpu().numpy(), fine_views

        plans = sample_plans(samples)
        is_metal = [any(kind == METAL for kind, _ in plan) for plan in plans]
        pipe = SkimagePipeline(ref, pool, metal_sinogram)
        times = {}
        start = time.perf_counter()
        clean = pipe.prepare()
        times["prepare"] = time.perf_counter() - start
        start = time.perf_counter()
        plain = pipe.run([p for p, m in zip(plans, is_metal) if not m])
        times["28 non-metal"] = time.perf_counter() - start
        start = time.perf_counter()
        metal = pipe.run([p for p, m in zip(plans, is_metal) if m])
        times["12 metal"] = time.perf_counter() - start
        times["total"] = sum(times.values())
        times["shared metal model"] = pipe.metal_seconds
        images = iter(plain), iter(metal)
        ordered = [next(images[1]) if m else next(images[0]) for m in is_metal]
        return clean, ordered, times

    # ------------------------------------------------------------- warm-up
    start = time.perf_counter()
    prepared, samples, _ = run_ours(warm)
    skimage_side(warm, prepared, samples[:1] + [s for s in samples if s.setting == "S5"][:1])
    print(f"warm-up: {time.perf_counter() - start:.1f} s\n")

    def best(runs: list[dict]) -> dict:
        return {stage: min(r[stage] for r in runs) for stage in runs[0]}

    rows, agreed = [], True
    for ref in timed:
        ours_runs, sk_runs = [], []
        for _ in range(args.repeats):
            prepared, samples, times = run_ours(ref)
            ours_runs.append(times)
            clean_sk, images_sk, times = skimage_side(ref, prepared, samples)
            sk_runs.append(times)
        ours, sk = best(ours_runs), best(sk_runs)
        rows.append((ours, sk))
        n = len(samples)
        print(f"{ref.reference_id} ({ref.pixel_spacing_mm:.3f} mm pixels), {n} setting-levels")
        print(f"  {'stage (s), best of ' + str(args.repeats):22s} {'ours':>8s} {'skimage':>8s} {'speed-up':>8s}")
        for stage in ("prepare", "28 non-metal", "12 metal", "total"):
            print(f"  {stage:22s} {ours[stage]:8.2f} {sk[stage]:8.2f} {sk[stage] / ours[stage]:7.1f}x")
        print(f"  {'(shared metal model)':22s} {'':8s} {sk['shared metal model']:8.2f}   "
              "(part of skimage's '12 metal', timed alone; the same code runs inside ours)")
        print(f"  setting-levels / s: ours {n / ours['total']:.2f}, skimage {n / sk['total']:.2f}; "
              f"reference slices / s: ours {1 / ours['total']:.3f}, skimage {1 / sk['total']:.3f}")
        # fairness
        by_key = {(s.setting, s.level): (s.image_hu, img) for s, img in zip(samples, images_sk)}
        agreement = [peak_signal_noise_ratio(window(by_key[key][0]), window(by_key[key][1]), data_range=1.0)
                     for key in AGREEMENT_CHECKS]
        checks = [f"{code} L{level} {value:.1f} dB" for (code, level), value in zip(AGREEMENT_CHECKS, agreement)]
        a, b = by_key[NOISE_CHECK]
        body = ref.hu > -500
        rms_ours = np.sqrt(np.mean((a.astype(np.float64) - prepared.clean_fbp_hu)[body] ** 2))
        rms_sk = np.sqrt(np.mean((b.astype(np.float64) - clean_sk)[body] ** 2))
        w_ref = window(ref.hu)
        dssim = [abs(structural_similarity(w_ref, window(s.image_hu), data_range=1.0)
                     - structural_similarity(w_ref, window(img), data_range=1.0)) for s, img in zip(samples, images_sk)]
        floor = peak_signal_noise_ratio(window(prepared.clean_fbp_hu), window(clean_sk), data_range=1.0)
        print(f"  agreement ours vs skimage (PSNR, window [-300, 300] HU): clean FBP {floor:.1f} dB, "
              + ", ".join(checks) + f" ({checks[0].split()[0]} L{AGREEMENT_CHECKS[0][1]} must exceed "
              f"{AGREEMENT_PSNR_DB:g} dB: {'yes' if agreement[0] > AGREEMENT_PSNR_DB else 'NO'})")
        agreed &= agreement[0] > AGREEMENT_PSNR_DB
        print(f"  S1 L1 noise RMS in the body (vs each clean FBP): ours {rms_ours:.1f} HU, skimage {rms_sk:.1f} HU "
              f"(ratio {rms_ours / rms_sk:.3f}); SSIM vs reference over the {n}: mean |diff| {np.mean(dssim):.4f}, "
              f"max {np.max(dssim):.4f}\n")

    ours_total = np.mean([o["total"] for o, _ in rows])
    sk_total = np.mean([s["total"] for _, s in rows])
    plain = np.mean([s["28 non-metal"] / o["28 non-metal"] for o, s in rows])
    print(f"mean over {len(rows)} reference(s): ours {ours_total:.2f} s, skimage {sk_total:.2f} s per reference "
          f"(40 setting-levels): speed-up {sk_total / ours_total:.1f}x (non-metal part alone: {plain:.1f}x); "
          f"ours {40 / ours_total:.1f} setting-levels/s = {1 / ours_total:.3f} reference slices/s on "
          f"{torch.get_num_threads()} torch threads")
    if pool is not None:
        pool.shutdown()
    if not agreed:
        print(f"FAIL: our S2 blur L1 image and scikit-image's differ (PSNR <= {AGREEMENT_PSNR_DB:g} dB)")
    return 0 if agreed else 1


if __name__ == "__main__":
    sys.exit(main())
