"""SeSpeCT on the physical grid: the image processor (pixel spacing, field of view, statuses),
the clean class, and the shipped checkpoint's invariance on a real clean slice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ctdegradbench.core.hu import AIR_HU
from ctdegradbench.model import image_processing_sespect
from ctdegradbench.model.image_processing_sespect import (STATUS_NO_BODY, STATUS_NON_CT, STATUS_NON_FINITE,
                                                           STATUS_OK, STATUS_SPACING, SeSpeCTImageProcessor)

AREA_TOL = 0.03          # relative: disk area on the grid, whatever the native pixel (bilinear edges)
CENTRE_TOL_PX = 1.0      # body centroid on the grid centre


def disk(spacing_mm: float, radius_mm: float = 80.0, side_mm: float = 400.0, hu: float = 40.0,
         centre_mm=(0.0, 0.0)) -> np.ndarray:
    """A water-like disk in air sampled at ``spacing_mm``."""
    n = int(round(side_mm / spacing_mm))
    x = (np.arange(n) - (n - 1) / 2) * spacing_mm
    yy, xx = np.meshgrid(x, x, indexing="ij")
    img = np.full((n, n), AIR_HU, np.float32)
    img[(yy - centre_mm[0]) ** 2 + (xx - centre_mm[1]) ** 2 <= radius_mm ** 2] = hu
    return img


def test_resampling_keeps_physical_size_and_never_stretches():
    proc = SeSpeCTImageProcessor(pixel_spacing_mm=1.0, image_size=256)
    areas = []
    for spacing in (0.5, 0.8, 2.0, 3.9):
        grid = proc(disk(spacing), spacing)["pixel_values"][0]
        areas.append(float((grid > -500).sum()))        # mm^2 at 1 mm pixels
    expected = np.pi * 80.0 ** 2
    assert np.allclose(areas, expected, rtol=AREA_TOL), (areas, expected)


def test_body_is_centred_and_field_of_view_padded_or_cropped():
    proc = SeSpeCTImageProcessor(pixel_spacing_mm=1.0, image_size=128)
    grid = proc(disk(0.7, radius_mm=30.0, centre_mm=(60.0, -90.0)), 0.7)["pixel_values"][0]
    rows, cols = np.nonzero(grid.numpy() > -500)
    assert abs(rows.mean() - 63.5) < CENTRE_TOL_PX and abs(cols.mean() - 63.5) < CENTRE_TOL_PX
    small = proc(disk(1.0, radius_mm=20.0, side_mm=60.0), 1.0)["pixel_values"][0]    # 60 mm FOV -> padded
    assert small.shape == (128, 128) and float(small[0, 0]) == AIR_HU


def test_statuses():
    proc = SeSpeCTImageProcessor(pixel_spacing_mm=1.0, image_size=64, spacing_range_mm=(0.4, 6.0))
    body = disk(1.0, radius_mm=40.0, side_mm=120.0)
    nan = body.copy()
    nan[3, 3] = np.nan
    normalised = (body + 1024) / 2000.0                  # a [0, 1] image, not HU
    status = proc([body, nan, body, np.full((120, 120), -1024.0), normalised, body * 0 + 9000.0],
                  [1.0, 1.0, 8.0, 1.0, 1.0, 1.0])["status"]
    assert status == [STATUS_OK, STATUS_NON_FINITE, STATUS_SPACING, STATUS_NO_BODY, STATUS_NON_CT, STATUS_NON_CT]


def test_scanner_padding_becomes_air():
    proc = SeSpeCTImageProcessor(pixel_spacing_mm=1.0, image_size=128)
    img = disk(1.0, radius_mm=40.0, side_mm=128.0)
    yy, xx = np.mgrid[:128, :128] - 63.5
    img[yy ** 2 + xx ** 2 > 62 ** 2] = -3024.0          # outside the reconstruction circle
    out = proc(img, 1.0)
    assert out["status"] == [STATUS_OK] and float(out["pixel_values"].min()) == AIR_HU


def test_pixel_spacing_must_be_positive():
    proc = SeSpeCTImageProcessor()
    with pytest.raises(ValueError, match="pixel spacing"):
        proc(disk(1.0), -1.0)


def test_physical_model_refuses_off_grid_input_and_takes_spacing():
    from ctdegradbench.model import SeSpeCTConfig, SeSpeCTForDegradationEstimation
    from ctdegradbench.model.data import SESPECT_LABEL_NAMES

    cfg = SeSpeCTConfig(label_names=list(SESPECT_LABEL_NAMES), backbone="none", use_semantic_branch=False,
                        quality_axis_source="none", image_size=64, spectral_size=16, texture_size=16,
                        spectral_channels=(4, 8), spectral_dim=8, image_channels=(4, 8), image_dim=8,
                        fusion_hidden_dim=16, fusion_dim=8, pixel_spacing_mm=1.0, use_spacing_input=True)
    model = SeSpeCTForDegradationEstimation(cfg).eval()
    with pytest.raises(ValueError, match="SeSpeCTImageProcessor"):
        model(pixel_values=torch.zeros(1, 100, 100), pixel_spacing=torch.ones(1))
    batch = model.image_processor()([disk(0.7, side_mm=200.0)], 0.7)
    out = model(pixel_values=batch["pixel_values"], pixel_spacing=batch["pixel_spacing"])
    assert out.logits.shape == (1, 11) and cfg.label_names[10] == "clean"


def test_predict_needs_pixel_spacing_for_npy(tmp_path):
    from ctdegradbench.core.errors import InputError
    from ctdegradbench.model.predict import load_model, predict_slices, read_slices

    path = tmp_path / "slice.npy"
    np.save(path, disk(1.0))
    model = load_model(None)
    if model.config.pixel_spacing_mm is None:
        pytest.skip("the shipped checkpoint is a pixel-grid model")
    with pytest.raises(InputError, match="--pixel-spacing"):
        predict_slices(model, read_slices(path))
    assert predict_slices(model, read_slices(path, pixel_spacing=1.0))[0].status == STATUS_OK


SHARED_CT = Path(__file__).resolve().parents[2] / ".." / "shared" / "ct" / "itkelastix__series_00.nii.gz"
AGREEMENT_MIN = 0.8   # share of the transformed views with the same class as the slice as stored


@pytest.mark.skipif(not SHARED_CT.is_file(), reason="../shared/ct (real CT) not present")
def test_shipped_checkpoint_same_answer_at_other_pixel_size_or_crop():
    """One clean real slice, resampled to 1.5 / 2.5 / 3.5 mm pixels (anti-aliased) and cropped to a
    200 / 160 mm field of view: the shipped model gives (nearly always) the same class, and it is clean."""
    import torch.nn.functional as F

    from ctdegradbench.builder.sources import load_source
    from ctdegradbench.model.predict import SliceInput, load_model, predict_slices

    model = load_model(None)
    if model.config.pixel_spacing_mm is None:
        pytest.skip("the shipped checkpoint is a pixel-grid model")
    result = load_source(str(SHARED_CT), nifti_axes="LPS", max_slices=3, min_body_fraction=0.2)
    views = []
    for s in result.slices:
        hu, sp = s.hu.astype(np.float32), float(s.pixel_spacing_mm)
        views.append(SliceInput("stored", hu, sp))
        for new in (1.5, 2.5, 3.5):
            size = round(hu.shape[0] * sp / new)
            x = F.interpolate(torch.from_numpy(hu)[None, None], size=(size, size), mode="bilinear",
                              antialias=True, align_corners=False)[0, 0].numpy()
            views.append(SliceInput(f"{new} mm", x, sp * hu.shape[0] / size))
        body = np.argwhere(hu > -500).mean(0).round().astype(int)
        for fov in (200.0, 160.0):
            half = int(fov / sp / 2)
            r0, c0 = max(body[0] - half, 0), max(body[1] - half, 0)
            views.append(SliceInput(f"{fov} mm FOV", hu[r0:r0 + 2 * half, c0:c0 + 2 * half], sp))
    preds = predict_slices(model, views)
    assert all(p.status == STATUS_OK for p in preds)
    per_slice = 6
    stored = [p.label for p in preds[::per_slice]]
    assert stored == ["clean"] * len(stored), stored
    same = np.mean([p.label == preds[i - i % per_slice].label for i, p in enumerate(preds)])
    assert same >= AGREEMENT_MIN, [(v.name, p.label) for v, p in zip(views, preds)]


GRID_TINY = dict(image_size=64, spectral_size=16, texture_size=16, spectral_channels=(4, 8), spectral_dim=8,
                 image_channels=(4, 8), image_dim=8, fusion_hidden_dim=16, fusion_dim=8)


def test_grid_training_adds_clean_rows_and_ships_the_processor(tiny_dataset, tmp_path):
    from ctdegradbench.model.evaluate import evaluate_checkpoint
    from ctdegradbench.model.train import GRID_VIEWS, train_sespect

    out = tmp_path / "grid"
    result = train_sespect([tiny_dataset], out, backbone="none", overrides=GRID_TINY, epochs=1, batch_size=16,
                           cache_dir=tmp_path / "cache", progress=False, log=lambda *_: None)
    n_refs = result.split_sizes["train"]["slices"]
    assert result.model.config.label_names[10] == "clean"            # the label contract: clean is id 10
    clean_rows = result.split_sizes["train"]["rows"] - GRID_VIEWS["degraded"] * 10 * 4 * n_refs   # 10 settings x L0-L3
    assert clean_rows == (GRID_VIEWS["reference"] + GRID_VIEWS["clean_fbp"]) * n_refs
    assert (out / "image_processing_sespect.py").is_file() and 0.0 <= result.metrics["clean_rate"] <= 1.0
    # train's folder is a complete Hub repo: processor config and pipeline beside the weights
    assert json.loads((out / "preprocessor_config.json").read_text())["pixel_spacing_mm"] == \
        result.model.config.pixel_spacing_mm
    assert "image-classification" in json.loads((out / "config.json").read_text())["custom_pipelines"]
    assert (out / "pipeline_sespect.py").is_file()
    metrics = evaluate_checkpoint(out, [tiny_dataset], progress=False)
    assert metrics["clean_slices"] == result.split_sizes["test"]["slices"]


def test_grid_feature_cache_is_not_reused_for_rows_of_another_seed(tmp_path):
    """Two exports with the same reference ids, settings and levels but rows simulated with other
    seeds: the second gets its own cached features, not the first's; another simulator version
    also gets its own features of the references (their clean FBP is the simulator's)."""
    from ctdegradbench.model.train import prepare_data
    from .conftest import write_tiny_dataset

    cache = tmp_path / "cache"

    def grid_folders(row_seed, version="test"):
        data = write_tiny_dataset(tmp_path / f"bench-{row_seed}-{version}", n_patients=(2, 1, 1), row_seed=row_seed,
                                  simulator_version=version)
        prepare_data([data], backbone="none", overrides=GRID_TINY, cache_dir=cache, progress=False,
                     log=lambda *_: None)
        return {p.name for p in cache.glob("grid-*")}

    first = grid_folders(0)
    assert grid_folders(0) == first                     # the same rows again: found in the cache
    second = grid_folders(1)
    assert len(second - first) == 3                     # train, validation, test degraded rows recomputed
    third = grid_folders(0, version="other")
    assert len(third - second) == 3 + 4                 # and every reference view: train x 2, validation, test


def test_self_contained_air_is_the_kernels_air():
    """The remote-code processor cannot import the package, so it carries a copy of the air value;
    the copy must be the kernel's one fact (the loader pads references with the same air)."""
    assert image_processing_sespect.AIR_HU == AIR_HU


def test_an_ensemble_checkpoint_averages_its_members_and_loads_back(tiny_dataset, tmp_path):
    """train --ensemble 2: one checkpoint (ensemble_size 2) whose probabilities and severities are the
    two members' means, over one frozen stage; saved and loaded back, it answers the same."""
    from ctdegradbench.model import SeSpeCTForDegradationEstimation
    from ctdegradbench.model.data import batch_from_arrays
    from ctdegradbench.model.predict import load_model
    from ctdegradbench.model.train import prepare_data, train_sespect

    prepared = prepare_data([tiny_dataset], backbone="none", overrides=GRID_TINY, cache_dir=tmp_path / "cache",
                            progress=False, log=lambda *_: None)
    out = tmp_path / "ens"
    result = train_sespect([tiny_dataset], out, backbone="none", overrides=GRID_TINY, epochs=1, batch_size=16,
                           ensemble=2, prepared=prepared, progress=False, log=lambda *_: None)
    model = result.model
    assert model.config.ensemble_size == 2 and len(model.members) == 1
    batch, _ = batch_from_arrays(prepared["arrays"]["test"], np.arange(8))
    single_config = model.members[0].config
    first = SeSpeCTForDegradationEstimation(single_config).eval()
    first.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("members.")})
    with torch.no_grad():
        both = model(frozen=batch)
        a, b = first(frozen=batch), model.members[0](frozen=batch)
        loaded = load_model(out)(frozen=batch)
    assert torch.allclose(both.probabilities, (a.probabilities + b.probabilities) / 2, atol=1e-6)
    assert torch.allclose(both.severity, (a.severity + b.severity) / 2, atol=1e-6)
    assert torch.allclose(both.logits.softmax(-1), both.probabilities, atol=1e-6)    # the pipeline's softmax
    assert torch.allclose(loaded.probabilities, both.probabilities, atol=1e-6)
    assert result.metrics["accuracy"] == pytest.approx(
        float(np.mean(predict_labels(model, prepared) == prepared["splits"]["test"].labels)), abs=1e-9)


