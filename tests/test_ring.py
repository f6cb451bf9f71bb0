"""Ring artifacts (opt-in degradation): gain statistics, the operator's physics, replay, and the
``single_ring`` config end to end."""

from __future__ import annotations

import math

import datasets
import numpy as np
import pytest
import torch

from ctdegradbench.builder.core.geometry import ParallelBeamGeometry
from ctdegradbench.core.hu import hu_to_mu, mu_to_hu
from ctdegradbench.core.levels import LEVELS
from ctdegradbench.builder.dataset.build import build_dataset
from ctdegradbench.builder.dataset.options import BuildOptions
from ctdegradbench.builder.dataset.verify import verify_folder
from ctdegradbench.builder.degradations import REGISTRY
from ctdegradbench.builder.degradations.ring import GAIN_SD_LEVELS, RingParams, apply_ring, detector_gains
from ctdegradbench.builder.projector import ParallelBeamProjector
from ctdegradbench.builder.simulate.settings import PAPER_SETTINGS, get_setting
from ctdegradbench.builder.simulate.config import SimulationConfig
from ctdegradbench.builder.simulate.simulator import Simulator
from ctdegradbench.builder.sources import SourceOptions
from ctdegradbench.builder.sources.phantoms import ellipse_hu, reference_phantom

N = 128
PIXEL_MM = 1.0
# The SD of n = 181 gains (a 128 px scan) is estimated to 1 / sqrt(2 n) = 5 % (1 sigma); 20 % is 4 sigma.
GAIN_SD_RTOL = 0.20
# FBP of an offset in one detector element: the ramp filter keeps 99.6 % of the filtered energy
# within one bin, and backprojection concentrates it where rays are tangent to the circle of that
# radius. Measured on a 128 px grid at radii 20, 40 and 55 px: 98 % of the error energy lies within
# 2 px of the radius (88 % within 1 px).
MIN_RING_ENERGY_FRACTION = 0.9


def test_gains_have_the_level_sd_and_replay_from_the_seed():
    for level, sd in zip(LEVELS, GAIN_SD_LEVELS):
        params = RingParams(level=level, gain_sd=sd, seed=3)
        gains = detector_gains(params, 181)
        assert np.std(gains - 1.0, ddof=1) == pytest.approx(sd, rel=GAIN_SD_RTOL)
        np.testing.assert_array_equal(gains, detector_gains(params, 181))
    assert not np.array_equal(detector_gains(RingParams(0, 0.01, 1), 181), detector_gains(RingParams(0, 0.01, 2), 181))


def test_offset_is_the_same_in_every_view_and_zero_sd_is_identity():
    sinogram = torch.rand(360, 181, dtype=torch.float64) * 5
    params = RingParams(level=2, gain_sd=0.01, seed=5)
    offset = apply_ring(sinogram, params) - sinogram
    np.testing.assert_allclose(offset.numpy(), np.broadcast_to(-np.log(detector_gains(params, 181)), (360, 181)),
                               rtol=0, atol=1e-12)
    assert torch.equal(apply_ring(sinogram, RingParams(level=0, gain_sd=0.0, seed=5)), sinogram)


def test_one_bad_element_reconstructs_as_a_ring_at_its_radius():
    geometry = ParallelBeamGeometry(N, PIXEL_MM)
    projector = ParallelBeamProjector(geometry)
    radius = 40
    offset = torch.zeros(geometry.sinogram_shape)
    offset[:, geometry.n_detectors // 2 + radius] = 0.01       # one element, every view
    error = projector.fbp(offset).numpy()
    yy, xx = np.mgrid[:N, :N] - N // 2
    on_ring = np.abs(np.hypot(yy, xx) - radius) <= 2
    assert (error[on_ring] ** 2).sum() / (error ** 2).sum() > MIN_RING_ENERGY_FRACTION


def test_error_grows_with_level_in_proportion_to_the_gain_sd():
    geometry = ParallelBeamGeometry(N, PIXEL_MM)
    projector = ParallelBeamProjector(geometry)
    clean = projector(hu_to_mu(torch.as_tensor(ellipse_hu(N), dtype=torch.float32)))
    base = mu_to_hu(projector.fbp(clean))
    rms = [float(torch.sqrt(torch.mean((mu_to_hu(projector.fbp(apply_ring(clean, RingParams(lv, sd, 7)))) - base) ** 2)))
           for lv, sd in zip(LEVELS, GAIN_SD_LEVELS)]
    assert all(a < b for a, b in zip(rms, rms[1:])), rms
    # log(1 + eps) ~ eps: the error is linear in sigma to within the curvature of the log (< 2 %)
    np.testing.assert_allclose(np.array(rms) / rms[0], np.array(GAIN_SD_LEVELS) / GAIN_SD_LEVELS[0], rtol=0.02)


def test_single_ring_setting_simulates_replays_and_describes_itself():
    simulator = Simulator(SimulationConfig(seed=2))
    reference = reference_phantom(N, PIXEL_MM)
    samples = simulator.run(reference, settings=["single_ring"])
    assert [s.level for s in samples] == list(LEVELS)
    for sample in samples:
        (component,) = sample.metadata["components"]
        assert component["type"] == "ring" and component["gain_sd"] == GAIN_SD_LEVELS[sample.level]
        assert np.array_equal(simulator.replay(reference, sample.metadata), sample.image_hu)
        assert "ring artifacts from detector gain errors of SD" in sample.prompt
        assert f"S6, severity L{sample.level}" in sample.prompt
    record = REGISTRY["ring"].record(RingParams(1, 0.005, 9), None)
    assert REGISTRY["ring"].params_from_record(dict(record, level=1)) == RingParams(1, 0.005, 9)


def test_ring_is_opt_in():
    ring = get_setting("single_ring")
    assert not ring.in_paper and ring not in PAPER_SETTINGS
    assert Simulator(SimulationConfig()).run(reference_phantom(64, 2.0), levels=(0,))[-1].setting != "S6"


def test_single_ring_config_builds_verifies_and_appears_in_the_card(nifti_body_source, tmp_path):
    source = nifti_body_source(3, 1, 64, 2.0)
    out = tmp_path / "ring-bench"
    build_dataset(BuildOptions(out=out, configs=("single_blur", "single_ring"), simulation=SimulationConfig(seed=4),
                               source=SourceOptions(sources=(str(source),), image_size=64), allow_uncalibrated_grid=True))
    ring = datasets.load_dataset(str(out), "single_ring")
    rows = datasets.concatenate_datasets(list(ring.values()))
    assert set(rows["setting"]) == {"S6"} and sorted(set(rows["level"])) == list(LEVELS)
    assert rows.features["label"].int2str(rows[0]["label"]) == "S6_ring"
    assert "S6" not in {s for split in datasets.load_dataset(str(out), "all").values() for s in split["setting"]}
    report = verify_folder(out)
    assert report.ok and any("over 8 (config, level) strata" in line for line in report.checked), report.text()
    card = (out / "README.md").read_text()
    assert "| ring artifacts (S6) | `gain_sd` | relative gain-error SD | 0.0025 | 0.005 | 0.01 | 0.02 |" in card
    assert "**Ring artifacts**" in card and math.isfinite(float(rows[0]["components"][0]["gain_sd"]))
