"""Metal artifacts: a metal disk inside the body, scanned with a polychromatic beam (default)
or inserted monochromatically (paper Eq. 12).

Why polychromatic. Inserting a metal disk into the attenuation map and forward projecting
it with one energy (Eq. 12) is linear: the metal adds the same line integral to a ray
whatever tissue the ray also crosses, and FBP gives the disk back with edge ringing only
(a 36,000 HU steel edge sampled at one detector bin per pixel and ramp filtered: about
0.16 % of the metal contrast far from the disk, i.e. 60-75 HU RMS around 15 mm of steel,
as large in RMS as the polychromatic artifacts, but a fine moire rather than the dark and
bright bands of clinical metal artifacts). Those come from the physics of the measurement,
as the metal artifact reduction (MAR) literature simulates it (e.g. Zhang & Yu 2018; the
AAPM CT-MAR challenge, Haneda et al. 2025): **beam hardening** (metal removes the low
energies, so the log-transformed measurement is no longer linear in the metal path and the
metal's share of a ray depends on the tissue along it: dark bands along the most
attenuating directions; through 15 mm of steel in a 240 x 120 mm water ellipse the metal's
excess line integral is 3.3 % lower along the long axis than along the short one, and the
disk reconstructs at half its monochromatic attenuation), **photon starvation** (few
photons behind dense metal, so noise and the floor of the reading dominate) and the
**exponential edge-gradient effect** (a detector bin averages intensities, not line
integrals, across the metal edge).

Polychromatic model (``model="polychromatic"``), per ray (view, detector bin):

1. Spectrum and materials from :mod:`builder.spectrum`: 120 kVp tungsten spectrum
   (2.5 mm Al + 0.1 mm Cu) in 20 bins of 5 keV; xraydb attenuation of water, ICRU-44
   cortical bone, titanium and steel (iron); energy-integrating detector with signal
   weights ``s_E``; effective energy ``E_eff`` (66.2 keV).
2. Tissue decomposition (:func:`tissue_densities`): a reference voxel of ``HU`` has, at
   ``E_eff``, the attenuation ``mu_w(E_eff) (1 + HU/1000)`` (0 below air). A fraction
   ``f = clip((HU - 100) / 1400, 0, 1)`` of it is carried by cortical bone and ``1 - f``
   by water: soft tissue (<= 100 HU) is water of density ``1 + HU/1000``, dense bone
   (>= 1500 HU) is bone, and the mixture is linear in between. So the monochromatic image
   at ``E_eff`` is the reference exactly, and bone hardens the beam as bone does.
3. The water and bone density maps are projected once per reference
   (:meth:`MetalSimulator.prepare`) with the projector: ``W``, ``B`` in g/cm^3 * mm.
4. The metal disk (diameter ``d`` mm, centre ``(row, col)``) is analytic. Each detector
   bin in its shadow is split into ``N_SUBRAYS = 4`` parallel sub-rays (more for disks
   narrower than 3 bins: at least ``MIN_SUBRAYS_PER_RADIUS = 12`` per disk radius, so that
   the chords of every view integrate to the disk area within 1 %); per sub-ray the
   metal chord is exact, ``c = 2 sqrt(r^2 - u^2)`` mm (``u``: distance of the sub-ray from
   the disk centre), and the tissue that the disk replaces is removed from the tissue line
   integrals by integrating the (bilinearly interpolated) density maps along that chord
   (midpoint rule, steps of at most ``CHORD_STEP_PX`` pixels). Outside the shadow nothing
   changes, so a metal sample costs no forward projection.
5. Expected reading of the energy-integrating detector, in photons-equivalent
   (the unattenuated reading is ``I0``), averaged over the sub-rays::

       T_E = mean_sub exp(-(a_E (W - W_disk) + b_E (B - B_disk) + m_E c))
       mean = I0 sum_E s_E T_E,    var = I0 sum_E s_E (E / E_mean) T_E + sigma_e^2

   (``a_E, b_E``: mass attenuation of water and bone per mm, ``m_E``: the metal's linear
   attenuation.) The counts of each energy bin are Poisson, so the reading
   ``sum_E (E / E_mean) N_E + N(0, sigma_e^2)`` has exactly this mean and variance.
6. Noise (:data:`EXACT_POISSON_BELOW`): rays expecting fewer than 1000 photons (behind
   metal, photon starvation) get exact Poisson counts per energy bin; the others get the
   Gaussian with the same mean and variance (above 1000 photons the Poisson's skewness,
   ``1/sqrt(1000) = 0.03``, is invisible after the log; drawing 20 Poisson variates for
   each of the 261,000 rays would cost 0.25 s per sample).
7. Readings below ``SIGNAL_FLOOR = 1`` photon are set to it (their number is returned as
   ``clamped_bins``), then ``p_poly = log(I0 / reading)``, the 4th-order water
   beam-hardening correction maps ``p_poly`` to water-equivalent line integrals at
   ``E_eff``, and these are rescaled by ``MU_WATER_PER_MM / mu_w(E_eff)`` so that the
   output has the units of ``projector(hu_to_mu(hu))``: FBP and ``mu_to_hu`` give HU.

Defaults: ``I0 = 2e7`` photons per ray (high enough that the metal case is not a noise
case; low-dose noise is the noise operator's job in the mixtures M3 and M5), electronic
noise variance 10 counts^2, material steel (the hip-prosthesis scenario of the paper's
Table 8; ``titanium`` is offered).

Monochromatic model (``model="monochromatic"``, paper Eq. 12): ``mu_metal(x) = (1 - m(x))
mu(x) + m(x) mu_metal`` with the pixel mask ``m`` (:func:`metal_mask`) and the metal's
attenuation at ``E_eff`` in the units of ``MU_WATER_PER_MM`` (steel 36,450 HU, titanium
12,880 HU), forward projected with the projector; no noise (the paper's insertion).

Calibration (8 real 512 x 512 slices of ``../shared/ct``, 0.56-0.98 mm pixels, each level
at its own random position; window [-300, 300] HU -> [0, 1], reference = the original slice,
whose clean FBP scores 32.7 dB / 0.949): steel PSNR 27.8 / 26.3 / 24.3 / 22.4 dB and SSIM
0.883 / 0.864 / 0.835 / 0.803 at 3 / 6 / 10 / 15 mm; titanium 30.7 / 30.1 / 28.2 / 27.2 dB,
0.922 / 0.916 / 0.901 / 0.888 (paper Table 10, S5: 25.28 / 24.61 / 24.02 / 23.58 dB,
0.853 / 0.841 / 0.831 / 0.822). The artifact energy outside the metal grows with the
diameter on 8 / 8 slices at a fixed centre and on 7 / 8 with a new position per level.

Placement (:func:`sample_metal`): the centre is drawn uniformly among the pixels whose
distance to the outside of the body is at least ``radius + PLACEMENT_MARGIN_MM``; the body
is the largest connected region of ``HU > BODY_THRESHOLD_HU``, so the disk lies in soft
tissue or bone, never in air, lung or the table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from ctdegradbench.builder.core.hu import MU_WATER_PER_MM, hu_to_mu
from ctdegradbench.builder.core.levels import check_level
from ctdegradbench.builder.core.seeding import check_seed, numpy_generator, torch_generator
from ctdegradbench.builder.degradations.base import Degradation, SinogramState, register
from ctdegradbench.builder.degradations.spectrum import (DEFAULT_SPECTRUM, METAL_MATERIALS, SpectrumSpec, apply_water_correction,
                        effective_water_mu, linear_attenuation, mass_attenuation,
                        water_correction_coefficients, x_ray_spectrum)

METAL_MODELS: tuple[str, ...] = ("polychromatic", "monochromatic")
DEFAULT_MATERIAL = "steel"
DEFAULT_MODEL = "polychromatic"
DEFAULT_I0 = 2e7                     # photons per ray (view, detector bin), unattenuated
DEFAULT_ELECTRONIC_VARIANCE = 10.0   # counts^2
SIGNAL_FLOOR = 1.0                   # smallest reading (photons), keeps the log finite
EXACT_POISSON_BELOW = 1e3            # expected photons below which counts are drawn exactly
N_SUBRAYS = 4                        # sub-rays per detector bin in the metal shadow (at least)
MIN_SUBRAYS_PER_RADIUS = 12          # more sub-rays for small disks: chords integrate to pi r^2 within 1 %
CHORD_STEP_PX = 0.5                  # largest integration step along a metal chord (pixels)
BONE_SPLIT_HU = (100.0, 1500.0)      # bone fraction 0 at/below the first, 1 at/above the second
BODY_THRESHOLD_HU = -300.0           # body = largest connected region above this HU
PLACEMENT_MARGIN_MM = 2.0            # tissue kept between the disk and the body outline
DIAMETER_LEVELS = (3.0, 6.0, 10.0, 15.0)   # metal disk diameter in mm at L0..L3


def _positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _check_choice(value, name: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {choices}")
    return value


def _check_hu(hu) -> np.ndarray:
    if not isinstance(hu, np.ndarray) or hu.ndim != 2 or hu.shape[0] != hu.shape[1] or hu.shape[0] < 16:
        raise ValueError("hu must be a square 2-D numpy array of at least 16 x 16, got "
                         f"{getattr(hu, 'shape', type(hu))}")
    if not np.all(np.isfinite(hu)):
        raise ValueError("hu holds non-finite values; expected finite Hounsfield units")
    return hu


@dataclass(frozen=True)
class MetalParams:
    """One metal insertion.

    Attributes
    ----------
    level : int
        Severity level 0..3.
    diameter_mm : float
        Disk diameter in mm (the sampler takes ``DIAMETER_LEVELS[level]``).
    center_px : tuple of float
        Disk centre ``(row, col)`` in pixel indices.
    material : {"steel", "titanium"}
    model : {"polychromatic", "monochromatic"}
    seed : int
        Seed of the quantum and electronic noise of the polychromatic scan.
    i0 : float or None
        Incident photons per ray of the polychromatic scan (``None`` for the monochromatic model).
    electronic_variance : float or None
        Electronic noise variance of the polychromatic scan, counts^2 (``None``: monochromatic).
    """

    level: int
    diameter_mm: float
    center_px: tuple[float, float]
    material: str
    model: str
    seed: int
    i0: float | None = DEFAULT_I0
    electronic_variance: float | None = DEFAULT_ELECTRONIC_VARIANCE

    def __post_init__(self) -> None:
        check_level(self.level)
        object.__setattr__(self, "diameter_mm", _positive(self.diameter_mm, "diameter_mm"))
        centre = self.center_px
        if (not isinstance(centre, (tuple, list)) or len(centre) != 2
                or not all(isinstance(c, (int, float, np.integer, np.floating)) and not isinstance(c, bool)
                           and math.isfinite(c) for c in centre)):
            raise ValueError(f"center_px must be a (row, col) pair of finite numbers, got {centre!r}")
        object.__setattr__(self, "center_px", (float(centre[0]), float(centre[1])))
        _check_choice(self.material, "metal material", METAL_MATERIALS)
        _check_choice(self.model, "metal model", METAL_MODELS)
        check_seed(self.seed)

    def radius_px(self, pixel_spacing_mm: float) -> float:
        return 0.5 * self.diameter_mm / _positive(pixel_spacing_mm, "pixel_spacing_mm")


# ------------------------------------------------------------------ placement
def body_mask(hu: np.ndarray) -> np.ndarray:
    """Largest connected region (4-connected) of ``hu > BODY_THRESHOLD_HU``; all False if none."""
    above = _check_hu(hu) > BODY_THRESHOLD_HU
    labels, n = ndimage.label(above)
    if n == 0:
        return above
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def body_distance_mm(hu: np.ndarray, pixel_spacing_mm: float) -> np.ndarray:
    """Distance (mm) of every pixel centre to the nearest pixel outside :func:`body_mask`.

    The image border counts as outside; pixels outside the body have distance 0.
    """
    spacing = _positive(pixel_spacing_mm, "pixel_spacing_mm")
    padded = np.pad(body_mask(hu), 1, constant_values=False)
    return ndimage.distance_transform_edt(padded)[1:-1, 1:-1] * spacing


def placement_candidates(distance_mm: np.ndarray, diameter_mm: float) -> np.ndarray:
    """Pixel centres ``(row, col)`` (int array ``(K, 2)``, row-major order) where a disk fits.

    ``distance_mm`` is :func:`body_distance_mm` of the slice. A centre fits when its distance
    to the nearest pixel outside the body (the image border counts as outside) is at least
    ``diameter_mm / 2 + PLACEMENT_MARGIN_MM``.
    """
    radius = 0.5 * _positive(diameter_mm, "diameter_mm")
    return np.argwhere(distance_mm >= radius + PLACEMENT_MARGIN_MM)


def sample_metal(level: int, distance_mm: np.ndarray, pixel_spacing_mm: float, rng: np.random.Generator, *,
                 material: str = DEFAULT_MATERIAL, model: str = DEFAULT_MODEL, seed: int,
                 i0: float = DEFAULT_I0, electronic_variance: float = DEFAULT_ELECTRONIC_VARIANCE) -> MetalParams:
    """Draw a metal insertion of severity ``level`` inside the body.

    The diameter is ``DIAMETER_LEVELS[level]`` mm; the centre is drawn uniformly
    (``rng.integers``) among :func:`placement_candidates` of ``distance_mm`` (the slice's
    :func:`body_distance_mm`). ``seed``, ``i0`` and ``electronic_variance`` are stored for the
    noise of the polychromatic scan (``None`` for the monochromatic model). Raises
    ValueError when no position fits the disk.
    """
    check_level(level)
    spacing = _positive(pixel_spacing_mm, "pixel_spacing_mm")
    _check_choice(material, "metal material", METAL_MATERIALS)
    _check_choice(model, "metal model", METAL_MODELS)
    diameter = DIAMETER_LEVELS[level]
    candidates = placement_candidates(distance_mm, diameter)
    if len(candidates) == 0:
        raise ValueError(
            f"no position inside the body fits a {diameter:g} mm metal disk (level {level}): no pixel of the body "
            f"(largest region above {BODY_THRESHOLD_HU:g} HU) lies {diameter / 2 + PLACEMENT_MARGIN_MM:g} mm "
            f"from its outline at {spacing:g} mm per pixel")
    row, col = candidates[int(rng.integers(len(candidates)))]
    polychromatic = model == "polychromatic"
    return MetalParams(level=level, diameter_mm=diameter, center_px=(float(row), float(col)), material=material,
                       model=model, seed=check_seed(seed), i0=float(i0) if polychromatic else None,
                       electronic_variance=float(electronic_variance) if polychromatic else None)


# ------------------------------------------------------------ mask and bbox
def _check_disk_in_image(params: MetalParams, image_size: int, pixel_spacing_mm: float) -> float:
    radius = params.radius_px(pixel_spacing_mm)
    row, col = params.center_px
    if not (isinstance(image_size, (int, np.integer)) and image_size >= 16):
        raise ValueError(f"image_size must be an integer >= 16, got {image_size!r}")
    if min(row, col) - radius < -0.5 or max(row, col) + radius > image_size - 0.5:
        raise ValueError(f"metal disk (centre {params.center_px}, radius {radius:.2f} px) does not lie inside the "
                         f"{image_size} x {image_size} image")
    return radius


def metal_mask(params: MetalParams, image_size: int, pixel_spacing_mm: float) -> np.ndarray:
    """Pixels whose centre lies in the disk: bool ``(N, N)``, the paper's ``m(x)``."""
    radius = _check_disk_in_image(params, image_size, pixel_spacing_mm)
    index = np.arange(image_size, dtype=np.float64)
    row, col = params.center_px
    return (index[:, None] - row) ** 2 + (index[None, :] - col) ** 2 <= radius ** 2


