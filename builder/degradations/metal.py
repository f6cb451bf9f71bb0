"""Metal artifacts: metal implants scanned with a polychromatic beam (default), or inserted
monochromatically (paper Eq. 12).

What is inserted (:mod:`builder.degradations.implants`). One implant per image, drawn from
the implant types the slice's anatomy allows (``metal_implant="anatomical"``, the default):
a pair of titanium hip stems in the femoral heads of a pelvis slice, two titanium pedicle
screws in a vertebra, amalgam fillings on the teeth of a head slice, stainless-steel
surgical clips in soft tissue, or the paper's single disk of ``metal_material`` anywhere in
the body (never in lung or air). ``metal_implant`` can also name one type. The placement is
drawn once per reference (fixed across the levels of a slice, so severity is monotone per
slice); the level sets the amount of metal: a steel-equivalent diameter ``metal_mm`` of 3 /
6 / 10 / 15 mm (cross-section weighted by attenuation relative to steel; a steel disk has
exactly the paper's diameters). Two objects (hips, screws, fillings, clip legs) give the
dark band between them that clinical metal artifacts show.

Why polychromatic. Inserting metal into the attenuation map and forward projecting it with
one energy (Eq. 12) is linear: the metal adds the same line integral to a ray whatever
tissue the ray also crosses, and FBP gives the metal back with edge ringing only. Clinical
metal artifacts come from the physics of the measurement, as the metal artifact reduction
(MAR) literature simulates it (e.g. Zhang & Yu 2018; the AAPM CT-MAR challenge, Haneda et
al. 2025): **beam hardening** (metal removes the low energies, so the log-transformed
measurement is no longer linear in the metal path and the metal's share of a ray depends on
the tissue along it: dark bands along the most attenuating directions, between two
objects), **photon starvation** (few photons behind dense metal, so the Poisson noise of the
metal scan's counts and the floor of the reading dominate) and the **exponential
edge-gradient effect** (a detector bin averages intensities, not line integrals, over its
aperture and over the view interval).

Polychromatic model (``model="polychromatic"``), per ray (view, detector bin):

1. Spectrum and materials from :mod:`builder.degradations.spectrum`: 120 kVp tungsten
   spectrum (2.5 mm Al + 0.1 mm Cu) in 20 bins of 5 keV; xraydb attenuation of water,
   ICRU-44 cortical bone, titanium, steel (iron) and dental amalgam; energy-integrating
   detector with signal weights ``s_E``; effective energy ``E_eff``.
2. Tissue decomposition (:func:`tissue_densities`): a reference voxel of ``HU`` has, at
   ``E_eff``, the attenuation ``mu_w(E_eff) (1 + HU/1000)`` (0 below air). A fraction
   ``f = clip((HU - 100) / 1400, 0, 1)`` of it is carried by cortical bone and ``1 - f``
   by water, so the monochromatic image at ``E_eff`` is the reference exactly, and bone
   hardens the beam as bone does.
3. The water and bone density maps are projected once per reference
   (:meth:`MetalSimulator.prepare`) with the projector, which integrates over each bin's
   aperture and view interval: ``W``, ``B`` in g/cm^3 * mm.
4. The implant's objects are analytic (ellipses, rectangles). Each detector bin in their
   shadow is split into sub-rays: ``METAL_VIEW_SUBSAMPLES`` (3) sub-angles over the view
   interval times ``N_SUBRAYS`` sub-bins over the aperture (more for thin objects: at least
   ``MIN_SUBRAYS_PER_RADIUS`` per object half-width). Per sub-ray the metal chord of every
   object is exact, and the tissue each object replaces is removed from the tissue line
   integrals by integrating the (bilinearly interpolated) density maps along that chord
   (midpoint rule, steps of at most ``CHORD_STEP_PX`` pixels). Outside the shadow nothing
   changes, so a metal sample costs no forward projection.
5. Expected reading of the energy-integrating detector, in photons-equivalent
   (the unattenuated reading is ``I0``), averaged over the sub-rays (the detector integrates
   intensity over its aperture and the view interval)::

       T_E = mean_sub exp(-(a_E (W - W_metal) + b_E (B - B_metal) + m_E c))
       mean = I0 sum_E s_E T_E,    var = I0 sum_E s_E (E / E_mean) T_E + sigma_e^2

   (``a_E, b_E``: mass attenuation of water and bone per mm, ``m_E``: the metal's linear
   attenuation, ``c`` the summed chords in mm.)
6. Noise (:data:`EXACT_POISSON_BELOW`): rays expecting fewer than 1000 photons (behind
   metal: photon starvation) get exact Poisson counts per energy bin; the others get the
   Gaussian with the same mean and variance.
7. Readings below ``SIGNAL_FLOOR = 1`` photon are set to it (counted as ``clamped_bins``),
   then ``p_poly = log(I0 / reading)``, the 4th-order water beam-hardening correction maps
   ``p_poly`` to water-equivalent line integrals at ``E_eff``, rescaled by
   ``MU_WATER_PER_MM / mu_w(E_eff)`` so that the output has the units of
   ``projector(hu_to_mu(hu))``.

8. Reconstruction (:class:`FineViews`): at 360 views the metal's sharp, dense edge aliases
   into a moire of fine stripes and arcs over the whole field (view aliasing farther than
   about 115 pixels from the metal, and the Nyquist ringing of an unapodized ramp), which
   no clinical scanner (1000-2300 views per rotation, apodized kernels) shows. The metal's
   noise-free increment (metal scan minus metal-free scan) is therefore also kept on the
   3 x 360 = 1080 fine views of the sub-angles, and the image is
   ``FBP(sinogram) + FBP_hann(fine increment) - FBP(360-view increment)``: tissue, noise
   and every other degradation keep the 360 views; only the metal is seen by 1080 views
   with a Hann-apodized ramp. A detector blur after the metal (M5) blurs the correction by
   the same Gaussian in the image plane; a sparse-view scan keeps its own aliasing.
   Measured on a TCGA chest slice (far field > 40 mm, S5 L0, clip): 21.5 / 43.7 HU RMS
   (body / air) with 360 views, 7.3 / 4.1 HU with the fine views; S1 L0 noise 15.1 / 10.7 HU.

Flux: ``I0 = metal_i0_per_mm * pixel_spacing_mm`` photons per ray (per mm of detector at the
isocentre and view, times the bin width): high enough that the metal case is not a noise
case (low-dose noise is the noise operator's job in M3 and M5), the same dose on every
series.

Monochromatic model (``model="monochromatic"``, paper Eq. 12): ``mu_metal(x) = (1 - m(x))
mu(x) + m(x) mu_metal`` with the pixel mask ``m`` of the implant's objects and the metal's
attenuation at ``E_eff`` in the units of ``MU_WATER_PER_MM``, forward projected with the
(integrating) projector; no noise (the paper's insertion). ``metal_implant="disk"`` with
this model is the paper's Eq. 12 disk.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ctdegradbench.builder.core.geometry import ParallelBeamGeometry
from ctdegradbench.builder.core.protocol import (ANATOMICAL, DEFAULT_ELECTRONIC_VARIANCE, DEFAULT_IMPLANT,
                                                DEFAULT_METAL_I0_PER_MM, IMPLANT_CHOICES, IMPLANT_TYPES, METAL_MODELS)
from ctdegradbench.core.hu import MU_WATER_PER_MM, hu_to_mu
from ctdegradbench.core.levels import check_level
from ctdegradbench.builder.core.seeding import check_seed, derive_seed, numpy_generator, torch_generator
from ctdegradbench.builder.degradations import implants
from ctdegradbench.builder.degradations.base import Degradation, SinogramState, register
from ctdegradbench.builder.degradations.implants import IMPLANT_MATERIAL, METAL_MM_LEVELS, MetalObject
from ctdegradbench.builder.degradations.spectrum import (DEFAULT_SPECTRUM, IMPLANT_MATERIALS, SpectrumSpec, apply_water_correction, effective_water_mu,
                                                         linear_attenuation, mass_attenuation,
                                                         water_correction_coefficients, x_ray_spectrum)

DEFAULT_MATERIAL = "steel"
DEFAULT_MODEL = "polychromatic"
DEFAULT_I0_PER_MM = DEFAULT_METAL_I0_PER_MM   # photons per mm of detector (isocentre) and view, unattenuated
DEFAULT_RAY_I0 = 2e7                 # photons per ray of a MetalSimulator built without a flux
SIGNAL_FLOOR = 1.0                   # smallest reading (photons), keeps the log finite
EXACT_POISSON_BELOW = 1e3            # expected photons below which counts are drawn exactly
N_SUBRAYS = 4                        # sub-rays per detector bin over the aperture (at least)
# Sub-angles per view of the metal shadow (odd, so that they are the uniform grid of
# METAL_VIEW_SUBSAMPLES * n_views "fine" views the metal's increment is reconstructed from,
# see FineViews): 3 x 360 = 1080 views over 180 degrees, the view density of a clinical
# scanner (about 1000-2300 views per rotation). With the apodized kernel below, 3 and 5
# sub-angles leave the same far field (TCGA clip, noise-free, body / air: L0 4.6 / 1.7 vs
# 4.5 / 1.7 HU, L3 18.9 / 10.5 vs 18.7 / 10.3 HU; /work/notes/phys.md) at half the cost.
METAL_VIEW_SUBSAMPLES = 3
# FBP kernel of the metal's fine-view increment: the Hann-windowed ramp. A dense edge has
# detector frequencies up to the bin Nyquist frequency and beyond; an unapodized ramp
# (Ram-Lak) turns them into Nyquist ringing over the whole field (no clinical kernel is
# unapodized). Measured on a TCGA chest slice (3 mm clip, > 40 mm away, noise-free):
# far-field RMS 46.1 HU in air with 360 views, 17.8 with 1800 views (Ram-Lak), 1.7 with
# 1800 (or 1080) views and this kernel.
METAL_FINE_FILTER = "hann"
MIN_SUBRAYS_PER_RADIUS = 12          # more for thin objects: chords integrate to the area within 1 %
CHORD_STEP_PX = 0.5                  # largest integration step along a metal chord (pixels)
BONE_SPLIT_HU = (100.0, 1500.0)      # bone fraction 0 at/below the first, 1 at/above the second


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
    """One metal implant.

    Attributes
    ----------
    level : int
        Severity level 0..3.
    implant : str
        Implant type (:data:`builder.degradations.implants.IMPLANT_TYPES`).
    metal_mm : float
        Steel-equivalent diameter of the implant's metal (mm): the severity parameter.
    material : str
        Metal of every object of the implant.
    objects : tuple of MetalObject
        Shapes, centres (pixels), sizes (mm) and orientations.
    model : {"polychromatic", "monochromatic"}
    seed : int
        Seed of the quantum and electronic noise of the polychromatic scan.
    i0 : float or None
        Incident photons per ray of the polychromatic scan (``None`` for the monochromatic model).
    electronic_variance : float or None
        Electronic noise variance of the polychromatic scan, counts^2 (``None``: monochromatic).
    i0_per_mm : float or None
        The flux per mm of detector that ``i0`` came from.
    placement_seed : int or None
        Seed the implant type and anchors were drawn from (one per reference).
    """

    level: int
    implant: str
    metal_mm: float
    material: str
    objects: tuple
    model: str
    seed: int
    i0: float | None = None
    electronic_variance: float | None = DEFAULT_ELECTRONIC_VARIANCE
    i0_per_mm: float | None = None
    placement_seed: int | None = None

    def __post_init__(self) -> None:
        check_level(self.level)
        _check_choice(self.implant, "implant type", IMPLANT_TYPES)
        object.__setattr__(self, "metal_mm", _positive(self.metal_mm, "metal_mm"))
        _check_choice(self.material, "metal material", IMPLANT_MATERIALS)
        _check_choice(self.model, "metal model", METAL_MODELS)
        if not self.objects or not all(isinstance(o, MetalObject) for o in self.objects):
            raise ValueError(f"objects must be a non-empty sequence of MetalObject, got {self.objects!r}")
        object.__setattr__(self, "objects", tuple(self.objects))
        if self.model == "polychromatic":
            _positive(self.i0, "i0")
        check_seed(self.seed)

    @property
    def area_mm2(self) -> float:
        return float(sum(o.area_mm2 for o in self.objects))


def attenuation_ratio(material: str, spec: SpectrumSpec = DEFAULT_SPECTRUM) -> float:
    """``mu_material / mu_steel`` at the spectrum's effective energy."""
    e_eff = [x_ray_spectrum(spec).effective_energy_kev]
    return float(linear_attenuation(material, e_eff)[0] / linear_attenuation("steel", e_eff)[0])


