"""Table 7 prompts as data, and the structured prompt of a sample (paper Figure 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctdegradbench.builder.core.geometry import ParallelBeamGeometry
from ctdegradbench.builder.degradations import REGISTRY, component_fields
from ctdegradbench.builder.simulate.prompts import HIGH_QUALITY_PROMPTS, LOW_QUALITY_PROMPTS, describe
from ctdegradbench.builder.simulate.settings import METAL, PAPER_SETTINGS

PAPER = Path(__file__).resolve().parents[1].parent / "shared" / "paper" / "ct-degradbench-paper.txt"


def test_table7_prompts_are_verbatim_from_the_paper():
    if not PAPER.is_file():
        pytest.skip(f"the paper's text {PAPER} is absent")
    text = PAPER.read_text(encoding="utf-8")
    assert len(HIGH_QUALITY_PROMPTS) == 3 and len(LOW_QUALITY_PROMPTS) == 5
    for i, prompt in enumerate(HIGH_QUALITY_PROMPTS, start=1):
        assert f"{i}. {prompt}" in text
    for i, prompt in enumerate(LOW_QUALITY_PROMPTS.values(), start=1):
        assert f"{i}. {prompt}" in text


def test_low_quality_prompts_cover_every_degradation_type():
    assert set(LOW_QUALITY_PROMPTS) == {kind for setting in PAPER_SETTINGS for kind in setting.components}
    keywords = {"noise": "noise", "blur": "blur", "streak": "streak", "aliasing": "aliasing", "metal": "metal"}
    for kind, prompt in LOW_QUALITY_PROMPTS.items():
        assert keywords[kind] in prompt.lower()


# One recorded parameter set per type (as the simulator records them).
FIELDS = {
    "noise": dict(seed=3, gamma=2.0, i0=6.4e6, i0_per_mm=9.1e6, dose_fraction=0.25, effective_dose_fraction=1 / 16,
                  electronic_variance=10.0, delta=1.0),
    "blur": dict(sigma_mm=1.05, sigma_bins=1.0752),
    "streak": dict(seed=4, streak_photons=1.2, delta_l=1.0, streak_fraction=0.02, streak_threshold=7.5,
                   streak_electronic_variance=10.0, streak_delta=1.0),
    "aliasing": dict(n_views=90),
    "metal": dict(seed=9, metal_model="polychromatic", implant="hip_pair", material="titanium", metal_mm=6.0,
                  metal_area_mm2=76.6, object_shapes="ellipse,ellipse", object_centers_px=[210.0, 100.0, 210.0, 300.0],
                  object_sizes_mm=[7.0, 7.0, 7.0, 7.0], object_angles_deg=[0.0, 0.0],
                  bbox=[97, 207, 303, 213], spectrum="120 kVp W", i0=2e7, i0_per_mm=2.9e7, electronic_variance=10.0),
}


def components_for(setting) -> list[dict]:
    """One component record per type of ``setting`` in its order, each at its own level."""
    empty = dict.fromkeys(component_fields())
    return [dict(empty, type=kind, level=order % 4, order=order, **FIELDS[kind])
            for order, kind in enumerate(setting.components)]


def metadata_for(setting, level: int = 2) -> dict:
    return {"sample_id": f"ref/{setting.code}/L{level}/r0", "setting": setting.code, "class_name": setting.class_name,
            "level": level, "pixel_spacing_mm": 0.9765625, "geometry": ParallelBeamGeometry(512, 0.9765625).to_dict(),
            "components": components_for(setting)}


KEY_PARAMETER = {
    "noise": lambda c: f"gamma {c['gamma']:g}",
    "blur": lambda c: f"sigma {c['sigma_mm']:g} mm",
    "streak": lambda c: f"starved to {c['streak_photons']:g} photons",
    "aliasing": lambda c: f"{c['n_views']} of 360 views",
    "metal": lambda c: f"{c['material']}, 2 objects, 77 mm^2 of metal, {c['metal_mm']:g} mm steel-equivalent",
}


@pytest.mark.parametrize("setting", PAPER_SETTINGS, ids=lambda s: s.code)
def test_prompt_mentions_setting_components_levels_and_parameters(setting):
    meta = metadata_for(setting)
    prompt = describe(meta)
    assert prompt.startswith("Axial CT slice (pixel spacing 0.98 mm)")
    assert f"({setting.code}, " in prompt and "severity L2 of L0-L3" in prompt
    position = 0
    for i, component in enumerate(meta["components"], start=1):
        part = prompt.index(f"{i}) ", position)            # components listed in application order
        assert REGISTRY[component["type"]].title in prompt
        assert KEY_PARAMETER[component["type"]](component) in prompt[part:]
        assert f"severity L{component['level']}" in prompt[part:]
        position = part
    if METAL in setting.components:
        assert "pair of hip prostheses" in prompt and "x 97-303, y 207-213" in prompt
    if setting.is_mixture:
        assert "mixture of" in prompt


def test_prompt_is_deterministic_and_order_independent_of_the_list():
    meta = metadata_for(PAPER_SETTINGS[-1])
    shuffled = dict(meta, components=list(reversed(meta["components"])))
    assert describe(meta) == describe(meta) == describe(shuffled)
    assert "1/4 of the full dose scan, the quantum noise of 1/16 of the full dose" in describe(meta)


def test_prompt_rejects_unknown_types():
    meta = metadata_for(PAPER_SETTINGS[0])
    meta["components"] = [dict(meta["components"][0], type="motion")]
    with pytest.raises(ValueError, match="motion"):
        describe(meta)