def metal_bbox(params: MetalParams, image_size: int, pixel_spacing_mm: float) -> tuple[int, int, int, int]:
    """``(x_min, y_min, x_max, y_max)``: inclusive column / row bounds of :func:`metal_mask`."""
    mask = metal_mask(params, image_size, pixel_spacing_mm)
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise ValueError(f"metal disk of {params.diameter_mm:g} mm at {params.center_px} covers no pixel centre at "
                         f"{pixel_spacing_mm:g} mm per pixel")
    return int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max())


# ------------------------------------------------------------------ physics
def tissue_densities(hu: np.ndarray, spec: SpectrumSpec = DEFAULT_SPECTRUM) -> tuple[np.ndarray, np.ndarray]:
    """Water and cortical-bone partial densities (g/cm^3) of a HU map (module docstring, item 2).

    ``rho_water + rho_bone * (mu/rho)_bone(E_eff) / (mu/rho)_water(E_eff) = max(0, 1 + HU/1000)``
    with the bone share ``f = clip((HU - 100) / 1400, 0, 1)`` of the attenuation at ``E_eff``.
    """
    hu = _check_hu(hu).astype(np.float64)
    e_eff = [x_ray_spectrum(spec).effective_energy_kev]
    relative = np.maximum(1.0 + hu / 1000.0, 0.0)
    low, high = BONE_SPLIT_HU
    bone_share = np.clip((hu - low) / (high - low), 0.0, 1.0)
    ratio = float(mass_attenuation("water", e_eff)[0] / mass_attenuation("bone", e_eff)[0])
    return (1.0 - bone_share) * relative, bone_share * relative * ratio


