"""Datasets for SeSpeCT and the on-disk cache of its frozen features.

- :func:`load_benchmark` reads one or more exported CT-DegradBench folders (config ``all``;
  their splits are concatenated, patient keys ``source/patient`` keep them apart; a folder
  without a split, a build of too few patients, adds no rows to it) and maps
  each row's class by name onto the model's label set (rows of other classes, such as an
  opt-in ``S6_ring``, are left out and counted).
- :func:`frozen_arrays` computes :meth:`SeSpeCTModel.frozen_features` once per row and keeps
  them in ``.npy`` files under a cache folder keyed by the dataset's fingerprint and the
  frozen stage's configuration (backbone, weights, sizes, windows): training epochs and the
  ablations read these arrays instead of re-running the backbone and the FFTs.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ctdegradbench.builder.dataset.options import ALL_CONFIG, REFERENCES_CONFIG
from ctdegradbench.builder.dataset.reader import load_many
from ctdegradbench.builder.simulate.settings import CLASS_NAMES, CLEAN_CLASS_NAME, PAPER_CLASS_NAMES
from ctdegradbench.model.image_processing_sespect import BODY_HU

# Config fields that decide what the frozen stage computes (the cache key).
FROZEN_FIELDS = ("pixel_spacing_mm", "backbone", "backbone_weights", "open_clip_model", "open_clip_embed_dim", "open_clip_vision_cfg",
                 "backbone_image_size", "backbone_mean", "backbone_std", "image_size", "hu_windows",
                 "spectral_size", "hf_cutoff", "texture_size")
# Config fields that decide the patch CNN's frozen inputs (``patches``, ``coarse``), computed when
# ``patch_cnn_width`` > 0 (the width itself changes nothing the frozen stage computes).
PATCH_FIELDS = ("patch_cnn_width", "patch_count", "patch_size", "patch_stride", "coarse_size")
GRID_CONFIG_FIELDS = FROZEN_FIELDS + PATCH_FIELDS     # every config field the grid stage's arrays depend on
CACHE_VERSION = 7   # 3: grid entries hold native_statistics; 4: tapered before the FFT; 5: visible; 6: bands below Nyquist; 7: soft-tissue NPS
# Keys of frozen_features and how they are stored (dtype on disk).
_STORED = {"embedding": np.float32, "patch_tokens": np.float16, "spectrum": np.float16, "hf_ratio": np.float32,
           "texture": np.float16}


def default_cache_dir() -> Path:
    """``$CTDEGRADBENCH_CACHE`` or ``~/.cache/ct-degradbench``, plus ``sespect-features``."""
    root = os.environ.get("CTDEGRADBENCH_CACHE") or Path.home() / ".cache" / "ct-degradbench"
    return Path(root) / "sespect-features"


@dataclass
class SplitData:
    """One split: the ``datasets.Dataset`` (image column as numpy) and its label facts."""

    dataset: object
    labels: np.ndarray            # class index in the model's label_names
    levels: np.ndarray            # severity level 0..3
    settings: list[str]
    patient_keys: list[str]
    reference_ids: list[str]
    fingerprint: str
    left_out: dict = field(default_factory=dict)
    spacings: np.ndarray | None = None   # native pixel spacing (mm) of each row
    provenance: list | None = None       # "<simulator_version>/<seed>" of each row (None: an export without them)

    def __len__(self) -> int:
        return len(self.labels)

    def summary(self) -> dict:
        return {"patients": len(set(self.patient_keys)), "slices": len(set(self.reference_ids)), "rows": len(self)}


# columns read from the ``all`` configs (False) and from ``references`` (True)
NEEDED_COLUMNS = {False: ("image", "label", "level", "setting", "patient_key", "reference_id"),
                  True: ("reference",)}


def load_config(folders, config: str, split: str):
    """``split`` of ``config`` from every exported folder (:func:`reader.load_many`), concatenated,
    and the loaded parts; the columns SeSpeCT reads are required."""
    return load_many(folders, config, split, require=NEEDED_COLUMNS[config == REFERENCES_CONFIG])


def load_benchmark(folders, split: str, label_names=PAPER_CLASS_NAMES) -> SplitData:
    """Rows of ``split`` from every folder, labels mapped by name onto ``label_names``."""
    ds, parts = load_config(folders, ALL_CONFIG, split)
    names = ds.features["label"].names
    index = {name: i for i, name in enumerate(label_names)}
    raw = np.asarray(ds["label"])
    mapped = np.array([index.get(names[i], -1) for i in raw], dtype=np.int64)
    keep = np.flatnonzero(mapped >= 0)
    left_out = {}
    if len(keep) < len(mapped):
        for i in np.flatnonzero(mapped < 0):
            left_out[names[raw[i]]] = left_out.get(names[raw[i]], 0) + 1
        ds = ds.select(keep)
    fingerprint = hashlib.sha256(("|".join(p._fingerprint for p in parts) + f"|{len(keep)}").encode()).hexdigest()[:16]
    spacings = np.asarray(ds["pixel_spacing_mm"], dtype=np.float64) if "pixel_spacing_mm" in ds.column_names else None
    provenance = ([f"{v}/{s}" for v, s in zip(ds["simulator_version"], ds["seed"])]
                  if {"seed", "simulator_version"} <= set(ds.column_names) else None)
    return SplitData(dataset=ds.with_format("numpy", columns=["image"]), labels=mapped[keep], spacings=spacings,
                     provenance=provenance,
                     levels=np.asarray(ds["level"], dtype=np.int64), settings=list(ds["setting"]),
                     patient_keys=list(ds["patient_key"]), reference_ids=list(ds["reference_id"]),
                     fingerprint=fingerprint, left_out=left_out)


def load_references(folders, split: str):
    """The ``references`` rows of ``split`` (reference HU images) from every folder."""
    ds, parts = load_config(folders, REFERENCES_CONFIG, split)
    fingerprint = hashlib.sha256("|".join(p._fingerprint for p in parts).encode()).hexdigest()[:16]
    return ds.with_format("numpy", columns=["reference"]), fingerprint


def frozen_key(config, fingerprint: str) -> str:
    """Cache key: dataset fingerprint + the frozen stage's configuration."""
    facts = {name: getattr(config, name) for name in FROZEN_FIELDS}
    facts.update(version=CACHE_VERSION, fingerprint=fingerprint)
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def frozen_arrays(model, dataset, column: str, fingerprint: str, cache_dir=None, batch_size: int = 16,
                  desc: str = "frozen features", progress: bool = True) -> dict[str, np.ndarray]:
    """``model.frozen_features`` of every row of ``dataset[column]``, cached on disk.

    ``model`` must have every branch on (the cache serves all ablations). Returns arrays
    opened read-only with memory mapping, keyed like :meth:`SeSpeCTModel.frozen_features`.
    """
    from tqdm.auto import tqdm

    cfg = model.config
    if not (cfg.use_semantic_branch and cfg.use_spectral_branch and cfg.use_image_branch):
        raise ValueError("frozen_arrays needs a model with every branch on (the cache serves all ablations)")
    folder = Path(cache_dir or default_cache_dir()) / frozen_key(cfg, fingerprint)
    done = folder / "complete.json"
    if done.is_file():
        return {k: np.load(folder / f"{k}.npy", mmap_mode="r") for k in _STORED}
    folder.mkdir(parents=True, exist_ok=True)
    n = len(dataset)
    arrays = {}
    model.eval()
    for start in tqdm(range(0, n, batch_size), desc=desc, disable=not progress, unit="batch"):
        batch = np.asarray(dataset[start:start + batch_size][column])
        feats = model.frozen_features(torch.from_numpy(batch.astype(np.float32)))
        for key, dtype in _STORED.items():
            value = feats[key].cpu().numpy()
            if key not in arrays:
                arrays[key] = np.lib.format.open_memmap(folder / f"{key}.npy.partial", mode="w+", dtype=dtype,
                                                        shape=(n,) + value.shape[1:])
            arrays[key][start:start + len(value)] = value
    for key, arr in arrays.items():
        arr.flush()
        del arr
        os.replace(folder / f"{key}.npy.partial", folder / f"{key}.npy")
    done.write_text(json.dumps({"rows": n, "fingerprint": fingerprint, "config": {k: getattr(cfg, k) for k in FROZEN_FIELDS}},
                               default=str, indent=1))
    return {k: np.load(folder / f"{k}.npy", mmap_mode="r") for k in _STORED}


