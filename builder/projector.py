"""Parallel-beam Radon transform ``A``, its adjoint ``A.T`` and filtered backprojection.

Geometry and conventions live in :mod:`builder.geometry`. Units: the image is a linear
attenuation map ``mu`` in 1/mm; ``A(mu)`` returns line integrals (dimensionless), i.e.
sums of ``mu`` along each ray times the path length in mm. ``fbp`` inverts that: it
returns ``mu`` in 1/mm.

Backend ``"interp"`` (the reference): the forward projection rotates the image with
bilinear interpolation (zero outside the grid) and sums along rows, exactly the model of
scikit-image's ``radon(circle=False)``; ``A.T`` is the exact adjoint of that discrete
operator (obtained by reverse-mode differentiation, so ``<A x, y> = <x, A.T y>`` to
rounding). FBP filters each projection with a zero-padded ramp filter (Ram-Lak; optional
Shepp-Logan or Hann window), built as scikit-image's ``iradon`` does, and backprojects
with linear interpolation along the detector; it accepts any subset of the views.

Tensors are batched: images ``(B, N, N)`` or ``(N, N)``; sinograms
``(B, n_views, n_detectors)`` or ``(n_views, n_detectors)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .geometry import ParallelBeamGeometry

FILTERS = ("ram-lak", "shepp-logan", "hann")


def ramp_filter(size: int, name: str = "ram-lak", dtype=torch.float64) -> torch.Tensor:
    """Frequency response (length ``size``) of the ramp filter used by FBP.

    The Ram-Lak response is the DFT of the band-limited spatial ramp kernel
    (Kak & Slaney, Eq. 61): ``h[0] = 1/4``, ``h[n] = -1 / (pi n)^2`` for odd ``n``,
    0 for even ``n``, which avoids the DC offset of a sampled ``|f|``. Shepp-Logan
    multiplies it by ``sinc``; Hann by a Hann window. Same design as scikit-image.
    """
    if name not in FILTERS:
        raise ValueError(f"unknown FBP filter {name!r}; expected one of {FILTERS}")
    n = np.concatenate((np.arange(1, size / 2 + 1, 2, dtype=int), np.arange(size / 2 - 1, 0, -2, dtype=int)))
    h = np.zeros(size)
    h[0] = 0.25
    h[1::2] = -1.0 / (np.pi * n) ** 2
    response = 2.0 * np.real(np.fft.fft(h))
    if name == "shepp-logan":
        omega = np.pi * np.fft.fftfreq(size)[1:]
        response[1:] *= np.sin(omega) / omega
    elif name == "hann":
        response *= np.fft.fftshift(np.hanning(size))
    return torch.as_tensor(response, dtype=dtype)


def filter_size(n_detectors: int) -> int:
    """Zero-padded FFT length for the ramp filter: a power of two >= 2 * n_detectors."""
    return max(64, int(2 ** math.ceil(math.log2(2 * n_detectors))))


def _as_batch(x: torch.Tensor, ndim_single: int = 2) -> tuple[torch.Tensor, bool]:
    if x.ndim == ndim_single:
        return x.unsqueeze(0), True
    if x.ndim == ndim_single + 1:
        return x, False
    raise ValueError(f"expected a tensor of {ndim_single} or {ndim_single + 1} dims, got shape {tuple(x.shape)}")


class ParallelBeamProjector:
    """``A`` (forward projection), ``A.T`` (adjoint) and ``fbp`` on one geometry.

    Parameters
    ----------
    geometry : ParallelBeamGeometry
    device : str or torch.device, default "cpu"
    dtype : torch.dtype, default torch.float32
    view_chunk : int, default 24
        Views processed at once; bounds peak memory (about
        ``view_chunk * batch * n_detectors**2 * 4`` bytes in the forward projection).
    """

    backend = "interp"

    def __init__(self, geometry: ParallelBeamGeometry, device="cpu", dtype=torch.float32, view_chunk: int = 24):
        self.geometry = geometry
        self.device = torch.device(device)
        self.dtype = dtype
        self.view_chunk = int(view_chunk)
        n, d = geometry.image_size, geometry.n_detectors
        self._theta = torch.as_tensor(geometry.angles_rad, dtype=torch.float64)
        # Centred pixel / bin coordinates (scikit-image convention: centre index = size // 2).
        self._pad_before = d // 2 - n // 2
        self._det = torch.arange(d, dtype=torch.float64) - d // 2
        self._img = torch.arange(n, dtype=torch.float64) - n // 2

    # ----------------------------------------------------------------- forward
    def _forward_grid(self, theta: torch.Tensor) -> torch.Tensor:
        """Sampling grid ``(V, D, D, 2)``: output ray sample (r, c) -> input pixel (x, y)."""
        n, d = self.geometry.image_size, self.geometry.n_detectors
        c = self._det.view(1, 1, d)            # detector coordinate t (output column)
        r = self._det.view(1, d, 1)            # position along the ray (output row)
        cos, sin = torch.cos(theta).view(-1, 1, 1), torch.sin(theta).view(-1, 1, 1)
        x = cos * c + sin * r + (d // 2) - self._pad_before   # input column index
        y = -sin * c + cos * r + (d // 2) - self._pad_before  # input row index
        grid = torch.stack((2 * x / (n - 1) - 1, 2 * y / (n - 1) - 1), dim=-1)
        return grid.to(self.device, self.dtype)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Line integrals of ``image`` (1/mm) along every ray: ``(B, V, D)``, dimensionless."""
        x, single = _as_batch(self._check_image(image))
        b = x.shape[0]
        out = []
        for start in range(0, self.geometry.n_views, self.view_chunk):
            theta = self._theta[start:start + self.view_chunk]
            grid = self._forward_grid(theta)
            inp = x.unsqueeze(0).expand(len(theta), b, *x.shape[1:])
            rotated = F.grid_sample(inp, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
            out.append(rotated.sum(dim=2))   # (v, B, D): sum along the ray
        sino = torch.cat(out, dim=0).permute(1, 0, 2) * self.geometry.pixel_spacing_mm
        return sino[0] if single else sino.contiguous()

    __call__ = forward

    # ----------------------------------------------------------------- adjoint
    def adjoint(self, sinogram: torch.Tensor) -> torch.Tensor:
        """Exact adjoint ``A.T`` of :meth:`forward` (a backprojection), ``(B, N, N)``."""
        y, single = _as_batch(self._check_sinogram(sinogram))
        n = self.geometry.image_size
        x = torch.zeros(y.shape[0], n, n, device=self.device, dtype=self.dtype, requires_grad=True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(self.forward(x), x, grad_outputs=y)
        return grad[0] if single else grad

    @property
    def T(self) -> "_Adjoint":
        return _Adjoint(self)

    # --------------------------------------------------------------------- FBP
    def filter_sinogram(self, sinogram: torch.Tensor, filter_name: str = "ram-lak") -> torch.Tensor:
        """Ramp-filter every projection along the detector axis (zero padding, then crop)."""
        d = self.geometry.n_detectors
        size = filter_size(d)
        response = ramp_filter(size, filter_name).to(self.device)
        spectrum = torch.fft.fft(sinogram.to(torch.float64), n=size, dim=-1) * response
        return torch.fft.ifft(spectrum, dim=-1).real[..., :d].to(self.dtype)

    def fbp(self, sinogram: torch.Tensor, views=None, filter_name: str = "ram-lak") -> torch.Tensor:
        """Filtered backprojection: ``mu`` in 1/mm, ``(B, N, N)``.

        Parameters
        ----------
        sinogram : tensor ``(B, V', D)``
            Line integrals on ``V'`` of the geometry's views.
        views : array of view indices or None
            Which of the geometry's views the rows of ``sinogram`` are (``None``: all).
            Sparse-view reconstruction passes ``geometry.view_subset(n)``.
        filter_name : {"ram-lak", "shepp-logan", "hann"}
        """
        y, single = _as_batch(self._check_sinogram(sinogram, views))
        theta = self._theta if views is None else self._theta[torch.as_tensor(np.asarray(views), dtype=torch.long)]
        filtered = self.filter_sinogram(y, filter_name)
        image = self._backproject_linear(filtered, theta)
        image = image * (math.pi / (2 * len(theta))) / self.geometry.pixel_spacing_mm
        return image[0] if single else image

    def _backproject_linear(self, filtered: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Pixel-driven backprojection with linear interpolation along the detector."""
        n, d = self.geometry.image_size, self.geometry.n_detectors
        b = filtered.shape[0]
        col = self._img.view(1, 1, n)
        row = self._img.view(1, n, 1)
        image = torch.zeros(b, n, n, device=self.device, dtype=self.dtype)
        for start in range(0, len(theta), self.view_chunk):
            th = theta[start:start + self.view_chunk]
            t = col * torch.cos(th).view(-1, 1, 1) - row * torch.sin(th).view(-1, 1, 1) + d // 2
            gx = (2 * t / (d - 1) - 1).to(self.device, self.dtype)
            grid = torch.stack((gx, torch.zeros_like(gx)), dim=-1)          # (v, N, N, 2)
            proj = filtered[:, start:start + len(th)].permute(1, 0, 2).unsqueeze(2)  # (v, B, 1, D)
            vals = F.grid_sample(proj, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
            image += vals.sum(dim=0)
        return image

    # ------------------------------------------------------------------ checks
    def _check_image(self, image: torch.Tensor) -> torch.Tensor:
        n = self.geometry.image_size
        if not isinstance(image, torch.Tensor):
            raise TypeError(f"image must be a torch.Tensor, got {type(image).__name__}")
        if image.shape[-2:] != (n, n):
            raise ValueError(f"image must end in shape ({n}, {n}) for this geometry, got {tuple(image.shape)}")
        return image.to(self.device, self.dtype)

    def _check_sinogram(self, sinogram: torch.Tensor, views=None) -> torch.Tensor:
        if not isinstance(sinogram, torch.Tensor):
            raise TypeError(f"sinogram must be a torch.Tensor, got {type(sinogram).__name__}")
        v = self.geometry.n_views if views is None else len(views)
        expected = (v, self.geometry.n_detectors)
        if tuple(sinogram.shape[-2:]) != expected:
            raise ValueError(f"sinogram must end in shape {expected} (views, detectors), got {tuple(sinogram.shape)}")
        return sinogram.to(self.device, self.dtype)


class _Adjoint:
    """``A.T`` as a callable: ``projector.T(y)``."""

    def __init__(self, projector: ParallelBeamProjector):
        self._p = projector

    def __call__(self, sinogram: torch.Tensor) -> torch.Tensor:
        return self._p.adjoint(sinogram)