@dataclass(frozen=True)
class MetalContext:
    """Per-reference work of :meth:`MetalSimulator.prepare` (tensors on the projector's device).

    Attributes
    ----------
    densities : tensor (2, N, N), float32
        Water and bone partial densities, g/cm^3.
    projections : tensor (2, V, D), float64
        Their line integrals ``W``, ``B`` (g/cm^3 * mm).
    expected_reading : tensor (V, D), float64
        Mean reading without metal, ``I0 sum_E s_E T_E`` (photons).
    reading_sd : tensor (V, D), float64
        Its standard deviation, ``sqrt(I0 sum_E s_E (E / E_mean) T_E + sigma_e^2)``.
    starved : tensor (V, D), bool
        Rays without metal whose mean reading is below ``EXACT_POISSON_BELOW``.
    mu : tensor (N, N)
        ``hu_to_mu(hu)`` in the projector's dtype (monochromatic model).

    The readings depend on the simulator's ``i0`` and ``electronic_variance``: use a
    context only with the simulator that prepared it.
    """

    densities: torch.Tensor
    projections: torch.Tensor
    expected_reading: torch.Tensor
    reading_sd: torch.Tensor
    starved: torch.Tensor
    mu: torch.Tensor


@dataclass(frozen=True)
class ShadowRays:
    """Sub-rays of the detector bins behind a metal disk (``S`` sub-rays per bin, ``K`` bins per view).

    ``views``, ``bins``: ``(V, K)`` indices; ``offset_px``: ``(V, K, S)`` signed distance of
    each sub-ray from the disk centre; ``half_chord_px``: ``(V, K, S)`` half the chord length
    (0 for sub-rays that miss the disk). Lengths in pixels (= detector bins).
    """

    views: torch.Tensor
    bins: torch.Tensor
    offset_px: torch.Tensor
    half_chord_px: torch.Tensor