# ------------------------------------------------------------------ placement
def choose_implant(anatomy, spacing_mm: float, rng: np.random.Generator, implant: str = DEFAULT_IMPLANT,
                   disk_material: str = DEFAULT_MATERIAL) -> tuple[str, str, dict]:
    """``(implant type, material, anchors)`` for a slice: ``implant`` itself, or for ``"anatomical"``
    a type drawn uniformly (``rng.permutation``) among those the anatomy allows that fit.

    Raises ValueError when the requested type (or, for "anatomical", even a disk) has no place.
    """
    _check_choice(implant, "metal implant", IMPLANT_CHOICES)
    order = ([implant] if implant != ANATOMICAL
             else [t for t in np.array(implants.eligible_types(anatomy))[rng.permutation(
                 len(implants.eligible_types(anatomy)))]])
    for kind in order:
        material = disk_material if kind == "disk" else IMPLANT_MATERIAL[kind]
        anchors = implants.place_implant(kind, anatomy, spacing_mm, attenuation_ratio(material), rng)
        if anchors is not None:
            return str(kind), material, anchors
    raise ValueError(f"no place for a {implant if implant != ANATOMICAL else 'metal'} implant on this slice "
                     f"(region {anatomy.region}; femoral heads: {bool(anatomy.hips)}, vertebra: "
                     f"{bool(anatomy.vertebra)}, teeth: {len(anatomy.teeth)}) at {spacing_mm:g} mm per pixel")