def batch_from_arrays(arrays: dict, index: np.ndarray, keys=None) -> dict[str, torch.Tensor]:
    """Rows ``index`` (sorted, returned with the batch) of the cached arrays as float32 tensors."""
    index = np.sort(np.asarray(index))
    out = {}
    for key, arr in arrays.items():
        if keys is not None and key not in keys:
            continue
        value = np.asarray(arr[index])
        out[key] = torch.from_numpy(value.astype(np.float32) if value.dtype == np.float16 else value)
    return out, index


# ---------------------------------------------------------------------- physical grid (SeSpeCT with "clean")
# SeSpeCT's labels: the paper's ten and "clean" (ids 0..10 of the project's label contract, settings.CLASS_NAMES).
SESPECT_LABEL_NAMES = CLASS_NAMES[:CLASS_NAMES.index(CLEAN_CLASS_NAME) + 1]
GRID_KEYS = {"spectrum": np.float16, "hf_ratio": np.float32, "texture": np.float16, "log_spacing": np.float32,
             "native_statistics": np.float32}
PATCH_KEYS = {"patches": np.float16, "coarse": np.float16}     # with a patch CNN (HU; float16 steps <= 2 HU)


def grid_keys(config) -> dict:
    """The cached grid arrays of ``config`` and their dtype on disk: ``GRID_KEYS`` (and ``PATCH_KEYS``
    with a patch CNN)."""
    return {**GRID_KEYS, **(PATCH_KEYS if getattr(config, "patch_cnn_width", 0) else {})}


