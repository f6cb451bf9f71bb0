"""FBP ramp filters, shared by every projector backend.

The design is scikit-image's ``iradon`` one, so that our FBP and theirs agree: each
projection is zero-padded to ``filter_size(n_detectors)`` samples (a power of two
``>= 2 * n_detectors``, at least 64; the padding keeps the circular convolution from
wrapping), multiplied in the Fourier domain by ``ramp_filter(size, name)`` and cropped back
to the detector.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ctdegradbench.builder.core.protocol import FILTERS



def filter_size(n_detectors: int) -> int:
    """Zero-padded FFT length for the ramp filter: a power of two >= 2 * n_detectors (>= 64)."""
    if not isinstance(n_detectors, (int, np.integer)) or n_detectors < 1:
        raise ValueError(f"n_detectors must be a positive integer, got {n_detectors!r}")
    return max(64, int(2 ** math.ceil(math.log2(2 * n_detectors))))


def _response(size: int, name: str) -> np.ndarray:
    if name not in FILTERS:
        raise ValueError(f"unknown FBP filter {name!r}; expected one of {FILTERS}")
    if not isinstance(size, (int, np.integer)) or size < 2 or size % 2:
        raise ValueError(f"filter size must be an even integer >= 2, got {size!r}")
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
    return response


def ramp_filter(size: int, name: str = "ram-lak", dtype=torch.float64) -> torch.Tensor:
    """Frequency response (length ``size``, numpy FFT order) of the ramp filter used by FBP.

    The Ram-Lak response is the DFT of the band-limited spatial ramp kernel
    (Kak & Slaney, Eq. 61): ``h[0] = 1/4``, ``h[n] = -1 / (pi n)^2`` for odd ``n``,
    0 for even ``n``, which avoids the DC offset of a sampled ``|f|``. Shepp-Logan
    multiplies it by ``sinc``; Hann by a Hann window. Same design as scikit-image.
    """
    return torch.as_tensor(_response(size, name), dtype=dtype)


def ramp_filter_half(size: int, name: str = "ram-lak") -> np.ndarray:
    """The response on the ``size // 2 + 1`` non-negative frequencies, for real FFTs.

    FBP keeps the real part of the filtered projection, which for a real projection is the
    same as filtering with the symmetrised response ``(H[k] + H[-k]) / 2`` (the Hann window
    of scikit-image is not exactly symmetric, the other two are); this returns that
    symmetrised response on ``k = 0 .. size // 2``, float64.
    """
    response = _response(size, name)
    symmetric = 0.5 * (response + np.roll(response[::-1], 1))
    return symmetric[: size // 2 + 1]