def sample_metal(level: int, implant: str, material: str, anchors: dict, pixel_spacing_mm: float, *,
                 model: str = DEFAULT_MODEL, seed: int, i0_per_mm: float = DEFAULT_I0_PER_MM,
                 electronic_variance: float = DEFAULT_ELECTRONIC_VARIANCE,
                 placement_seed: int | None = None) -> MetalParams:
    """The implant of severity ``level`` on its (per-reference) anchors: steel-equivalent
    diameter ``METAL_MM_LEVELS[level]``; ``seed`` for the noise of the polychromatic scan."""
    check_level(level)
    spacing = _positive(pixel_spacing_mm, "pixel_spacing_mm")
    _check_choice(model, "metal model", METAL_MODELS)
    objects = implants.implant_objects(implant, anchors, level, spacing, attenuation_ratio(material))
    polychromatic = model == "polychromatic"
    return MetalParams(level=level, implant=implant, metal_mm=METAL_MM_LEVELS[level], material=material,
                       objects=tuple(objects), model=model, seed=check_seed(seed),
                       i0=float(i0_per_mm) * spacing if polychromatic else None,
                       electronic_variance=float(electronic_variance) if polychromatic else None,
                       i0_per_mm=float(i0_per_mm) if polychromatic else None, placement_seed=placement_seed)


# ------------------------------------------------------------ mask and bbox
def _check_in_image(params: MetalParams, image_size: int, pixel_spacing_mm: float) -> None:
    for obj in params.objects:
        extent = obj.extent_px(pixel_spacing_mm)
        row, col = obj.center_px
        if min(row, col) - extent < -0.5 or max(row, col) + extent > image_size - 0.5:
            raise ValueError(f"metal object (centre {obj.center_px}, extent {extent:.2f} px) does not lie inside the "
                             f"{image_size} x {image_size} image")


def metal_mask(params: MetalParams, image_size: int, pixel_spacing_mm: float) -> np.ndarray:
    """Pixels whose centre lies in any object: bool ``(N, N)``, the paper's ``m(x)``."""
    _check_in_image(params, image_size, pixel_spacing_mm)
    return implants.implant_mask(params.objects, image_size, pixel_spacing_mm)