@dataclass(frozen=True)
class MetalScan:
    """Result of :meth:`MetalSimulator.simulate`.

    ``sinogram`` ``(V, D)`` in the projector's dtype; ``clamped_bins``: readings set to
    ``SIGNAL_FLOOR``; ``exact_poisson_bins``: rays whose counts were drawn exactly per energy.
    """

    sinogram: torch.Tensor
    clamped_bins: int
    exact_poisson_bins: int


class MetalSimulator:
    """Metal scans of one geometry (projector); spectrum and attenuation computed once.

    Parameters
    ----------
    projector : ParallelBeamProjector
        Its geometry (image size, pixel spacing, views, detector) defines the scan.
    i0 : float, default 2e7
        Incident photons per ray of the polychromatic scan.
    electronic_variance : float, default 10
        Electronic noise variance of the reading, counts^2.
    spectrum : SpectrumSpec, default 120 kVp W, 2.5 mm Al + 0.1 mm Cu
    n_subrays : int, default 4
        Sub-rays per detector bin in the metal shadow; disks narrower than 3 bins get more
        (``MIN_SUBRAYS_PER_RADIUS`` per radius).
    """

    def __init__(self, projector, *, i0: float = DEFAULT_I0,
                 electronic_variance: float = DEFAULT_ELECTRONIC_VARIANCE,
                 spectrum: SpectrumSpec = DEFAULT_SPECTRUM, n_subrays: int = N_SUBRAYS):
        self.projector = projector
        self.geometry = projector.geometry
        self.device = projector.device
        self.i0 = _positive(i0, "i0")
        if isinstance(electronic_variance, bool) or not isinstance(electronic_variance, (int, float)) \
                or not math.isfinite(electronic_variance) or electronic_variance < 0:
            raise ValueError(
                f"electronic_variance (counts^2) must be a finite number >= 0, got {electronic_variance!r}")
        self.electronic_variance = float(electronic_variance)
        if not isinstance(spectrum, SpectrumSpec):
            raise ValueError(f"spectrum must be a SpectrumSpec, got {type(spectrum).__name__}")
        if isinstance(n_subrays, bool) or not isinstance(n_subrays, int) or n_subrays < 1:
            raise ValueError(f"n_subrays must be a positive integer, got {n_subrays!r}")
        self.n_subrays = n_subrays
        self.spectrum_spec = spectrum
        self.spectrum = x_ray_spectrum(spectrum)
        self.bhc_coefficients = water_correction_coefficients(spectrum)
        self.mu_water_eff = effective_water_mu(spectrum)
        if not np.log(self.i0 / SIGNAL_FLOOR) > 0:
            raise ValueError(f"i0 must exceed the signal floor {SIGNAL_FLOOR}, got {i0!r}")
        grid = np.linspace(0.0, np.log(self.i0 / SIGNAL_FLOOR), 4001)
        if not np.all(np.diff(apply_water_correction(grid, self.bhc_coefficients)) > 0):
            raise ValueError(f"the water correction of {spectrum.describe()!r} is not increasing up to the largest "
                             f"line integral log(i0 / floor) = {grid[-1]:.2f}; lower i0 or change the spectrum")
        energies = self.spectrum.energies_kev

        def as_tensor(values) -> torch.Tensor:
            return torch.as_tensor(np.asarray(values), dtype=torch.float64, device=self.device)

        self._water = as_tensor(mass_attenuation("water", energies) / 10.0)     # 1/mm per g/cm^3
        self._bone = as_tensor(mass_attenuation("bone", energies) / 10.0)
        self._metal = {m: as_tensor(linear_attenuation(m, energies)) for m in METAL_MATERIALS}  # 1/mm
        self._signal = as_tensor(self.spectrum.signal_weights)
        self._energy_ratio = as_tensor(energies / self.spectrum.mean_energy_kev)
        self._photons = as_tensor(self.spectrum.photon_fractions)
        self._to_output_units = MU_WATER_PER_MM / self.mu_water_eff
        self._output_coefficients = tuple(c * self._to_output_units for c in self.bhc_coefficients)
        self._theta = torch.as_tensor(self.geometry.angles_rad, dtype=torch.float64, device=self.device)
        self._cos, self._sin = torch.cos(self._theta), torch.sin(self._theta)

    # ------------------------------------------------------------- reference
    def prepare(self, hu: np.ndarray) -> MetalContext:
        """Project the water and bone density maps of ``hu`` once; metal-free transmissions."""
        hu = _check_hu(hu)
        n = self.geometry.image_size
        if hu.shape != (n, n):
            raise ValueError(f"hu must have shape ({n}, {n}) for this geometry, got {hu.shape}")
        water, bone = tissue_densities(hu, self.spectrum_spec)
        densities = torch.as_tensor(np.stack([water, bone]), dtype=torch.float32, device=self.device)
        projections = self.projector(densities.to(self.projector.dtype)).to(torch.float64)
        mean_factor = torch.zeros(projections.shape[1:], dtype=torch.float64, device=self.device)
        variance_factor = torch.zeros_like(mean_factor)
        for e in range(len(self._signal)):
            transmission = torch.exp(-(self._water[e] * projections[0] + self._bone[e] * projections[1]))
            mean_factor.add_(transmission, alpha=float(self._signal[e]))
            variance_factor.add_(transmission, alpha=float(self._signal[e] * self._energy_ratio[e]))
        expected = self.i0 * mean_factor
        mu = hu_to_mu(torch.as_tensor(hu, device=self.device).to(self.projector.dtype))
        return MetalContext(densities=densities, projections=projections, expected_reading=expected,
                            reading_sd=torch.sqrt(self.i0 * variance_factor + self.electronic_variance),
                            starved=expected < EXACT_POISSON_BELOW, mu=mu)

    # ---------------------------------------------------------------- shadow
    def shadow_rays(self, params: MetalParams) -> "ShadowRays":
        """The sub-rays of the detector bins that the metal disk can shadow, with exact chords."""
        geometry = self.geometry
        n, d = geometry.image_size, geometry.n_detectors
        radius = _check_disk_in_image(params, n, geometry.pixel_spacing_mm)
        row, col = params.center_px
        t_centre = (col - n // 2) * self._cos - (row - n // 2) * self._sin          # (V,), bins
        width = int(math.ceil(2 * radius)) + 4                                   # an empty bin at each end
        first = torch.floor(t_centre + d // 2 - radius).to(torch.long) - 1
        bins = first[:, None] + torch.arange(width, device=self.device)            # (V, K)
        if int(bins.min()) < 0 or int(bins.max()) >= d:
            raise ValueError(f"metal shadow leaves the detector ({d} bins) for centre {params.center_px}")
        n_sub = max(self.n_subrays, math.ceil(MIN_SUBRAYS_PER_RADIUS / radius))
        offsets = (torch.arange(n_sub, dtype=torch.float64, device=self.device) + 0.5) / n_sub - 0.5
        u = (bins - d // 2).to(torch.float64)[..., None] + offsets - t_centre[:, None, None]   # (V, K, S)
        half = torch.sqrt(torch.clamp(radius ** 2 - u ** 2, min=0.0))
        views = torch.arange(len(self._theta), device=self.device)[:, None].expand_as(bins)
        return ShadowRays(views=views, bins=bins, offset_px=u, half_chord_px=half)

    def removed_tissue(self, context: MetalContext, params: MetalParams, rays: "ShadowRays",
                       step_px: float = CHORD_STEP_PX) -> torch.Tensor:
        """Water and bone line integrals (g/cm^3 * mm) inside the disk, per sub-ray: ``(2, V, K, S)``.

        Midpoint rule along each chord with ``ceil(diameter / step_px)`` points, on the
        bilinearly interpolated density maps (the projector's image model).
        """
        geometry = self.geometry
        n, spacing = geometry.image_size, geometry.pixel_spacing_mm
        radius = params.radius_px(spacing)
        n_steps = max(2, int(math.ceil(2 * radius / _positive(step_px, "step_px"))))
        xi = (2 * torch.arange(n_steps, dtype=torch.float32, device=self.device) + 1) / n_steps - 1   # (M,)
        scale = 2.0 / (n - 1)                       # pixel index -> grid_sample coordinate
        row, col = params.center_px
        u, half = rays.offset_px.to(torch.float32), rays.half_chord_px.to(torch.float32)
        cos, sin = self._cos.to(torch.float32)[:, None, None], self._sin.to(torch.float32)[:, None, None]
        along = (half[..., None] * xi).reshape(*half.shape, n_steps)              # (V, K, S, M)
        grid = torch.empty(*along.shape, 2, dtype=torch.float32, device=self.device)
        # point = centre + u (cos, -sin) + along (sin, cos) in (x, y) = (col, row) - n // 2
        grid[..., 0] = (scale * col - 1 + scale * u * cos)[..., None] + along * (scale * sin)[..., None]
        grid[..., 1] = (scale * row - 1 - scale * u * sin)[..., None] + along * (scale * cos)[..., None]
        samples = F.grid_sample(context.densities[None], grid.reshape(1, -1, n_steps, 2), mode="bilinear",
                                padding_mode="zeros", align_corners=True)[0]       # (2, V*K*S, M)
        step_mm = (2 * spacing / n_steps) * rays.half_chord_px.reshape(-1)
        return (samples.sum(dim=-1).to(torch.float64) * step_mm).reshape(2, *half.shape)

    def _shadow(self, context: MetalContext, params: MetalParams):
        """Detector bins in the metal shadow and their per-energy transmissions.

        Returns ``(views (V, K), bins (V, K), transmission (E, V, K))``, the transmission
        averaged over the sub-rays of each bin.
        """
        rays = self.shadow_rays(params)
        tissue = context.projections[:, rays.views, rays.bins][..., None] - self.removed_tissue(context, params, rays)
        chord_mm = 2 * self.geometry.pixel_spacing_mm * rays.half_chord_px
        metal = self._metal[params.material]
        energy = (-1, 1, 1, 1)
        attenuation = (self._water.view(energy) * tissue[0] + self._bone.view(energy) * tissue[1]
                       + metal.view(energy) * chord_mm)                             # (E, V, K, S)
        return rays.views, rays.bins, torch.exp(-attenuation).mean(dim=-1)

    def _shadow_reading(self, context: MetalContext, params: MetalParams):
        """Shadow bins ``(V, K)``, their transmissions ``(E, V, K)``, mean reading and its SD ``(V, K)``."""
        views, bins, transmission = self._shadow(context, params)
        mean = self.i0 * torch.tensordot(self._signal, transmission, dims=1)
        variance = self.i0 * torch.tensordot(self._signal * self._energy_ratio, transmission, dims=1)
        return views, bins, transmission, mean, torch.sqrt(variance + self.electronic_variance)

    def _to_line_integrals(self, reading: torch.Tensor) -> torch.Tensor:
        """``log(I0 / reading)``, water beam-hardening correction, rescaled to ``MU_WATER_PER_MM`` units.

        Works in place on ``reading`` (float64, all values >= ``SIGNAL_FLOOR``).
        """
        p_poly = reading.log_().neg_().add_(math.log(self.i0))
        result = torch.full_like(p_poly, self._output_coefficients[-1])
        for c in reversed(self._output_coefficients[:-1]):
            result.mul_(p_poly).add_(c)
        return result.mul_(p_poly).to(self.projector.dtype)

    def noiseless_sinogram(self, context: MetalContext, params: MetalParams | None = None) -> torch.Tensor:
        """Polychromatic line integrals ``(V, D)`` from the expected readings (no noise).

        ``params=None`` gives the metal-free scan: the reference's own beam hardening (bone)
        after the water correction.
        """
        reading = context.expected_reading.clone()
        if params is not None:
            if params.model != "polychromatic":
                raise ValueError(f"noiseless_sinogram is the polychromatic scan; got model {params.model!r}")
            views, bins, _, mean, _ = self._shadow_reading(context, params)
            reading[views, bins] = mean
        return self._to_line_integrals(reading.clamp_(min=SIGNAL_FLOOR))

    # ---------------------------------------------------------------- sample
    def simulate(self, context: MetalContext, params: MetalParams) -> MetalScan:
        """The metal scan of ``params``: line integrals ``(V, D)`` and noise bookkeeping.

        Random draws, in this order, from ``torch_generator(params.seed, device)``: one
        standard normal per ray, then the Poisson counts of the starved rays.
        """
        if not isinstance(params, MetalParams):
            raise ValueError(f"params must be MetalParams, got {type(params).__name__}")
        if params.model == "monochromatic":
            return MetalScan(self._monochromatic(context, params), 0, 0)
        views, bins, transmission, mean, sd = self._shadow_reading(context, params)
        generator = torch_generator(params.seed, self.device)
        standard = torch.randn(context.expected_reading.shape, generator=generator, dtype=torch.float64,
                               device=self.device)
        reading = torch.addcmul(context.expected_reading, context.reading_sd, standard)
        reading[views, bins] = mean + sd * standard[views, bins]
        starved_mask = context.starved.clone()
        starved_mask[views, bins] = mean < EXACT_POISSON_BELOW
        starved = torch.nonzero(starved_mask.view(-1)).squeeze(1)
        if starved.numel():
            reading.view(-1)[starved] = self._exact_reading(context, starved, views, bins, transmission,
                                                            standard.view(-1)[starved], generator)
        clamped = int((reading < SIGNAL_FLOOR).sum())
        reading.clamp_(min=SIGNAL_FLOOR)
        return MetalScan(self._to_line_integrals(reading), clamped, int(starved.numel()))

    def _exact_reading(self, context, rays, views, bins, transmission, standard, generator) -> torch.Tensor:
        """Readings of the flat ray indices ``rays``: Poisson counts per energy bin, energy weighted."""
        d = self.geometry.n_detectors
        projections = context.projections.reshape(2, -1)[:, rays]
        per_energy = torch.exp(-(self._water[:, None] * projections[0] + self._bone[:, None] * projections[1]))
        position = torch.full((context.expected_reading.numel(),), -1, dtype=torch.long, device=self.device)
        position[(views * d + bins).reshape(-1)] = torch.arange(bins.numel(), device=self.device)
        in_shadow = position[rays]
        hit = in_shadow >= 0
        per_energy[:, hit] = transmission.reshape(transmission.shape[0], -1)[:, in_shadow[hit]]
        counts = torch.poisson(self.i0 * self._photons[:, None] * per_energy, generator=generator)
        return (self._energy_ratio[:, None] * counts).sum(dim=0) + math.sqrt(self.electronic_variance) * standard

    def _monochromatic(self, context: MetalContext, params: MetalParams) -> torch.Tensor:
        geometry = self.geometry
        mask = torch.as_tensor(metal_mask(params, geometry.image_size, geometry.pixel_spacing_mm), device=self.device)
        mu_metal = self.metal_mu(params.material)
        image = torch.where(mask, torch.full_like(context.mu, mu_metal), context.mu)
        return self.projector(image)

    def sinogram(self, context: MetalContext, params: MetalParams) -> torch.Tensor:
        """Line integrals ``(V, D)`` in the units of ``projector(hu_to_mu(hu))``; see :meth:`simulate`."""
        return self.simulate(context, params).sinogram

    def metal_mu(self, material: str) -> float:
        """The metal's attenuation at ``E_eff`` in ``MU_WATER_PER_MM`` units (1/mm)."""
        _check_choice(material, "metal material", METAL_MATERIALS)
        mu = linear_attenuation(material, [self.spectrum.effective_energy_kev])[0]
        return float(mu * self._to_output_units)

    # -------------------------------------------------------------- metadata
    @property
    def spectrum_description(self) -> str:
        return (f"{self.spectrum_spec.describe()}, energy-integrating detector, "
                f"E_eff {self.spectrum.effective_energy_kev:.1f} keV")


@register
class Metal(Degradation):
    """Metal artifacts: a metal disk scanned polychromatically (or inserted by Eq. 12); see the module docstring."""

    name = "metal"
    title = "metal artifacts"
    parameter = "diameter_mm"
    unit = "mm"
    levels = DIAMETER_LEVELS
    fields = {
        "metal_model": ("str", "polychromatic (default) or monochromatic (paper Eq. 12)"),
        "material": ("str", "metal material, e.g. titanium or steel"),
        "diameter_mm": ("float", "metal disk diameter in mm"),
        "center_px": ("list[float]", "metal disk centre (row, col) in pixels"),
        "bbox": ("list[int]", "metal bounding box (x_min, y_min, x_max, y_max) in pixels, inclusive"),
        "spectrum": ("str", "x-ray spectrum of the polychromatic metal scan"),
        "i0": ("float", "incident photons per ray of the polychromatic metal scan"),
        "electronic_variance": ("float", "electronic noise variance of the polychromatic metal scan, counts^2"),
    }
    physics = (
        "**Metal** (Eq. 12 and a polychromatic scan). A metal disk is placed inside the body (never in air or "
        "lung) and scanned with a 120 kVp spectrum through water, cortical bone and the metal (xraydb "
        "attenuation, spekpy spectrum): beam hardening, photon starvation (exact Poisson counts behind the "
        "metal) and the exponential edge-gradient effect (each detector bin averages intensities over "
        "sub-rays) give the dark bands and streaks of clinical metal artifacts after the scanner's water "
        "beam-hardening correction. The paper's monochromatic insertion (Eq. 12) is an option.")

    @staticmethod
    def _distance(context) -> np.ndarray:
        if "metal/distance" not in context.cache:
            ref = context.reference
            context.cache["metal/distance"] = body_distance_mm(ref.hu, float(ref.pixel_spacing_mm))
        return context.cache["metal/distance"]

    @staticmethod
    def scanner(context, params: MetalParams) -> tuple["MetalSimulator", "MetalContext"]:
        """The metal simulator of ``params``' scan settings and its per-reference context (cached)."""
        i0 = DEFAULT_I0 if params.i0 is None else params.i0
        variance = DEFAULT_ELECTRONIC_VARIANCE if params.electronic_variance is None else params.electronic_variance
        key = ("metal/scanner", i0, variance)
        if key not in context.cache:
            simulator = MetalSimulator(context.projector, i0=i0, electronic_variance=variance)
            context.cache[key] = (simulator, simulator.prepare(context.reference.hu))
        return context.cache[key]

    def sample(self, level, context, seed, config) -> MetalParams:
        ref = context.reference
        return sample_metal(level, self._distance(context), float(ref.pixel_spacing_mm), numpy_generator(seed),
                            material=config.metal_material, model=config.metal_model, seed=seed,
                            i0=config.metal_i0, electronic_variance=config.electronic_variance)

    def apply(self, state: SinogramState, params: MetalParams, context) -> SinogramState:
        if state.sinogram is not context.sinogram or state.views is not None:
            raise ValueError("metal must be the first component: it replaces the clean scan")
        simulator, metal_context = self.scanner(context, params)
        scan = simulator.simulate(metal_context, params)
        return state.replace(sinogram=scan.sinogram, clamped_bins=state.clamped_bins + scan.clamped_bins)

    def record(self, params: MetalParams, context) -> dict:
        geometry = context.geometry
        polychromatic = params.model == "polychromatic"
        return {"seed": params.seed, "metal_model": params.model, "material": params.material,
                "diameter_mm": params.diameter_mm, "center_px": list(params.center_px),
                "bbox": list(metal_bbox(params, geometry.image_size, geometry.pixel_spacing_mm)),
                "spectrum": self.scanner(context, params)[0].spectrum_description if polychromatic else None,
                "i0": params.i0, "electronic_variance": params.electronic_variance}

    def params_from_record(self, record: dict) -> MetalParams:
        return MetalParams(level=record["level"], diameter_mm=record["diameter_mm"],
                           center_px=tuple(record["center_px"]), material=record["material"],
                           model=record["metal_model"], seed=record["seed"], i0=record["i0"],
                           electronic_variance=record["electronic_variance"])

    def phrase(self, record: dict, geometry: dict) -> str:
        row, col = (float(v) for v in record["center_px"])
        x0, y0, x1, y1 = (int(v) for v in record["bbox"])
        return (f"metal artifacts from a {float(record['diameter_mm']):g} mm {record['material']} insert "
                f"at (row {row:.0f}, col {col:.0f}), bounding box x {x0}-{x1}, y {y0}-{y1}")
