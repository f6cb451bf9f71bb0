"""SeSpeCT as a transformers model: save / load round trips (also through trust_remote_code in a
fresh process), frozen backbone kept out of the checkpoint, gradients, the Eq. 15-19 quantities."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors import safe_open

from ctdegradbench.core.hu import AIR_HU

from .conftest import IMAGE_SIZE, TINY_CLIP, tiny_config

OUTPUT_ATOL = 1e-5   # float32 outputs of the same weights on the same input, two model instances


_BUILT = {}


def _model(**overrides):
    """A tiny SeSpeCT with the packaged EfficientNet weights (built once per config, copied per test)."""
    import copy

    from ctdegradbench.model import SeSpeCTForDegradationEstimation

    key = tuple(sorted(overrides.items()))
    if key not in _BUILT:
        torch.manual_seed(0)
        model = SeSpeCTForDegradationEstimation(tiny_config(**overrides))
        model.load_backbone_weights()
        model.set_quality_axis(torch.randn(model.config.semantic_embed_dim), "image_prototypes")
        _BUILT[key] = model.eval()
    return copy.deepcopy(_BUILT[key])


def _slices(n=3, size=IMAGE_SIZE, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.normal(0, 300, (n, size, size)).astype(np.float32))


def _open_clip_model(tiny_clip, **overrides):
    from ctdegradbench.model import SeSpeCTForDegradationEstimation

    _, path = tiny_clip
    cfg = tiny_config(backbone="open_clip", open_clip_embed_dim=TINY_CLIP["embed_dim"],
                      open_clip_vision_cfg=TINY_CLIP["vision_cfg"], backbone_weights=str(path),
                      semantic_embed_dim=TINY_CLIP["embed_dim"], backbone_image_size=32, **overrides)
    torch.manual_seed(0)
    model = SeSpeCTForDegradationEstimation(cfg)
    model.load_backbone_weights()
    return model.eval()


def test_save_and_auto_model_reload_give_identical_outputs(tmp_path):
    from transformers import AutoConfig, AutoModel, AutoModelForImageClassification

    model = _model()
    x = _slices()
    expected = model(pixel_values=x)
    model.save_pretrained(tmp_path)
    assert AutoConfig.from_pretrained(tmp_path).model_type == "sespect"
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert type(loaded).__name__ == "SeSpeCTForDegradationEstimation"
    got = loaded(pixel_values=x)
    for name in ("logits", "probabilities", "severity", "fused_embedding", "semantic_scores", "hf_ratio"):
        torch.testing.assert_close(getattr(got, name), getattr(expected, name), atol=OUTPUT_ATOL, rtol=0)
    torch.testing.assert_close(loaded.sespect.quality_axis, model.sespect.quality_axis)
    trunk = AutoModel.from_pretrained(tmp_path).eval()            # the trunk: the fused embedding z_f
    assert type(trunk).__name__ == "SeSpeCTModel"
    torch.testing.assert_close(trunk(pixel_values=x).last_hidden_state, expected.fused_embedding,
                               atol=OUTPUT_ATOL, rtol=0)


def test_backbone_weights_are_not_saved_unless_asked(tmp_path):
    model = _model()
    model.save_pretrained(tmp_path / "lean")
    with safe_open(tmp_path / "lean" / "model.safetensors", "pt") as f:
        keys = list(f.keys())
    assert keys and not any("backbone." in k for k in keys)
    assert "sespect.quality_axis" in keys and "classifier.weight" in keys
    full = _model(save_backbone_weights=True)
    full.save_pretrained(tmp_path / "full")
    with safe_open(tmp_path / "full" / "model.safetensors", "pt") as f:
        assert any(k.startswith("sespect.backbone.") for k in f.keys())


def test_reload_restores_pretrained_backbone_not_random_init(tmp_path):
    from ctdegradbench.model import SeSpeCTForDegradationEstimation

    model = _model()
    model.save_pretrained(tmp_path)
    loaded = SeSpeCTForDegradationEstimation.from_pretrained(tmp_path)
    backbone = model.sespect.backbone.state_dict()
    for (name, a), (_, b) in zip(backbone.items(), loaded.sespect.backbone.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)
    skipped = SeSpeCTForDegradationEstimation.from_pretrained(tmp_path, load_backbone_weights=False)
    first = next(iter(backbone))
    assert not torch.equal(skipped.sespect.backbone.state_dict()[first], backbone[first])


def test_trust_remote_code_in_a_fresh_process(tmp_path):
    model = _model()
    x = _slices()
    np.save(tmp_path / "x.npy", x.numpy())
    np.save(tmp_path / "expected.npy", model(pixel_values=x).logits.detach().numpy())
    model.save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_sespect.SeSpeCTModel"
    assert config["auto_map"]["AutoModelForImageClassification"] == "modeling_sespect.SeSpeCTForDegradationEstimation"
    for name in ("modeling_sespect.py", "configuration_sespect.py", "backbones.py", "losses.py",
                 "image_processing_sespect.py", "pipeline_sespect.py"):
        assert (tmp_path / "ckpt" / name).is_file()
    script = textwrap.dedent(f"""
        import sys, numpy as np, torch
        from transformers import AutoModelForImageClassification
        model = AutoModelForImageClassification.from_pretrained({str(tmp_path / 'ckpt')!r}, trust_remote_code=True).eval()
        assert "ctdegradbench" not in sys.modules, "the remote code must not import the package"
        got = model(pixel_values=torch.from_numpy(np.load({str(tmp_path / 'x.npy')!r}))).logits.detach().numpy()
        np.testing.assert_allclose(got, np.load({str(tmp_path / 'expected.npy')!r}), atol={OUTPUT_ATOL}, rtol=0)
        print("ok", type(model).__module__)
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "ok" in run.stdout and "ctdegradbench" not in run.stdout


