"""The degradation operators, one physical cause per module, and their registry (paper Section
2.3, Eq. 5-12).

Every operator acts on line integrals (the sinogram, ``(V, D)``) before FBP. Each module
defines a frozen parameter dataclass, a sampler that draws every random part from the seed
it is given, a deterministic operator in torch, and its :class:`~.base.Degradation` object in
:data:`REGISTRY` (see :mod:`.base` for what that object declares).

The registered degradations, in registry order, are the keys of :data:`REGISTRY` (each
module below registers one); ``ct-degradbench`` builds tabulate them in the dataset card.
"""

from ctdegradbench.builder.degradations.base import (REGISTRY, Degradation, ScanContext, SinogramState,
                                                     component_fields, get_degradation, make_component)

# Importing a module registers its degradation; the registry keeps this order.
from ctdegradbench.builder.degradations import noise, blur, streak, aliasing, metal, ring  # noqa: E402,F401  isort: skip

__all__ = ["REGISTRY", "Degradation", "ScanContext", "SinogramState", "component_fields", "get_degradation",
           "make_component"]
