"""The IQA registry: the HU window, values against independent references, learned metrics' weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ctdegradbench.core.errors import InputNotFoundError, OptionError
from ctdegradbench.evaluation.iqa import METRICS, check_image_size, get_metrics, window_hu

FLOAT32_TOL = 1e-4      # piq computes in float32


def pair(size=64, sd=0.05, seed=0):
    rng = np.random.default_rng(seed)
    y = ndimage.gaussian_filter(rng.random((size, size)), 3)
    y = (y - y.min()) / np.ptp(y)
    x = np.clip(y + rng.normal(0, sd, y.shape), 0, 1)
    return x, y


def tensor(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float32))[None, None]


def score(name, x, y=None):
    scorer = METRICS[name].build("cpu", {})
    return float(scorer(tensor(x), tensor(y))[0] if y is not None else scorer(tensor(x))[0])


def test_eval_window_maps_and_clips():
    hu = np.array([-3024, -1000, -300, 0, 300, 2000])
    assert window_hu(hu).tolist() == [0.0, 0.0, 0.0, 0.5, 1.0, 1.0]
    assert window_hu(np.array([-1024, 976]), (-1024, 976)).tolist() == [0.0, 1.0]
    with pytest.raises(OptionError):
        window_hu(hu, (300, -300))


def test_eval_psnr_and_ssim_equal_scikit_image():
    x, y = pair()
    assert score("psnr", x, y) == pytest.approx(peak_signal_noise_ratio(y, x, data_range=1.0), abs=FLOAT32_TOL)
    reference = structural_similarity(y, x, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False)
    assert score("ssim", x, y) == pytest.approx(reference, abs=FLOAT32_TOL)


@pytest.mark.parametrize("name", ["psnr", "ssim", "vif", "fsim", "gmsd", "haarpsi", "st_lpips_alex"])
def test_eval_metrics_get_worse_with_more_noise(name):
    lower = METRICS[name].lower_better
    values = [score(name, *pair(sd=sd)) for sd in (0.02, 0.08, 0.2)]
    assert values == sorted(values, reverse=not lower), values


@pytest.mark.parametrize("name,best", [("ssim", 1.0), ("vif", 1.0), ("fsim", 1.0), ("gmsd", 0.0),
                                       ("haarpsi", 1.0), ("st_lpips_alex", 0.0)])
def test_eval_identical_images_score_best(name, best):
    _, y = pair()
    assert score(name, y, y) == pytest.approx(best, abs=1e-4)


def test_eval_ms_ssim_needs_161_px():
    with pytest.raises(OptionError, match="ms_ssim"):
        check_image_size(get_metrics(["psnr", "ms_ssim"]), 128)
    x, y = pair(size=176)
    assert 0 < score("ms_ssim", x, y) < score("ms_ssim", y, y) == pytest.approx(1.0, abs=1e-4)


def test_eval_stlpips_loads_every_weight():
    from ctdegradbench.evaluation.learned import load_stlpips, stlpips_weights_path

    model = load_stlpips("alex")
    saved = torch.load(stlpips_weights_path("alex"), map_location="cpu", weights_only=True)
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in saved.items())
    assert not model.training


def test_eval_lpips_and_dists_name_missing_weights(tmp_path):
    for name, file in (("lpips", "lpips_weights.pt"), ("dists", "dists_weights.pt")):
        with pytest.raises(InputNotFoundError, match=rf"vgg16-397923af\.pth.*{file}.*--weights-dir"):
            METRICS[name].build("cpu", {"weights_dir": tmp_path})


def test_eval_piqe_equals_pypiqe():
    from pypiqe import piqe

    x, _ = pair(size=96)
    assert score("piqe", x) == pytest.approx(piqe(np.rint(x * 255).astype(np.uint8))[0], abs=1e-9)


def test_eval_unknown_metric_is_an_option_error():
    with pytest.raises(OptionError, match="nope"):
        get_metrics(["psnr", "nope"])