def predict_labels(model, prepared) -> np.ndarray:
    from ctdegradbench.model.train import predict_arrays

    return predict_arrays(model, prepared["arrays"]["test"])["probabilities"].argmax(1)


def test_train_merge_puts_the_members_of_two_runs_into_one_checkpoint(tiny_dataset, tmp_path):
    """train --merge: a 2-member and a 1-member run become one 3-member checkpoint whose probabilities
    are the three members' mean (each run's own answer weighted by its members), with each run's seeds,
    epochs and command in metrics.json and the card; a run of another architecture or without the
    facts train writes is refused, naming what differs."""
    import json

    from ctdegradbench.core.errors import OptionError
    from ctdegradbench.model.data import batch_from_arrays
    from ctdegradbench.model.predict import load_model
    from ctdegradbench.model.train import merge_checkpoints, prepare_data, train_sespect

    quiet = dict(progress=False, log=lambda *_: None)
    prepared = prepare_data([tiny_dataset], backbone="none", overrides=GRID_TINY, cache_dir=tmp_path / "cache", **quiet)
    runs = []
    for name, ensemble, seed in (("a", 2, 0), ("b", 1, 7)):
        train_sespect([tiny_dataset], tmp_path / name, backbone="none", overrides=GRID_TINY, epochs=1, batch_size=16,
                      ensemble=ensemble, seed=seed, prepared=prepared, command=f"train {name}", **quiet)
        runs.append(tmp_path / name)
    result = merge_checkpoints(runs, [tiny_dataset], tmp_path / "merged", cache_dir=tmp_path / "cache",
                               command="merge a b", **quiet)
    assert result.model.config.ensemble_size == 3
    assert result.split_sizes["train"]["rows"] == 3 * 10 * 4      # measured only: no training views computed
    batch, _ = batch_from_arrays(prepared["arrays"]["test"], np.arange(8))
    with torch.no_grad():
        a, b = (load_model(run)(frozen=batch).probabilities for run in runs)
        merged = load_model(tmp_path / "merged")(frozen=batch).probabilities
    assert torch.allclose(merged, (2 * a + b) / 3, atol=1e-6)
    facts = json.loads((tmp_path / "merged" / "metrics.json").read_text())
    assert facts["member_seeds"] == [0, 1, 7]
    assert [r["command"] for r in facts["merged_from"]] == ["train a", "train b"]
    card = (tmp_path / "merged" / "README.md").read_text()
    ten = facts["test"]["ten_class"]                      # the paper's ten-class task beside the eleven-way answer
    assert ten["rows"] == result.split_sizes["test"]["rows"] and ten["accuracy"] >= facts["test"]["accuracy"]
    assert f"| accuracy, ten classes | {ten['accuracy']:.3f}" in card and "`clean` left out" in card
    assert "0, 1, 7 (3 members)" in card and "`train a`, then `train b`, then `merge a b`" in card
    assert f"merged and measured on `{tiny_dataset.name}`, whose splits the tables below show" in card
    again = merge_checkpoints([tmp_path / "merged", runs[1]], [tiny_dataset], tmp_path / "again",
                              cache_dir=tmp_path / "cache", **quiet)       # a merged checkpoint brings its runs
    facts = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert again.model.config.ensemble_size == 4 and facts["member_seeds"] == [0, 1, 7, 7]
    assert [r["command"] for r in facts["merged_from"]] == ["train a", "train b", "train b"]

    other = tmp_path / "other"
    train_sespect([tiny_dataset], other, backbone="none", overrides={**GRID_TINY, "fusion_dim": 4}, epochs=1,
                  batch_size=16, cache_dir=tmp_path / "cache", **quiet)
    with pytest.raises(OptionError, match="fusion_dim"):
        merge_checkpoints([runs[0], other], [tiny_dataset], None, cache_dir=tmp_path / "cache", **quiet)
    legacy = tmp_path / "legacy"          # a run written before the clean prior: its outputs keep its training share
    train_sespect([tiny_dataset], legacy, backbone="none", overrides={**GRID_TINY, "clean_prior": None}, epochs=1,
                  batch_size=16, cache_dir=tmp_path / "cache", **quiet)
    with pytest.raises(OptionError, match="clean_prior"):
        merge_checkpoints([runs[0], legacy], [tiny_dataset], None, cache_dir=tmp_path / "cache", **quiet)
    (runs[1] / "metrics.json").unlink()
    with pytest.raises(OptionError, match="no metrics.json"):
        merge_checkpoints(runs, [tiny_dataset], None, cache_dir=tmp_path / "cache", **quiet)


