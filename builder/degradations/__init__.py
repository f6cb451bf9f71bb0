"""The degradation operators, one physical cause per module, and their registry (paper Section
2.3, Eq. 5-12).

Every operator acts on line integrals (the sinogram, ``(V, D)``) before FBP. Each module
defines a frozen parameter dataclass, a sampler that draws every random part from the seed
it is given, a deterministic operator in torch, and its :class:`~.base.Degradation` object in
:data:`REGISTRY` (see :mod:`.base` for what that object declares).

==========  =================  =========================================================
module      cause              operator
==========  =================  =========================================================
noise       low photon counts  mixed Poisson-Gaussian counts, log, residual scaling gamma
blur        detector response  1-D Gaussian along the detector axis
streak      photon starvation  s + dL * M, M a seeded set of outlier runs in the shadow
aliasing    sparse views       keep N evenly spaced views of the 360
metal       metal implants     metal scanned with a polychromatic beam (or Eq. 12)
==========  =================  =========================================================
"""

from ctdegradbench.builder.degradations.base import (REGISTRY, Degradation, ScanContext, SinogramState,
                                                     component_fields, get_degradation, make_component)

# Importing a module registers its degradation; the registry keeps this order.
from ctdegradbench.builder.degradations import noise, blur, streak, aliasing, metal  # noqa: E402,F401  isort: skip

__all__ = ["REGISTRY", "Degradation", "ScanContext", "SinogramState", "component_fields", "get_degradation",
           "make_component"]