def metal_bbox(params: MetalParams, image_size: int, pixel_spacing_mm: float) -> tuple[int, int, int, int]:
    """``(x_min, y_min, x_max, y_max)``: inclusive column / row bounds of :func:`metal_mask` (all objects)."""
    rows, cols = np.nonzero(metal_mask(params, image_size, pixel_spacing_mm))
    if rows.size == 0:     # objects thinner than a pixel on a coarse grid: the pixels holding their centres
        rows = np.array([int(round(obj.center_px[0])) for obj in params.objects])
        cols = np.array([int(round(obj.center_px[1])) for obj in params.objects])
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
    """Sub-rays of the detector bins behind the metal.

    ``rays``: flat indices ``view * D + bin`` ``(R,)``; ``views``: their views;
    ``theta``: ``(R, Sa, 1)`` sub-angles (radians); ``t``: ``(R, 1, Sb)`` sub-bin positions
    (bins from the centre bin); ``entry``, ``chord``: per object ``(R, Sa, Sb)`` in pixels.
    """

    rays: torch.Tensor
    views: torch.Tensor
    theta: torch.Tensor
    t: torch.Tensor
    entry: list
    chord: list


@dataclass(frozen=True)
class ShadowReading:
    """Noise-free readings of the rays behind the metal (:meth:`MetalSimulator.shadow_reading`).

    ``rays`` flat indices ``(R,)``; ``transmission`` per energy ``(E, R)`` averaged over each
    bin's sub-rays; ``mean`` and ``sd`` of the reading ``(R,)`` (photons); ``angle_mean`` the
    mean reading per sub-angle ``(R, Sa)`` (averaged over the aperture only).
    """

    rays: torch.Tensor
    transmission: torch.Tensor
    mean: torch.Tensor
    sd: torch.Tensor
    angle_mean: torch.Tensor


