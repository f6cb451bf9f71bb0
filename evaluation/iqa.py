"""Image-quality metrics of the benchmark: the HU window and the one metric registry.

HU -> [0, 1]
    ``u = (clip(HU, lo, hi) - lo) / (hi - lo)`` with the window ``(lo, hi)`` in HU, default
    :data:`DEFAULT_WINDOW_HU` = (-300, 300): a soft-tissue display window. Every metric sees the
    same windowed images, with ``data_range = 1``. Why this window: the paper's Table 10 was
    computed on windowed images (its window is not stated); with [-300, 300] HU our SSIM on the
    deterministic settings came out closest to the paper's Table 10 (see the project's design
    notes), and it shows the soft tissue where noise, blur and streaks are judged. Clipping at
    ``lo`` also removes the scanner padding below -1000 HU that references keep. The window is
    recorded in every result; ``--window LO HI`` changes it.

The registry (:data:`METRICS`) pins one implementation and its parameters per metric; every
classical metric is piq 0.8's (Apache-2.0), called on (B, 1, H, W) float32 tensors:

==========  ======================  ==========================================  =====  ===========
name        implementation          parameters                                  lower  range
==========  ======================  ==========================================  =====  ===========
psnr        piq.psnr                data_range 1 (dB = 10 log10(1 / MSE))        no    [0, inf)
ssim        piq.ssim                Gaussian 11 x 11, sigma 1.5, K1 0.01,       no    [-1, 1]
                                    K2 0.03, no downsampling (Wang et al. 2004)
ms_ssim     piq.multi_scale_ssim    Gaussian 11 x 11, sigma 1.5, 5 scales,      no    [0, 1]
                                    weights of Wang et al. 2003 (side >= 161 px)
vif         piq.vif_p               sigma_n^2 = 2 (pixel-domain VIF, on 0..255)  no    [0, inf)
fsim        piq.fsim                grey (chromatic off), 4 scales, 4 orient.,   no    [0, 1]
                                    after average pooling by round(min(H,W)/256)
gmsd        piq.gmsd                t = 170 / 255^2 (after 2x average pooling)   yes   [0, inf)
haarpsi     piq.haarpsi             3 scales, C = 30, alpha = 4.2, 2x subsampled no    [0, 1]
st_lpips_*  stlpips-pytorch 0.0.2   alex / vgg trunk, shift-tolerant weights     yes   [0, inf)
lpips       piq.LPIPS               VGG16, local weights (see learned.py)        yes   [0, inf)
dists       piq.DISTS               VGG16, local weights (see learned.py)        yes   [0, 1]
piqe        pypiqe 1.2              no reference; degraded image on 0..255 uint8 yes   [0, 100]
==========  ======================  ==========================================  =====  ===========

Implementations disagree (on one pair SSIM is 0.52 in scikit-image's defaults and 0.78 with
piq's default downsampling), so compare numbers only under the same registry and window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ctdegradbench.core.errors import OptionError

DEFAULT_WINDOW_HU: tuple[float, float] = (-300.0, 300.0)


def window_hu(hu, window=DEFAULT_WINDOW_HU) -> np.ndarray:
    """HU -> [0, 1] float32: ``(clip(hu, lo, hi) - lo) / (hi - lo)``."""
    lo, hi = float(window[0]), float(window[1])
    if not hi > lo:
        raise OptionError(f"window must have lo < hi (HU), got {window}")
    hu = np.asarray(hu, dtype=np.float32)
    return (np.clip(hu, lo, hi) - lo) / (hi - lo)


@dataclass(frozen=True)
class IQAMetric:
    """One registered image-quality metric.

    ``build(device, options)`` returns a scorer: for a full-reference metric
    ``scorer(x, y) -> (B,)`` with ``x`` degraded and ``y`` the target, both (B, 1, H, W) float32
    in [0, 1]; for a no-reference metric ``scorer(x) -> (B,)``.
    """

    name: str
    display: str
    implementation: str
    parameters: dict
    lower_better: bool
    value_range: tuple[float | None, float | None]
    build: Callable = field(repr=False, compare=False)
    full_reference: bool = True
    offline: bool = True      # False: needs weights no package ships (see learned.py)
    min_side: int = 1

    def describe(self) -> dict:
        """What the results record about the metric."""
        return {"display": self.display, "implementation": self.implementation, "parameters": self.parameters,
                "lower_better": self.lower_better, "range": list(self.value_range),
                "full_reference": self.full_reference}


def _piq(function_name: str, **parameters):
    def build(device, options):
        import piq

        function = getattr(piq, function_name)

        def scorer(x, y):
            import torch

            with torch.inference_mode():
                return function(x, y, reduction="none", **parameters).reshape(-1)

        return scorer

    return build


def _stlpips(net: str):
    def build(device, options):
        from ctdegradbench.evaluation.learned import STLPIPS

        return STLPIPS(net, device)

    return build


def _lpips(device, options):
    from ctdegradbench.evaluation.learned import build_lpips

    return build_lpips(device, options.get("weights_dir"))


def _dists(device, options):
    from ctdegradbench.evaluation.learned import build_dists

    return build_dists(device, options.get("weights_dir"))


def _piqe(device, options):
    try:
        from pypiqe import piqe
    except ImportError:
        raise OptionError("PIQE needs the package pypiqe: pip install 'ct-degradbench[nr]'") from None

    def scorer(x):
        import torch

        images = np.rint(x.detach().cpu().numpy()[:, 0] * 255).astype(np.uint8)
        return torch.tensor([float(piqe(image)[0]) for image in images], dtype=torch.float64)

    return scorer


_SSIM = {"kernel_size": 11, "kernel_sigma": 1.5, "k1": 0.01, "k2": 0.03}
METRICS: dict[str, IQAMetric] = {m.name: m for m in (
    IQAMetric("psnr", "PSNR", "piq.psnr", {"data_range": 1.0, "convert_to_greyscale": False}, False, (0.0, None),
              _piq("psnr", data_range=1.0, convert_to_greyscale=False)),
    IQAMetric("ssim", "SSIM", "piq.ssim", {"data_range": 1.0, **_SSIM, "downsample": False}, False, (-1.0, 1.0),
              _piq("ssim", data_range=1.0, downsample=False, **_SSIM)),
    IQAMetric("ms_ssim", "MS-SSIM", "piq.multi_scale_ssim",
              {"data_range": 1.0, **_SSIM, "scale_weights": [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]},
              False, (0.0, 1.0), _piq("multi_scale_ssim", data_range=1.0, **_SSIM), min_side=161),
    IQAMetric("vif", "VIF", "piq.vif_p", {"data_range": 1.0, "sigma_n_sq": 2.0}, False, (0.0, None),
              _piq("vif_p", data_range=1.0, sigma_n_sq=2.0), min_side=41),
    IQAMetric("fsim", "FSIM", "piq.fsim",
              {"data_range": 1.0, "chromatic": False, "scales": 4, "orientations": 4, "min_length": 6, "mult": 2,
               "sigma_f": 0.55, "delta_theta": 1.2, "k": 2.0, "average_pooling": "round(min(H, W) / 256)"},
              False, (0.0, 1.0),
              _piq("fsim", data_range=1.0, chromatic=False)),
    IQAMetric("gmsd", "GMSD", "piq.gmsd", {"data_range": 1.0, "t": 170 / 255 ** 2, "average_pooling": 2}, True, (0.0, None),
              _piq("gmsd", data_range=1.0, t=170 / 255 ** 2)),
    IQAMetric("haarpsi", "HaarPSI", "piq.haarpsi",
              {"data_range": 1.0, "scales": 3, "subsample": True, "c": 30.0, "alpha": 4.2}, False, (0.0, 1.0),
              _piq("haarpsi", data_range=1.0, scales=3, subsample=True, c=30.0, alpha=4.2)),
    IQAMetric("st_lpips_alex", "ST-LPIPS (alex)", "stlpips-pytorch LPIPS(net='alex', variant='shift_tolerant')",
              {"input": "2u - 1, grey repeated to 3 channels"}, True, (0.0, None), _stlpips("alex")),
    IQAMetric("st_lpips_vgg", "ST-LPIPS (vgg)", "stlpips-pytorch LPIPS(net='vgg', variant='shift_tolerant')",
              {"input": "2u - 1, grey repeated to 3 channels"}, True, (0.0, None), _stlpips("vgg")),
    IQAMetric("lpips", "LPIPS (vgg)", "piq.LPIPS", {"input": "u, ImageNet mean/std, grey repeated to 3 channels"},
              True, (0.0, None), _lpips, offline=False),
    IQAMetric("dists", "DISTS", "piq.DISTS", {"input": "u, ImageNet mean/std, grey repeated to 3 channels"},
              True, (0.0, 1.0), _dists, offline=False),
    IQAMetric("piqe", "PIQE", "pypiqe.piqe", {"input": "degraded image only, rint(255 u) as uint8"}, True,
              (0.0, 100.0), _piqe, full_reference=False),
)}

#: What ``bench iqa`` computes by default: every metric that runs offline from installed packages
#: (ST-LPIPS vgg is about 2.5x slower than alex, PIQE needs the optional pypiqe).
DEFAULT_METRICS: tuple[str, ...] = ("psnr", "ssim", "ms_ssim", "vif", "fsim", "gmsd", "haarpsi", "st_lpips_alex")


def get_metrics(names) -> list[IQAMetric]:
    """The registered metrics ``names``, in that order; an unknown name raises OptionError."""
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise OptionError(f"unknown IQA metric(s) {', '.join(unknown)}; expected any of {', '.join(METRICS)}")
    return [METRICS[n] for n in names]


def check_image_size(metrics, side: int) -> None:
    """Raise OptionError if an image of ``side`` pixels is too small for one of ``metrics``."""
    small = [f"{m.name} (needs >= {m.min_side} px)" for m in metrics if side < m.min_side]
    if small:
        raise OptionError(f"images of {side} px are too small for {', '.join(small)}; leave those metrics out")
