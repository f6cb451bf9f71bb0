"""X-ray spectra, material attenuation and the water beam-hardening correction.

These are the energy-dependent physics of the polychromatic metal model
(:mod:`builder.degradations.metal`); they come from the field's libraries, computed offline:

* **Spectrum** (``spekpy``, Poludniowski et al. 2021): a tungsten-anode tube at 120 kVp,
  12 degree anode angle, filtered by 2.5 mm Al + 0.1 mm Cu (the default
  :class:`SpectrumSpec`). Its photon-fluence spectrum (0.5 keV steps) is summed into
  20 bins of 5 keV from 20 to 120 keV; each bin is represented by its fluence-weighted mean
  energy. The fluence below 20 keV (0.02 % after this filtration) is dropped and reported as
  :attr:`Spectrum.dropped_fraction`. Mean photon energy: 59.8 keV.
* **Detector**: energy integrating, as in clinical CT. A photon of energy ``E`` adds
  ``E / E_mean`` to the reading (photon-equivalent units, so the unattenuated reading is the
  number of incident photons ``I0``). The detected-signal weights are
  ``s_E = w_E E / E_mean`` (``w_E``: photon fractions), and the spectrum's **effective
  energy** is the mean energy of the detected signal, ``E_eff = sum s_E E = <E^2> / <E>``
  (66.2 keV for the default spectrum). Monochromatic quantities of the polychromatic model
  (the water correction's target, HU, the monochromatic metal insertion) are taken at
  ``E_eff``; there water has ``mu = 0.01972 /mm``.
* **Attenuation** (``xraydb``, Elam tables, total cross section including coherent
  scattering): mass attenuation ``mu/rho`` in cm^2/g of a material is the mass-fraction
  weighted sum of its elements' (the mixture rule). Materials (:data:`MATERIALS`): water;
  ICRU-44 cortical bone (1.92 g/cm^3; mass fractions H 3.4, C 15.5, N 4.2, O 43.5, Na 0.1,
  Mg 0.2, P 10.3, S 0.3, Ca 22.5 %); titanium (4.5 g/cm^3, e.g. dental and spinal implants);
  steel, modelled as pure iron at 7.87 g/cm^3 (stainless steel is about 65-70 % Fe with Cr
  and Ni of similar atomic number; iron is the usual stand-in); dental amalgam (Hg 50, Ag 35,
  Sn 12, Cu 3 % by mass, 11.6 g/cm^3).
* **Water beam-hardening correction** (the scanner's water precorrection): a polynomial
  ``p_mono = sum_{k=1..4} c_k p_poly^k`` fitted once per spectrum, by least squares on water
  paths of 0..500 mm, that maps polychromatic water line integrals
  ``p_poly(L) = -log(sum_E s_E exp(-mu_water(E) L))`` to monochromatic ones
  ``mu_water(E_eff) L``. Its largest error on that range is 0.0012 (0.012 % of the line
  integral of a 500 mm path; measured, and checked in ``tests/test_metal.py``).

Units: energies in keV, mass attenuation in cm^2/g, densities in g/cm^3, linear attenuation
in 1/mm (``mu [1/mm] = (mu/rho) [cm^2/g] * rho [g/cm^3] / 10``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Water paths over which the beam-hardening polynomial is fitted (mm): beyond the widest
# patient (about 450 mm laterally) so every tissue ray lies in the fitted range.
BHC_FIT_MAX_WATER_MM = 500.0
BHC_ORDER = 4


@dataclass(frozen=True)
class SpectrumSpec:
    """An x-ray tube spectrum and its energy binning.

    Parameters
    ----------
    kvp : float, default 120
        Tube voltage in kV (spekpy supports 30-150 kV for tungsten).
    anode_angle_deg : float, default 12
        Anode (target) angle in degrees.
    filters : tuple of (str, float), default (("Al", 2.5), ("Cu", 0.1))
        Added filtration: element symbol (as spekpy names it) and thickness in mm.
    e_min_kev, e_max_kev : float, default 20 and 120
        Energy range kept; photons outside it are dropped (their fraction is reported).
    bin_kev : float, default 5
        Width of the energy bins.
    """

    kvp: float = 120.0
    anode_angle_deg: float = 12.0
    filters: tuple[tuple[str, float], ...] = (("Al", 2.5), ("Cu", 0.1))
    e_min_kev: float = 20.0
    e_max_kev: float = 120.0
    bin_kev: float = 5.0

    def __post_init__(self) -> None:
        for name in ("kvp", "anode_angle_deg", "e_min_kev", "e_max_kev", "bin_kev"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if not self.e_min_kev < self.e_max_kev <= self.kvp:
            raise ValueError(f"energy range must satisfy 0 < e_min_kev < e_max_kev <= kvp, got "
                             f"{self.e_min_kev!r}, {self.e_max_kev!r}, kvp {self.kvp!r}")
        n_bins = (self.e_max_kev - self.e_min_kev) / self.bin_kev
        if abs(n_bins - round(n_bins)) > 1e-9 or round(n_bins) < 1:
            raise ValueError(f"bin_kev {self.bin_kev!r} must divide the energy range "
                             f"[{self.e_min_kev!r}, {self.e_max_kev!r}] into whole bins")
        for item in self.filters:
            if (not isinstance(item, tuple) or len(item) != 2 or not isinstance(item[0], str)
                    or not isinstance(item[1], (int, float)) or not item[1] >= 0):
                raise ValueError(f"filters must be (element, thickness_mm >= 0) pairs, got {item!r}")

    @property
    def n_bins(self) -> int:
        return int(round((self.e_max_kev - self.e_min_kev) / self.bin_kev))

    def describe(self) -> str:
        """Plain description stored in metadata, e.g. ``'120 kVp W 12 deg, 2.5 mm Al + 0.1 mm Cu, ...'``."""
        filters = " + ".join(f"{t:g} mm {el}" for el, t in self.filters) or "no added filtration"
        return (f"{self.kvp:g} kVp W {self.anode_angle_deg:g} deg, {filters}, "
                f"{self.n_bins} x {self.bin_kev:g} keV bins {self.e_min_kev:g}-{self.e_max_kev:g} keV (spekpy)")


DEFAULT_SPECTRUM = SpectrumSpec()


@dataclass(frozen=True)
class Spectrum:
    """A binned spectrum as the simulator uses it.

    Attributes
    ----------
    spec : SpectrumSpec
    energies_kev : ndarray (n,)
        Fluence-weighted mean energy of each bin.
    photon_fractions : ndarray (n,)
        ``w_E``: fraction of the incident photons in each bin (sums to 1).
    signal_weights : ndarray (n,)
        ``s_E = w_E E / E_mean``: fraction of the energy-integrating detector's unattenuated
        reading from each bin (sums to 1).
    mean_energy_kev : float
        ``E_mean = sum w_E E`` (incident photons).
    effective_energy_kev : float
        ``E_eff = sum s_E E``: mean energy of the detected signal.
    dropped_fraction : float
        Fraction of spekpy's photon fluence outside ``[e_min_kev, e_max_kev)``.
    """

    spec: SpectrumSpec
    energies_kev: np.ndarray
    photon_fractions: np.ndarray
    signal_weights: np.ndarray
    mean_energy_kev: float
    effective_energy_kev: float
    dropped_fraction: float

    @property
    def description(self) -> str:
        return self.spec.describe()


def x_ray_spectrum(spec: SpectrumSpec = DEFAULT_SPECTRUM) -> Spectrum:
    """The binned spectrum of ``spec`` from spekpy (computed once per spec and process: about 2 s)."""
    if not isinstance(spec, SpectrumSpec):
        raise ValueError(f"spec must be a SpectrumSpec, got {type(spec).__name__}")
    return _x_ray_spectrum(spec)


@lru_cache(maxsize=8)
def _x_ray_spectrum(spec: SpectrumSpec) -> Spectrum:
    import spekpy

    tube = spekpy.Spek(kvp=float(spec.kvp), th=float(spec.anode_angle_deg))
    for element, thickness in spec.filters:
        if thickness > 0:
            tube.filter(element, float(thickness))
    k, fluence = tube.get_spectrum(edges=False, diff=False)   # photons per 0.5 keV step, at step centres
    k, fluence = np.asarray(k, dtype=np.float64), np.asarray(fluence, dtype=np.float64)
    edges = spec.e_min_kev + spec.bin_kev * np.arange(spec.n_bins + 1)
    index = np.searchsorted(edges, k, side="right") - 1
    kept = (index >= 0) & (index < spec.n_bins)
    counts = np.bincount(index[kept], weights=fluence[kept], minlength=spec.n_bins)
    if np.any(counts <= 0):
        empty = edges[:-1][counts <= 0].tolist()
        raise ValueError(f"spectrum {spec.describe()!r} has no photons in the bins starting at {empty} keV")
    energies = np.bincount(index[kept], weights=fluence[kept] * k[kept], minlength=spec.n_bins) / counts
    photon_fractions = counts / counts.sum()
    mean_energy = float(np.sum(photon_fractions * energies))
    signal_weights = photon_fractions * energies / mean_energy
    return Spectrum(spec=spec, energies_kev=energies, photon_fractions=photon_fractions,
                    signal_weights=signal_weights, mean_energy_kev=mean_energy,
                    effective_energy_kev=float(np.sum(signal_weights * energies)),
                    dropped_fraction=float(fluence[~kept].sum() / fluence.sum()))


@dataclass(frozen=True)
class Material:
    """An attenuating material: elemental mass fractions (summing to 1) and density."""

    name: str
    mass_fractions: tuple[tuple[str, float], ...]
    density_g_cm3: float
    note: str


MATERIALS: dict[str, Material] = {m.name: m for m in (
    Material("water", (("H", 0.111894), ("O", 0.888106)), 1.0, "H2O"),
    Material("bone", (("H", 0.034), ("C", 0.155), ("N", 0.042), ("O", 0.435), ("Na", 0.001), ("Mg", 0.002),
                      ("P", 0.103), ("S", 0.003), ("Ca", 0.225)), 1.92, "ICRU-44 cortical bone"),
    Material("titanium", (("Ti", 1.0),), 4.5, "titanium (implants)"),
    Material("steel", (("Fe", 1.0),), 7.87, "iron as a steel stand-in"),
    Material("amalgam", (("Hg", 0.50), ("Ag", 0.35), ("Sn", 0.12), ("Cu", 0.03)), 11.6, "dental amalgam"),
)}
IMPLANT_MATERIALS: tuple[str, ...] = ("steel", "titanium", "amalgam")   # every metal an implant may be


def get_material(name: str) -> Material:
    """The :class:`Material` called ``name``; ValueError naming the known ones otherwise."""
    if not isinstance(name, str) or name not in MATERIALS:
        raise ValueError(f"unknown material {name!r}; expected one of {tuple(MATERIALS)}")
    return MATERIALS[name]


@lru_cache(maxsize=64)
def _mass_attenuation_cached(name: str, energies_kev: tuple[float, ...]) -> np.ndarray:
    import xraydb

    energies_ev = 1000.0 * np.asarray(energies_kev, dtype=np.float64)
    total = np.zeros_like(energies_ev)
    for element, fraction in get_material(name).mass_fractions:
        total += fraction * np.asarray(xraydb.mu_elam(element, energies_ev, kind="total"), dtype=np.float64)
    total.setflags(write=False)
    return total


def mass_attenuation(name: str, energies_kev) -> np.ndarray:
    """Mass attenuation ``mu/rho`` (cm^2/g) of material ``name`` at ``energies_kev`` (keV, 1-D)."""
    energies = np.atleast_1d(np.asarray(energies_kev, dtype=np.float64))
    if energies.ndim != 1 or not np.all(np.isfinite(energies)) or np.any(energies < 1.0) or np.any(energies > 1000.0):
        raise ValueError(f"energies must be a 1-D array of keV values in [1, 1000], got {energies_kev!r}")
    return _mass_attenuation_cached(name, tuple(energies.tolist())).copy()


def linear_attenuation(name: str, energies_kev, density_g_cm3: float | None = None) -> np.ndarray:
    """Linear attenuation (1/mm) of material ``name`` at its own density (or ``density_g_cm3``)."""
    density = get_material(name).density_g_cm3 if density_g_cm3 is None else density_g_cm3
    if isinstance(density, bool) or not isinstance(density, (int, float)) or not density > 0:
        raise ValueError(f"density_g_cm3 must be a positive number, got {density_g_cm3!r}")
    return mass_attenuation(name, energies_kev) * float(density) / 10.0


def polychromatic_water_line_integral(spectrum: Spectrum, water_mm) -> np.ndarray:
    """``p_poly(L) = -log(sum_E s_E exp(-mu_water(E) L))`` for water paths ``L`` (mm)."""
    length = np.asarray(water_mm, dtype=np.float64)
    mu = linear_attenuation("water", spectrum.energies_kev)
    transmission = np.tensordot(spectrum.signal_weights, np.exp(-np.multiply.outer(mu, length)), axes=1)
    return -np.log(transmission)


def water_correction_coefficients(spec: SpectrumSpec = DEFAULT_SPECTRUM) -> tuple[float, ...]:
    """``(c_1, .., c_4)`` of the water beam-hardening correction ``p_mono = sum_k c_k p_poly^k``.

    Least squares on 2001 water paths uniformly spaced over ``[0, BHC_FIT_MAX_WATER_MM]``;
    the target is ``mu_water(E_eff) L``. No constant term, so no attenuation maps to none.
    Computed once per spec.
    """
    return _water_correction_coefficients(x_ray_spectrum(spec).spec)


@lru_cache(maxsize=8)
def _water_correction_coefficients(spec: SpectrumSpec) -> tuple[float, ...]:
    spectrum = x_ray_spectrum(spec)
    length = np.linspace(0.0, BHC_FIT_MAX_WATER_MM, 2001)
    p_poly = polychromatic_water_line_integral(spectrum, length)
    target = effective_water_mu(spec) * length
    design = np.stack([p_poly ** k for k in range(1, BHC_ORDER + 1)], axis=1)
    coefficients, *_ = np.linalg.lstsq(design, target, rcond=None)
    return tuple(float(c) for c in coefficients)


def effective_water_mu(spec: SpectrumSpec = DEFAULT_SPECTRUM) -> float:
    """``mu_water(E_eff)`` in 1/mm: the attenuation that water has in the corrected images."""
    spectrum = x_ray_spectrum(spec)
    return float(linear_attenuation("water", [spectrum.effective_energy_kev])[0])


def apply_water_correction(p_poly, coefficients):
    """Evaluate ``sum_k c_k p^k`` (Horner) on a numpy array or torch tensor."""
    result = 0.0 * p_poly
    for c in reversed(coefficients):
        result = (result + c) * p_poly
    return result