def grid_facts(config) -> dict:
    """What decides a grid cache entry's features: ``FROZEN_FIELDS`` and, with a patch CNN, the patch
    geometry (``PATCH_FIELDS`` but the width; absent without one, so such caches keep their keys)."""
    facts = {name: getattr(config, name) for name in FROZEN_FIELDS}
    if getattr(config, "patch_cnn_width", 0):
        facts.update({name: getattr(config, name) for name in PATCH_FIELDS if name != "patch_cnn_width"})
    return facts
# Augmentation of the native acquisition (physical units): coarser pixels and a smaller field of view.
AUG_SPACING_MAX_MM = 6.0          # coarsest native pixel drawn (log-uniform from the row's own spacing)
AUG_FOV_MM = (150.0, 350.0)       # side of a cropped field of view, drawn per axis
AUG_FOV_SHIFT_MM = 40.0           # crop centre: body centroid +- this (uniform per axis)
AUG_MASKED_AIR_HU = -1024.0       # constant outside the body of masked (anonymised, RT-planning) volumes
AUG_MASK_MARGIN_MM = 4.0          # body contour dilated by this before the outside is masked
AUG_P_MASK = 0.3                  # probability that an augmented view has its air masked
AUG_P_ALIASED = 0.5               # probability that a coarser-pixel view is resampled without anti-aliasing
# An augmented degraded view is labelled clean when its degradation's rms is below this times the
# clean slice's own noise: at the stored pixel size the faintest levels of the paper's tables
# (S1 / S4 L0) measured at least 0.82 / 0.88 on 500 sampled rows of the training build (stored rows
# keep their label whatever the ratio; only drawn views are relabelled).
VISIBLE_RATIO_MIN = 0.75


def mask_outside_body(hu: np.ndarray, spacing: float) -> np.ndarray:
    """The slice with everything outside the body (pixels above ``BODY_HU``, holes such as the
    lungs filled, dilated by ``AUG_MASK_MARGIN_MM``) set to ``AUG_MASKED_AIR_HU``, as many
    stored volumes are (e.g. OpenKBP): noiseless constant air."""
    from scipy import ndimage

    body = ndimage.binary_fill_holes(hu > BODY_HU)
    radius = max(1, int(round(AUG_MASK_MARGIN_MM / spacing)))
    body = ndimage.binary_dilation(body, iterations=radius)
    return np.where(body, hu, np.float32(AUG_MASKED_AIR_HU)).astype(np.float32)


