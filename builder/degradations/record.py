"""The schema of a degraded sample's metadata: one place, used by the simulator (which
fills it), the prompt writer, the replay and the dataset features (which declare it).

A sample applies one or more *components* (degradation operators) in ``order``. Every
component records its type, its own severity level and every physical parameter drawn for
it; fields that do not apply to a component's type are ``None``. Together with the
reference slice and the geometry, this is enough to replay the sample exactly.
"""

from __future__ import annotations

# name -> (python type, meaning). Lists are lists of the given element type.
COMPONENT_FIELDS: dict[str, tuple[str, str]] = {
    "type": ("str", "degradation type: noise, blur, streak, aliasing or metal"),
    "level": ("int", "this component's severity level, 0..3"),
    "order": ("int", "position in the application order, 0 first"),
    "seed": ("int", "seed of this component's own random draws (noise realisation, streak mask, metal placement and quantum noise)"),
    # noise (Eq. 5-8)
    "gamma": ("float", "residual noise scaling gamma (Eq. 8)"),
    "i0": ("float", "incident photons per detector bin and view, I0 (noise: at full dose; metal: of the polychromatic scan)"),
    "dose_fraction": ("float", "dose fraction alpha (Eq. 5)"),
    "electronic_variance": ("float", "electronic noise variance sigma_e^2, in photon counts^2 (Eq. 6)"),
    "delta": ("float", "log stabiliser delta, in photon counts (Eq. 7)"),
    # blur (Eq. 9)
    "sigma_bins": ("float", "Gaussian blur sigma along the detector axis, in detector bins"),
    # streaks (Eq. 10)
    "delta_l": ("float", "streak outlier amplitude added to the line integrals"),
    "streak_views": ("list[int]", "view index of each streak outlier run"),
    "streak_bins": ("list[int]", "first detector bin of each outlier run"),
    "streak_widths": ("list[int]", "number of detector bins of each outlier run"),
    # aliasing (Eq. 11)
    "n_views": ("int", "number of views kept of the full scan"),
    # metal (Eq. 12 and the polychromatic model)
    "metal_model": ("str", "polychromatic (default) or monochromatic (paper Eq. 12)"),
    "material": ("str", "metal material, e.g. titanium or steel"),
    "diameter_mm": ("float", "metal disk diameter in mm"),
    "center_px": ("list[float]", "metal disk centre (row, col) in pixels"),
    "bbox": ("list[int]", "metal bounding box (x_min, y_min, x_max, y_max) in pixels, inclusive"),
    "spectrum": ("str", "x-ray spectrum of the polychromatic metal model, e.g. '120 kVp W, 2.5 mm Al + 0.1 mm Cu'"),
}


def make_component(**fields) -> dict:
    """A component record with every field of :data:`COMPONENT_FIELDS` (unused ones ``None``)."""
    unknown = set(fields) - set(COMPONENT_FIELDS)
    if unknown:
        raise ValueError(f"unknown component fields {sorted(unknown)}; expected a subset of {list(COMPONENT_FIELDS)}")
    for required in ("type", "level", "order"):
        if fields.get(required) is None:
            raise ValueError(f"component field {required!r} is required, got {fields.get(required)!r}")
    return {name: fields.get(name) for name in COMPONENT_FIELDS}
