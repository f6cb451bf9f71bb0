"""Reference ("interp") backend of the parallel-beam projector, in torch (CPU or CUDA).

Forward projection: the image, zero outside its grid, is rotated by each view angle with
bilinear interpolation on a ``D x D`` grid (``D = n_detectors``, the grid of
scikit-image's zero-padded image) and summed along the ray, exactly the model of
scikit-image's ``radon(circle=False)``. The rotation is one ``grid_sample`` per chunk of
views, with the slices of a batch in the channel dimension so they share the sampling grid.

Acquisition sampling (``ParallelBeamGeometry.detector_aperture``, ``view_integration``): each
measurement is the mean of the ray sums of ``BIN_SUBSAMPLES`` sub-rays spread over the bin
aperture (midpoints of equal parts) and of the geometry's ``view_subsamples`` sub-angles
over the view interval; with both set to 0 it is scikit-image's point-sampled ``radon``.

Adjoint: the exact transpose of that discrete operator, i.e. the input-gradient of
``grid_sample`` (``aten.grid_sampler_2d_backward``, the same kernel autograd calls) applied to
the sinogram spread back along each ray; ``<A x, y> = <x, A^T y>`` to rounding. (ATen's
``grid_sampler_2d_backward`` is always ATen's own kernel, never cuDNN's.)

FBP backprojection: for every view, each pixel takes the filtered projection at
``t = x cos(theta) - y sin(theta)`` by linear interpolation along the detector (zero beyond
its ends), as scikit-image's ``iradon`` does.

Determinism. Every output element is computed by the same operations in the same order
whatever the batch size: ATen's ``grid_sample`` kernel (cuDNN's is switched off) computes
each output sample of each slice on its own by the same arithmetic, the sums
along rays and over views use a fixed order (on CUDA an explicit pairwise tree of
element-wise additions, because CUDA's reduction kernels pick their split from the tensor
shape; on the CPU ``torch.sum``, whose per-element order does not depend on the batch, as
``tests/test_projector.py`` checks), the FBP view sum runs over chunks of a fixed number of
views, and the ramp filter is applied slice by slice. The CUDA adjoint uses atomic
additions (``grid_sampler_2d_backward``), so it is exact but not bit-reproducible there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ctdegradbench.builder.core.geometry import ParallelBeamGeometry

# Bytes of one chunk's forward sampling grid output per slice (views x D^2 floats), which sets
# the default views per chunk: 8 views at 512 px on the CPU, 31 on CUDA; all 360 views at
# 64 px, where many small chunks would be dominated by per-call overheads. The chunk fixes
# the order of the FBP view sum, so it depends on the geometry only, never on the batch.
DEFAULT_CHUNK_BYTES = {"cpu": 16 * 2**20, "cuda": 64 * 2**20}
# Bytes of grid_sample output allowed per chunk; the batch is split into slabs of slices to
# stay under it (slabs do not change any slice's result).
DEFAULT_MEMORY_BUDGET = {"cpu": 256 * 2**20, "cuda": 2 * 2**30}
# Sub-rays per detector bin (midpoint rule over the bin aperture) of the reference backend;
# the Fourier backend applies the aperture exactly (a sinc factor).
BIN_SUBSAMPLES = 4


def grid_sample(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Bilinear ``grid_sample`` (zeros outside, ``align_corners=True``) by ATen's own kernel.

    cuDNN's grid sampler, which torch may pick on CUDA depending on the tensor sizes, gave a
    slice different bits alone than inside a batch; ATen's kernel computes every channel
    (slice) of every output sample by the same arithmetic.
    """
    with torch.backends.cudnn.flags(enabled=False):
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def pairwise_sum(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sum over ``dim`` by a fixed pairwise tree of element-wise additions.

    The order of additions depends only on the size of ``dim``, never on the other
    dimensions or the device's reduction heuristics, so each output is bit-reproducible.
    """
    n = t.shape[dim]
    while n > 1:
        half = n // 2
        folded = t.narrow(dim, 0, half) + t.narrow(dim, half, half)
        if n % 2:
            folded.narrow(dim, 0, 1).add_(t.narrow(dim, 2 * half, 1))
        t, n = folded, half
    return t.squeeze(dim)


class InterpBackend:
    """Bilinear rotate-and-sum projector, its exact adjoint and linear-interpolation backprojection.

    Parameters
    ----------
    geometry : ParallelBeamGeometry
    device : torch.device
    dtype : torch.dtype
    view_chunk : int or None
        Views processed at once (default: from ``DEFAULT_CHUNK_BYTES``, 8 at 512 px on the
        CPU, 31 on CUDA).
    memory_budget_bytes : int or None
        Bound on the ``grid_sample`` output of one chunk (default 256 MiB on the CPU,
        2 GiB on CUDA); the peak is about three times this (output, grid, partial sums).
    """

    def __init__(self, geometry: ParallelBeamGeometry, device: torch.device, dtype: torch.dtype,
                 view_chunk: int | None = None, memory_budget_bytes: int | None = None):
        self.geometry = geometry
        self.device = device
        self.dtype = dtype
        kind = "cuda" if device.type == "cuda" else "cpu"
        d = geometry.n_detectors
        if view_chunk is None:
            view_chunk = min(geometry.n_views, max(1, DEFAULT_CHUNK_BYTES[kind] // (d * d * 4)))
        self.view_chunk = int(view_chunk)
        self.memory_budget = int(memory_budget_bytes or DEFAULT_MEMORY_BUDGET[kind])
        if self.view_chunk < 1 or self.memory_budget < 1:
            raise ValueError(f"view_chunk and memory_budget_bytes must be positive, got "
                             f"{self.view_chunk} and {self.memory_budget}")
        self._sum = pairwise_sum if device.type == "cuda" else (lambda t, dim: t.sum(dim=dim))
        self._subtheta = torch.as_tensor(geometry.subangles_rad, dtype=torch.float64, device=device)   # (V, S)
        self.bin_subsamples = BIN_SUBSAMPLES if geometry.detector_aperture > 0 else 1
        # Forward sub-angles per chunk (whole views): one sub-angle's grid holds D x D*B samples,
        # so a chunk holds about as many samples as ``view_chunk`` point-sampled views.
        per_view = geometry.view_subsamples * self.bin_subsamples
        self.sub_chunk = per_view * max(1, self.view_chunk // per_view)
        b = self.bin_subsamples
        self._shifts = torch.as_tensor(geometry.detector_aperture * ((torch.arange(b, dtype=torch.float64) + 0.5) / b - 0.5),
                                       dtype=torch.float64, device=device)     # sub-ray offsets in bins

    def _slab(self, per_slice_bytes: int, batch: int) -> int:
        return max(1, min(batch, self.memory_budget // max(1, per_slice_bytes)))

    # ----------------------------------------------------------------- forward
    def _affine_grid(self, affine: torch.Tensor, height: int, width: int, out: torch.Tensor) -> torch.Tensor:
        """Fill ``out[:v]`` (``(>=v, height, width, 2)``) with ``affine (v, 2, 3)`` applied to the
        normalised output coordinates ``(u, w)`` in ``[-1, 1]`` (``align_corners=True``).

        Same result as ``F.affine_grid`` (to float32 rounding), built from two broadcast
        terms per coordinate into a reused buffer, several times faster on the CPU.
        """
        v = affine.shape[0]
        u = torch.linspace(-1.0, 1.0, width, dtype=torch.float64, device=self.device)
        w = torch.linspace(-1.0, 1.0, height, dtype=torch.float64, device=self.device)
        grid = out[:v]
        for k in (0, 1):
            along_u = (affine[:, k, 0, None, None] * u).to(self.dtype)                               # (v, 1, W)
            along_w = (affine[:, k, 1, None, None] * w[:, None] + affine[:, k, 2, None, None]).to(self.dtype)  # (v, H, 1)
            torch.add(along_u, along_w, out=grid[..., k])
        return grid

    def _forward_affine(self, theta: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """Affine maps ``(v, 2, 3)``: rotated-image sample (ray position r, bin c) -> pixel (x, y).

        Output row ``r`` and column ``c`` (centred on ``D // 2``) sample the input pixel
        ``x = cos t + sin r + N//2``, ``y = -sin t + cos r + N//2`` (column, row) with
        ``t = c + shift`` (the sub-ray's offset from the bin centre, in bins), i.e.
        scikit-image's rotation of its zero-padded image, in ``grid_sample``'s normalised
        coordinates.
        """
        n, d = self.geometry.image_size, self.geometry.n_detectors
        a, b0 = (d - 1) / 2, (d - 1) / 2 - d // 2       # centred index = a * u + b0, u in [-1, 1]
        s, k = 2 / (n - 1), 2 * (n // 2) / (n - 1) - 1   # normalised input = s * index + k
        cos, sin = torch.cos(theta), torch.sin(theta)
        bt = b0 + shift                                   # t = a * u + bt
        return torch.stack((
            torch.stack((s * a * cos, s * a * sin, s * (bt * cos + b0 * sin) + k), dim=-1),
            torch.stack((-s * a * sin, s * a * cos, s * (-bt * sin + b0 * cos) + k), dim=-1)), dim=1)

    def _backproject_affine(self, theta: torch.Tensor) -> torch.Tensor:
        """Affine maps ``(v, 2, 3)``: pixel (row, col) -> detector index ``t + D//2`` (x), row 0 (y)."""
        n, d = self.geometry.image_size, self.geometry.n_detectors
        a, b0 = (n - 1) / 2, (n - 1) / 2 - n // 2
        s, k = 2 / (d - 1), 2 * (d // 2) / (d - 1) - 1
        cos, sin = torch.cos(theta), torch.sin(theta)
        zero = torch.zeros_like(cos)
        return torch.stack((
            torch.stack((s * a * cos, -s * a * sin, s * b0 * (cos - sin) + k), dim=-1),
            torch.stack((zero, zero, zero), dim=-1)), dim=1)

    def _forward_grid_buffer(self) -> torch.Tensor:
        d = self.geometry.n_detectors
        return torch.empty(self.sub_chunk, d, d, 2, device=self.device, dtype=self.dtype)

    def _subview_chunks(self):
        """Chunks of whole views: ``(first view, number of views, sub-ray angles, sub-ray shifts)``,
        each view expanded into its ``S * B`` sub-rays (sub-angle major, sub-bin minor)."""
        per_view = self.geometry.view_subsamples * self.bin_subsamples
        views_per_chunk = max(1, self.sub_chunk // per_view)
        for start in range(0, self.geometry.n_views, views_per_chunk):
            theta = self._subtheta[start:start + views_per_chunk]                     # (v, S)
            v = theta.shape[0]
            angles = theta[:, :, None].expand(-1, -1, self.bin_subsamples).reshape(-1)
            shifts = self._shifts.repeat(v * self.geometry.view_subsamples)
            yield start, v, angles, shifts

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Measured line integrals in pixel units, ``(B, V, D)``, of ``(B, N, N)`` images: the
        bilinear model's ray sums averaged over the bin aperture (``bin_subsamples`` sub-rays)
        and the view interval (the geometry's sub-angles)."""
        b, d = images.shape[0], self.geometry.n_detectors
        per_view = self.geometry.view_subsamples * self.bin_subsamples
        out = torch.empty(b, self.geometry.n_views, d, device=self.device, dtype=self.dtype)
        slab = self._slab(self.sub_chunk * d * d * images.element_size(), b)
        buffer = self._forward_grid_buffer()
        for start, v, angles, shifts in self._subview_chunks():
            grid = self._affine_grid(self._forward_affine(angles, shifts), d, d, buffer).reshape(1, -1, d, 2)
            for i in range(0, b, slab):
                x = images[i:i + slab].unsqueeze(0)                  # slices as channels
                rotated = grid_sample(x, grid).view(x.shape[1], v, per_view, d, d)
                ray = self._sum(rotated, 3)                           # (b', v, S*B, D): sums along the rays
                out[i:i + slab, start:start + v] = self._sum(ray, 2) / per_view
        return out

    # ----------------------------------------------------------------- adjoint
    def adjoint(self, sinograms: torch.Tensor) -> torch.Tensor:
        """Exact adjoint of :meth:`forward`, ``(B, N, N)``."""
        b, n, d = sinograms.shape[0], self.geometry.image_size, self.geometry.n_detectors
        per_view = self.geometry.view_subsamples * self.bin_subsamples
        image = torch.zeros(b, n, n, device=self.device, dtype=self.dtype)
        slab = self._slab(self.sub_chunk * d * d * sinograms.element_size(), b)
        buffer = self._forward_grid_buffer()
        for start, v, angles, shifts in self._subview_chunks():
            grid = self._affine_grid(self._forward_affine(angles, shifts), d, d, buffer).reshape(1, -1, d, 2)
            for i in range(0, b, slab):
                y = sinograms[i:i + slab, start:start + v] / per_view    # (b', v, D)
                # Adjoint of the mean over sub-rays and of the sum along the ray: copy to every sample.
                spread = y[:, :, None, None, :].expand(-1, -1, per_view, d, -1).reshape(1, y.shape[0], -1, d)
                zeros = torch.zeros(1, y.shape[0], n, n, device=self.device, dtype=self.dtype)
                grad, _ = torch.ops.aten.grid_sampler_2d_backward(
                    spread, zeros, grid, 0, 0, True, [True, False])    # bilinear, zeros padding
                image[i:i + slab] += grad[0]
        return image

    # ------------------------------------------------------------ backproject
    def backproject(self, filtered: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Sum over views of the linearly interpolated filtered projections, ``(B, N, N)``."""
        n = self.geometry.image_size
        b = filtered.shape[0]
        image = torch.zeros(b, n, n, device=self.device, dtype=self.dtype)
        slab = self._slab(self.view_chunk * n * n * filtered.element_size(), b)
        buffer = torch.empty(self.view_chunk, n, n, 2, device=self.device, dtype=self.dtype)
        for start in range(0, len(theta), self.view_chunk):
            th = theta[start:start + self.view_chunk]
            grid = self._affine_grid(self._backproject_affine(th), n, n, buffer)  # (v, N, N, 2)
            for s in range(0, b, slab):
                proj = filtered[s:s + slab, start:start + len(th)].permute(1, 0, 2).unsqueeze(2)  # (v, b', 1, D)
                vals = grid_sample(proj.contiguous(), grid)                       # (v, b', N, N)
                image[s:s + slab] += self._sum(vals, 0)
        return image
