"""Fixtures of the SeSpeCT tests: tiny configs, a tiny open_clip CLIP built from a config
dict (no download), and a tiny exported-style dataset folder built directly with the
project's features (no simulator physics involved)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

IMAGE_SIZE = 64


def tiny_config(**overrides):
    """A SeSpeCT config small enough for CPU tests (EfficientNet-Lite0 on 32 px inputs)."""
    from ctdegradbench.model import SeSpeCTConfig
    from ctdegradbench.builder.simulate.settings import PAPER_CLASS_NAMES as CLASS_NAMES

    kwargs = dict(label_names=list(CLASS_NAMES), image_size=IMAGE_SIZE, spectral_size=16, texture_size=16, spectral_channels=(4, 8),
                  spectral_dim=8, image_channels=(4, 8), image_dim=8, backbone_image_size=32,
                  semantic_projection_dim=8, fusion_hidden_dim=16, fusion_dim=8)
    kwargs.update(overrides)
    return SeSpeCTConfig(**kwargs)


TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    """(a tiny open_clip CLIP with random weights, path of its full checkpoint file)."""
    import open_clip

    torch.manual_seed(0)
    model = open_clip.CLIP(**TINY_CLIP).eval()
    path = tmp_path_factory.mktemp("clip") / "tiny_clip.pt"
    torch.save(model.state_dict(), path)
    return model, path


def synthetic_hu(label: int, level: int, rng: np.random.Generator, size: int = IMAGE_SIZE) -> np.ndarray:
    """A disk of soft tissue with a class-specific texture whose amplitude grows with the level."""
    yy, xx = np.mgrid[:size, :size] - size / 2
    hu = np.where(xx ** 2 + yy ** 2 < (0.4 * size) ** 2, 40.0, -1000.0)
    amplitude = 40.0 * (level + 1)
    period = 2 + (label % 5)
    pattern = np.sin(2 * np.pi * (xx if label < 5 else xx + yy) / period)
    hu = hu + amplitude * pattern + rng.normal(0, 5, hu.shape)
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16)


def write_tiny_dataset(folder, n_patients=(3, 2, 2), per_class_levels=1, seed=0, settings=None, row_seed=0,
                       simulator_version="test"):
    """An exported-style folder (README configs + Parquet) with configs ``all`` and ``references``
    (``all`` holds ``settings``, default every setting, the opt-in S6 included; ``row_seed`` is
    every row's simulator seed column, ``simulator_version`` its simulator version)."""
    import datasets

    from ctdegradbench.builder.dataset.features import preview_png, reference_features, sample_features
    from ctdegradbench.builder.simulate.settings import CLASS_NAMES, SETTINGS

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in zip(("train", "validation", "test"), n_patients):
        samples, refs = [], []
        for p in range(n):
            patient = f"synth/{split}{p}"
            ref_id = f"{patient}/series/0000"
            refs.append({"reference_id": ref_id, "patient_key": patient, "source": "synth", "patient_id": f"{split}{p}",
                         "series_id": "series", "slice_index": 0, "pixel_spacing_mm": 1.0,
                         "reference": (ref := synthetic_hu(0, -1, rng) * 0 + 40), "preview": preview_png(ref),
                         "clean_fbp": synthetic_hu(0, 0, rng),
                         "kernel": None, "slice_thickness_mm": None, "noise_sd_hu": None, "info": {}})
            for setting in settings or SETTINGS:
                label = CLASS_NAMES.index(setting.class_name)
                for level in range(4):
                    for r in range(per_class_levels):
                        samples.append({
                            "sample_id": f"{ref_id}/{setting.code}/L{level}/r{r}", "reference_id": ref_id,
                            "patient_key": patient, "setting": setting.code, "label": label, "level": level,
                            "realization": r, "image": (image := synthetic_hu(label, level, rng)),
                            "preview": preview_png(image), "prompt": "synthetic",
                            "bbox": [], "components": [], "seed": row_seed, "pixel_spacing_mm": 1.0,
                            "geometry": {"image_size": IMAGE_SIZE, "pixel_spacing_mm": 1.0, "n_views": 90,
                                         "n_detectors": 91},
                            "fbp_filter": "ramp", "simulator_version": simulator_version, "reference_kernel": None,
                            "reference_slice_thickness_mm": None, "reference_noise_sd_hu": None, "metadata": {}})
        for config, rows, features in (("all", samples, sample_features(IMAGE_SIZE)),
                                       ("references", refs, reference_features(IMAGE_SIZE))):
            ds = datasets.Dataset.from_list(rows, features=features)
            out = folder / "data" / config
            out.mkdir(parents=True, exist_ok=True)
            ds.to_parquet(str(out / f"{split}-00000-of-00001.parquet"))
    lines = ["---", "configs:"]
    for config in ("all", "references"):
        lines += [f"- config_name: {config}", "  data_files:"]
        lines += [f"  - split: {s}\n    path: data/{config}/{s}-*.parquet" for s in ("train", "validation", "test")]
    lines += ["---", "", "Synthetic test folder.", ""]
    (folder / "README.md").write_text("\n".join(lines))
    assert len(CLASS_NAMES) == len(SETTINGS) + 1   # the settings' classes and clean
    return folder


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("bench") / "tiny-bench")