def test_the_clean_prior_scales_the_odds_of_clean_and_keeps_the_others():
    """Post-hoc logit adjustment: trained with a clean share q, adjusted to the prior p, the odds of
    `clean` against each other class scale by (p / (1 - p)) / (q / (1 - q)) on any input, the odds
    among the other classes stay, and the severity is untouched; a share of 0 or 1 is refused."""
    from ctdegradbench.core.errors import OptionError
    from ctdegradbench.model import SeSpeCTForDegradationEstimation
    from ctdegradbench.model.train import CLEAN_PRIOR, adjust_clean_prior, make_config

    torch.manual_seed(0)
    model = SeSpeCTForDegradationEstimation(make_config("none", GRID_TINY)).eval()
    clean = model.config.label_names.index(model.config.clean_label)
    assert model.config.clean_prior == CLEAN_PRIOR
    hu = torch.from_numpy(np.stack([disk(1.0, side_mm=64.0), disk(1.0, radius_mm=20.0, side_mm=64.0)]))
    kwargs = dict(pixel_values=hu, pixel_spacing=torch.tensor([1.0, 1.0]),
                  native_statistics=torch.zeros(2, len(image_processing_sespect.NATIVE_STATISTICS)))
    with torch.no_grad():
        before = model(**kwargs)
    labels = np.array([clean] * 5 + [0] * 40 + [3] * 55)              # q = 0.05
    shift = adjust_clean_prior(model, labels)
    with torch.no_grad():
        after = model(**kwargs)
    odds_ratio = (CLEAN_PRIOR / (1 - CLEAN_PRIOR)) / (0.05 / 0.95)
    assert shift == pytest.approx(np.log(odds_ratio), rel=1e-12)
    p0, p1 = before.probabilities.double(), after.probabilities.double()
    assert torch.allclose(p1[:, clean] / p1[:, 0], odds_ratio * p0[:, clean] / p0[:, 0], rtol=1e-4)
    assert torch.allclose(p1[:, 3] / p1[:, 0], p0[:, 3] / p0[:, 0], rtol=1e-4)
    assert torch.equal(after.severity, before.severity)
    with pytest.raises(OptionError, match="none 'clean'"):
        adjust_clean_prior(model, np.zeros(10, int))
    from ctdegradbench.model import SeSpeCTConfig

    assert SeSpeCTConfig().clean_prior is None          # configs written before the prior: outputs as trained
    with pytest.raises(ValueError, match=r"clean_prior must be a probability in \(0, 1\) or None, got 1.5"):
        SeSpeCTConfig(clean_prior=1.5)


def test_an_ensemble_needs_the_backbone_free_model_and_an_old_config_reads_8_statistics():
    from ctdegradbench.core.errors import OptionError
    from ctdegradbench.model import SeSpeCTConfig
    from ctdegradbench.model.modeling_sespect import SeSpeCTModel
    from ctdegradbench.model.train import train_sespect

    with pytest.raises(OptionError, match="--ensemble 3 needs --backbone none"):
        train_sespect([], None, backbone="efficientnet_lite0", ensemble=3)
    old = SeSpeCTConfig(backbone="none", use_semantic_branch=False, pixel_spacing_mm=1.0, use_native_statistics=True,
                        image_size=64, spectral_size=16, texture_size=16)
    assert old.native_statistics_count == 8                 # configs written before the soft-tissue NPS
    assert SeSpeCTModel(old).native_statistics_encoder.norm.num_features == 8
