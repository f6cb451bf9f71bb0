"""The simulation pipeline: seeds and sample ids, metadata, prompts and bit-exact replay."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from ctdegradbench.builder.degradations import REGISTRY
from ctdegradbench.builder.degradations.metal import metal_mask
from ctdegradbench.builder.simulate.prompts import describe
from ctdegradbench.builder.sources.reference import ReferenceSlice
from ctdegradbench.builder.core.seeding import (component_seed, derive_seed, levels_seed, make_sample_id,
                                                parse_sample_id, sample_seed)
from ctdegradbench.builder.simulate.settings import LEVELS, METAL, PAPER_SETTINGS, SETTINGS_BY_CODE
from ctdegradbench.builder.simulate.config import SimulationConfig
from ctdegradbench.builder.simulate.simulator import (HU_RANGE, HU_STANDARD_TOP, hu_range, DegradedSample, PreparedReference,
                                                      Simulator)
from ctdegradbench.builder.sources.phantoms import reference_phantom

N = 96
PIXEL_MM = 2.0
SINGLE_SETTINGS_WITHOUT_METAL = ("S1", "S2", "S3", "S4")
# Noise SD in the image grows as gamma (Eq. 8): the SD ratio L3 / L0 on a real slice is
# gamma 4 / 1 = 4 up to the estimate's spread (independent realizations, ~50k pixels): 10 %.
NOISE_SD_RATIO_RTOL = 0.10

TOP_LEVEL_KEYS = {"sample_id", "reference_id", "patient_key", "setting", "class_name", "level", "realization",
                  "seed", "components", "geometry", "pixel_spacing_mm", "fbp_filter", "backend", "device", "dtype",
                  "simulator_version", "config", "mu_water_per_mm", "clip_count", "clamped_bins",
                  "clipped_low", "clipped_high", "hu_range",
                  "reference_below_air_pixels", "reference_info"}


@pytest.fixture(scope="module")
def simulator() -> Simulator:
    return Simulator(SimulationConfig(seed=5))


@pytest.fixture(scope="module")
def prepared(simulator) -> PreparedReference:
    return simulator.prepare(reference_phantom(N, PIXEL_MM))


@pytest.fixture(scope="module")
def samples(simulator, prepared) -> list[DegradedSample]:
    return simulator.run(prepared)


# ------------------------------------------------------------------ seeds
def test_derive_seed_follows_its_documented_formula():
    parts = (5, "phantom/patient-1/series-1/0000/M3/L2/r0")
    digest = hashlib.sha256(repr(parts).encode("utf-8")).digest()
    assert derive_seed(*parts) == int.from_bytes(digest[:8], "big") >> 1
    assert derive_seed(np.int64(5), parts[1]) == derive_seed(*parts)
    assert derive_seed(5, "a") != derive_seed(5, "b") != derive_seed(6, "b")
    assert all(0 <= derive_seed(i, "x") < 2 ** 63 for i in range(50))


@pytest.mark.parametrize("bad", [1.5, True, None, b"x"])
def test_derive_seed_rejects_non_int_str_parts(bad):
    with pytest.raises(ValueError, match="seed parts"):
        derive_seed(1, bad)


@pytest.mark.parametrize("bad", ["ref/S1/L0", "slice_001.dcm", "ref/S1/Lx/r0", "ref/S1/L0/0"])
def test_a_sample_id_without_level_or_realization_is_refused(bad):
    with pytest.raises(ValueError, match=f"sample id '{bad}' is not '<reference_id>/<setting>/L<level>/r<realization>'"):
        parse_sample_id(bad)


def test_sample_ids_and_seeds_follow_the_formulas(samples, prepared):
    ref = prepared.reference
    for sample in samples:
        meta = sample.metadata
        expected_id = f"{ref.reference_id}/{sample.setting}/L{sample.level}/r{sample.realization}"
        assert sample.sample_id == meta["sample_id"] == expected_id == make_sample_id(
            ref.reference_id, sample.setting, sample.level, sample.realization)
        assert parse_sample_id(sample.sample_id) == (ref.reference_id, sample.setting, sample.level, sample.realization)
        assert meta["seed"] == sample_seed(5, expected_id) == derive_seed(5, expected_id)
        for c in meta["components"]:
            if c["type"] in ("noise", "streak", "metal"):        # the components that draw at random
                assert c["seed"] == component_seed(meta["seed"], c["order"], c["type"])
            else:
                assert c["seed"] is None
    assert levels_seed(7) == derive_seed(7, "levels")


# --------------------------------------------------------------- metadata
def test_every_setting_and_level_is_generated(samples):
    assert [(s.setting, s.level) for s in samples] == [(st.code, lv) for st in PAPER_SETTINGS for lv in LEVELS]


def test_metadata_is_complete_and_consistent(samples, prepared):
    for sample in samples:
        meta = sample.metadata
        setting = SETTINGS_BY_CODE[sample.setting]
        assert set(meta) == TOP_LEVEL_KEYS
        assert sample.image_hu.dtype == np.int16 and sample.image_hu.shape == (N, N)
        assert meta["class_name"] == sample.class_name == setting.class_name
        assert [c["type"] for c in meta["components"]] == list(setting.components)
        assert [c["order"] for c in meta["components"]] == list(range(len(setting.components)))
        assert max(c["level"] for c in meta["components"]) == sample.level == meta["level"]
        assert meta["geometry"] == prepared.geometry.to_dict()
        assert meta["config"] == SimulationConfig(seed=5).to_dict()
        assert meta["reference_info"]["kernel"] == "B30f"
        assert meta["reference_below_air_pixels"] == int(np.count_nonzero(prepared.reference.hu < -1000))
        assert meta["clamped_bins"] >= 0
        # scanner range: nothing below -1024 or above the extended scale; the clipped pixels are
        # counted and now read exactly the range's ends
        metal_row = METAL in setting.components
        low, high = HU_RANGE[0], (HU_RANGE[1] if metal_row or prepared.reference.hu.max() > HU_STANDARD_TOP
                                  else HU_STANDARD_TOP)
        assert meta["hu_range"] == [low, high] and low <= sample.image_hu.min() and sample.image_hu.max() <= high
        assert meta["clip_count"] == meta["clipped_low"] + meta["clipped_high"]
        assert meta["clipped_low"] <= int(np.count_nonzero(sample.image_hu == low))
        assert meta["clipped_high"] <= int(np.count_nonzero(sample.image_hu == high))
        assert sample.prompt == describe(meta)
        json.dumps(meta)                                           # plain types only
        metal = [c for c in meta["components"] if c["type"] == METAL]
        if metal:
            x0, y0, x1, y1 = sample.bbox
            assert sample.bbox == metal[0]["bbox"] and x0 <= x1 and y0 <= y1
            rows, cols = np.nonzero(metal_mask(REGISTRY["metal"].params_from_record(metal[0]), N, PIXEL_MM))
            assert rows.size and x0 <= cols.min() and cols.max() <= x1 and y0 <= rows.min() and rows.max() <= y1
        else:
            assert sample.bbox == []


def test_rows_without_metal_stay_on_the_12_bit_scale():
    """Non-metal rows of a reference within -1024..3071 HU never exceed 3071 HU (streak overshoot is clipped
    and counted); metal rows and references above 3071 HU keep the extended scale."""
    simulator = Simulator(SimulationConfig(seed=1))
    reference = reference_phantom(N, PIXEL_MM)
    assert reference.hu.max() <= HU_STANDARD_TOP
    for sample in simulator.run(reference, settings=["S3", "M2", "S5"], levels=(3,)):
        top = HU_RANGE[1] if sample.setting == "S5" else HU_STANDARD_TOP
        assert sample.metadata["hu_range"] == [HU_RANGE[0], top] and sample.image_hu.max() <= top
    prepared = simulator.prepare(reference)
    assert prepared.hu_range([{"type": "streak"}]) == (HU_RANGE[0], HU_STANDARD_TOP)
    assert hu_range(False, HU_STANDARD_TOP + 500) == HU_RANGE      # a dense implant already in the reference


def test_scanner_range_clips_and_counts_low_values():
    """A clean FBP of a slice with air reads about -1000 +- ringing: values below -1024 are clipped and counted."""
    simulator = Simulator(SimulationConfig(seed=1))
    sample = simulator.run(reference_phantom(N, PIXEL_MM), settings=["S4"], levels=(3,))[0]
    assert sample.metadata["clipped_low"] > 0 and sample.image_hu.min() == HU_RANGE[0]


def test_error_grows_with_severity_for_single_settings(samples, prepared):
    clean = prepared.clean_fbp_hu.astype(np.float64)
    for code in SINGLE_SETTINGS_WITHOUT_METAL + ("S5",):
        rmse = [float(np.sqrt(np.mean((s.image_hu - clean) ** 2))) for s in samples if s.setting == code]
        assert all(a < b for a, b in zip(rmse, rmse[1:])), (code, rmse)


# ----------------------------------------------------------------- replay
def test_replay_is_bit_exact_for_every_setting_and_level(simulator, prepared, samples):
    for sample in samples:
        replayed = simulator.replay(prepared, sample.metadata)
        assert replayed.dtype == np.int16
        assert np.array_equal(replayed, sample.image_hu), sample.sample_id


def test_replay_from_stored_metadata_on_a_fresh_simulator(samples):
    """Metadata through JSON (tuples become lists), a new simulator and a new clean sinogram."""
    fresh = Simulator(SimulationConfig(seed=5))
    reference = reference_phantom(N, PIXEL_MM)
    for sample in samples:
        if sample.level == 3:
            stored = json.loads(json.dumps(sample.metadata))
            assert np.array_equal(fresh.replay(reference, stored), sample.image_hu), sample.sample_id


def test_replay_rejects_another_reference(simulator, samples):
    with pytest.raises(ValueError, match="reference"):
        simulator.replay(reference_phantom(N, PIXEL_MM, slice_index=1), samples[0].metadata)


def test_runs_reproduce_and_seeds_change_the_draws(simulator, prepared, samples):
    again = simulator.run(prepared, settings=["single_noise", "M2"], levels=(2,), realizations=2)
    first = {s.sample_id: s for s in samples}
    for sample in again:
        if sample.realization == 0:
            assert np.array_equal(sample.image_hu, first[sample.sample_id].image_hu)
            assert sample.metadata == first[sample.sample_id].metadata
    by_realization = {(s.setting, s.realization): s.image_hu for s in again}
    assert not np.array_equal(by_realization[("S1", 0)], by_realization[("S1", 1)])
    other = Simulator(SimulationConfig(seed=6)).run(prepared.reference, settings=["S1"], levels=(2,))
    assert not np.array_equal(other[0].image_hu, by_realization[("S1", 0)])


# ----------------------------------------------------------------- config
@pytest.mark.parametrize("field, value", [
    ("seed", -1), ("realizations", 0), ("device", "warp-drive"), ("dtype", "float16"), ("fbp_filter", "ramp"),
    ("i0_per_mm", -1.0), ("dose_fraction", 2.0), ("electronic_variance", -3.0), ("delta", 0.0),
    ("streak_fraction", 0.0), ("streak_fraction", 1.5), ("metal_model", "analytic"), ("metal_implant", "stent"),
    ("metal_i0_per_mm", 0.0), ("backend", ""), ("backend", "radon-magic"),
])
def test_config_rejects_invalid_values(field, value):
    with pytest.raises(ValueError, match="--" + field.replace("_", "-")):
        SimulationConfig(**{field: value})


def test_config_round_trips_through_a_dict():
    config = SimulationConfig(seed=3, dose_fraction=0.5, metal_material="titanium")
    assert SimulationConfig.from_dict(config.to_dict()) == config
    assert set(config.to_dict()) == {f.name for f in dataclasses.fields(SimulationConfig)}
    with pytest.raises(ValueError, match="colour"):
        SimulationConfig.from_dict({**config.to_dict(), "colour": 1})


# --------------------------------------------------------------- real CT
@pytest.mark.slow
def test_real_slice_all_settings_replay_and_noise_scaling(real_hu_slices):
    from scipy import ndimage

    hu, spacing = real_hu_slices[-1]
    reference = ReferenceSlice(hu, spacing, "shared", "real", "series", 0)
    simulator = Simulator(SimulationConfig())
    prepared = simulator.prepare(reference)
    samples = simulator.run(prepared)
    assert len(samples) == 40
    for sample in samples:
        if sample.setting in ("S3", "M4", "M5") and sample.level in (0, 3):
            assert np.array_equal(simulator.replay(prepared, sample.metadata), sample.image_hu), sample.sample_id
    smooth = ndimage.uniform_filter(hu.astype(np.float64), 7)
    soft = ndimage.binary_erosion((smooth >= -50) & (smooth <= 150), iterations=3)
    clean = prepared.clean_fbp_hu.astype(np.float64)
    sd = [float(np.std((s.image_hu - clean)[soft])) for s in samples if s.setting == "S1"]
    gammas = [c["gamma"] for s in samples if s.setting == "S1" for c in s.metadata["components"]]
    assert sd[3] / sd[0] == pytest.approx(gammas[3] / gammas[0], rel=NOISE_SD_RATIO_RTOL)


def test_replay_uses_every_recorded_option_not_the_replaying_config():
    """Noise flux, dose and the metal scan's photons come from the record, not from the simulator
    that replays (whose config holds the defaults)."""
    ref = reference_phantom(N, PIXEL_MM)
    config = SimulationConfig(seed=1, i0_per_mm=2e6, dose_fraction=0.5, metal_i0_per_mm=5e5)
    built = Simulator(config).run(ref, settings="M3", levels=(1, 3))
    default = Simulator(SimulationConfig(seed=1))
    for sample in built:
        assert np.array_equal(default.replay(ref, sample.metadata), sample.image_hu), sample.sample_id
    metal = sample.metadata["components"][0]
    assert metal["type"] == METAL and metal["i0_per_mm"] == 5e5