@dataclass(frozen=True)
class FineViews:
    """The metal's noise-free increment on the scan's views and on finer views.

    With 360 views a sharp, dense object aliases: FBP smears its edge into a moire of fine
    stripes and arcs farther than about ``1 / (2 B dtheta)`` (115 pixels) from it, over the
    whole field, which no clinical scanner (1000-2300 views per rotation) shows. The
    reconstruction therefore takes the metal's increment from ``fine_factor`` times more
    views: ``FBP(sinogram) + correction``, with ``correction = FBP_fine(fine) - FBP(coarse)``
    (1/mm), so the tissue, the noise and every other degradation keep the scan's views and
    only the metal is seen by the finer ones; the fine views are reconstructed with the
    apodized kernel :data:`METAL_FINE_FILTER` (the metal's edge without Nyquist ringing). ``blur_sigmas``: detector blurs applied after
    the metal (:mod:`builder.degradations.blur`); the correction gets the same Gaussian in
    the image plane (the backprojection of a detector-axis Gaussian is the 2-D Gaussian of
    the same sigma).
    """

    fine: torch.Tensor
    coarse: torch.Tensor
    projector: object
    fine_projector: object
    blur_sigmas: tuple = ()
    cache: dict = field(default_factory=dict, compare=False, repr=False)

    def correction(self, filter_name: str) -> torch.Tensor:
        """``FBP_fine(fine) - FBP(coarse)`` ``(N, N)`` in 1/mm, blurred by ``blur_sigmas`` (computed once per
        filter): ``coarse`` with the scan's kernel ``filter_name``, ``fine`` with :data:`METAL_FINE_FILTER`."""
        if filter_name not in self.cache:
            self.cache[filter_name] = (self.fine_projector.fbp(self.fine, filter_name=METAL_FINE_FILTER)
                                       - self.projector.fbp(self.coarse, filter_name=filter_name))
        image = self.cache[filter_name]
        if self.blur_sigmas:
            from ctdegradbench.builder.degradations.blur import blur_image
            for sigma in self.blur_sigmas:
                image = blur_image(image, sigma)
        return image

    def blurred(self, sigma_bins: float) -> "FineViews":
        """The same increment after a detector blur of ``sigma_bins`` (shares the unblurred cache)."""
        return FineViews(self.fine, self.coarse, self.projector, self.fine_projector,
                         self.blur_sigmas + (float(sigma_bins),), self.cache)


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
    i0 : float
        Incident photons per ray of the polychromatic scan (``metal_i0_per_mm`` times the bin width).
    electronic_variance : float, default 10
        Electronic noise variance of the reading, counts^2.
    spectrum : SpectrumSpec, default 120 kVp W, 2.5 mm Al + 0.1 mm Cu
    n_subrays : int, default 4
        Sub-rays per detector bin over its aperture in the metal shadow; thin objects get more
        (``MIN_SUBRAYS_PER_RADIUS`` per half-width); times the geometry's sub-angles.
    """

    def __init__(self, projector, *, i0: float = DEFAULT_RAY_I0,
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
        self._metal = {m: as_tensor(linear_attenuation(m, energies)) for m in IMPLANT_MATERIALS}  # 1/mm
        self._signal = as_tensor(self.spectrum.signal_weights)
        self._energy_ratio = as_tensor(energies / self.spectrum.mean_energy_kev)
        self._photons = as_tensor(self.spectrum.photon_fractions)
        self._to_output_units = MU_WATER_PER_MM / self.mu_water_eff
        self._output_coefficients = tuple(c * self._to_output_units for c in self.bhc_coefficients)
        # Sub-angles of the metal shadow: METAL_VIEW_SUBSAMPLES midpoints of each view's interval
        # (continuous rotation), which are also the fine views of fine_correction. A geometry
        # whose views integrate less than their interval keeps its own sub-angles, without fine views.
        geometry = self.geometry
        if geometry.view_integration == 1.0:
            self.fine_factor = METAL_VIEW_SUBSAMPLES
            offsets = ((np.arange(self.fine_factor) + 0.5) / self.fine_factor - 0.5) * geometry.view_interval_rad
            self._subangles = geometry.angles_rad[:, None] + offsets[None, :]
        else:
            self.fine_factor = 1
            self._subangles = geometry.subangles_rad
        self._subtheta = torch.as_tensor(self._subangles, dtype=torch.float64, device=self.device)
        self._fine_projector = None

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
    def shadow_rays(self, params: MetalParams) -> ShadowRays:
        """The sub-rays of every detector bin that any object can shadow, with exact chords."""
        geometry = self.geometry
        n, d, spacing = geometry.image_size, geometry.n_detectors, geometry.pixel_spacing_mm
        _check_in_image(params, n, spacing)
        aperture = geometry.detector_aperture
        theta = self._subangles                                                # (V, Sa)
        hit = np.zeros((geometry.n_views, d + 1), dtype=np.int32)
        views = np.arange(geometry.n_views)[:, None].repeat(theta.shape[1], axis=1)
        for obj in params.objects:
            row, col = obj.center_px
            centre_t = (col - n // 2) * np.cos(theta) - (row - n // 2) * np.sin(theta)
            half = implants.projected_half_extent_px(obj, theta, spacing) + 0.5 * aperture
            low = np.floor(centre_t - half + d // 2).astype(np.int64) - 1
            high = np.ceil(centre_t + half + d // 2).astype(np.int64) + 1
            if low.min() < 0 or high.max() >= d:
                raise ValueError(f"metal shadow leaves the detector ({d} bins) for the object at {obj.center_px}")
            np.add.at(hit, (views, low), 1)
            np.add.at(hit, (views, high + 1), -1)
        rays = np.flatnonzero(np.cumsum(hit, axis=1)[:, :d] > 0)
        thinnest = min(min(o.half_axes_px(spacing)) for o in params.objects)
        n_bins = max(self.n_subrays, math.ceil(MIN_SUBRAYS_PER_RADIUS / thinnest)) if aperture > 0 else 1
        offsets = aperture * ((torch.arange(n_bins, dtype=torch.float64, device=self.device) + 0.5) / n_bins - 0.5)
        rays_t = torch.as_tensor(rays, device=self.device)
        v, k = rays_t // d, rays_t % d
        sub_theta = self._subtheta[v][:, :, None]                                  # (R, Sa, 1)
        t = ((k - d // 2).to(torch.float64)[:, None] + offsets)[:, None, :]       # (R, 1, Sb)
        entry, chord = [], []
        for obj in params.objects:
            e, c = implants.chords(obj, sub_theta, t, n, spacing, xp=torch)
            entry.append(e)
            chord.append(c)
        return ShadowRays(rays=rays_t, views=v, theta=sub_theta, t=t, entry=entry, chord=chord)

    def removed_tissue(self, context: MetalContext, rays: ShadowRays, step_px: float = CHORD_STEP_PX) -> torch.Tensor:
        """Water and bone line integrals (g/cm^3 * mm) inside the metal, per sub-ray: ``(2, R, Sa, Sb)``.

        Per ray and object, the mean tissue density along the object's longest sub-ray chord
        in that bin (midpoint rule, ``ceil(longest chord / step_px)`` points, at least 2, on the
        bilinearly interpolated density maps, the projector's image model) times each sub-ray's
        exact chord: the tissue inside an implant is taken as uniform across one bin's
        aperture and view interval (a fraction of a millimetre and half a degree), while the
        metal chords, which carry the artifacts, stay exact per sub-ray.
        """
        geometry = self.geometry
        n, spacing = geometry.image_size, geometry.pixel_spacing_mm
        shape = torch.broadcast_shapes(rays.theta.shape, rays.t.shape)
        removed = torch.zeros((2,) + tuple(shape), dtype=torch.float64, device=self.device)
        theta = rays.theta.expand(shape).reshape(shape[0], -1)
        t = rays.t.expand(shape).reshape(shape[0], -1)
        scale = 2.0 / (n - 1)
        for entry, chord in zip(rays.entry, rays.chord):
            flat = chord.reshape(shape[0], -1)
            longest, pick = flat.max(dim=1)
            hit = longest > 0
            if not bool(hit.any()):
                continue
            pick = pick[hit, None]
            th, tt = theta[hit].gather(1, pick)[:, 0], t[hit].gather(1, pick)[:, 0]
            e0, c = entry.reshape(shape[0], -1)[hit].gather(1, pick)[:, 0], longest[hit]
            n_steps = max(2, int(math.ceil(float(c.max()) / _positive(step_px, "step_px"))))
            xi = (torch.arange(n_steps, dtype=torch.float64, device=self.device) + 0.5) / n_steps
            along = e0[:, None] + c[:, None] * xi                                      # (H, M)
            cos, sin = torch.cos(th)[:, None], torch.sin(th)[:, None]
            x = tt[:, None] * cos + along * sin + n // 2                               # column
            y = -tt[:, None] * sin + along * cos + n // 2                              # row
            grid = torch.stack((scale * x - 1, scale * y - 1), dim=-1).to(torch.float32)[None]
            samples = F.grid_sample(context.densities[None], grid, mode="bilinear", padding_mode="zeros",
                                    align_corners=True)[0]                           # (2, H, M)
            density = samples.mean(dim=-1).to(torch.float64)                            # (2, H) g/cm^3
            removed[:, hit] += density[:, :, None, None] * (chord[hit] * spacing)[None]
        return removed

    def _shadow(self, context: MetalContext, params: MetalParams):
        """Rays in the metal shadow (flat ``(R,)``) and their per-energy transmissions ``(E, R, Sa)``
        per sub-angle, averaged over the sub-bins of each bin's aperture."""
        rays = self.shadow_rays(params)
        tissue = (context.projections.reshape(2, -1)[:, rays.rays][:, :, None, None]
                  - self.removed_tissue(context, rays))                               # (2, R, Sa, Sb)
        chord_mm = sum(rays.chord) * self.geometry.pixel_spacing_mm                     # (R, Sa, Sb)
        metal = self._metal[params.material]
        energy = (-1, 1, 1, 1)
        attenuation = (self._water.view(energy) * tissue[0] + self._bone.view(energy) * tissue[1]
                       + metal.view(energy) * chord_mm)                                 # (E, R, Sa, Sb)
        return rays.rays, torch.exp(-attenuation).mean(dim=-1)

    def shadow_reading(self, context: MetalContext, params: MetalParams) -> "ShadowReading":
        """The noise-free readings of the metal shadow (see :class:`ShadowReading`); depends on the
        implant (objects, material) and the scan, not on ``params.seed``: compute it once per level."""
        if params.model != "polychromatic":
            raise ValueError(f"shadow_reading is the polychromatic scan; got model {params.model!r}")
        rays, per_angle = self._shadow(context, params)
        transmission = per_angle.mean(dim=-1)
        mean = self.i0 * torch.tensordot(self._signal, transmission, dims=1)
        variance = self.i0 * torch.tensordot(self._signal * self._energy_ratio, transmission, dims=1)
        return ShadowReading(rays=rays, transmission=transmission, mean=mean,
                             sd=torch.sqrt(variance + self.electronic_variance),
                             angle_mean=self.i0 * torch.tensordot(self._signal, per_angle, dims=1))

    def _shadow_reading(self, context: MetalContext, params: MetalParams, shadow=None):
        shadow = self.shadow_reading(context, params) if shadow is None else shadow
        return shadow.rays, shadow.transmission, shadow.mean, shadow.sd

    @property
    def fine_projector(self):
        """Projector of the fine views: ``fine_factor * n_views`` instantaneous views over [0, 180)."""
        if self._fine_projector is None:
            g = self.geometry
            fine = ParallelBeamGeometry(g.image_size, g.pixel_spacing_mm, n_views=g.n_views * self.fine_factor,
                                        n_detectors=g.n_detectors, detector_aperture=g.detector_aperture,
                                        view_integration=0.0)
            self._fine_projector = type(self.projector)(fine, device=self.device, dtype=self.projector.dtype,
                                                        backend=self.projector.backend)
        return self._fine_projector

    def fine_views(self, context: MetalContext, params: MetalParams, shadow=None) -> "FineViews | None":
        """The metal's noise-free increment ``d`` (metal scan minus metal-free scan, in the
        output's line-integral units) on the scan's views and on the fine views.

        On the scan's views ``d`` is what :meth:`simulate` adds in the shadow (the log of the
        reading averaged over each view's sub-angles and bin's aperture); on the fine views
        (view ``v``'s sub-angle ``a`` is fine view ``v S + a - S // 2``; the first ``S // 2``
        fall below 0 degrees and are the last fine views with the detector flipped) it is the
        log of the reading at that sub-angle. ``None`` for a geometry without fine views.
        """
        if self.fine_factor == 1:
            return None
        shadow = self.shadow_reading(context, params) if shadow is None else shadow
        n_views, n_det = self.geometry.sinogram_shape
        s = self.fine_factor
        rays = shadow.rays
        metal_free = self._to_line_integrals(context.expected_reading.reshape(-1)[rays].clone())
        coarse = torch.zeros(n_views * n_det, dtype=self.projector.dtype, device=self.device)
        coarse[rays] = self._to_line_integrals(shadow.mean.clamp(min=SIGNAL_FLOOR)) - metal_free
        values = self._to_line_integrals(shadow.angle_mean.clamp(min=SIGNAL_FLOOR)) - metal_free[:, None]
        view = (rays // n_det)[:, None] * s + torch.arange(s, device=self.device) - s // 2       # (R, S)
        bins = (rays % n_det)[:, None].expand(-1, s)
        below = view < 0
        view = torch.where(below, view + n_views * s, view)
        bins = torch.where(below, 2 * (n_det // 2) - bins, bins)
        keep = bins < n_det
        fine = torch.zeros((n_views * s, n_det), dtype=self.projector.dtype, device=self.device)
        fine[view[keep], bins[keep]] = values[keep]
        return FineViews(fine=fine, coarse=coarse.reshape(n_views, n_det), projector=self.projector,
                         fine_projector=self.fine_projector)

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
            rays, _, mean, _ = self._shadow_reading(context, params)
            reading.view(-1)[rays] = mean
        return self._to_line_integrals(reading.clamp_(min=SIGNAL_FLOOR))

    # ---------------------------------------------------------------- sample
    def simulate(self, context: MetalContext, params: MetalParams, shadow: "ShadowReading | None" = None) -> MetalScan:
        """The metal scan of ``params``: line integrals ``(V, D)`` and noise bookkeeping.

        ``shadow``: :meth:`shadow_reading` of ``params`` when already computed. Random draws, in
        this order, from ``torch_generator(params.seed, device)``: one standard normal per ray,
        then the Poisson counts of the starved rays.
        """
        if not isinstance(params, MetalParams):
            raise ValueError(f"params must be MetalParams, got {type(params).__name__}")
        if params.model == "monochromatic":
            return MetalScan(self.monochromatic(context.mu, params), 0, 0)
        rays, transmission, mean, sd = self._shadow_reading(context, params, shadow)
        generator = torch_generator(params.seed, self.device)
        standard = torch.randn(context.expected_reading.shape, generator=generator, dtype=torch.float64,
                               device=self.device)
        reading = torch.addcmul(context.expected_reading, context.reading_sd, standard)
        flat, flat_standard = reading.view(-1), standard.view(-1)
        flat[rays] = mean + sd * flat_standard[rays]
        starved_mask = context.starved.clone().view(-1)
        starved_mask[rays] = mean < EXACT_POISSON_BELOW
        starved = torch.nonzero(starved_mask).squeeze(1)
        if starved.numel():
            flat[starved] = self._exact_reading(context, starved, rays, transmission, flat_standard[starved],
                                                generator)
        clamped = int((reading < SIGNAL_FLOOR).sum())
        reading.clamp_(min=SIGNAL_FLOOR)
        return MetalScan(self._to_line_integrals(reading), clamped, int(starved.numel()))

    def _exact_reading(self, context, starved, rays, transmission, standard, generator) -> torch.Tensor:
        """Readings of the flat ray indices ``starved``: Poisson counts per energy bin, energy weighted."""
        projections = context.projections.reshape(2, -1)[:, starved]
        per_energy = torch.exp(-(self._water[:, None] * projections[0] + self._bone[:, None] * projections[1]))
        position = torch.full((context.expected_reading.numel(),), -1, dtype=torch.long, device=self.device)
        position[rays] = torch.arange(rays.numel(), device=self.device)
        in_shadow = position[starved]
        hit = in_shadow >= 0
        per_energy[:, hit] = transmission[:, in_shadow[hit]]
        counts = torch.poisson(self.i0 * self._photons[:, None] * per_energy, generator=generator)
        return (self._energy_ratio[:, None] * counts).sum(dim=0) + math.sqrt(self.electronic_variance) * standard

    def monochromatic(self, mu: torch.Tensor, params: MetalParams) -> torch.Tensor:
        """Eq. 12: the attenuation map ``mu`` (1/mm, projector dtype) with the metal's pixels set
        to :meth:`metal_mu`, forward projected (needs no :meth:`prepare`)."""
        geometry = self.geometry
        mask = torch.as_tensor(metal_mask(params, geometry.image_size, geometry.pixel_spacing_mm), device=self.device)
        mu_metal = self.metal_mu(params.material)
        image = torch.where(mask, torch.full_like(mu, mu_metal), mu)
        return self.projector(image)

    def sinogram(self, context: MetalContext, params: MetalParams) -> torch.Tensor:
        """Line integrals ``(V, D)`` in the units of ``projector(hu_to_mu(hu))``; see :meth:`simulate`."""
        return self.simulate(context, params).sinogram

    def metal_mu(self, material: str) -> float:
        """The metal's attenuation at ``E_eff`` in ``MU_WATER_PER_MM`` units (1/mm)."""
        _check_choice(material, "metal material", IMPLANT_MATERIALS)
        mu = linear_attenuation(material, [self.spectrum.effective_energy_kev])[0]
        return float(mu * self._to_output_units)

    # -------------------------------------------------------------- metadata
    @property
    def spectrum_description(self) -> str:
        return (f"{self.spectrum_spec.describe()}, energy-integrating detector, "
                f"E_eff {self.spectrum.effective_energy_kev:.1f} keV")


@register
class Metal(Degradation):
    """Metal artifacts: implants scanned polychromatically (or inserted by Eq. 12); see the module docstring."""

    name = "metal"
    title = "metal artifacts"
    parameter = "metal_mm"
    unit = "mm steel-equivalent diameter"
    levels = METAL_MM_LEVELS
    fields = {
        "metal_model": ("str", "polychromatic (default) or monochromatic (paper Eq. 12)"),
        "implant": ("str", "implant type: disk, hip_pair, spine_screws, dental or clip"),
        "metal_mm": ("float", "steel-equivalent diameter of the implant's metal in mm (the severity)"),
        "material": ("str", "metal of the implant: steel, titanium or amalgam"),
        "metal_area_mm2": ("float", "total metal cross-section of the implant in mm^2"),
        "object_shapes": ("str", "comma-separated shape of each metal object (ellipse or rectangle)"),
        "object_centers_px": ("list[float]", "centre (row, col) of each object in pixels, flattened pairs"),
        "object_sizes_mm": ("list[float]", "full length along the object's axis and width across, mm, flattened pairs"),
        "object_angles_deg": ("list[float]", "angle of each object's long axis from the +column axis towards +row"),
        "bbox": ("list[int]", "metal bounding box (x_min, y_min, x_max, y_max) in pixels, inclusive, all objects"),
        "spectrum": ("str", "x-ray spectrum of the polychromatic metal scan"),
        "i0": ("float", "incident photons per ray of the polychromatic metal scan"),
        "i0_per_mm": ("float", "incident photons per mm of detector and view of the polychromatic metal scan"),
        "electronic_variance": ("float", "electronic noise variance of the polychromatic metal scan, counts^2"),
        "placement_seed": ("int", "seed of the implant type and placement, one per reference (fixed across levels)"),
    }
    physics = (
        "**Metal** (Eq. 12 and a polychromatic scan). An implant is chosen from what the slice shows and placed "
        "where such implants sit: a pair of titanium hip stems in the femoral heads (pelvis), two titanium "
        "pedicle screws in a vertebra, amalgam fillings on teeth (head), stainless-steel surgical clips in soft "
        "tissue, or the paper's single steel disk in the body; never in lung or air. The placement is fixed "
        "per reference; a level is a steel-equivalent diameter of 3 / 6 / 10 / 15 mm (cross-section weighted "
        "by attenuation relative to steel: the same metal attenuation per view at a level, whatever the "
        "implant). The scan is polychromatic (120 kVp spekpy spectrum; xraydb attenuation of water, cortical "
        "bone and the metal): beam hardening (dark bands, between two objects too), photon starvation (exact "
        "Poisson counts behind the metal) and the exponential edge-gradient effect (each bin averages "
        "intensities over its aperture and view interval, exact chords per sub-ray), after the scanner's "
        "water beam-hardening correction. The paper's monochromatic insertion (Eq. 12) is an option.")

    @staticmethod
    def _placement(context, config) -> tuple[str, str, dict, int]:
        """``(implant, material, anchors, placement seed)`` of the reference (cached, one per reference)."""
        ref = context.reference
        seed = derive_seed(int(config.seed), ref.reference_id, "metal placement")
        key = ("metal/placement", config.metal_implant, config.metal_material, seed)
        if key not in context.cache:
            spacing = float(ref.pixel_spacing_mm)
            anatomy = implants.find_anatomy(ref.hu, spacing, ref.info.get("body_part"))
            implant, material, anchors = choose_implant(anatomy, spacing, numpy_generator(seed), config.metal_implant,
                                                        config.metal_material)
            context.cache[key] = (implant, material, anchors, seed)
        return context.cache[key]

    @staticmethod
    def scanner(context, params: MetalParams) -> tuple["MetalSimulator", "MetalContext"]:
        """The metal simulator of ``params``' scan settings and its per-reference context (cached)."""
        i0 = DEFAULT_I0_PER_MM * context.geometry.pixel_spacing_mm if params.i0 is None else params.i0
        variance = DEFAULT_ELECTRONIC_VARIANCE if params.electronic_variance is None else params.electronic_variance
        key = ("metal/scanner", i0, variance)
        if key not in context.cache:
            simulator = MetalSimulator(context.projector, i0=i0, electronic_variance=variance)
            context.cache[key] = (simulator, simulator.prepare(context.reference.hu))
        return context.cache[key]

    def sample(self, level, context, seed, config) -> MetalParams:
        implant, material, anchors, placement_seed = self._placement(context, config)
        return sample_metal(level, implant, material, anchors, float(context.reference.pixel_spacing_mm),
                            model=config.metal_model, seed=seed, i0_per_mm=config.metal_i0_per_mm,
                            electronic_variance=config.electronic_variance, placement_seed=placement_seed)

    def apply(self, state: SinogramState, params: MetalParams, context) -> SinogramState:
        if state.sinogram is not context.sinogram or state.views is not None:
            raise ValueError("metal must be the first component: it replaces the clean scan")
        if params.model == "monochromatic":      # Eq. 12 projects the map with metal, not the tissue maps
            key = ("metal/monochromatic",)
            if key not in context.cache:
                context.cache[key] = MetalSimulator(context.projector)
            return state.replace(sinogram=context.cache[key].monochromatic(context.mu, params))
        simulator, metal_context = self.scanner(context, params)
        # The noise-free shadow and the fine views depend on the implant and the level only:
        # computed once per reference and level, shared by every setting and realization.
        key = ("metal/shadow", params.objects, params.material, params.i0, params.electronic_variance)
        if key not in context.cache:
            shadow = simulator.shadow_reading(metal_context, params)
            context.cache[key] = (shadow, simulator.fine_views(metal_context, params, shadow))
        shadow, fine_views = context.cache[key]
        scan = simulator.simulate(metal_context, params, shadow=shadow)
        return state.replace(sinogram=scan.sinogram, clamped_bins=state.clamped_bins + scan.clamped_bins,
                             fine_views=fine_views)

    def record(self, params: MetalParams, context) -> dict:
        geometry = context.geometry
        polychromatic = params.model == "polychromatic"
        return {"seed": params.seed, "metal_model": params.model, "implant": params.implant,
                "metal_mm": float(params.metal_mm), "material": params.material,
                "metal_area_mm2": params.area_mm2,
                "object_shapes": ",".join(o.shape for o in params.objects),
                "object_centers_px": [float(v) for o in params.objects for v in o.center_px],
                "object_sizes_mm": [float(v) for o in params.objects for v in (o.length_mm, o.width_mm)],
                "object_angles_deg": [float(o.angle_deg) for o in params.objects],
                "bbox": list(metal_bbox(params, geometry.image_size, geometry.pixel_spacing_mm)),
                "spectrum": self.scanner(context, params)[0].spectrum_description if polychromatic else None,
                "i0": params.i0, "i0_per_mm": params.i0_per_mm, "electronic_variance": params.electronic_variance,
                "placement_seed": params.placement_seed}

    def params_from_record(self, record: dict) -> MetalParams:
        shapes = record["object_shapes"].split(",")
        centres, sizes, angles = record["object_centers_px"], record["object_sizes_mm"], record["object_angles_deg"]
        objects = tuple(MetalObject(shape, (centres[2 * i], centres[2 * i + 1]), sizes[2 * i], sizes[2 * i + 1],
                                    angles[i]) for i, shape in enumerate(shapes))
        return MetalParams(level=record["level"], implant=record["implant"], metal_mm=record["metal_mm"],
                           material=record["material"], objects=objects, model=record["metal_model"],
                           seed=record["seed"], i0=record["i0"], electronic_variance=record["electronic_variance"],
                           i0_per_mm=record.get("i0_per_mm"), placement_seed=record.get("placement_seed"))

    def phrase(self, record: dict, geometry: dict) -> str:
        x0, y0, x1, y1 = (int(v) for v in record["bbox"])
        words = {"disk": "a metal disk", "hip_pair": "a pair of hip prostheses", "spine_screws": "two pedicle screws",
                 "dental": "dental fillings", "clip": "surgical clips"}[record["implant"]]
        count = len(record["object_shapes"].split(","))
        return (f"metal artifacts from {words} ({record['material']}, {count} object{'s' if count > 1 else ''}, "
                f"{float(record['metal_area_mm2']):.0f} mm^2 of metal, {float(record['metal_mm']):g} mm "
                f"steel-equivalent diameter), bounding box x {x0}-{x1}, y {y0}-{y1}")
