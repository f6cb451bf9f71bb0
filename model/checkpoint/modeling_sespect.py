"""SeSpeCT: semantic-spectral CT degradation type and severity estimation (paper Section 3).

Self-contained (imports torch, transformers and the sibling remote-code files
``configuration_sespect``, ``backbones``, ``losses`` and ``image_processing_sespect`` only), so a
saved folder loads with ``AutoModelForImageClassification.from_pretrained(folder,
trust_remote_code=True)`` in a fresh process.

Classes in transformers' shape: :class:`SeSpeCTModel` is the trunk (slices -> fused embedding
``z_f``; ``AutoModel``), :class:`SeSpeCTForDegradationEstimation` adds the class and severity heads
and the loss (``AutoModelForImageClassification``; its trunk is the attribute ``sespect``).

Pipeline for a batch of CT slices in Hounsfield units (``pixel_values``, ``(B, H, W)``):

1. **Preprocessing** (:meth:`SeSpeCTModel.preprocess`, the only place): pad to a square with
   air (-1000 HU), resize to ``config.image_size`` (bilinear, anti-aliased; the spectral and
   image branches keep full resolution: downsizing to 224 px loses the fine texture of noise
   and streaks), window each of ``config.hu_windows`` to [0, 1].
2. **Frozen stage** (:meth:`SeSpeCTModel.frozen_features`, no gradients, cacheable): backbone
   embedding ``f_image(x)`` and patch tokens ``t_i``; the log-magnitude spectrum
   ``M = log(1 + |F|)`` of each window, average-pooled to ``spectral_size``; the
   high-frequency energy ratio ``r_fft`` (Eq. 19); for the image branch, fixed texture maps
   (block mean and block RMS of the 3x3 high-pass residual of each window).
3. **Trainable stage** (:meth:`SeSpeCTModel.forward` from those features, then the heads of
   :meth:`SeSpeCTForDegradationEstimation.forward`):

   - semantic branch: ``z = f/||f||`` (Eq. 16), ``s_global = z.q`` (Eq. 17),
     ``s_i = t_i/||t_i|| . q`` (Eq. 18), ``f_sem = [s_global || mean, max, std of s_i]``
     (plus, beyond the paper, a linear projection of ``z`` when ``semantic_use_embedding``);
     ``q`` is the quality axis (Eq. 15), a saved buffer;
   - spectral branch: ``f_spec = [g_fft(M) || log r_fft]`` (Section 3.2);
   - optional image branch (beyond the paper): a light CNN on the texture maps;
   - fusion ``z_f = MLP([f_sem || f_spec || f_img])`` (Eq. 20), logits ``o = W_cls z_f + b``
     (Eq. 21), ``y_hat = argmax softmax(o)`` (Eq. 22), severity ``s_hat = w_reg.z_f + b`` (Eq. 23).
4. **Loss** (:class:`SeSpeCTForDegradationEstimation`) when ``labels`` and ``levels`` are given:
   Eq. 24-26 (see ``losses``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .backbones import build_backbone, load_backbone_weights
from .configuration_sespect import AUTO_MAP, CUSTOM_PIPELINES, SeSpeCTConfig
from .image_processing_sespect import AIR_HU, BODY_HU, NATIVE_STATISTICS, SeSpeCTImageProcessor
from .losses import total_loss

PIPELINE_FILE = "pipeline_sespect.py"   # the image-classification pipeline, saved beside the weights


@dataclass
class SeSpeCTModelOutput(ModelOutput):
    """Output of the trunk :class:`SeSpeCTModel` (the fused embedding, before the heads).

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch_size, fusion_dim)`):
            The fused embedding ``z_f`` (Eq. 20), the input of both heads.
        semantic_scores (`torch.FloatTensor` of shape `(batch_size, 4)`, *optional*):
            ``[s_global, mean s_i, max s_i, std s_i]`` (Eq. 17-18) when the semantic branch is on.
        hf_ratio (`torch.FloatTensor` of shape `(batch_size, num_windows)`, *optional*):
            ``r_fft`` (Eq. 19) of each HU window when the spectral branch is on.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, with ``output_hidden_states=True``):
            ``(branch features [f_sem || f_spec || f_img (|| log spacing)], z_f)``: the input and
            the output of the fusion MLP.
        status (`list[str]`, *optional*):
            The image processor's status of each slice, passed through (``"ok"`` or why the
            model cannot judge the slice; see ``image_processing_sespect.STATUSES``).
    """

    last_hidden_state: torch.FloatTensor | None = None
    semantic_scores: torch.FloatTensor | None = None
    hf_ratio: torch.FloatTensor | None = None
    hidden_states: tuple | None = None
    status: list | None = None


@dataclass
class SeSpeCTOutput(ModelOutput):
    """Output of :class:`SeSpeCTForDegradationEstimation`.

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*):
            Eq. 24 total loss, when ``labels`` and ``levels`` are given.
        logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`):
            Classification logits ``o`` (Eq. 21) over ``config.id2label``.
        probabilities (`torch.FloatTensor` of shape `(batch_size, num_labels)`):
            ``softmax(o)`` (Eq. 22).
        severity (`torch.FloatTensor` of shape `(batch_size,)`):
            Predicted severity ``s_hat`` (Eq. 23) in level units (0 = L0 .. 3 = L3), not clipped.
        fused_embedding (`torch.FloatTensor` of shape `(batch_size, fusion_dim)`):
            The fused embedding ``z_f`` (Eq. 20).
        semantic_scores (`torch.FloatTensor` of shape `(batch_size, 4)`, *optional*):
            ``[s_global, mean s_i, max s_i, std s_i]`` (Eq. 17-18) when the semantic branch is on.
        hf_ratio (`torch.FloatTensor` of shape `(batch_size, num_windows)`, *optional*):
            ``r_fft`` (Eq. 19) of each HU window when the spectral branch is on.
        loss_terms (`dict[str, torch.FloatTensor]`, *optional*):
            The unweighted terms ``cls``, ``reg``, ``rank``, ``con``.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, with ``output_hidden_states=True``):
            As :class:`SeSpeCTModelOutput`.
        status (`list[str]`, *optional*):
            The image processor's status of each slice, passed through; a slice whose status is
            not ``"ok"`` has no meaningful class or severity.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    probabilities: torch.FloatTensor | None = None
    severity: torch.FloatTensor | None = None
    fused_embedding: torch.FloatTensor | None = None
    semantic_scores: torch.FloatTensor | None = None
    hf_ratio: torch.FloatTensor | None = None
    loss_terms: dict | None = None
    hidden_states: tuple | None = None
    status: list | None = None