@dataclass(frozen=True)
class Acquisition:
    """One drawn re-acquisition of a slice (:func:`draw_acquisition`): the cropped field of view
    (row and column slices, ``None`` for the whole slice), the new pixel spacing in mm (``None``
    to keep the native one), whether the resampling is anti-aliased, whether the air is masked."""

    crop: tuple | None
    spacing_mm: float | None
    antialias: bool
    mask: bool

    def apply(self, hu: np.ndarray, spacing: float) -> tuple[np.ndarray, float]:
        """The slice re-acquired: cropped, resampled (bilinear; the physical extent is kept),
        masked. Returns the new slice and its pixel spacing (mm)."""
        import torch.nn.functional as F

        hu = np.asarray(hu, dtype=np.float32)
        if self.crop is not None:
            hu = hu[self.crop[0], self.crop[1]]
        if self.spacing_mm is not None:
            size = (max(16, round(hu.shape[0] * spacing / self.spacing_mm)),
                    max(16, round(hu.shape[1] * spacing / self.spacing_mm)))
            x = torch.from_numpy(np.ascontiguousarray(hu))[None, None]
            hu = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=self.antialias)[0, 0].numpy()
            spacing = spacing * x.shape[-2] / size[0]
        if self.mask:
            hu = mask_outside_body(hu, spacing)
        return hu, float(spacing)


def draw_acquisition(hu: np.ndarray, spacing: float, rng: np.random.Generator, *, p_coarse: float = 0.6,
                     p_crop: float = 0.5, p_mask: float = AUG_P_MASK) -> Acquisition:
    """One random re-acquisition of a slice in physical units: with probability ``p_coarse`` a
    coarser pixel drawn log-uniformly from the slice's own spacing to ``AUG_SPACING_MAX_MM`` (never
    finer: detail cannot be invented; with probability ``AUG_P_ALIASED`` without anti-aliasing, as
    stored volumes resampled by plain interpolation are, which keeps more power near the new
    Nyquist frequency); with probability ``p_crop`` a field of view of ``AUG_FOV_MM`` per axis
    around the body centroid (shifted up to ``AUG_FOV_SHIFT_MM``); with probability ``p_mask`` the
    air outside the body masked (:func:`mask_outside_body`)."""
    crop = None
    if rng.random() < p_crop:
        body = np.argwhere(np.asarray(hu) > BODY_HU)
        centre = body.mean(0) if len(body) else np.array(np.shape(hu)) / 2
        crop = []
        for axis in range(2):
            half = rng.uniform(*AUG_FOV_MM) / spacing / 2
            c = centre[axis] + rng.uniform(-AUG_FOV_SHIFT_MM, AUG_FOV_SHIFT_MM) / spacing
            lo, hi = int(max(0, round(c - half))), int(min(np.shape(hu)[axis], round(c + half)))
            crop.append(slice(lo, hi) if hi - lo >= 16 else slice(0, np.shape(hu)[axis]))
        crop = tuple(crop)
    new, antialias = None, True
    if rng.random() < p_coarse and spacing < AUG_SPACING_MAX_MM:
        new = float(np.exp(rng.uniform(np.log(spacing), np.log(AUG_SPACING_MAX_MM))))
        antialias = bool(rng.random() >= AUG_P_ALIASED)
    return Acquisition(crop, new, antialias, bool(rng.random() < p_mask))


def degradation_visible(degraded: np.ndarray, clean: np.ndarray, spacing: float) -> bool:
    """Whether an added degradation can still be seen in one acquisition of a slice: the rms of
    ``degraded - clean`` inside the body (HU; the pair acquired alike) is at least
    ``VISIBLE_RATIO_MIN`` times the clean slice's own fine structure (the soft-tissue noise of
    :func:`native_statistics`: its noise and fine anatomy, HU). Coarser pixels average noise, blur
    and aliasing away while anatomy stays (and metal); a view whose degradation fell below what
    every clean scan has is labelled ``clean`` in training, as a reader would call it."""
    from ctdegradbench.model.image_processing_sespect import native_statistics

    body = clean > BODY_HU
    if not body.any():
        return True
    rms = float(np.sqrt(np.mean((degraded[body] - clean[body]) ** 2)))
    return rms >= VISIBLE_RATIO_MIN * max(float(native_statistics(clean, spacing)[0]), 1.0)