def test_gradients_reach_trainable_parts_only():
    model = _model().train()
    out = model(pixel_values=_slices(4), labels=torch.tensor([0, 1, 0, 1]), levels=torch.tensor([0, 3, 1, 2]))
    out.loss.backward()
    for name, p in model.named_parameters():
        if name.startswith("sespect.backbone."):
            assert p.grad is None and not p.requires_grad, name
        else:
            assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_backbone_stays_in_eval_mode_while_training():
    model = _model().train()
    assert model.training and not model.sespect.backbone.training


def test_semantic_scores_follow_eq_16_to_18():
    model = _model()
    emb, tokens = torch.randn(2, 1280), torch.randn(2, 5, 1280)
    q = model.sespect.quality_axis
    scores = model.sespect.semantic_scores(emb, tokens)
    for b in range(2):
        s_global = (emb[b] / emb[b].norm()) @ q
        s_i = torch.stack([(t / t.norm()) @ q for t in tokens[b]])
        expected = torch.stack([s_global, s_i.mean(), s_i.max(), s_i.std()])
        torch.testing.assert_close(scores[b], expected, atol=1e-6, rtol=0)


def test_high_frequency_ratio_eq_19():
    model = _model()
    n = IMAGE_SIZE
    flat = torch.full((1, 1, n, n), 0.5)
    _, ratio = model.sespect.spectral_inputs(flat)
    assert ratio.item() == pytest.approx(0.0, abs=1e-9)          # all energy at DC
    checker = (torch.arange(n)[:, None] + torch.arange(n)[None, :]) % 2
    _, ratio = model.sespect.spectral_inputs((checker.float() - 0.5)[None, None])
    assert ratio.item() == pytest.approx(1.0, abs=1e-6)          # all energy at (Nyquist, Nyquist)
    rng = np.random.default_rng(0)
    image = torch.from_numpy(rng.normal(size=(1, 1, n, n)).astype(np.float32))
    power = np.abs(np.fft.fft2(image[0, 0].numpy().astype(np.float64))) ** 2
    f = np.fft.fftfreq(n)
    hf = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2) / 0.5 > model.config.hf_cutoff
    _, ratio = model.sespect.spectral_inputs(image)
    assert ratio.item() == pytest.approx(power[hf].sum() / power.sum(), rel=1e-4)


