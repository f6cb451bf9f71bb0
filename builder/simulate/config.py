"""The simulator's options (:class:`SimulationConfig`), declared once with their defaults, help and
checks, and stored in every sample's metadata (``config``).

Light on purpose (the kernel's ``option()`` and the scan protocol's constants; torch only inside
the device and backend checks), so ``ct-degradbench build --help`` and a bad option answer
without importing torch or the physics (:mod:`ctdegradbench.builder.simulate.simulator`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ctdegradbench.builder.core.protocol import (BACKENDS, DEFAULT_DELTA, DEFAULT_DOSE_FRACTION,
                                                DEFAULT_ELECTRONIC_VARIANCE, DEFAULT_FBP_FILTER, DEFAULT_I0_PER_MM,
                                                DEFAULT_IMPLANT, DEFAULT_METAL_I0_PER_MM, DEFAULT_STREAK_FRACTION,
                                                DTYPE_NAMES, FILTERS, IMPLANT_CHOICES, METAL_MATERIALS, METAL_MODELS)
from ctdegradbench.builder.core.seeding import SEED_BITS, check_seed
from ctdegradbench.core.errors import OptionError
from ctdegradbench.core.options import check_declared, option


def check_device(device) -> str:
    """The canonical name of a torch device this machine has; OptionError otherwise (imports torch)."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise OptionError(f"--device must name a torch device such as cpu, cuda or cuda:1, got {device!r}") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise OptionError(f"--device {device}: no CUDA GPU is available on this machine; use --device cpu")
        if parsed.index is not None and parsed.index >= count:
            raise OptionError(f"--device {device}: this machine has {count} CUDA device(s), 0..{count - 1}")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise OptionError(f"--device {device}: MPS is not available on this machine; use --device cpu")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise OptionError(f"--device {device}: the simulator runs on cpu, cuda or mps devices")
    return str(parsed)


@dataclass(frozen=True)
class SimulationConfig:
    """Options of the simulator; stored in every sample's metadata (``config``).

    Parameters
    ----------
    seed : int, default 0
        Root of every random draw (with the sample id), 0 <= seed < 2**63.
    realizations : int, default 1
        Degraded realizations per reference, setting and level.
    device : str, default "cpu"
        Torch device of the projector and the operators.
    dtype : {"float32", "float64"}, default "float32"
        Floating type of the mu map, sinograms and reconstructions.
    backend : str, default "auto"
        Projector backend (``ParallelBeamProjector(backend=...)``); "auto" lets the projector
        choose for the device, and the resolved name is recorded as ``backend``.
    fbp_filter : {"ram-lak", "shepp-logan", "hann"}, default DEFAULT_FBP_FILTER
        FBP ramp filter (the reconstruction kernel), recorded per row as ``fbp_filter``.
    i0_per_mm : float, default 9.1e6
        Incident photons per mm of detector (at the isocentre) and view at full dose (noise,
        Eq. 5); a bin of width ``pixel_spacing_mm`` receives ``i0_per_mm * pixel_spacing_mm``.
    dose_fraction : float, default 0.25
        Dose fraction alpha of the low-dose scan (quarter dose).
    electronic_variance : float, default 10
        Electronic noise variance sigma_e^2 in counts^2 (Eq. 6).
    delta : float, default 1
        Log stabiliser in counts (Eq. 7).
    streak_fraction : float, default 0.002
        Fraction of the object's rays that are photon-starved (the highest line integrals;
        the mask M of Eq. 10), the same at every level, in (0, 1].
    metal_material : str, default "steel"
        Metal of the ``disk`` implant (see ``builder.degradations.metal``); the other implants
        have their own (titanium hips and screws, amalgam fillings, steel clips).
    metal_model : {"polychromatic", "monochromatic"}, default "polychromatic"
        Metal physics: polychromatic with beam hardening, or the paper's Eq. 12 alone.
    metal_i0_per_mm : float, default 2.9e7
        Incident photons per mm of detector and view of the polychromatic metal scan.
    metal_implant : str, default "anatomical"
        The implant of the metal settings: "anatomical" (a type drawn among those the slice's
        anatomy allows) or one type: "disk" (the paper's), "hip_pair", "spine_screws",
        "dental", "clip".
    """

    seed: int = option(0, "root seed of every random draw and of the patient split", minimum=0)
    realizations: int = option(1, "degraded realizations per reference, setting and level", minimum=1)
    device: str = option("cpu", "torch device of the simulator (cpu, cuda, cuda:1, ...)")
    dtype: str = option("float32", "floating type of the simulation", choices=DTYPE_NAMES)
    backend: str = option("auto", "projector backend ('auto' picks nufft on the CPU, interp on a GPU)",
                          choices=("auto",) + BACKENDS)
    fbp_filter: str = option(DEFAULT_FBP_FILTER, "FBP ramp filter", choices=FILTERS)
    i0_per_mm: float = option(DEFAULT_I0_PER_MM, "incident photons per mm of detector and view at full dose "
                              "(noise)", above=0)
    dose_fraction: float = option(DEFAULT_DOSE_FRACTION, "dose fraction alpha of the low-dose scan", above=0,
                                  maximum=1)
    electronic_variance: float = option(DEFAULT_ELECTRONIC_VARIANCE, "electronic noise variance, counts^2", minimum=0,
                                        cli=False)
    delta: float = option(DEFAULT_DELTA, "log stabiliser, counts", above=0, cli=False)
    streak_fraction: float = option(DEFAULT_STREAK_FRACTION, "fraction of the object's rays that are photon-starved "
                                    "(streaks)", above=0, maximum=1)
    metal_material: str = option("steel", "metal of the disk implant", choices=METAL_MATERIALS)
    metal_model: str = option("polychromatic", "metal physics: polychromatic scan or the paper's Eq. 12 insertion",
                              choices=METAL_MODELS)
    metal_i0_per_mm: float = option(DEFAULT_METAL_I0_PER_MM, "incident photons per mm of detector and view of the "
                                    "polychromatic metal scan", above=1)
    metal_implant: str = option(DEFAULT_IMPLANT, "implant of the metal settings: 'anatomical' (drawn from what the "
                                "slice shows) or one type", choices=IMPLANT_CHOICES)

    def __post_init__(self) -> None:
        """Every check once (the declared ranges and choices); the device and backend, which need torch, last."""
        try:
            check_seed(self.seed)
        except ValueError:
            raise OptionError(f"--seed must be an integer in [0, 2**{SEED_BITS}), got {self.seed!r}") from None
        check_declared(self)
        if self.device == "cpu" and self.backend in ("auto", "interp"):
            return                     # valid on every machine: no need to import torch to say so
        object.__setattr__(self, "device", check_device(self.device))
        import torch

        from ctdegradbench.builder.projector import resolve_backend

        try:
            resolve_backend(self.backend, torch.device(self.device))
        except ValueError as exc:
            raise OptionError(f"--backend {self.backend}: {exc}") from None

    @property
    def torch_dtype(self) -> "torch.dtype":
        """The torch floating type named by :attr:`dtype`."""
        import torch

        return getattr(torch, self.dtype)

    def to_dict(self) -> dict:
        """Plain-typed copy of every field (``SimulationConfig(**d)`` rebuilds it)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "SimulationConfig":
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise OptionError(f"unknown SimulationConfig fields {sorted(unknown)}")
        return cls(**values)
