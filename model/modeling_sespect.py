"""SeSpeCT: semantic-spectral CT degradation type and severity estimation (paper Section 3).

Self-contained (imports torch, transformers and the sibling remote-code files
``configuration_sespect``, ``backbones`` and ``losses`` only), so a saved folder loads with
``AutoModel.from_pretrained(folder, trust_remote_code=True)`` in a fresh process.

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
3. **Trainable stage** (:meth:`SeSpeCTModel.forward` from those features):

   - semantic branch: ``z = f/||f||`` (Eq. 16), ``s_global = z.q`` (Eq. 17),
     ``s_i = t_i/||t_i|| . q`` (Eq. 18), ``f_sem = [s_global || mean, max, std of s_i]``
     (plus, beyond the paper, a linear projection of ``z`` when ``semantic_use_embedding``);
     ``q`` is the quality axis (Eq. 15), a saved buffer;
   - spectral branch: ``f_spec = [g_fft(M) || log r_fft]`` (Section 3.2);
   - optional image branch (beyond the paper): a light CNN on the texture maps;
   - fusion ``z_f = MLP([f_sem || f_spec || f_img])`` (Eq. 20), logits ``o = W_cls z_f + b``
     (Eq. 21), ``y_hat = argmax softmax(o)`` (Eq. 22), severity ``s_hat = w_reg.z_f + b`` (Eq. 23).
4. **Loss** when ``labels`` and ``levels`` are given: Eq. 24-26 (see ``losses``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .backbones import build_backbone, load_backbone_weights
from .configuration_sespect import SeSpeCTConfig
from .image_processing_sespect import AIR_HU, SeSpeCTImageProcessor
from .losses import total_loss



@dataclass
class SeSpeCTOutput(ModelOutput):
    """Output of :class:`SeSpeCTModel`.

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*):
            Eq. 24 total loss, when ``labels`` and ``levels`` are given.
        logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`):
            Classification logits ``o`` (Eq. 21).
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
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    probabilities: torch.FloatTensor | None = None
    severity: torch.FloatTensor | None = None
    fused_embedding: torch.FloatTensor | None = None
    semantic_scores: torch.FloatTensor | None = None
    hf_ratio: torch.FloatTensor | None = None
    loss_terms: dict | None = None


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


class SeSpeCTPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading conventions of SeSpeCT.

    The frozen backbone is not part of ``model.safetensors`` unless
    ``config.save_backbone_weights``: its keys are dropped on save and expected missing on load,
    and :meth:`from_pretrained` loads its pretrained weights afterwards.
    """

    config_class = SeSpeCTConfig
    base_model_prefix = "sespect"
    main_input_name = "pixel_values"
    input_modalities = "image"
    _keys_to_ignore_on_load_missing = [r"^backbone\."]

    def _init_weights(self, module):
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
        if load_backbone_weights and getattr(model, "backbone", None) is not None \
                and not model.config.save_backbone_weights:
            model.load_backbone_weights()
        return loaded

    def save_pretrained(self, save_directory, *args, state_dict=None, **kwargs):
        """``PreTrainedModel.save_pretrained`` without the frozen backbone's weights unless
        ``config.save_backbone_weights``."""
        if state_dict is None:
            state_dict = self.state_dict()
        if not self.config.save_backbone_weights:
            state_dict = {k: v for k, v in state_dict.items() if not k.startswith("backbone.")}
        return super().save_pretrained(save_directory, *args, state_dict=state_dict, **kwargs)


class SeSpeCTModel(SeSpeCTPreTrainedModel):
    """SeSpeCT with its frozen backbone, branches, fusion MLP and heads (see the module docstring).

    Example (the offline default backbone)::

        >>> import torch
        >>> from ctdegradbench.model import SeSpeCTConfig, SeSpeCTModel
        >>> model = SeSpeCTModel(SeSpeCTConfig(image_size=64, spectral_size=32)).eval()
        >>> out = model(pixel_values=torch.full((2, 64, 64), 40.0))   # two slices of 40 HU
        >>> out.logits.shape, out.severity.shape
        (torch.Size([2, 10]), torch.Size([2]))
    """

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
        self.fusion = nn.Sequential(
            nn.Linear(in_dim, config.fusion_hidden_dim), nn.ReLU(inplace=True), nn.Dropout(config.dropout),
            nn.Linear(config.fusion_hidden_dim, config.fusion_dim))
        self.classifier = nn.Linear(config.fusion_dim, config.num_labels)
        self.severity_head = nn.Linear(config.fusion_dim, 1)
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
    def frozen_features(self, pixel_values: torch.Tensor, pixel_spacing: torch.Tensor | None = None) -> dict:
        """Everything that does not depend on trainable weights (no gradients; cacheable).

        Returns a dict with, depending on the enabled branches: ``embedding`` ``(B, D)`` and
        ``patch_tokens`` ``(B, P, D)`` (backbone), ``spectrum`` ``(B, W, s, s)`` and ``hf_ratio``
        ``(B, W)`` (spectral), ``texture`` ``(B, 2W, T, T)`` (image branch), ``log_spacing``
        ``(B, 1)`` = ``log2(native spacing / pixel_spacing_mm)`` (``use_spacing_input``; needs
        ``pixel_spacing``, the native mean pixel spacing in mm of each slice).
        """
        windows = self.windows(self.preprocess(pixel_values))      # every branch reads these
        out = {}
        cfg = self.config
        if cfg.use_spacing_input:
            if pixel_spacing is None:
                raise ValueError("this model needs pixel_spacing (native mm per pixel of each slice) with pixel_values")
            spacing = torch.as_tensor(pixel_spacing, dtype=torch.float32).reshape(-1, 1)
            out["log_spacing"] = torch.log2(spacing / cfg.pixel_spacing_mm).expand(windows.shape[0], 1).clone()
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

    def forward(self, pixel_values: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                levels: torch.Tensor | None = None, frozen: dict | None = None,
                pixel_spacing: torch.Tensor | None = None, **kwargs) -> SeSpeCTOutput:
        """Predict class and severity.

        Args:
            pixel_values: ``(B, H, W)`` or ``(B, 1, H, W)`` CT slices in HU (any square or
                rectangular size; see :meth:`preprocess`).
            labels: ``(B,)`` class indices into ``config.label_names`` (for the loss).
            levels: ``(B,)`` severity levels ``0..max_level`` (for the loss).
            frozen: the output of :meth:`frozen_features` (e.g. from a cache) instead of
                ``pixel_values``.
            pixel_spacing: ``(B,)`` native pixel spacing in mm (physical-grid models with
                ``use_spacing_input``; from ``SeSpeCTImageProcessor``).
        """
        if frozen is None:
            if pixel_values is None:
                raise ValueError("give pixel_values (HU slices) or frozen (precomputed frozen_features)")
            frozen = self.frozen_features(pixel_values, pixel_spacing)
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
        fused = self.fusion(torch.cat(parts, dim=1))
        logits = self.classifier(fused)
        severity = self.severity_head(fused).squeeze(-1)
        loss = terms = None
        if labels is not None and levels is not None:
            terms = total_loss(logits, severity, fused, labels, levels, lambda_reg=cfg.lambda_reg,
                               lambda_rank=cfg.lambda_rank, lambda_con=cfg.lambda_con, rank_margin=cfg.rank_margin,
                               temperature=cfg.contrastive_temperature, smooth_l1_beta=cfg.smooth_l1_beta,
                               n_levels=cfg.max_level + 1)
            loss = terms.pop("loss")
        return SeSpeCTOutput(loss=loss, logits=logits, probabilities=logits.softmax(-1), severity=severity,
                             fused_embedding=fused, semantic_scores=scores, hf_ratio=ratio, loss_terms=terms)


__all__ = ["SeSpeCTModel", "SeSpeCTOutput", "SeSpeCTPreTrainedModel"]