def test_preprocessing_pads_with_air_and_windows():
    model = _model()
    wide = torch.full((1, 32, 64), 0.0)                       # 0 HU, wider than tall
    hu = model.preprocess(wide)
    assert hu.shape == (1, IMAGE_SIZE, IMAGE_SIZE)
    assert hu[0, 0, IMAGE_SIZE // 2].item() == pytest.approx(AIR_HU)      # padding row is air
    assert hu[0, IMAGE_SIZE // 2, IMAGE_SIZE // 2].item() == pytest.approx(0.0)
    windows = model.sespect.windows(torch.tensor([[[-2000.0, 0.0, 40.0, 5000.0]]]))
    torch.testing.assert_close(windows[0, 0, 0], torch.tensor([0.0, 0.5, 0.52, 1.0]))
    torch.testing.assert_close(windows[0, 1, 0], torch.tensor([0.0, 0.4, 0.5, 1.0]))


def test_each_branch_can_be_ablated(tmp_path):

    x = _slices(2)
    for flags in ({"use_semantic_branch": False}, {"use_spectral_branch": False}, {"use_image_branch": False},
                  {"semantic_use_embedding": False}):
        model = _model(**flags)
        out = model(pixel_values=x)
        assert out.logits.shape == (2, 10)
        if flags.get("use_semantic_branch") is False:
            assert model.sespect.backbone is None and out.semantic_scores is None
        if flags.get("use_spectral_branch") is False:
            assert out.hf_ratio is None and not hasattr(model.sespect, "spectral_encoder")
    with pytest.raises(ValueError, match="at least one"):
        tiny_config(use_semantic_branch=False, use_spectral_branch=False, use_image_branch=False)


def test_missing_backbone_weights_name_what_is_missing(tmp_path, monkeypatch):
    import huggingface_hub.constants

    from ctdegradbench.model import SeSpeCTForDegradationEstimation as SeSpeCTModel

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)   # fail at once, as on a machine offline
    model = SeSpeCTModel(tiny_config(backbone_weights=str(tmp_path / "nope.pth")))
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        model.load_backbone_weights()
    clip = SeSpeCTModel(tiny_config(backbone="open_clip", open_clip_model="hf-hub:org/not-cached-model",
                                    open_clip_embed_dim=16, open_clip_vision_cfg=TINY_CLIP["vision_cfg"],
                                    semantic_embed_dim=16, backbone_image_size=32))
    with pytest.raises(FileNotFoundError, match="local-dir"):
        clip.load_backbone_weights()


def test_open_clip_backbone_round_trip_and_remote_code(tiny_clip, tmp_path):
    from transformers import AutoModelForImageClassification

    model = _open_clip_model(tiny_clip)
    model.set_quality_axis(torch.randn(16), "prompts")
    x = _slices()
    expected = model(pixel_values=x)
    assert expected.semantic_scores.shape == (3, 4)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    torch.testing.assert_close(loaded(pixel_values=x).logits, expected.logits, atol=OUTPUT_ATOL, rtol=0)
    clip, _ = tiny_clip
    torch.testing.assert_close(loaded.sespect.backbone.visual.proj, clip.visual.proj)


def test_open_clip_patch_tokens_live_in_the_joint_space(tiny_clip):
    model = _open_clip_model(tiny_clip)
    clip, _ = tiny_clip
    pixels = torch.randn(2, 3, 32, 32)
    embedding, tokens = model.sespect.backbone(pixels)
    torch.testing.assert_close(embedding, clip.encode_image(pixels), atol=1e-5, rtol=0)
    assert tokens.shape == (2, (32 // 8) ** 2, TINY_CLIP["embed_dim"])


def test_prompt_quality_axis_matches_eq_13_to_15(tiny_clip):
    import open_clip

    from ctdegradbench.builder.simulate.prompts import HIGH_QUALITY_PROMPTS, LOW_QUALITY_PROMPTS
    from ctdegradbench.model.train import prompt_quality_axis, table7_prompts

    clip, _ = tiny_clip
    tokenizer = open_clip.get_tokenizer("ViT-B-32")   # open_clip's packaged BPE vocabulary
    high, low = table7_prompts()
    assert high == list(HIGH_QUALITY_PROMPTS) and low == list(LOW_QUALITY_PROMPTS.values())
    assert len(high) == 3 and len(low) == 5
    q = prompt_quality_axis(clip, tokenizer, high, low)
    with torch.no_grad():
        e_h = [v / v.norm() for v in clip.encode_text(tokenizer(high))]
        e_l = [v / v.norm() for v in clip.encode_text(tokenizer(low))]
    diff = sum(e_h) / len(e_h) - sum(e_l) / len(e_l)
    torch.testing.assert_close(q, diff / diff.norm(), atol=1e-6, rtol=0)
    assert q.norm().item() == pytest.approx(1.0, abs=1e-6)


def test_image_prototype_axis_is_eq_15_on_image_embeddings():
    from ctdegradbench.model.train import image_prototype_axis

    rng = np.random.default_rng(0)
    clean, degraded = rng.normal(size=(4, 6)), rng.normal(size=(7, 6))
    mu_h = (clean / np.linalg.norm(clean, axis=1, keepdims=True)).mean(0)
    mu_l = (degraded / np.linalg.norm(degraded, axis=1, keepdims=True)).mean(0)
    expected = (mu_h - mu_l) / np.linalg.norm(mu_h - mu_l)
    np.testing.assert_allclose(image_prototype_axis(clean, degraded).numpy(), expected, atol=1e-6)
