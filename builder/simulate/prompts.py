"""Text: the paper's quality prompts (Table 7) as data, and the structured prompt of a sample.

:data:`HIGH_QUALITY_PROMPTS` and :data:`LOW_QUALITY_PROMPTS` are the prompt sets of the
paper's Table 7, verbatim; they define the semantic quality axis of SeSpeCT (Section 3.1).
Each low-quality prompt describes one degradation type (the keys are the type names of
:mod:`builder.severity`).

:func:`describe` writes the structured natural-language prompt of a degraded sample from its
metadata alone (paper Section 2.4 and Figure 1): the slice, the setting and its overall
severity, then each component in application order with its level and key physical
parameters. It is deterministic: equal metadata give equal text.
"""

from __future__ import annotations

from ctdegradbench.builder.degradations.noise import dose_name
from ctdegradbench.builder.simulate.settings import ALIASING, BLUR, LEVELS, METAL, NOISE, STREAK, get_setting

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

# How each degradation type is named in a sample prompt.
TYPE_NAMES: dict[str, str] = {
    NOISE: "noise",
    BLUR: "loss of sharpness",
    STREAK: "streak artifacts",
    ALIASING: "aliasing artifacts",
    METAL: "metal artifacts",
}

_LEVEL_RANGE = f"L{LEVELS[0]}-L{LEVELS[-1]}"


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def describe_component(component: dict, total_views: int) -> str:
    """One component in words, with its key physical parameters (no level)."""
    kind = component["type"]
    if kind == NOISE:
        return f"photon noise at gamma {float(component['gamma']):g} ({dose_name(component['dose_fraction'])})"
    if kind == BLUR:
        return f"loss of sharpness from a detector blur of sigma {float(component['sigma_bins']):g} bins"
    if kind == STREAK:
        runs = len(component["streak_views"])
        return f"streak artifacts from {runs} sinogram outlier runs of amplitude {float(component['delta_l']):g}"
    if kind == ALIASING:
        return f"sparse-view aliasing from {int(component['n_views'])} of {int(total_views)} views"
    if kind == METAL:
        row, col = (float(v) for v in component["center_px"])
        x0, y0, x1, y1 = (int(v) for v in component["bbox"])
        return (f"metal artifacts from a {float(component['diameter_mm']):g} mm {component['material']} insert "
                f"at (row {row:.0f}, col {col:.0f}), bounding box x {x0}-{x1}, y {y0}-{y1}")
    raise ValueError(f"unknown degradation type {kind!r} in component {component!r}")


def describe(metadata: dict) -> str:
    """The structured prompt of a sample (paper Figure 1), from its metadata alone.

    Example: ``"Axial CT slice (pixel spacing 0.98 mm) with a mixture of metal artifacts and
    noise (M3, overall severity L2 of L0-L3): 1) metal artifacts from a 10 mm steel insert at
    (row 210, col 300), bounding box x 295-305, y 205-215, severity L2; 2) photon noise at
    gamma 2.5 (quarter dose), severity L1."``
    """
    setting = get_setting(metadata["setting"])
    components = sorted(metadata["components"], key=lambda c: c["order"])
    if not components:
        raise ValueError(f"sample {metadata.get('sample_id')!r} has no components to describe")
    total_views = int(metadata["geometry"]["n_views"])
    parts = [f"{i}) {describe_component(c, total_views)}, severity L{int(c['level'])}"
             for i, c in enumerate(components, start=1)]
    names = _join([TYPE_NAMES[c["type"]] for c in components])
    if setting.is_mixture:
        head = f"a mixture of {names} ({setting.code}, overall severity L{int(metadata['level'])} of {_LEVEL_RANGE})"
    else:
        head = f"{names} ({setting.code}, severity L{int(metadata['level'])} of {_LEVEL_RANGE})"
    spacing = float(metadata["pixel_spacing_mm"])
    return f"Axial CT slice (pixel spacing {spacing:.2f} mm) with {head}: " + "; ".join(parts) + "."
