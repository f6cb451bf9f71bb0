"""Fixtures of the benchmark tests: tiny dataset folders written directly with the dataset's
features (no simulator), so the tests are fast and independent of the physics.

Degradations are synthetic and known: "S1" adds Gaussian noise of SD 15 * (level + 1) HU,
"S2" blurs with a Gaussian of sigma 0.6 * (level + 1) px, "M1" does both. Every patient has
one reference slice (a phantom with a few disks and a per-patient offset).
"""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pytest
import yaml
from scipy import ndimage

from ctdegradbench.builder.dataset.features import preview_png, reference_features, sample_features
from ctdegradbench.builder.simulate.settings import CLASS_NAMES, get_setting

SETTING_CODES = ("S1", "S2", "M1")
PATIENTS = ("p0", "p1", "p2", "p3", "p4")


def phantom(size: int, patient: int) -> np.ndarray:
    """A body-like HU slice: air with scanner padding in the corners, a water disk, bone and fat."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    r = np.hypot(yy, xx)
    hu = np.full((size, size), -1000.0)
    hu[r > 0.49 * size] = -3024.0                                   # scanner padding
    hu[r < 0.42 * size] = 20.0 + 10 * patient
    hu[np.hypot(yy - 0.15 * size, xx) < 0.08 * size] = 700.0          # bone
    hu[np.hypot(yy + 0.15 * size, xx - 0.1 * size) < 0.07 * size] = -90.0   # fat
    hu[np.hypot(yy, xx + 0.2 * size) < 0.04 * size] = 60.0 + 20 * patient
    return hu


def degrade(reference: np.ndarray, code: str, level: int, rng: np.random.Generator) -> np.ndarray:
    out = reference.copy()
    if code in ("S2", "M1"):
        out = ndimage.gaussian_filter(out, 0.6 * (level + 1))
    if code in ("S1", "M1"):
        out = out + rng.normal(0, 15.0 * (level + 1), out.shape)
    return np.clip(np.rint(out), -32768, 32767).astype(np.int16)


def write_folder(root: Path, size: int = 64, patients=PATIENTS, codes=SETTING_CODES,
                 split_of=lambda i: "test" if i >= 2 else "train", seed: int = 0) -> Path:
    """Write a dataset folder: data/<config>/<split>-00000-of-00001.parquet + README.md configs."""
    rng = np.random.default_rng(seed)
    refs = {split: [] for split in ("train", "test")}
    samples = {code: {split: [] for split in ("train", "test")} for code in codes}
    for i, patient in enumerate(patients):
        split = split_of(i)
        reference = phantom(size, i)
        rid = f"synthetic/{patient}/series/0"
        clean = np.clip(np.rint(ndimage.gaussian_filter(reference, 0.5)), -1024, None).astype(np.int16)
        refs[split].append({"reference_id": rid, "patient_key": f"synthetic/{patient}", "source": "synthetic",
                            "patient_id": patient, "series_id": "series", "slice_index": 0, "pixel_spacing_mm": 0.7,
                            "reference": reference.astype(np.int16), "preview": preview_png(reference),
                            "clean_fbp": clean, "kernel": "B30f",
                            "slice_thickness_mm": 1.0, "noise_sd_hu": 5.0, "info": {}})
        for code in codes:
            setting = get_setting(code)
            for level in range(4):
                samples[code][split].append({
                    "sample_id": f"{rid}/{code}/L{level}/r0", "reference_id": rid, "patient_key": f"synthetic/{patient}",
                    "setting": code, "label": CLASS_NAMES.index(setting.class_name), "level": level, "realization": 0,
                    "image": (image := degrade(reference, code, level, rng)), "preview": preview_png(image),
                    "prompt": f"{setting.description}, level {level}",
                    "bbox": [], "components": [], "seed": int(rng.integers(1 << 31)), "pixel_spacing_mm": 0.7,
                    "geometry": {"image_size": size, "pixel_spacing_mm": 0.7, "n_views": 360, "n_detectors": 91},
                    "fbp_filter": "ramp", "simulator_version": "test", "reference_kernel": "B30f",
                    "reference_slice_thickness_mm": 1.0, "reference_noise_sd_hu": 5.0, "metadata": {}})
    configs = []
    folder = root / "bench"
    for code in codes:
        name = get_setting(code).config_name
        for split, rows in samples[code].items():
            if rows:
                path = folder / "data" / name / f"{split}-00000-of-00001.parquet"
                path.parent.mkdir(parents=True, exist_ok=True)
                datasets.Dataset.from_list(rows, features=sample_features(size)).to_parquet(str(path))
        configs.append({"config_name": name, "data_files": [
            {"split": s, "path": f"data/{name}/{s}-*.parquet"} for s in ("train", "test") if samples[code][s]]})
    config_names = [get_setting(c).config_name for c in codes]
    configs.append({"config_name": "all", "data_files": [
        {"split": s, "path": [f"data/{n}/{s}-*.parquet" for n in config_names]} for s in ("train", "test")]})
    for split, rows in refs.items():
        path = folder / "data" / "references" / f"{split}-00000-of-00001.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        datasets.Dataset.from_list(rows, features=reference_features(size)).to_parquet(str(path))
    configs.append({"config_name": "references", "data_files": [
        {"split": s, "path": f"data/references/{s}-*.parquet"} for s in ("train", "test")]})
    (folder / "README.md").write_text("---\n" + yaml.safe_dump({"configs": configs}, sort_keys=False)
                                      + "---\n# synthetic CT-DegradBench folder for tests\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def bench_folder(tmp_path_factory) -> Path:
    """64 px synthetic dataset: settings S1, S2, M1; 2 train and 3 test patients, 4 levels each."""
    return write_folder(tmp_path_factory.mktemp("evaldata"))


@pytest.fixture
def offline(monkeypatch):
    """No network for the Hugging Face libraries (the machines have none either)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
