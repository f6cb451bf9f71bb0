"""Truncation: references whose body reaches the edge of the reconstructed field of view.

A slice whose patient touches the image border was reconstructed from a patient wider
than the field of view, or cropped: the simulator, which scans what the image holds, then
scans a cut patient (its lateral rays see less tissue than the real ones did, so noise and
photon starvation along them are underestimated). The simulated scanner's detector covers
the whole image diagonal, so the cut itself causes no truncation artifact; what is wrong is
the patient.

* :func:`border_body_fraction`: the fraction of the image's border pixels (the outermost
  ring, ``BORDER_PX`` wide) that lie in the body (above ``BODY_HU``, -500 HU). Scanner
  padding outside the reconstruction circle (below -1000 HU) is not body, so a body cut by
  the circle but not by the square also counts when it touches the square's border.
* :func:`is_truncated`: that fraction is above ``TRUNCATION_MIN_FRACTION``.
* :func:`pad_truncated`: extend the patient beyond the border so that the scan is not
  truncated: the image grows by ``pad`` pixels on every side (air), and where the body
  meets the border it is continued outward with its (smoothed) border values, each border
  run of body closed by a half-ellipse cap of depth half its length (ending inside the new
  border), the
  rounded outline of a trunk or an arm; the pixel spacing is unchanged, so the field of view
  grows.

Loader keyword ``truncation`` (:data:`TRUNCATION_MODES`): ``"keep"`` (default) records the
flag and the fraction in ``info["truncated"]`` / ``info["border_body_fraction"]`` and keeps
the slice as it is; ``"skip"`` drops truncated slices (a counted skip); ``"pad"`` applies
:func:`pad_truncated` (``info["truncation_pad_px"]``). "keep" is the default because most
clinical chest and abdomen series touch their field of view (every slice of the two chest
patients the issue was found on did), skipping would drop most of them, and padding invents
anatomy the reference does not hold; the flag lets users filter or weigh them.
"""

from __future__ import annotations

import numpy as np

from ctdegradbench.core.hu import AIR_HU

BODY_HU = -500.0
BORDER_PX = 2                      # width of the border ring that is tested
TRUNCATION_MIN_FRACTION = 0.002    # of the border pixels: a few pixels of noise are not a patient
PAD_FRACTION = 0.1                 # padding per side, as a fraction of the image side
TRUNCATION_MODES = ("keep", "skip", "pad")


def border_mask(size: int, width: int = BORDER_PX) -> np.ndarray:
    """The outermost ``width`` pixels of a ``size x size`` image."""
    mask = np.ones((size, size), dtype=bool)
    mask[width:size - width, width:size - width] = False
    return mask


def border_body_fraction(hu: np.ndarray) -> float:
    """Fraction of the border ring's pixels that are body (above ``BODY_HU``)."""
    hu = np.asarray(hu)
    if hu.ndim != 2 or hu.shape[0] != hu.shape[1]:
        raise ValueError(f"expected a square 2-D HU image, got shape {hu.shape}")
    ring = border_mask(hu.shape[0])
    return float(np.count_nonzero((hu > BODY_HU) & ring)) / float(np.count_nonzero(ring))


def is_truncated(hu: np.ndarray) -> bool:
    """Whether the body reaches the border (more than ``TRUNCATION_MIN_FRACTION`` of it)."""
    return border_body_fraction(hu) > TRUNCATION_MIN_FRACTION


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of every run of True in a 1-D boolean array."""
    padded = np.concatenate(([False], flags, [False]))
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[::2], edges[1::2]))


def pad_truncated(hu: np.ndarray, pad: int | None = None) -> tuple[np.ndarray, int]:
    """The slice with its patient continued beyond the border (see the module docstring).

    Returns ``(padded HU (N + 2 pad) square, pad)``; ``pad`` defaults to
    ``ceil(PAD_FRACTION * N)``. Values below -1000 HU (padding) become air first.
    """
    hu = np.maximum(np.asarray(hu, dtype=np.float64), AIR_HU)
    n = hu.shape[0]
    pad = max(2 * BORDER_PX + 2, int(np.ceil(PAD_FRACTION * n))) if pad is None else int(pad)
    if pad < 2 * BORDER_PX + 2:
        raise ValueError(f"pad must be at least {2 * BORDER_PX + 2} pixels, got {pad}")
    out = np.full((n + 2 * pad, n + 2 * pad), AIR_HU)
    out[pad:pad + n, pad:pad + n] = hu
    from scipy import ndimage       # here, so that the command line reads TRUNCATION_MODES without scipy

    smooth = ndimage.uniform_filter(hu, 5)
    # each side as (border values, how to write the extension at depth k)
    sides = {
        "top": (smooth[0, :], lambda k, a, b, v: out.__setitem__((pad - 1 - k, slice(pad + a, pad + b)), v)),
        "bottom": (smooth[-1, :], lambda k, a, b, v: out.__setitem__((pad + n + k, slice(pad + a, pad + b)), v)),
        "left": (smooth[:, 0], lambda k, a, b, v: out.__setitem__((slice(pad + a, pad + b), pad - 1 - k), v)),
        "right": (smooth[:, -1], lambda k, a, b, v: out.__setitem__((slice(pad + a, pad + b), pad + n + k), v)),
    }
    for values, write in sides.values():
        for start, stop in _runs(values > BODY_HU):
            length = stop - start
            depth = max(1, min(pad - BORDER_PX - 1, length // 2))   # stays off the new border
            centre, half = 0.5 * (start + stop - 1), 0.5 * length
            index = np.arange(start, stop)
            reach = depth * np.sqrt(np.clip(1.0 - ((index - centre) / half) ** 2, 0.0, 1.0))   # half-ellipse cap
            for k in range(depth):
                inside = reach > k
                if not inside.any():
                    break
                a, b = int(index[inside][0]), int(index[inside][-1]) + 1
                write(k, a - start + start, b - start + start, values[a:b])
    return out, pad


def apply_truncation_mode(square: np.ndarray, mode: str) -> tuple[np.ndarray | None, dict]:
    """Detect truncation of a square HU slice and apply ``mode`` (:data:`TRUNCATION_MODES`).

    Returns ``(image, info)``: ``image`` is the slice (``"keep"``, or not truncated), the
    padded slice (``"pad"`` and truncated) or ``None`` (``"skip"`` and truncated); ``info``
    holds ``truncated``, ``border_body_fraction`` and, when padded, ``truncation_pad_px``.
    """
    if mode not in TRUNCATION_MODES:
        raise ValueError(f"truncation must be one of {TRUNCATION_MODES}, got {mode!r}")
    fraction = border_body_fraction(square)
    truncated = fraction > TRUNCATION_MIN_FRACTION
    info = {"truncated": bool(truncated), "border_body_fraction": round(fraction, 4)}
    if not truncated or mode == "keep":
        return square, info
    if mode == "skip":
        return None, info
    padded, pad = pad_truncated(square)
    info["truncation_pad_px"] = int(pad)
    return np.round(padded), info
