"""Learned perceptual metrics: ST-LPIPS (runs offline), LPIPS and DISTS (local weights only).

ST-LPIPS (Ghildyal & Liu, "Shift-tolerant Perceptual Similarity Metric", ECCV 2022) from the
PyPI package ``stlpips-pytorch``: AlexNet / VGG16 trunks with anti-aliased (blur-pooled)
downsampling and learned linear heads, whose *complete* weights (trunk and heads) ship in the
wheel, so it runs without any download. It is reported as ST-LPIPS, never as LPIPS: the
trunk weights differ from the ImageNet ones of the original LPIPS.

LPIPS (Zhang et al. 2018, VGG16 trunk) and DISTS (Ding et al. 2020) come from piq. Both need
torchvision's ImageNet VGG16 weights and their own head weights, which no package ships; piq
fetches them with ``torch.hub.load_state_dict_from_url``, which first looks for
``<hub dir>/checkpoints/<file name>``. :func:`build_lpips` / :func:`build_dists` check those
files in ``weights_dir`` (default: torch's hub folder, ``$TORCH_HOME/hub``) and raise an error
naming each missing file and where to download it, so nothing is fetched at run time.

All scorers take two (B, 1, H, W) float tensors in [0, 1] (windowed CT) and return (B,) distances
(lower = more similar); grey images are repeated to three channels.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from ctdegradbench.core.errors import InputNotFoundError

#: Files LPIPS and DISTS read from ``<weights_dir>/checkpoints/``: name -> download URL.
VGG16_FILE = ("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth")
LPIPS_FILES = dict([VGG16_FILE, ("lpips_weights.pt", "https://github.com/photosynthesis-team/"
                                 "photosynthesis.metrics/releases/download/v0.4.0/lpips_weights.pt")])
DISTS_FILES = dict([VGG16_FILE, ("dists_weights.pt",
                                 "https://github.com/photosynthesis-team/piq/releases/download/v0.4.1/dists_weights.pt")])


def stlpips_weights_path(net: str) -> Path:
    """The weights file of the ST-LPIPS ``net`` ("alex" or "vgg") inside the installed package."""
    import stlpips_pytorch

    if net not in ("alex", "vgg"):
        raise ValueError(f"ST-LPIPS net must be 'alex' or 'vgg', got {net!r}")
    return Path(stlpips_pytorch.__file__).resolve().parent / "weights" / "vST0.0" / f"{net}_shift_tolerant.pth"


def load_stlpips(net: str, device="cpu"):
    """The ST-LPIPS network ``net`` with every weight loaded from the package, in eval mode.

    The package's own loader uses ``load_state_dict(strict=False)``; here every parameter must
    come from the file (the only keys the file lacks are ``lins.k.*``, aliases of ``link.*``).
    """
    import torch
    from stlpips_pytorch import stlpips

    model = stlpips.LPIPS(pretrained=False, net=net, variant="shift_tolerant", verbose=False)
    state = torch.load(stlpips_weights_path(net), map_location="cpu", weights_only=True)
    result = model.load_state_dict(state, strict=False)
    aliases = {f"lins.{k[3]}.{k[5:]}" for k in state if k.startswith("lin") and k[3].isdigit()}
    missing = sorted(set(result.missing_keys) - aliases)
    if missing or result.unexpected_keys:
        raise RuntimeError(f"ST-LPIPS {net} weights do not match the network: missing {missing[:3]}, "
                           f"unexpected {result.unexpected_keys[:3]}")
    return model.eval().to(device)


def _three_channels(x):
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


class STLPIPS:
    """ST-LPIPS distance between two windowed images: (B, 1, H, W) in [0, 1] -> (B,).

    Inputs are mapped to [-1, 1] (``2 x - 1``) as the network expects.
    """

    def __init__(self, net: str = "alex", device="cpu"):
        self.net = net
        self.model = load_stlpips(net, device)

    def __call__(self, x, y):
        import torch

        with torch.inference_mode():
            d = self.model(_three_channels(x) * 2 - 1, _three_channels(y) * 2 - 1)
        return d.reshape(-1)

    def features(self, x):
        """The five unit-normalised trunk feature maps of ``x`` (as LPIPS compares them)."""
        import torch
        from stlpips_pytorch import utils

        with torch.inference_mode():
            outs = self.model.net.forward(self.model.scaling_layer(_three_channels(x) * 2 - 1))
            return [utils.normalize_tensor(o) for o in outs]


def check_checkpoints(metric: str, files: dict[str, str], weights_dir=None) -> Path:
    """Return the hub folder holding ``checkpoints/<file>`` for every file of ``files``.

    Raises
    ------
    InputNotFoundError
        Naming each missing file, its download URL and the folder to put it in.
    """
    import torch

    folder = Path(weights_dir) if weights_dir is not None else Path(torch.hub.get_dir())
    missing = [name for name in files if not (folder / "checkpoints" / name).is_file()]
    if missing:
        wanted = "; ".join(f"{name} from {files[name]}" for name in missing)
        raise InputNotFoundError(
            f"{metric} needs ImageNet weights that no package ships and that cannot be downloaded here: "
            f"put {wanted} into {folder / 'checkpoints'} (on a machine with internet), or pass "
            f"--weights-dir DIR holding DIR/checkpoints/<file>")
    return folder


@contextlib.contextmanager
def _hub_dir(folder: Path):
    import torch

    old = torch.hub.get_dir()
    torch.hub.set_dir(str(folder))
    try:
        yield
    finally:
        torch.hub.set_dir(old)


class _PiqDistance:
    def __init__(self, metric, device):
        self.metric = metric.eval().to(device)

    def __call__(self, x, y):
        import torch

        with torch.inference_mode():
            return self.metric(_three_channels(x), _three_channels(y)).reshape(-1)


def build_lpips(device="cpu", weights_dir=None) -> _PiqDistance:
    """LPIPS (VGG16 trunk, piq) from local weights: see :data:`LPIPS_FILES`."""
    import piq

    folder = check_checkpoints("LPIPS", LPIPS_FILES, weights_dir)
    with _hub_dir(folder):
        return _PiqDistance(piq.LPIPS(reduction="none"), device)


def build_dists(device="cpu", weights_dir=None) -> _PiqDistance:
    """DISTS (VGG16 trunk, piq) from local weights: see :data:`DISTS_FILES`."""
    import piq

    folder = check_checkpoints("DISTS", DISTS_FILES, weights_dir)
    with _hub_dir(folder):
        return _PiqDistance(piq.DISTS(reduction="none"), device)
