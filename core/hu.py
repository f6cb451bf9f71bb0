"""Hounsfield units <-> linear attenuation coefficients (paper Eq. 2 and Eq. 4).

``mu = MU_WATER_PER_MM * (1 + HU / 1000)`` and its inverse ``HU = 1000 * (mu / mu_w - 1)``.

``MU_WATER_PER_MM = 0.0192 /mm`` is the linear attenuation coefficient of water at about
70 keV (NIST XCOM, Hubbell & Seltzer: mu/rho = 0.1929 cm^2/g at 70 keV, density 1 g/cm^3),
the effective energy of a filtered 120 kVp clinical beam. Line integrals of ``mu`` in
1/mm over path lengths in mm are dimensionless, so a 300 mm water path gives about 5.8,
the order of magnitude a clinical scanner's log-normalised projections reach.

Air is ``-1000 HU`` (``mu = 0``). Values below it are not physical attenuation: they are
scanner padding outside the reconstruction circle (``-2048``, ``-3024``) or noise in air.
``hu_to_mu`` maps them to ``mu = 0`` (air); callers that need to report how many pixels
were affected use ``count_below_air``.
"""

from __future__ import annotations

import sys

import numpy as np

MU_WATER_PER_MM = 0.0192
#: Air (``mu = 0``): the padding value of every square pad (loader and SeSpeCT's processor).
AIR_HU = -1000.0
#: Lowest CT number a scanner stores (the 12-bit scale's floor, -1024..3071 HU); noise in air
#: below it is clipped there.
STORED_HU_MIN = -1024
#: A slice as a 16-bit PNG stores ``HU + PNG_OFFSET_HU`` (so :data:`STORED_HU_MIN` is stored as 0).
PNG_OFFSET_HU = -STORED_HU_MIN

#: CT number (HU) above which a pixel counts as metal: no tissue reaches it (cortical bone stays
#: below about 2000 HU); metal, and iodine contrast or a truncation rim at the top of the stored
#: scale (3071 HU), do. The references' ``metal_like_area_mm2`` and SeSpeCT's native statistics use it.
METAL_HU = 2500.0

#: Soft-tissue display window (HU) of every preview: the dataset's ``preview`` PNGs, the card's
#: figures and ``sources --preview`` (noise, streaks and blur show; lung and bone saturate).
PREVIEW_WINDOW_HU: tuple[float, float] = (-160.0, 240.0)


def _is_tensor(value) -> bool:
    """Whether ``value`` is a torch tensor (torch is not imported for this: no tensor exists before it is)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def hu_to_mu(hu, mu_water: float = MU_WATER_PER_MM):
    """Convert HU to linear attenuation in 1/mm (Eq. 2), with values below air set to air.

    Works on numpy arrays and torch tensors; the result has a floating dtype
    (float32 for integer input).
    """
    if mu_water <= 0:
        raise ValueError(f"mu_water must be a positive attenuation in 1/mm, got {mu_water!r}")
    if _is_tensor(hu):
        hu = hu if hu.is_floating_point() else hu.float()
        return (mu_water * (1.0 + hu / 1000.0)).clamp_min(0.0)
    hu = np.asarray(hu)
    hu = hu if np.issubdtype(hu.dtype, np.floating) else hu.astype(np.float32)
    return np.maximum(mu_water * (1.0 + hu / 1000.0), 0.0).astype(hu.dtype, copy=False)


def mu_to_hu(mu, mu_water: float = MU_WATER_PER_MM):
    """Convert linear attenuation in 1/mm to HU (Eq. 4); no clipping."""
    if mu_water <= 0:
        raise ValueError(f"mu_water must be a positive attenuation in 1/mm, got {mu_water!r}")
    return 1000.0 * (mu / mu_water - 1.0)


def count_below_air(hu) -> int:
    """Number of pixels below -1000 HU (padding or air noise) that ``hu_to_mu`` maps to air."""
    if _is_tensor(hu):
        return int((hu < AIR_HU).sum())
    return int(np.count_nonzero(np.asarray(hu) < AIR_HU))