def _conv_block(cin: int, cout: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2 if kernel % 2 else 0,
                                   bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _conv_stages(in_channels: int, channels) -> nn.Sequential:
    """Stride-2 3x3 conv blocks, one per entry of ``channels`` (its output width)."""
    widths = [in_channels, *channels]
    return nn.Sequential(*(_conv_block(cin, cout, 3, 2) for cin, cout in zip(widths, widths[1:])))


class SpectralEncoder(nn.Module):
    """``g_fft``: stride-2 3x3 conv stages on the log spectra, pooled to 4 x 4 (keeps where in
    frequency the energy sits), flattened and projected to ``spectral_dim``."""

    def __init__(self, in_channels: int, channels, out_dim: int):
        super().__init__()
        self.layers = _conv_stages(in_channels, channels)
        self.proj = nn.Linear(channels[-1] * 16, out_dim)

    def forward(self, spectrum: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.layers(spectrum), 4)
        return F.relu(self.proj(x.flatten(1)))


class ImageEncoder(nn.Module):
    """Light image-domain CNN (beyond the paper) on the fixed texture maps: stride-2 3x3 stages,
    then the spatial mean, standard deviation and maximum of each channel."""

    def __init__(self, in_channels: int, channels, out_dim: int):
        super().__init__()
        self.layers = _conv_stages(in_channels, channels)
        self.proj = nn.Linear(3 * channels[-1], out_dim)

    def forward(self, texture: torch.Tensor) -> torch.Tensor:
        x = self.layers(texture).flatten(2)
        stats = torch.cat([x.mean(-1), x.std(-1), x.amax(-1)], dim=1)
        return F.relu(self.proj(stats))


class NativeStatisticsEncoder(nn.Module):
    """The processor's native statistics (physical units, ``NATIVE_STATISTICS``) -> ``out_dim``
    features: signed log1p (they span decades: HU, mm^2), batch normalization, a small MLP."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 32):
        super().__init__()
        self.norm = nn.BatchNorm1d(in_dim)
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))

    def forward(self, statistics: torch.Tensor) -> torch.Tensor:
        x = torch.sign(statistics) * torch.log1p(statistics.abs())
        return self.mlp(self.norm(x))


PATCH_BODY_SHARE_MIN = 0.97    # a patch position must hold this share of body pixels (or the best share there is)


def body_share(body: torch.Tensor, size: int, stride: int) -> torch.Tensor:
    """The share of body pixels in each ``size`` x ``size`` window of a ``(1, 1, N, N)`` 0/1 mask, windows
    every ``stride`` px: ``avg_pool2d(body, size, stride)``. When ``stride`` divides ``size`` the windows
    are summed from ``stride`` x ``stride`` blocks (exact integer counts, then one division: the same
    shares, about 10x faster)."""
    if size % stride:
        return F.avg_pool2d(body, size, stride=stride)[0, 0]
    counts = F.avg_pool2d(F.avg_pool2d(body, stride, divisor_override=1), size // stride, stride=1,
                          divisor_override=1)
    return (counts / (size * size))[0, 0]


def body_patches(grid: torch.Tensor, count: int, size: int, stride: int,
                 coarse_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The patch CNN's inputs of one grid slice ``(N, N)`` in HU: ``(count, size, size)`` body patches
    at full resolution and the slice at ``coarse_size`` px (bilinear, anti-aliased), both in HU.

    The patch positions (corners every ``stride`` px) are those whose share of body pixels (above
    ``BODY_HU``) is at least ``PATCH_BODY_SHARE_MIN``, or the highest share there is; the first is the position nearest
    their centroid, each next one the farthest from those chosen (farthest-point sampling), so the
    patches spread over the body and the same slice always gives the same patches.
    """
    share = body_share((grid > BODY_HU).float()[None, None], size, stride)
    spots = torch.nonzero(share >= min(PATCH_BODY_SHARE_MIN, float(share.max()))).float()
    chosen = [int(((spots - spots.mean(0)) ** 2).sum(1).argmin())]
    distance = ((spots - spots[chosen[0]]) ** 2).sum(1)
    for _ in range(count - 1):
        chosen.append(int(distance.argmax()))
        distance = torch.minimum(distance, ((spots - spots[chosen[-1]]) ** 2).sum(1))
    corners = (spots[chosen] * stride).long().tolist()
    patches = torch.stack([grid[r:r + size, c:c + size] for r, c in corners])
    coarse = F.interpolate(grid[None, None], size=(coarse_size, coarse_size), mode="bilinear", antialias=True,
                           align_corners=False)[0, 0]
    return patches, coarse


class PatchEncoder(nn.Module):
    """The patch CNN's encoder: 3x3 conv stages of width ``w, w, 2w, 2w, 4w, 4w`` (three of stride 2),
    then the mean and the standard deviation of each channel over space (``8w`` features)."""

    def __init__(self, in_channels: int, width: int):
        super().__init__()
        w = width
        widths = [in_channels, w, w, 2 * w, 2 * w, 4 * w, 4 * w]
        strides = [1, 1, 2, 1, 2, 2]
        self.stages = nn.Sequential(*(nn.Sequential(nn.Conv2d(cin, cout, 3, s, 1, bias=False), nn.BatchNorm2d(cout),
                                                    nn.ReLU(inplace=True))
                                      for cin, cout, s in zip(widths, widths[1:], strides)))
        self.dim = 8 * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stages(x).flatten(2)
        return torch.cat([h.mean(2), h.std(2)], 1)


class PatchCNN(nn.Module):
    """The patch CNN (``config.patch_cnn_width``), trained end to end beside the members: body patches
    ``(B, P, S, S)`` and the coarse slice ``(B, C, C)`` in HU (:func:`body_patches`), each through the
    windows of ``config.patch_hu_windows``, -> class logits over ``config.id2label`` and a severity
    (levels). One encoder is shared by the patches (their mean and maximum), one reads the coarse slice."""

    def __init__(self, config: SeSpeCTConfig):
        super().__init__()
        self.hu_windows = [tuple(w) for w in config.patch_hu_windows]
        channels = len(self.hu_windows)
        self.patch = PatchEncoder(channels, config.patch_cnn_width)
        self.coarse = PatchEncoder(channels, config.patch_cnn_width)
        self.head = nn.Sequential(nn.Linear(3 * self.patch.dim, 256), nn.ReLU(), nn.Dropout(0.2),
                                  nn.Linear(256, config.num_labels + 1))

    def windows(self, hu: torch.Tensor) -> torch.Tensor:
        """``(..., H, W)`` HU -> ``(..., K, H, W)`` in [0, 1], one channel per window."""
        return torch.stack([((hu - lo) / (hi - lo)).clamp(0, 1) for lo, hi in self.hu_windows], -3)

    def forward(self, patches: torch.Tensor, coarse: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n = patches.shape[:2]
        h = self.patch(self.windows(patches).flatten(0, 1)).view(b, n, -1)
        out = self.head(torch.cat([h.mean(1), h.amax(1), self.coarse(self.windows(coarse))], 1))
        return out[:, :-1], out[:, -1]

    @property
    def class_bias(self) -> torch.Tensor:
        """The bias of the class logits (the last layer's bias without the severity's)."""
        return self.head[-1].bias[:-1]


def fuse_with_patch_cnn(members: torch.Tensor, patch_cnn: torch.Tensor, weight: float,
                        gate: torch.Tensor | None = None) -> torch.Tensor:
    """The fused class probabilities: ``p ~ members^(1 - weight) * patch_cnn^weight`` (a weighted
    geometric mean, renormalised); with ``gate`` (a boolean mask over the classes, e.g. the metal
    classes) the members' total probability of the gated classes is kept and only split among them
    by ``p``, and likewise the total of the other classes."""
    log_p = (1 - weight) * members.clamp_min(1e-9).log() + weight * patch_cnn.clamp_min(1e-9).log()
    fused = log_p.softmax(-1)
    if gate is None or not bool(gate.any()) or bool(gate.all()):
        return fused
    out = torch.zeros_like(fused)
    for side in (gate, ~gate):
        out[:, side] = members[:, side].sum(-1, keepdim=True) * fused[:, side] / fused[:, side].sum(-1, keepdim=True)
    return out


def member_config(config: SeSpeCTConfig) -> SeSpeCTConfig:
    """The config of one member of an ensemble of ``config``: ``ensemble_size`` 1 and no patch CNN."""
    member = copy.deepcopy(config)
    member.ensemble_size, member.patch_cnn_width, member.metal_gate_labels = 1, 0, None
    return member


def is_backbone_key(name: str) -> bool:
    """Whether a state-dict key belongs to the frozen backbone (never trained, saved only on request)."""
    return name.startswith("backbone.") or ".backbone." in name


# ``from_pretrained(..., key_mapping=LEGACY_KEY_MAPPING)`` loads a checkpoint written before the
# trunk / head split (one class held everything): every key except the two heads' (and an
# ensemble's ``members.``, which came later) moves under the trunk's prefix ``sespect.``.
LEGACY_KEY_MAPPING = {r"^(?!classifier\.|severity_head\.|sespect\.|members\.|patch_cnn\.)": "sespect."}


def is_legacy_state(keys) -> bool:
    """Whether state-dict ``keys`` are of the pre-split layout (no key under ``sespect.``)."""
    keys = list(keys)
    return bool(keys) and not any(k.startswith("sespect.") for k in keys)


class SeSpeCTPreTrainedModel(PreTrainedModel):
    """Weight initialisation, loading and saving conventions of SeSpeCT.

    The frozen backbone is not part of ``model.safetensors`` unless
    ``config.save_backbone_weights``: its keys are dropped on save and expected missing on load,
    and :meth:`from_pretrained` loads its pretrained weights afterwards.
    """

    config_class = SeSpeCTConfig
    base_model_prefix = "sespect"
    main_input_name = "pixel_values"
    input_modalities = "image"
    _keys_to_ignore_on_load_missing = [r"(^|\.)backbone\."]

    def _init_weights(self, module):
        """PyTorch's default init (Kaiming-uniform weights, fan-in uniform biases), BatchNorm at
        identity, the quality axis at zero (set later from prompts or image prototypes)."""
        from transformers import initialization as init

        if isinstance(module, (nn.Conv2d, nn.Linear)):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                fan_in = module.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if module.weight is not None:
                init.ones_(module.weight)
                init.zeros_(module.bias)
            if module.running_mean is not None:
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        if isinstance(module, SeSpeCTModel):
            init.zeros_(module.quality_axis)

    @classmethod
    def from_pretrained(cls, *args, load_backbone_weights: bool = True, **kwargs):
        """``PreTrainedModel.from_pretrained``, then the frozen backbone's pretrained weights
        (unless they were saved in the checkpoint, or ``load_backbone_weights=False``)."""
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded
        if load_backbone_weights and not model.config.save_backbone_weights:
            model.load_backbone_weights()
        return loaded

    def save_pretrained(self, save_directory, *args, state_dict=None, **kwargs):
        """``PreTrainedModel.save_pretrained`` making a complete Hub model folder.

        Writes ``config.json`` with ``auto_map`` (``AutoConfig``, ``AutoModel``,
        ``AutoModelForImageClassification``), ``model.safetensors`` (without the frozen backbone
        unless ``config.save_backbone_weights``), the code files beside them (this file and
        everything it imports relatively, as they are: self-contained) and, for a physical-grid
        config, ``preprocessor_config.json`` of :class:`SeSpeCTImageProcessor` (``auto_map`` for
        ``AutoImageProcessor``) and ``custom_pipelines`` naming ``pipeline_sespect.py``, so that
        ``from_pretrained(folder, trust_remote_code=True)`` and ``pipeline("image-classification",
        model=folder, trust_remote_code=True)`` work without the ``ctdegradbench`` package.
        """
        import copy
        import shutil
        from pathlib import Path

        from transformers.dynamic_module_utils import custom_object_save

        if state_dict is None:
            state_dict = self.state_dict()
        if not self.config.save_backbone_weights:
            state_dict = {k: v for k, v in state_dict.items() if not is_backbone_key(k)}
        physical = self.config.pixel_spacing_mm is not None       # a processor (and so a pipeline) exists
        pipeline_file = Path(__file__).with_name(PIPELINE_FILE)    # absent in a remote-code copy without it
        self.config.auto_map = dict(AUTO_MAP)
        if physical and pipeline_file.is_file():
            self.config.custom_pipelines = copy.deepcopy(CUSTOM_PIPELINES)
        result = super().save_pretrained(save_directory, *args, state_dict=state_dict, **kwargs)
        custom_object_save(self, save_directory)          # this file and its relative imports, as they are
        if pipeline_file.is_file():
            shutil.copyfile(pipeline_file, Path(save_directory, PIPELINE_FILE))
        if physical:
            SeSpeCTImageProcessor.from_config(self.config).save_pretrained(save_directory)
        return result


class SeSpeCTModel(SeSpeCTPreTrainedModel):
    """The SeSpeCT trunk: frozen backbone, branches and fusion MLP up to the embedding ``z_f``
    (Eq. 20); the heads are in :class:`SeSpeCTForDegradationEstimation`.

    Example (no backbone; the physical-grid input comes from ``SeSpeCTImageProcessor``)::

        >>> import torch
        >>> from ctdegradbench.model import SeSpeCTConfig, SeSpeCTModel
        >>> cfg = SeSpeCTConfig(backbone="none", use_semantic_branch=False, image_size=64, spectral_size=32)
        >>> out = SeSpeCTModel(cfg).eval()(pixel_values=torch.full((2, 64, 64), 40.0))   # two slices of 40 HU
        >>> out.last_hidden_state.shape
        torch.Size([2, 128])
    """

    # A checkpoint of the full model also holds the heads (and an ensemble's further members, a patch CNN): the
    # trunk alone leaves them out (an ensemble's trunk is its first member's).
    _keys_to_ignore_on_load_unexpected = [r"^(classifier|severity_head|members|patch_cnn)\."]

    def __init__(self, config: SeSpeCTConfig):
        super().__init__(config)
        n_win = config.num_windows
        self.backbone = build_backbone(config) if config.use_semantic_branch else None
        if self.backbone is not None:
            self.backbone.requires_grad_(False)
        # The quality axis q (Eq. 15), unit norm; zeros until set (prompts or image prototypes).
        self.register_buffer("quality_axis", torch.zeros(config.semantic_embed_dim), persistent=True)
        in_dim = 0
        if config.use_semantic_branch:
            self.semantic_norm = nn.BatchNorm1d(4)
            in_dim += 4
            if config.semantic_use_embedding:
                self.semantic_proj = nn.Linear(config.semantic_embed_dim, config.semantic_projection_dim)
                in_dim += config.semantic_projection_dim
        if config.use_spectral_branch:
            self.spectral_encoder = SpectralEncoder(n_win, config.spectral_channels, config.spectral_dim)
            self.hf_ratio_norm = nn.BatchNorm1d(n_win)
            in_dim += config.spectral_dim + n_win
        if config.use_image_branch:
            self.image_encoder = ImageEncoder(2 * n_win, config.image_channels, config.image_dim)
            in_dim += config.image_dim
        if config.use_spacing_input:
            in_dim += 1
        if config.use_native_statistics:
            if config.native_statistics_count > len(NATIVE_STATISTICS):
                raise ValueError(f"native_statistics_count {config.native_statistics_count} is more than the "
                                 f"{len(NATIVE_STATISTICS)} statistics this processor measures")
            self.native_statistics_encoder = NativeStatisticsEncoder(config.native_statistics_count,
                                                                     config.native_statistics_dim)
            in_dim += config.native_statistics_dim
        self.fusion = nn.Sequential(
            nn.Linear(in_dim, config.fusion_hidden_dim), nn.ReLU(inplace=True), nn.Dropout(config.dropout),
            nn.Linear(config.fusion_hidden_dim, config.fusion_dim))
        self._grids: dict = {}
        self.post_init()

    # ---------------------------------------------------------------- backbone housekeeping
    def load_backbone_weights(self) -> None:
        """Load the frozen backbone's pretrained weights (``config.backbone_weights`` /
        ``config.open_clip_model``); raises ``FileNotFoundError`` naming what is missing."""
        load_backbone_weights(self.backbone, self.config)
        if self.backbone is not None:
            self.backbone.requires_grad_(False).eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.backbone is not None:
            self.backbone.eval()  # frozen: its BatchNorm statistics never move
        return self

    def set_quality_axis(self, axis: torch.Tensor, source: str) -> None:
        """Store ``q = axis / ||axis||`` (Eq. 15) and record where it came from."""
        axis = torch.as_tensor(axis, dtype=torch.float32).flatten()
        if axis.numel() != self.config.semantic_embed_dim:
            raise ValueError(f"quality axis has {axis.numel()} values, the backbone embeds in "
                             f"{self.config.semantic_embed_dim}")
        norm = axis.norm()
        if not torch.isfinite(norm) or norm == 0:
            raise ValueError("quality axis must be finite and non-zero")
        with torch.no_grad():
            self.quality_axis.copy_(axis / norm)
        self.config.quality_axis_source = source

    # ---------------------------------------------------------------- preprocessing
    def _square(self, hu: torch.Tensor) -> torch.Tensor:
        if hu.ndim == 2:
            hu = hu[None]
        if hu.ndim == 4:
            if hu.shape[1] != 1:
                raise ValueError(f"pixel_values must be (B, H, W) or (B, 1, H, W) HU, got {tuple(hu.shape)}")
            hu = hu[:, 0]
        if hu.ndim != 3:
            raise ValueError(f"pixel_values must be (B, H, W) or (B, 1, H, W) HU, got {tuple(hu.shape)}")
        hu = hu.to(torch.float32)
        h, w = hu.shape[-2:]
        if h != w:
            side = max(h, w)
            top, left = (side - h) // 2, (side - w) // 2
            hu = F.pad(hu, (left, side - w - left, top, side - h - top), value=AIR_HU)
        return hu

    @staticmethod
    def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
        if x.shape[-1] == size:
            return x
        squeeze = x.ndim == 3
        x = x[:, None] if squeeze else x
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return x[:, 0] if squeeze else x

    def windows(self, hu: torch.Tensor) -> torch.Tensor:
        """``(B, N, N)`` HU -> ``(B, W, N, N)``: each window ``[lo, hi]`` as ``clip((HU - lo) / (hi - lo), 0, 1)``."""
        out = [((hu - lo) / (hi - lo)).clamp(0.0, 1.0) for lo, hi in self.config.hu_windows]
        return torch.stack(out, dim=1)

    def image_processor(self) -> SeSpeCTImageProcessor:
        """The physical-grid processor of this model (``config.pixel_spacing_mm`` must be set)."""
        return SeSpeCTImageProcessor.from_config(self.config)

    def preprocess(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """HU slices ``(B, H, W)`` (or ``(B, 1, H, W)``, or one ``(H, W)``) -> ``(B, N, N)`` HU on
        the model grid (``N = config.image_size``). Physical grid (``config.pixel_spacing_mm``):
        the slices must already be on it (``SeSpeCTImageProcessor`` resamples them with their
        pixel spacing); pixel grid (legacy): air padding to a square, then resizing."""
        hu = self._square(pixel_values)
        n = self.config.image_size
        if self.config.pixel_spacing_mm is not None:
            if tuple(hu.shape[-2:]) != (n, n):
                raise ValueError(f"this model works on a {n} x {n} grid of {self.config.pixel_spacing_mm:g} mm pixels, "
                                 f"got slices of {tuple(pixel_values.shape[-2:])}: run SeSpeCTImageProcessor (HU + "
                                 f"pixel spacing) first")
            return hu
        return self._resize(hu, n)

    def backbone_pixels(self, windows: torch.Tensor) -> torch.Tensor:
        """Backbone input ``(B, 3, S, S)`` from :meth:`windows`' output: the first HU window,
        resized to ``backbone_image_size``, repeated to RGB and normalised with ``backbone_mean`` /
        ``backbone_std``."""
        grey = self._resize(windows[:, :1], self.config.backbone_image_size).repeat(1, 3, 1, 1)
        mean = torch.tensor(self.config.backbone_mean, device=grey.device).view(1, 3, 1, 1)
        std = torch.tensor(self.config.backbone_std, device=grey.device).view(1, 3, 1, 1)
        return (grey - mean) / std

    def _high_frequency_mask(self, n: int, device) -> torch.Tensor:
        key = (n, str(device))
        if key not in self._grids:
            f = torch.fft.fftshift(torch.fft.fftfreq(n, device=device))       # cycles / pixel, Nyquist 0.5
            radius = torch.sqrt(f[:, None] ** 2 + f[None, :] ** 2) / 0.5
            self._grids[key] = radius > self.config.hf_cutoff
        return self._grids[key]

    def spectral_inputs(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-magnitude spectra (pooled to ``spectral_size``) and ``r_fft`` (Eq. 19) of each window.

        ``F = fftshift(fft2(w))``; ``M = log(1 + |F|)``; ``r_fft = sum_{Omega_h} |F|^2 / sum |F|^2``
        with ``Omega_h`` the frequencies whose radius exceeds ``hf_cutoff`` times Nyquist.
        """
        spectrum = torch.fft.fftshift(torch.fft.fft2(windows.to(torch.float32)), dim=(-2, -1))
        magnitude = spectrum.abs()
        power = magnitude ** 2
        mask = self._high_frequency_mask(windows.shape[-1], windows.device)
        ratio = power[..., mask].sum(-1) / power.sum(dim=(-2, -1)).clamp_min(1e-30)
        log_magnitude = F.adaptive_avg_pool2d(torch.log1p(magnitude), self.config.spectral_size)
        return log_magnitude, ratio

    def texture_maps(self, windows: torch.Tensor) -> torch.Tensor:
        """Fixed texture maps ``(B, 2W, T, T)`` of the windows ``(B, W, N, N)``, ``T = texture_size``:
        per window the block mean of ``w`` and the block RMS of the high-pass residual
        ``w - mean_3x3(w)`` (replicate padding) over ``N / T`` x ``N / T`` blocks."""
        block = windows.shape[-1] // self.config.texture_size
        smooth = F.avg_pool2d(F.pad(windows, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        residual = windows - smooth
        mean = F.avg_pool2d(windows, block)
        rms = F.avg_pool2d(residual ** 2, block).sqrt()
        return torch.cat([mean, rms], dim=1)

    @torch.no_grad()
    def frozen_features(self, pixel_values: torch.Tensor, pixel_spacing: torch.Tensor | None = None,
                        native_statistics: torch.Tensor | None = None) -> dict:
        """Everything that does not depend on trainable weights (no gradients; cacheable).

        Returns a dict with, depending on the enabled branches: ``embedding`` ``(B, D)`` and
        ``patch_tokens`` ``(B, P, D)`` (backbone), ``spectrum`` ``(B, W, s, s)`` and ``hf_ratio``
        ``(B, W)`` (spectral), ``texture`` ``(B, 2W, T, T)`` (image branch), ``log_spacing``
        ``(B, 1)`` = ``log2(native spacing / pixel_spacing_mm)`` (``use_spacing_input``; needs
        ``pixel_spacing``, the native mean pixel spacing in mm of each slice), ``native_statistics``
        ``(B, K)`` (``use_native_statistics``; the processor's, passed through), ``patches``
        ``(B, P, S, S)`` and ``coarse`` ``(B, C, C)`` in HU (``patch_cnn_width``; :func:`body_patches`).
        """
        grid = self.preprocess(pixel_values)
        windows = self.windows(grid)      # every branch reads these
        out = {}
        cfg = self.config
        if cfg.patch_cnn_width:
            made = [body_patches(g, cfg.patch_count, cfg.patch_size, cfg.patch_stride, cfg.coarse_size) for g in grid]
            out["patches"] = torch.stack([p for p, _ in made])
            out["coarse"] = torch.stack([c for _, c in made])
        if cfg.use_spacing_input:
            if pixel_spacing is None:
                raise ValueError("this model needs pixel_spacing (native mm per pixel of each slice) with pixel_values")
            spacing = torch.as_tensor(pixel_spacing, dtype=torch.float32).reshape(-1, 1)
            out["log_spacing"] = torch.log2(spacing / cfg.pixel_spacing_mm).expand(windows.shape[0], 1).clone()
        if cfg.use_native_statistics:
            if native_statistics is None:
                raise ValueError("this model needs native_statistics (from SeSpeCTImageProcessor with "
                                 "native_statistics=True) with pixel_values")
            out["native_statistics"] = torch.as_tensor(native_statistics, dtype=torch.float32).reshape(
                windows.shape[0], len(NATIVE_STATISTICS))[:, :cfg.native_statistics_count]
        if cfg.use_semantic_branch:
            embedding, tokens = self.backbone(self.backbone_pixels(windows))
            out["embedding"], out["patch_tokens"] = embedding.float(), tokens.float()
        if cfg.use_spectral_branch:
            out["spectrum"], out["hf_ratio"] = self.spectral_inputs(windows)
        if cfg.use_image_branch:
            out["texture"] = self.texture_maps(windows)
        return out

    # ---------------------------------------------------------------- trainable stage
    def semantic_scores(self, embedding: torch.Tensor, patch_tokens: torch.Tensor) -> torch.Tensor:
        """``[s_global, mean_i s_i, max_i s_i, std_i s_i]`` (Eq. 16-18) on the quality axis ``q``."""
        q = self.quality_axis.to(embedding.dtype)
        s_global = F.normalize(embedding, dim=-1) @ q
        s_local = F.normalize(patch_tokens, dim=-1) @ q
        std = s_local.std(dim=1) if s_local.shape[1] > 1 else torch.zeros_like(s_global)
        return torch.stack([s_global, s_local.mean(dim=1), s_local.amax(dim=1), std], dim=1)

    def forward(self, pixel_values: torch.Tensor | None = None, pixel_spacing: torch.Tensor | None = None,
                native_statistics: torch.Tensor | None = None, frozen: dict | None = None, status: list | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None) -> SeSpeCTModelOutput:
        """The fused embedding ``z_f`` (Eq. 20) of CT slices.

        Args:
            pixel_values: ``(B, N, N)`` (or ``(B, 1, N, N)``) CT slices in HU on the model grid
                (``SeSpeCTImageProcessor``); a pixel-grid (legacy) config takes any size.
            pixel_spacing: ``(B,)`` native pixel spacing in mm (``use_spacing_input``; from the processor).
            native_statistics: ``(B, K)`` (``use_native_statistics``; from the processor).
            frozen: the output of :meth:`frozen_features` (e.g. from a cache) instead of ``pixel_values``.
            status: the processor's per-slice status, passed through to the output.
            output_hidden_states: also return the fusion MLP's input and output.
            return_dict: ``False`` returns a tuple (transformers convention).
        """
        if frozen is None:
            if pixel_values is None:
                raise ValueError("give pixel_values (HU slices) or frozen (precomputed frozen_features)")
            frozen = self.frozen_features(pixel_values, pixel_spacing, native_statistics)
        cfg = self.config
        parts, scores, ratio = [], None, None
        if cfg.use_semantic_branch:
            scores = self.semantic_scores(frozen["embedding"], frozen["patch_tokens"])
            parts.append(self.semantic_norm(scores))
            if cfg.semantic_use_embedding:
                parts.append(self.semantic_proj(F.normalize(frozen["embedding"], dim=-1)))
        if cfg.use_spectral_branch:
            ratio = frozen["hf_ratio"]
            parts.append(self.spectral_encoder(frozen["spectrum"]))
            parts.append(self.hf_ratio_norm(torch.log10(ratio.clamp_min(1e-12))))
        if cfg.use_image_branch:
            parts.append(self.image_encoder(frozen["texture"]))
        if cfg.use_spacing_input:
            parts.append(frozen["log_spacing"].reshape(-1, 1).to(parts[0].dtype))
        if cfg.use_native_statistics:
            statistics = frozen["native_statistics"][:, :cfg.native_statistics_count]    # cached arrays hold all
            parts.append(self.native_statistics_encoder(statistics.to(parts[0].dtype)))
        features = torch.cat(parts, dim=1)
        fused = self.fusion(features)
        output = SeSpeCTModelOutput(last_hidden_state=fused, semantic_scores=scores, hf_ratio=ratio,
                                    hidden_states=(features, fused) if output_hidden_states else None,
                                    status=status)
        return output if return_dict is not False else output.to_tuple()


class SeSpeCTForDegradationEstimation(SeSpeCTPreTrainedModel):
    """SeSpeCT with its heads: degradation class (Eq. 21-22, ``logits`` over ``config.id2label``)
    and severity (Eq. 23), and the training loss (Eq. 24-26) when ``labels`` and ``levels`` are given.

    With ``config.ensemble_size`` K > 1 it also holds K - 1 further ``members`` (each a model of its
    own, ensemble_size 1) that read the same frozen features: ``probabilities`` and ``severity``
    are the K members' means, ``logits`` the log of the mean probability, ``fused_embedding`` the
    first member's. With ``config.patch_cnn_width`` > 0 it also holds ``patch_cnn`` (:class:`PatchCNN`):
    ``probabilities`` are then the members' fused with the patch CNN's (:func:`fuse_with_patch_cnn`,
    ``config.patch_cnn_weight``, the members deciding the total of ``config.metal_gate_labels``) and
    ``severity`` the mean of the members' and the patch CNN's.

    ``AutoModelForImageClassification`` resolves to this class, so the ``image-classification``
    pipeline returns the class and its score; ``severity`` is in the model output.

    Example::

        >>> import torch
        >>> from ctdegradbench.model import SeSpeCTConfig, SeSpeCTForDegradationEstimation
        >>> cfg = SeSpeCTConfig(label_names=["S1_noise", "S2_blur", "clean"], backbone="none",
        ...                     use_semantic_branch=False, image_size=64, spectral_size=32)
        >>> out = SeSpeCTForDegradationEstimation(cfg).eval()(pixel_values=torch.full((2, 64, 64), 40.0))
        >>> out.logits.shape, out.severity.shape
        (torch.Size([2, 3]), torch.Size([2]))
    """

    def __init__(self, config: SeSpeCTConfig):
        super().__init__(config)
        self.sespect = SeSpeCTModel(config)
        self.classifier = nn.Linear(config.fusion_dim, config.num_labels)
        self.severity_head = nn.Linear(config.fusion_dim, 1)
        if config.ensemble_size > 1:
            if config.use_semantic_branch:
                raise ValueError("ensemble_size > 1 needs a model without a backbone (use_semantic_branch False): "
                                 "the members share one frozen stage")
            self.members = nn.ModuleList(SeSpeCTForDegradationEstimation(member_config(config))
                                         for _ in range(config.ensemble_size - 1))
        self.patch_cnn = PatchCNN(config) if config.patch_cnn_width else None
        self.post_init()

    def metal_gate(self, device=None) -> torch.Tensor | None:
        """Boolean mask over the classes of ``config.metal_gate_labels`` (``None`` without a gate)."""
        gated = self.config.metal_gate_labels
        return torch.tensor([n in gated for n in self.config.label_names], device=device) if gated else None

    # The trunk's preprocessing and frozen stage, reachable from the full model.
    def load_backbone_weights(self) -> None:
        """See :meth:`SeSpeCTModel.load_backbone_weights`."""
        self.sespect.load_backbone_weights()

    def set_quality_axis(self, axis: torch.Tensor, source: str) -> None:
        """See :meth:`SeSpeCTModel.set_quality_axis`."""
        self.sespect.set_quality_axis(axis, source)

    def image_processor(self) -> SeSpeCTImageProcessor:
        """See :meth:`SeSpeCTModel.image_processor`."""
        return self.sespect.image_processor()

    def preprocess(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """See :meth:`SeSpeCTModel.preprocess`."""
        return self.sespect.preprocess(pixel_values)

    def frozen_features(self, pixel_values: torch.Tensor, pixel_spacing: torch.Tensor | None = None,
                        native_statistics: torch.Tensor | None = None) -> dict:
        """See :meth:`SeSpeCTModel.frozen_features`."""
        return self.sespect.frozen_features(pixel_values, pixel_spacing, native_statistics)

    def forward(self, pixel_values: torch.Tensor | None = None, pixel_spacing: torch.Tensor | None = None,
                native_statistics: torch.Tensor | None = None, labels: torch.Tensor | None = None, levels: torch.Tensor | None = None, frozen: dict | None = None,
                status: list | None = None, output_hidden_states: bool | None = None,
                return_dict: bool | None = None) -> SeSpeCTOutput:
        """Predict class and severity.

        Args:
            pixel_values: ``(B, N, N)`` or ``(B, 1, N, N)`` CT slices in HU on the model grid
                (``SeSpeCTImageProcessor``; a pixel-grid (legacy) config takes any size, see
                :meth:`SeSpeCTModel.preprocess`).
            pixel_spacing: ``(B,)`` native pixel spacing in mm (physical-grid models with
                ``use_spacing_input``; from ``SeSpeCTImageProcessor``).
            labels: ``(B,)`` class ids of ``config.id2label`` (for the loss).
            levels: ``(B,)`` severity levels ``0..max_level`` (for the loss).
            frozen: the output of :meth:`frozen_features` (e.g. from a cache) instead of ``pixel_values``.
            status: the processor's per-slice status, passed through to the output.
            output_hidden_states: also return the fusion MLP's input and output.
            return_dict: ``False`` returns a tuple (transformers convention).
        """
        ensemble = self.config.ensemble_size > 1
        assembled = ensemble or self.patch_cnn is not None          # parts trained apart, one frozen stage
        if assembled and labels is not None:
            raise ValueError("an ensemble or a model with a patch CNN is trained one part at a time (each member "
                             "with ensemble_size 1 and no patch CNN, the patch CNN apart, then assembled; see "
                             "train_sespect), not through its forward")
        if assembled and frozen is None:           # one frozen stage for every part
            if pixel_values is None:
                raise ValueError("give pixel_values (HU slices) or frozen (precomputed frozen_features)")
            frozen = self.frozen_features(pixel_values, pixel_spacing, native_statistics)
        trunk = self.sespect(pixel_values=pixel_values, pixel_spacing=pixel_spacing,
                             native_statistics=native_statistics, frozen=frozen, status=status,
                             output_hidden_states=output_hidden_states)
        fused = trunk.last_hidden_state
        logits = self.classifier(fused)
        severity = self.severity_head(fused).squeeze(-1)
        probabilities = logits.softmax(-1)
        if ensemble:       # the members' mean probability and severity; logits = log(mean probability)
            outputs = [member(frozen=frozen) for member in self.members]
            probabilities = torch.stack([probabilities] + [o.probabilities for o in outputs]).mean(0)
            severity = torch.stack([severity] + [o.severity for o in outputs]).mean(0)
            logits = probabilities.clamp_min(1e-12).log()
        if self.patch_cnn is not None:       # fused with the patch CNN's answer; the severity is the two's mean
            cnn_logits, cnn_severity = self.patch_cnn(frozen["patches"], frozen["coarse"])
            probabilities = fuse_with_patch_cnn(probabilities, cnn_logits.softmax(-1), self.config.patch_cnn_weight,
                                                self.metal_gate(probabilities.device))
            severity = (severity + cnn_severity) / 2
            logits = probabilities.clamp_min(1e-12).log()
        loss = terms = None
        if (labels is None) != (levels is None):
            raise ValueError("the loss needs both labels (class ids) and levels (severity levels), got only "
                             + ("labels" if levels is None else "levels"))
        if labels is not None:
            cfg = self.config
            terms = total_loss(logits, severity, fused, labels, levels, lambda_reg=cfg.lambda_reg,
                               lambda_rank=cfg.lambda_rank, lambda_con=cfg.lambda_con, rank_margin=cfg.rank_margin,
                               temperature=cfg.contrastive_temperature, smooth_l1_beta=cfg.smooth_l1_beta,
                               n_levels=cfg.max_level + 1)
            loss = terms.pop("loss")
        output = SeSpeCTOutput(loss=loss, logits=logits, probabilities=probabilities, severity=severity,
                               fused_embedding=fused, semantic_scores=trunk.semantic_scores, hf_ratio=trunk.hf_ratio,
                               loss_terms=terms, hidden_states=trunk.hidden_states, status=status)
        return output if return_dict is not False else output.to_tuple()


SeSpeCTModel.register_for_auto_class("AutoModel")
SeSpeCTForDegradationEstimation.register_for_auto_class("AutoModelForImageClassification")

__all__ = ["LEGACY_KEY_MAPPING", "PatchCNN", "SeSpeCTForDegradationEstimation", "SeSpeCTModel", "SeSpeCTModelOutput",
           "SeSpeCTOutput", "SeSpeCTPreTrainedModel", "is_backbone_key", "is_legacy_state"]
