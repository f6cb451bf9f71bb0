"""Encoders: cosine drift, EfficientNet-Lite0 from the packaged weights, ST-LPIPS features,
open_clip from a tiny config (in memory and through a local-dir checkpoint), clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ctdegradbench.core.errors import InputNotFoundError, OptionError
from ctdegradbench.evaluation.encoders import (
    build_encoder,
    cosine_distance,
    efficientnet_lite0_encoder,
    open_clip_encoder,
)

TINY_CLIP = {"embed_dim": 16,
             "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
             "text_cfg": {"context_length": 8, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}}


def images(n=2, size=48, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).random((n, 1, size, size)).astype(np.float32))


def test_eval_cosine_distance_matches_formula():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    expected = 1 - (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    got = cosine_distance(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    assert np.allclose(got, expected, atol=1e-6)
    assert cosine_distance(torch.ones(1, 3), -torch.ones(1, 3)).item() == pytest.approx(2.0)


def test_eval_efficientnet_lite0_embeds_pooled_features():
    encoder = efficientnet_lite0_encoder(size=64)
    x = images(size=64)
    e = encoder.embed(x)
    assert e.shape == (2, 1280) and encoder.name == "efficientnet_lite0@64"
    model_input = (x.expand(-1, 3, -1, -1) - 0.5) / 0.5                       # already 64 px: no resize
    from ctdegradbench.evaluation.encoders import load_efficientnet_lite0

    with torch.inference_mode():
        manual = load_efficientnet_lite0().extract_features(model_input).mean(dim=(2, 3))
    assert torch.allclose(e, manual, atol=1e-5)
    assert cosine_distance(e, encoder.embed(x)).abs().max() < 1e-6


def test_eval_efficientnet_lite0_is_sespects_backbone():
    """The drift encoder loads the network itself (evaluation never imports the model); it must be
    the very network and weights of SeSpeCT's frozen EfficientNet-Lite0 backbone."""
    from ctdegradbench.evaluation.encoders import load_efficientnet_lite0
    from ctdegradbench.model.backbones import EfficientNetLite0Backbone

    backbone = EfficientNetLite0Backbone()
    backbone.load_pretrained()
    x = (images(size=64).expand(-1, 3, -1, -1) - 0.5) / 0.5
    with torch.inference_mode():
        ours = load_efficientnet_lite0().extract_features(x).mean(dim=(2, 3))
        theirs = backbone.eval()(x)[0]
    assert torch.equal(ours, theirs)


def test_eval_stlpips_features_are_unit_normalised_means():
    encoder = build_encoder("st_lpips_alex")
    e = encoder.embed(images())
    assert e.shape == (2, encoder.dim) and encoder.dim == 64 + 192 + 384 + 256 + 256
    # each layer block is a mean of unit vectors: its norm is at most 1
    blocks = torch.split(e, [64, 192, 384, 256, 256], dim=1)
    assert all(float(b.norm(dim=1).max()) <= 1 + 1e-5 for b in blocks)


def test_eval_open_clip_from_config_and_local_dir(tmp_path):
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY_CLIP).eval()
    in_memory = open_clip_encoder(model, "open_clip:tiny")
    x = images(size=40)
    e = in_memory.embed(x)
    assert e.shape == (2, 16) and in_memory.dim == 16
    folder = tmp_path / "tiny_clip"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP, "preprocess_cfg": {}}))
    save_file(model.state_dict(), str(folder / "open_clip_model.safetensors"))
    loaded = build_encoder(f"open_clip:local-dir:{folder}")
    assert loaded.name == f"open_clip:local-dir:{folder}"
    assert torch.allclose(loaded.embed(x), e, atol=1e-5)


def test_eval_open_clip_errors_name_what_is_missing(tmp_path, offline):
    with pytest.raises(InputNotFoundError, match="local-dir"):
        build_encoder("open_clip:hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224")
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP}))
    with pytest.raises(InputNotFoundError, match="no weights file"):
        build_encoder(f"open_clip:local-dir:{tmp_path}")
    with pytest.raises(OptionError, match="PyPI"):
        build_encoder("open_clip:ViT-B-32")
    with pytest.raises(OptionError, match="unknown encoder"):
        build_encoder("biomedclip")
