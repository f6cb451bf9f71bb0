"""SeSpeCT's patch CNN (``train --patch-cnn``): the deterministic body patches, the fusion with the
members (weighted geometric mean, the metal gate), training beside the members, saving, loading and
merging."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ctdegradbench.core.hu import AIR_HU

from .test_sespect_grid import GRID_TINY

PATCH_TINY = {**GRID_TINY, "patch_size": 16, "coarse_size": 16}
FUSE_TOL = 1e-6


def ring_phantom(n: int = 128, radius_px: float = 40.0) -> torch.Tensor:
    """A water disk (40 HU) in air on an ``n`` x ``n`` grid, centred off the grid centre."""
    yy, xx = np.mgrid[:n, :n].astype(float)
    hu = np.full((n, n), AIR_HU, np.float32)
    hu[(yy - 70) ** 2 + (xx - 60) ** 2 <= radius_px ** 2] = 40.0
    return torch.from_numpy(hu)


def test_body_patches_lie_in_the_body_spread_out_and_repeat():
    from ctdegradbench.model.modeling_sespect import PATCH_BODY_SHARE_MIN, body_patches

    grid = ring_phantom()
    patches, coarse = body_patches(grid, count=3, size=16, stride=4, coarse_size=32)
    assert patches.shape == (3, 16, 16) and coarse.shape == (32, 32)
    body_share = (patches > -500).float().mean((1, 2))
    assert bool((body_share >= PATCH_BODY_SHARE_MIN).all()), body_share       # patches of body, not of air
    again, _ = body_patches(grid, count=3, size=16, stride=4, coarse_size=32)
    assert torch.equal(again, patches)                         # deterministic
    # farthest-point sampling spreads them: on a grid holding a marker per pixel, the three corners
    # lie at least a patch side apart
    index = torch.arange(128 * 128, dtype=torch.float32).view(128, 128)
    marked = torch.where(grid > -500, index + 1000, torch.full_like(index, AIR_HU))
    picked, _ = body_patches(marked, count=3, size=16, stride=4, coarse_size=32)
    corners = np.array([divmod(int(p[0, 0]) - 1000, 128) for p in picked])
    gaps = [np.abs(corners[i] - corners[j]).max() for i in range(3) for j in range(i + 1, 3)]
    assert min(gaps) >= 16, corners
    # the coarse slice keeps the body's mean HU over the grid (anti-aliased resampling keeps the mean)
    assert float(coarse.mean()) == pytest.approx(float(grid.mean()), rel=0.02)


SHARE_TOL = 1e-6     # float32 shares of 48 x 48 windows: integer counts over 2304, one rounding


@pytest.mark.parametrize("size, stride", [(16, 4), (48, 4), (15, 4)])
def test_body_share_from_blocks_equals_the_plain_window_mean(size, stride):
    """The block-sum path (stride divides size) gives the shares of avg_pool2d over the windows."""
    import torch.nn.functional as F

    from ctdegradbench.model.modeling_sespect import body_share

    body = (torch.from_numpy(np.random.default_rng(0).random((1, 1, 96, 96))) > 0.3).float()
    expected = F.avg_pool2d(body, size, stride=stride)[0, 0]
    share = body_share(body, size, stride)
    assert share.shape == expected.shape
    assert torch.allclose(share, expected, atol=SHARE_TOL, rtol=0)


def test_fusion_is_a_weighted_geometric_mean_and_the_gate_keeps_the_members_metal_total():
    from ctdegradbench.model.modeling_sespect import fuse_with_patch_cnn

    rng = np.random.default_rng(0)
    members, cnn = (torch.from_numpy(rng.dirichlet(np.ones(5), size=4)) for _ in range(2))
    weight = 0.3
    expected = members.numpy() ** (1 - weight) * cnn.numpy() ** weight
    expected /= expected.sum(1, keepdims=True)
    plain = fuse_with_patch_cnn(members, cnn, weight)
    assert np.allclose(plain.numpy(), expected, atol=FUSE_TOL)
    assert torch.allclose(fuse_with_patch_cnn(members, cnn, 0.0), members, atol=FUSE_TOL)
    assert torch.allclose(fuse_with_patch_cnn(members, cnn, 1.0), cnn, atol=FUSE_TOL)
    gate = torch.tensor([False, True, True, False, False])
    gated = fuse_with_patch_cnn(members, cnn, weight, gate)
    assert torch.allclose(gated.sum(1), torch.ones(4, dtype=gated.dtype), atol=FUSE_TOL)
    assert torch.allclose(gated[:, gate].sum(1), members[:, gate].sum(1), atol=FUSE_TOL)     # the members' total
    share = expected[:, gate.numpy()] / expected[:, gate.numpy()].sum(1, keepdims=True)     # split like the fusion
    assert np.allclose(gated[:, gate].numpy() / gated[:, gate].sum(1, keepdim=True).numpy(), share, atol=FUSE_TOL)


def test_a_patch_cnn_is_trained_beside_the_members_fused_saved_and_merged(tiny_dataset, tmp_path):
    """train --patch-cnn: the members and the patch CNN trained on the same entries, the checkpoint's
    answer their fusion (the members' metal total kept) and the mean severity, the same after loading;
    merged with a run without one, every member is fused with it; two patch CNNs are refused."""
    from ctdegradbench.core.errors import OptionError
    from ctdegradbench.model.data import batch_from_arrays
    from ctdegradbench.model.modeling_sespect import fuse_with_patch_cnn
    from ctdegradbench.model.predict import load_model
    from ctdegradbench.model.real_artifacts import METAL_LABELS
    from ctdegradbench.model.train import ensemble_members, merge_checkpoints, prepare_data, train_sespect

    quiet = dict(progress=False, log=lambda *_: None)
    common = dict(backbone="none", overrides=PATCH_TINY, epochs=1, batch_size=16, cache_dir=tmp_path / "cache", **quiet)
    result = train_sespect([tiny_dataset], tmp_path / "cnn", patch_cnn=2, patch_cnn_epochs=2, command="train cnn",
                           **common)
    model = result.model
    assert model.config.patch_cnn_width == 2 and model.config.metal_gate_labels == list(METAL_LABELS)
    prepared = prepare_data([tiny_dataset], backbone="none", overrides={**PATCH_TINY, "patch_cnn_width": 2},
                            cache_dir=tmp_path / "cache", **quiet)
    assert prepared["arrays"]["test"]["patches"].shape[1:] == (3, 16, 16)
    batch, _ = batch_from_arrays(prepared["arrays"]["test"], np.arange(8))
    members = ensemble_members(model)[0]
    gate = torch.tensor([n in METAL_LABELS for n in model.config.label_names])
    with torch.no_grad():
        out = model(frozen=batch)
        alone = members(frozen=batch)
        logits, severity = model.patch_cnn(batch["patches"], batch["coarse"])
        loaded = load_model(tmp_path / "cnn")(frozen=batch)
    weight = model.config.patch_cnn_weight             # chosen on the validation split
    assert torch.allclose(out.probabilities, fuse_with_patch_cnn(alone.probabilities, logits.softmax(-1), weight, gate),
                          atol=FUSE_TOL)
    assert torch.allclose(out.probabilities[:, gate].sum(1), alone.probabilities[:, gate].sum(1), atol=FUSE_TOL)
    assert torch.allclose(out.severity, (alone.severity + severity) / 2, atol=FUSE_TOL)
    assert torch.allclose(loaded.probabilities, out.probabilities, atol=FUSE_TOL)
    facts = json.loads((tmp_path / "cnn" / "metrics.json").read_text())["patch_cnn"]
    assert facts["width"] == 2 and facts["epochs"] == 2 and len(facts["history"]) == 2
    table = facts["validation_weights"]
    assert [r["weight"] for r in table] == [0.25, 0.5, 0.75]
    assert weight == max(table, key=lambda r: r["score"])["weight"]
    for r in table:
        assert r["score"] == pytest.approx((r["ten_class_accuracy"] + r["accuracy"] + r["clean_rate"]) / 3)
    with pytest.raises(ValueError, match="trained one part at a time"):
        model(frozen=batch, labels=torch.zeros(8, dtype=torch.long), levels=torch.zeros(8, dtype=torch.long))

    train_sespect([tiny_dataset], tmp_path / "plain", seed=3, command="train plain", **common)
    merged = merge_checkpoints([tmp_path / "plain", tmp_path / "cnn"], [tiny_dataset], tmp_path / "merged",
                               cache_dir=tmp_path / "cache", **quiet).model
    assert merged.config.ensemble_size == 2 and merged.config.patch_cnn_width == 2
    with torch.no_grad():
        plain = load_model(tmp_path / "plain")(frozen=batch).probabilities
        mean = (plain + alone.probabilities) / 2
        merged_weight = merged.config.patch_cnn_weight       # chosen again for the merged members
        assert torch.allclose(load_model(tmp_path / "merged")(frozen=batch).probabilities,
                              fuse_with_patch_cnn(mean, logits.softmax(-1), merged_weight, gate), atol=FUSE_TOL)
    merged_facts = json.loads((tmp_path / "merged" / "metrics.json").read_text())
    assert merged_weight == max(merged_facts["patch_cnn"]["validation_weights"], key=lambda r: r["score"])["weight"]
    assert merged_facts["patch_cnn"]["checkpoint"] == "cnn" and merged_facts["patch_cnn"]["command"] == "train cnn"
    assert "patch CNN" in (tmp_path / "merged" / "README.md").read_text()
    with pytest.raises(OptionError, match="both hold a patch CNN"):
        merge_checkpoints([tmp_path / "cnn", tmp_path / "merged"], [tiny_dataset], None, cache_dir=tmp_path / "cache",
                          **quiet)


def test_bad_patch_cnn_settings_are_refused_naming_the_value():
    from ctdegradbench.core.errors import OptionError
    from ctdegradbench.model import SeSpeCTConfig
    from ctdegradbench.model.options import TrainOptions

    with pytest.raises(ValueError, match="needs pixel_spacing_mm"):
        SeSpeCTConfig(backbone="none", use_semantic_branch=False, patch_cnn_width=8)
    grid = dict(backbone="none", use_semantic_branch=False, pixel_spacing_mm=1.0, image_size=64, spectral_size=16,
                texture_size=16, label_names=["S1_noise", "S5_metal", "clean"])
    with pytest.raises(ValueError, match="patch_cnn_weight must be in \\[0, 1\\], got 1.5"):
        SeSpeCTConfig(**grid, patch_cnn_width=8, patch_cnn_weight=1.5)
    with pytest.raises(ValueError, match="patch_size, coarse_size <= image_size \\(64\\)"):
        SeSpeCTConfig(**grid, patch_cnn_width=8, patch_size=96)
    with pytest.raises(ValueError, match="metal_gate_labels \\['S9_x'\\] are not classes"):
        SeSpeCTConfig(**grid, patch_cnn_width=8, metal_gate_labels=["S5_metal", "S9_x"])
    with pytest.raises(OptionError, match="--patch-cnn 16 needs --backbone none"):
        TrainOptions(dataset=("d",), out="o", backbone="efficientnet_lite0", patch_cnn=16)
    with pytest.raises(OptionError, match="--merge puts existing checkpoints together; --patch-cnn 16"):
        TrainOptions(dataset=("d",), out="o", merge=("a", "b"), patch_cnn=16)