def acquire_view(hu: np.ndarray, spacing: float, rng: np.random.Generator, clean=None) -> tuple[np.ndarray, float, bool]:
    """One drawn training view of a slice: :func:`draw_acquisition` (drawn on ``clean``, the slice
    the degradation was added to, when given) applied to the slice -> ``(HU, spacing in mm, visible)``;
    ``visible`` tells whether the added degradation survives that acquisition
    (:func:`degradation_visible` against ``clean`` acquired alike; always true without ``clean``)."""
    if clean is not None:
        clean = np.asarray(clean, dtype=np.float32)
    acquisition = draw_acquisition(hu if clean is None else clean, spacing, rng)
    if clean is not None:
        clean, _ = acquisition.apply(clean, spacing)
    seen, seen_spacing = acquisition.apply(hu, spacing)
    return seen, seen_spacing, clean is None or degradation_visible(seen, clean, seen_spacing)


def grid_arrays(model, images, spacings, *, views: int = 1, seed: int = 0, key: str, cache_dir=None, pairs=None,
                batch_size: int = 16, desc: str = "grid features", progress: bool = True) -> dict[str, np.ndarray]:
    """Frozen features of every slice on the model's physical grid, ``views`` times per slice
    (view 0 the slice as stored, the others :func:`draw_acquisition` draws), cached on disk.

    ``images`` is indexable (row -> HU array), ``spacings`` the native pixel spacing (mm) of
    each row. ``pairs`` (row -> the clean slice the row's degradation was added to, e.g. its
    clean FBP) acquires the pair alike in every drawn view and decides ``visible``
    (:func:`degradation_visible`; always true for view 0 and without pairs). Returns arrays keyed
    like :func:`grid_keys` plus ``row`` (the source row of each entry) and ``visible``, entries ordered
    row-major (row 0 views 0.., row 1 views 0.., ...).
    """
    from tqdm.auto import tqdm

    from ctdegradbench.model.image_processing_sespect import SeSpeCTImageProcessor, native_statistics

    cfg = model.config
    facts = grid_facts(cfg)
    facts.update(version=CACHE_VERSION, key=key, views=views, seed=seed, n=len(spacings), pairs=pairs is not None,
                 aug=(AUG_SPACING_MAX_MM, AUG_FOV_MM, AUG_FOV_SHIFT_MM, AUG_P_MASK, AUG_MASK_MARGIN_MM,
                      AUG_P_ALIASED, VISIBLE_RATIO_MIN))
    folder = Path(cache_dir or default_cache_dir()) / ("grid-" + hashlib.sha256(
        json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:20])
    stored = grid_keys(cfg)
    names = list(stored) + ["row", "visible"]
    if (folder / "complete.json").is_file():
        return {k: np.load(folder / f"{k}.npy") for k in names}
    processor = SeSpeCTImageProcessor.from_config(cfg)
    rng = np.random.default_rng(seed)
    entries = [(r, v) for r in range(len(spacings)) for v in range(views)]
    chunks = {k: [] for k in stored}
    visible = []
    model.eval()
    for start in tqdm(range(0, len(entries), batch_size), desc=desc, disable=not progress, unit="batch"):
        grids, native, stats = [], [], []
        for r, v in entries[start:start + batch_size]:
            hu, sp = np.asarray(images[r], dtype=np.float32), float(spacings[r])
            seen = True
            if v:
                hu, sp, seen = acquire_view(hu, sp, rng, None if pairs is None else pairs[r])
            visible.append(seen)
            grids.append(processor.to_grid(hu, sp))
            native.append(sp)
            stats.append(native_statistics(hu, sp))     # each view at its own spacing, before resampling
        stats = torch.from_numpy(np.stack(stats))
        feats = model.frozen_features(torch.stack(grids), torch.tensor(native), stats)
        feats["native_statistics"] = stats
        for k, dtype in stored.items():
            chunks[k].append(feats[k].cpu().numpy().astype(dtype))
    arrays = {k: np.concatenate(v) for k, v in chunks.items()}
    arrays["row"] = np.array([r for r, _ in entries], dtype=np.int64)
    arrays["visible"] = np.array(visible, dtype=bool)
    folder.mkdir(parents=True, exist_ok=True)
    for k, v in arrays.items():
        np.save(folder / f"{k}.npy", v)
    (folder / "complete.json").write_text(json.dumps({"entries": len(entries), **facts}, default=str, indent=1))
    return arrays
