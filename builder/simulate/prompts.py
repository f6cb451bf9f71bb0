"""Text: the paper's quality prompts (Table 7) as data, and the structured prompt of a sample.

:data:`HIGH_QUALITY_PROMPTS` and :data:`LOW_QUALITY_PROMPTS` are the prompt sets of the
paper's Table 7, verbatim; they define the semantic quality axis of SeSpeCT (Section 3.1).
Each low-quality prompt describes one of the paper's degradation types (keyed by its
registry name).

:func:`describe` writes the structured natural-language prompt of a degraded sample from its
metadata alone (paper Section 2.4 and Figure 1): the slice, the setting and its overall
severity, then each component in application order with its level and key physical
parameters (each degradation's own ``phrase``, see :mod:`ctdegradbench.builder.degradations`).
It is deterministic: equal metadata give equal text.
"""

from __future__ import annotations

from ctdegradbench.core.levels import LEVELS
from ctdegradbench.builder.degradations import get_degradation
from ctdegradbench.builder.simulate.settings import ALIASING, BLUR, METAL, NOISE, STREAK, get_setting

# Paper Table 7, high-quality prompts (H), in order.
HIGH_QUALITY_PROMPTS: tuple[str, ...] = (
    "Axial abdominal CT slice with excellent diagnostic quality, sharp boundaries, clear organ detail, "
    "and no visible artifacts.",
    "Diagnostic abdominal CT with clear anatomical structures, low noise, high contrast, and no streak artifacts.",
    "High-quality CT image with sharp edges, clean appearance, and good visibility of abdominal organs.",
)

# Paper Table 7, low-quality prompts (L), in order, keyed by the degradation type each describes.
LOW_QUALITY_PROMPTS: dict[str, str] = {
    NOISE: "Abdominal CT slice with severe noise and grainy appearance that reduces visibility of "
           "anatomical structures.",
    BLUR: "Abdominal CT slice with strong blur and significant loss of sharpness.",
    STREAK: "Abdominal CT slice with strong streak artifacts and reduced diagnostic quality.",
    ALIASING: "Abdominal CT slice with sparse-view aliasing artifacts and distorted anatomical structures.",
    METAL: "Abdominal CT slice with strong metal artifacts causing bright streaks and severe image corruption.",
}

_LEVEL_RANGE = f"L{LEVELS[0]}-L{LEVELS[-1]}"


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def describe(metadata: dict) -> str:
    """The structured prompt of a sample (paper Figure 1), from its metadata alone.

    Each component states its physical parameters in physical units (mm, the dose fraction):

    >>> noise = {"type": "noise", "level": 1, "order": 0, "gamma": 2.0, "dose_fraction": 0.25}
    >>> describe({"setting": "S1", "level": 1, "pixel_spacing_mm": 0.98, "geometry": {"n_views": 360},
    ...           "components": [noise]})
    'Axial CT slice (pixel spacing 0.98 mm) with noise (S1, severity L1 of L0-L3): 1) photon noise at gamma 2 on a 1/4 of the full dose scan, the quantum noise of 1/16 of the full dose (alpha / gamma^2), severity L1.'
    >>> blur = {"type": "blur", "level": 2, "order": 0, "sigma_mm": 1.05, "sigma_bins": 1.5}
    >>> describe({"setting": "S2", "level": 2, "pixel_spacing_mm": 0.70, "geometry": {"n_views": 360},
    ...           "components": [blur]})
    'Axial CT slice (pixel spacing 0.70 mm) with loss of sharpness (S2, severity L2 of L0-L3): 1) loss of sharpness from a detector blur of sigma 1.05 mm (1.50 detector bins), severity L2.'
    """
    setting = get_setting(metadata["setting"])
    components = sorted(metadata["components"], key=lambda c: c["order"])
    if not components:
        raise ValueError(f"sample {metadata.get('sample_id')!r} has no components to describe")
    geometry = metadata["geometry"]
    parts = [f"{i}) {get_degradation(c['type']).phrase(c, geometry)}, severity L{int(c['level'])}"
             for i, c in enumerate(components, start=1)]
    names = _join([get_degradation(c["type"]).title for c in components])
    if setting.is_mixture:
        head = f"a mixture of {names} ({setting.code}, overall severity L{int(metadata['level'])} of {_LEVEL_RANGE})"
    else:
        head = f"{names} ({setting.code}, severity L{int(metadata['level'])} of {_LEVEL_RANGE})"
    spacing = float(metadata["pixel_spacing_mm"])
    return f"Axial CT slice (pixel spacing {spacing:.2f} mm) with {head}: " + "; ".join(parts) + "."
