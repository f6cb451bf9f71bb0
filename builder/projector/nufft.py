"""Fourier-domain ("nufft") backend of the parallel-beam projector, on the CPU with finufft.

The operators are the ones of the reference ``"interp"`` backend (bilinear rotate-and-sum
projection, linear-interpolation FBP; see :mod:`builder.projector_interp`) written in the
Fourier domain, where a non-uniform FFT evaluates them in ``O(N^2 log N)`` per slice
instead of ``O(n_views N^2)`` gathers.

Forward projection (Fourier slice theorem). With ``X(u)`` the discrete-space Fourier
transform of the pixel array (coordinates ``x = col - N//2``, ``y = row - N//2``), the
bilinear rotate-and-sum projection at angle ``theta`` has the 1-D spectrum

    P_theta(nu) = X(nu cos theta, -nu sin theta) * K_theta(nu),
    K_theta(nu) = sinc^2(nu cos theta) * sinc^2(nu sin theta),

where ``K_theta`` is the transform of the bilinear (hat x hat) kernel projected along the
ray; the aliased copies that the discrete ray sum adds are left out (the result is within
3.3e-4 relative L2 of scikit-image's ``radon`` on a real 512 slice, 4.7e-3 on a sharp-edged
128 px Shepp-Logan phantom). ``X`` is sampled on the half-line ``nu_j = j / L,
j = 0 .. L//2`` by a type-2 NUFFT (finufft), and a real inverse FFT of length ``L``
(``L >= n_detectors + 4``, longer than the projection's support, so nothing wraps) returns
the projection on the detector bins ``t = k - n_detectors//2``.

Acquisition sampling (``ParallelBeamGeometry.detector_aperture``, ``view_integration``). The
bin aperture is a box of ``a`` bins along the detector, exactly the factor ``sinc(a nu)`` on
the projection's spectrum; the view interval is the mean of the spectra of the geometry's
sub-angles (midpoint rule), i.e. the NUFFT is evaluated on ``view_subsamples`` times more
points. The FBP (below) backprojects at the view angles, as a scanner's reconstruction does.

Adjoint. Every step above is linear with an explicit adjoint: the type-1 NUFFT with the same
plan (``finufft.Plan.execute_adjoint``, the exact adjoint of the type-2 transform, same
kernel, same deconvolution), the same real diagonal weights and the adjoint of the real
inverse FFT (a forward FFT with weight 2 on the paired frequencies). So
``<A x, y> = <x, A^T y>`` holds to rounding, whatever the NUFFT tolerance.

FBP. The projections are ramp-filtered exactly as scikit-image's ``iradon`` does (zero
padding to ``filter_size``, the same response, crop to the detector). The linear-
interpolation backprojection ``b(x) = sum_theta sum_k q_theta[k] Lambda(t_theta(x) + c - k)``
is, by Poisson summation, ``sum_theta (1/L) sum_j Q_theta(j/L) sinc^2(j/L) e^{2 pi i (j/L)(t+c)}``
over all integers ``j`` (``Q`` the 1-periodic DTFT of the filtered projection, ``Lambda``
the hat function). The sum is kept for ``|j / L| <= 1`` cycle per
bin (``FBP_MAX_FREQUENCY``) and evaluated on the pixel grid by one type-1 NUFFT;
frequencies beyond the base band wrap onto it exactly, because ``exp(2 pi i u . x)`` at
integer ``x`` only depends on ``u mod 1``. The dropped tail of ``sinc^2`` leaves the result
within 2.4e-3 relative L2 of ``iradon`` on a real 512 slice (6.2e-3 keeping only
``|j / L| <= 0.5``, 1.4e-3 with 1.5, at 1.5x the cost).

Determinism and threads. Each slice is transformed on its own by single-threaded finufft
plans (``nthreads=1``), so its result does not depend on the batch it came in, on the
thread that ran it or on the call; slices of a batch run in parallel on a thread pool
(finufft and scipy's FFT release the GIL). Plans are cached per thread, shared by all
projectors of the same grid, angles and precision (the pixel spacing does not enter them).
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.fft

from ctdegradbench.builder.core.geometry import ParallelBeamGeometry

try:  # finufft is a declared dependency; the projector falls back to "interp" without it.
    import finufft
except ImportError:  # pragma: no cover - exercised only on machines without finufft
    finufft = None

# NUFFT tolerances per precision. 1e-4 in single precision gave a relative error of 1.7e-5
# on the spectrum of a real 512 slice (against a 1e-12 double transform), far below the
# model error (3e-4 / 2.4e-3 against scikit-image); 1e-9 in double precision. The adjoint
# identity does not depend on them (type 1 and type 2 share the kernel).
NUFFT_EPS = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-9}
# upsampfac 1.25 (fine grid 640^2 for a 512 image) was 2.5-3x faster than 2.0 in both
# transform types at these sizes on the development CPU.
NUFFT_UPSAMPFAC = 1.25
# FBP keeps the hat kernel's spectrum up to |nu| = 1 cycle per bin: 2.4e-3 relative L2 from
# linear interpolation (iradon) on a real 512 slice, with n_views * L NUFFT points per slice.
FBP_MAX_FREQUENCY = 1.0
# Plans kept per thread (a forward plan and one FBP plan per distinct view subset, per grid);
# a plan of a 512 grid held at most 7 MB of resident memory here (points, sort order, grid).
PLAN_CACHE_SIZE = 8

_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()
_PLANS = threading.local()   # per-thread OrderedDict: key -> (plan, points)


def available() -> bool:
    """Whether finufft is importable (the ``"nufft"`` backend needs it)."""
    return finufft is not None


def _pool(n_workers: int) -> ThreadPoolExecutor:
    """The shared pool of ``n_workers`` threads of this process.

    Keyed by process id too: a process forked from one that had a pool inherits the pool
    object but not its threads, and must make its own.
    """
    key = (os.getpid(), n_workers)
    with _POOLS_LOCK:
        if key not in _POOLS:
            _POOLS[key] = ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="nufft")
        return _POOLS[key]


def period_length(n_detectors: int) -> int:
    """FFT length ``L`` of the detector axis: the smallest fast length ``>= n_detectors + 4``.

    A projection of the bilinear image reaches at most ``(N - 1) / sqrt(2) + sqrt(2)`` bins
    from the centre (pixel centres plus the projected hat x hat kernel), under
    ``n_detectors / 2 + 1``; the linear-interpolation kernel of FBP reaches one bin past the
    detector. An ``L``-periodic model with this ``L`` therefore never wraps onto the detector.
    """
    return int(scipy.fft.next_fast_len(n_detectors + 4))


def _wrap(omega: np.ndarray) -> np.ndarray:
    """Angular frequencies folded into ``[-pi, pi]`` (exact on the integer pixel grid)."""
    return omega - 2.0 * np.pi * np.round(omega / (2.0 * np.pi))


class NufftBackend:
    """Forward projection, exact adjoint and FBP backprojection of one geometry via finufft.

    Parameters
    ----------
    geometry : ParallelBeamGeometry
    dtype : numpy dtype, float32 or float64
        Real precision; the NUFFTs run in the matching complex precision.
    n_workers : int
        Threads of the pool that transforms the slices of a batch in parallel.
    """

    def __init__(self, geometry: ParallelBeamGeometry, dtype=np.float32, n_workers: int = 1):
        if finufft is None:
            raise ImportError("the 'nufft' projector backend needs the finufft package (pip install finufft)")
        self.geometry = geometry
        self.dtype = np.dtype(dtype)
        if self.dtype not in NUFFT_EPS:
            raise ValueError(f"nufft backend supports float32 and float64, got {self.dtype}")
        self.cdtype = np.dtype(np.complex64 if self.dtype == np.float32 else np.complex128)
        self.eps = NUFFT_EPS[self.dtype]
        self.n_workers = int(n_workers)
        n, d = geometry.image_size, geometry.n_detectors
        self.n, self.d, self.centre = n, d, d // 2
        self.L = period_length(d)
        # Detector bin k sits at t = k - centre, i.e. at index (k - centre) mod L of the period.
        self._det_index = (np.arange(d) - self.centre) % self.L
        theta = geometry.angles_rad
        self._theta = theta

        # Forward: half spectrum nu_j = j / L, j = 0 .. L // 2, on every sub-angle of every view.
        # The measurement averages the bilinear model's projection over the bin aperture (a box
        # of `a` bins: the factor sinc(a nu), exact) and over the view interval (the mean over
        # the geometry's sub-angles, midpoint rule).
        j = np.arange(self.L // 2 + 1)
        nu = j / self.L
        sub = geometry.subangles_rad                                           # (V, S)
        self.n_sub = sub.shape[1]
        cos, sin = np.cos(sub)[..., None], np.sin(sub)[..., None]            # (V, S, 1)
        kernel = np.sinc(nu * cos) ** 2 * np.sinc(nu * sin) ** 2            # K_theta(nu), (V, S, J)
        kernel = kernel * (np.sinc(geometry.detector_aperture * nu) / self.n_sub)
        self._fwd_weight = kernel.astype(self.dtype)
        # Adjoint of the real inverse FFT: weight 1 at nu = 0 (and at L/2 for even L), else 2.
        w = np.full(j.shape, 2.0)
        w[0] = 1.0
        if self.L % 2 == 0:
            w[-1] = 1.0
        self._adj_weight = (kernel * w / self.L).astype(self.dtype)
        self._fwd_points = tuple(
            np.ascontiguousarray(p.ravel(), dtype=self.dtype)
            for p in (-2.0 * np.pi * nu * sin, 2.0 * np.pi * nu * cos))      # (row, col) frequencies

        # FBP: nu_j = j / L for j = 0 .. FBP_MAX_FREQUENCY * L, skipping the zeros of sinc^2
        # at nonzero integers.
        jf = np.arange(int(math.floor(FBP_MAX_FREQUENCY * self.L)) + 1)
        jf = jf[(jf == 0) | (jf % self.L != 0)]
        nuf = jf / self.L
        wf = np.where(jf == 0, 1.0, 2.0)
        self._fbp_nu = nuf
        self._fbp_index = jf % self.L
        self._fbp_weight = (wf * np.sinc(nuf) ** 2 * np.exp(2j * np.pi * nuf * self.centre) / self.L
                            ).astype(self.cdtype)                            # (Jf,)
        self._key = (n, geometry.n_views, d, self.dtype.str, geometry.view_integration, self.n_sub)

    # ------------------------------------------------------------------ plans
    def _plan(self, key, make_points):
        """A thread-local type-2 plan (its ``execute_adjoint`` is the type 1) on ``make_points()``."""
        cache = getattr(_PLANS, "cache", None)
        if cache is None:
            cache = _PLANS.cache = OrderedDict()
        key = self._key + key
        plan = cache.get(key)
        if plan is None:
            points = make_points()
            plan = finufft.Plan(2, (self.n, self.n), 1, eps=self.eps, isign=-1, dtype=self.cdtype,
                                nthreads=1, upsampfac=NUFFT_UPSAMPFAC, showwarn=0)
            plan.setpts(*points)
            cache[key] = (plan, points)  # the plan reads the point arrays: keep them alive with it
            if len(cache) > PLAN_CACHE_SIZE:
                cache.popitem(last=False)
            return plan
        cache.move_to_end(key)
        return plan[0]

    def _forward_plan(self):
        return self._plan(("forward",), lambda: self._fwd_points)

    def _fbp_points(self, views: np.ndarray):
        """(row, col) angular frequencies of the FBP sum for ``views``, folded into [-pi, pi]."""
        theta = self._theta[views][:, None]
        nu = self._fbp_nu[None, :]
        return tuple(np.ascontiguousarray(_wrap(p).ravel(), dtype=self.dtype)
                     for p in (-2.0 * np.pi * nu * np.sin(theta), 2.0 * np.pi * nu * np.cos(theta)))

    def _fbp_plan(self, views: np.ndarray):
        return self._plan(("fbp", views.tobytes()), lambda: self._fbp_points(views))

    # -------------------------------------------------------------- per slice
    def _forward_one(self, image: np.ndarray) -> np.ndarray:
        spectrum = self._forward_plan().execute(image.astype(self.cdtype))
        measured = (spectrum.reshape(self._fwd_weight.shape) * self._fwd_weight).sum(axis=1)   # mean over sub-angles
        periodic = scipy.fft.irfft(measured, n=self.L, axis=1, workers=1)
        return np.ascontiguousarray(periodic[:, self._det_index], dtype=self.dtype)

    def _adjoint_one(self, sinogram: np.ndarray) -> np.ndarray:
        periodic = np.zeros((sinogram.shape[0], self.L), dtype=self.dtype)
        periodic[:, self._det_index] = sinogram
        strengths = scipy.fft.rfft(periodic, axis=1, workers=1)[:, None, :] * self._adj_weight   # (V, S, J)
        image = self._forward_plan().execute_adjoint(np.ascontiguousarray(strengths.ravel()))
        return np.ascontiguousarray(image.real, dtype=self.dtype)

    def _fbp_one(self, sinogram: np.ndarray, views: np.ndarray, response: np.ndarray) -> np.ndarray:
        """Ramp-filter, then linear-interpolation backprojection (sum over views, unscaled)."""
        size = 2 * (response.shape[0] - 1)
        filtered = scipy.fft.irfft(scipy.fft.rfft(sinogram, n=size, axis=1, workers=1) * response,
                                   n=size, axis=1, workers=1)[:, :self.d]
        spectrum = scipy.fft.fft(filtered, n=self.L, axis=1, workers=1)
        strengths = spectrum[:, self._fbp_index] * self._fbp_weight
        image = self._fbp_plan(views).execute_adjoint(np.ascontiguousarray(strengths.ravel()))
        return np.ascontiguousarray(image.real, dtype=self.dtype)

    # ------------------------------------------------------------------ batch
    def _map(self, fn, batch: np.ndarray, *args) -> np.ndarray:
        """``fn`` on every slice of ``batch``; slices run in parallel, each single-threaded."""
        if len(batch) == 1 or self.n_workers == 1:
            return np.stack([fn(item, *args) for item in batch])
        return np.stack(list(_pool(self.n_workers).map(lambda item: fn(item, *args), batch)))

    def forward(self, images: np.ndarray) -> np.ndarray:
        """Bilinear-model line integrals in pixel units, ``(B, V, D)``, of ``(B, N, N)`` images."""
        return self._map(self._forward_one, images)

    def adjoint(self, sinograms: np.ndarray) -> np.ndarray:
        """Exact adjoint of :meth:`forward`, ``(B, N, N)``."""
        return self._map(self._adjoint_one, sinograms)

    def fbp_backproject(self, sinograms: np.ndarray, views: np.ndarray, response_half: np.ndarray) -> np.ndarray:
        """Ramp-filtered linear-interpolation backprojection summed over ``views``, unscaled.

        ``response_half`` is the (symmetrised) filter response on the non-negative FFT
        frequencies of the zero-padded length, as returned by ``ramp_filter_half``.
        """
        response = response_half.astype(self.dtype)
        return self._map(self._fbp_one, sinograms, np.asarray(views, dtype=np.int64), response)
