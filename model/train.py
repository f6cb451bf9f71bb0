"""``ct-degradbench train``: fit SeSpeCT on exported CT-DegradBench folders (split by patient).

Recipe (:func:`train_sespect`):

1. Read the ``train`` / ``validation`` / ``test`` splits of every folder (config ``all``) and the
   ``references`` rows of the training patients.
2. Compute the frozen stage once per row (backbone embedding and patch tokens, pooled log
   spectra, ``r_fft``, the HU slice) and cache it on disk (:mod:`ctdegradbench.model.data`).
3. Quality axis ``q``: with a text tower (open_clip), from the Table 7 prompts (Eq. 13-15);
   with the offline EfficientNet-Lite0, from image prototypes (a documented deviation): ``mu_H``
   = mean L2-normalised embedding of the clean reference slices of the training patients,
   ``mu_L`` = mean of the degraded training images, ``q = (mu_H - mu_L) / ||mu_H - mu_L||``.
4. AdamW on the trainable parts (everything but the backbone) with the Eq. 24 loss, cosine
   learning-rate decay, fixed seeds; validation after each epoch; the epoch with the best
   validation score is kept: ``(accuracy + QWK) / 2``, and for the physical-grid model (with the
   ``clean`` class) ``(accuracy + QWK + clean rate of the validation reference slices) / 3``.
   With ``--patch-cnn`` (physical grid): a patch CNN trained end to end on the same training entries
   (:func:`train_patch_cnn`), fused with the members at the weight the validation split chooses
   (:func:`choose_patch_cnn_weight`, :func:`attach_patch_cnn`).
5. Test-split metrics, then ``save_pretrained`` (config.json, model.safetensors without the
   backbone, the modeling files), ``metrics.json`` and the model card with ``.eval_results/``.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ctdegradbench.core.errors import OptionError
from ctdegradbench.model.options import (ABLATIONS, BACKBONE_CHOICES, DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS,  # noqa: F401
                                         DEFAULT_LR, DEFAULT_WEIGHT_DECAY, PATCH_CNN_EPOCHS)
from ctdegradbench.builder.simulate.settings import PAPER_CLASS_NAMES
from ctdegradbench.model.data import FROZEN_FIELDS, GRID_CONFIG_FIELDS, PATCH_FIELDS
from ctdegradbench.model.image_processing_sespect import NATIVE_STATISTICS

GRID_VIEWS = {"degraded": 2, "reference": 12, "clean_fbp": 4}   # views per training row (view 0 as stored)
# Prior probability of `clean` that every trained member's outputs assume (config.clean_prior): the share of
# clean entries in a one-realization build, each reference's 12 + 4 clean views against its 40 degraded rows x 2
# views (16 / 96); a three-realization build trains with 16 / 256, and its members would otherwise call
# `clean` 2.7 times less readily (odds) than the one-realization members merged beside them.
CLEAN_PRIOR = 1 / 6
# The shipped physical-grid model: spectral + image branches (no ImageNet backbone), 1 mm pixels,
# a 384 mm field of view, the native pixel spacing and native statistics as inputs, the ten classes + "clean".
GRID_DEFAULTS = {"pixel_spacing_mm": 1.0, "image_size": 384, "texture_size": 64, "spectral_size": 64,
                 "use_spacing_input": True, "use_native_statistics": True, "spacing_range_mm": (0.4, 6.0),
                 "native_statistics_count": len(NATIVE_STATISTICS), "clean_prior": CLEAN_PRIOR}


@dataclass
class TrainResult:
    """What a training run measured."""

    out: Path | None
    metrics: dict                 # test-split task metrics
    validation: dict              # validation metrics of the kept epoch
    best_epoch: int
    history: list = field(default_factory=list)
    split_sizes: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    model: object = None
    test_outputs: dict = field(default_factory=dict)


def ablation_overrides(ablate) -> dict:
    """Config overrides of the ablations named in ``ablate`` (a list of ABLATIONS keys)."""
    overrides = {}
    for name in ablate or ():
        if name not in ABLATIONS:
            raise OptionError(f"unknown ablation {name!r}; expected any of {', '.join(ABLATIONS)}")
        overrides.update(ABLATIONS[name])
    return overrides


def make_config(backbone: str = "efficientnet_lite0", overrides: dict | None = None, **backbone_options):
    """A SeSpeCTConfig with the project's class names and the given changes."""
    from ctdegradbench.model import SeSpeCTConfig

    if backbone not in BACKBONE_CHOICES:
        raise OptionError(f"--backbone must be one of {', '.join(BACKBONE_CHOICES)}, got {backbone!r}")
    kwargs = {"label_names": list(PAPER_CLASS_NAMES), "backbone": backbone}
    if backbone == "none":
        from ctdegradbench.model.data import SESPECT_LABEL_NAMES

        kwargs.update(GRID_DEFAULTS, label_names=list(SESPECT_LABEL_NAMES), use_semantic_branch=False,
                      quality_axis_source="none")
    if backbone == "open_clip":
        kwargs.update(build_open_clip_config(backbone_options.get("open_clip_model"),
                                             backbone_options.get("backbone_weights")))
    elif backbone_options.get("backbone_weights"):
        kwargs["backbone_weights"] = backbone_options["backbone_weights"]
    kwargs.update(overrides or {})
    return SeSpeCTConfig(**kwargs)


def build_open_clip_config(model_name: str | None, pretrained: str | None = None) -> dict:
    """Config fields of an open_clip backbone (architecture read from open_clip; needs the
    model's config locally or from the Hub)."""
    from ctdegradbench.model.backbones import open_clip_architecture

    if not model_name:
        raise OptionError("--backbone open_clip needs --open-clip-model (hf-hub:ORG/NAME, local-dir:/path or a "
                          "built-in open_clip name with --backbone-weights)")
    arch = open_clip_architecture(model_name)
    vision = arch["vision_cfg"]
    size = vision.get("image_size", 224)
    return {"open_clip_model": model_name, "backbone_weights": pretrained, "open_clip_embed_dim": arch["embed_dim"],
            "open_clip_vision_cfg": vision, "open_clip_quick_gelu": bool(arch.get("quick_gelu", False)),
            "semantic_embed_dim": arch["embed_dim"], "backbone_image_size": size if isinstance(size, int) else size[0],
            "backbone_mean": arch.get("preprocess_cfg", {}).get("mean", (0.48145466, 0.4578275, 0.40821073)),
            "backbone_std": arch.get("preprocess_cfg", {}).get("std", (0.26862954, 0.26130258, 0.27577711))}


def prompt_quality_axis(clip_model, tokenizer, high_prompts, low_prompts) -> torch.Tensor:
    """Eq. 13-15 with an open_clip text tower: the :func:`image_prototype_axis` of the text
    embeddings ``f_text(p)`` of the high- and low-quality prompt sets."""
    with torch.no_grad():
        e_h = clip_model.encode_text(tokenizer(list(high_prompts))).float().cpu()
        e_l = clip_model.encode_text(tokenizer(list(low_prompts))).float().cpu()
    return image_prototype_axis(e_h, e_l)


def image_prototype_axis(clean_embeddings, degraded_embeddings) -> torch.Tensor:
    """The Eq. 15 form: ``mu_H`` / ``mu_L`` = mean L2-normalised embedding of the clean (high
    quality) / degraded (low quality) rows, ``q = (mu_H - mu_L) / ||mu_H - mu_L||``."""
    clean = torch.nn.functional.normalize(torch.as_tensor(np.array(clean_embeddings), dtype=torch.float32), dim=-1)
    degraded = torch.nn.functional.normalize(torch.as_tensor(np.array(degraded_embeddings), dtype=torch.float32),
                                             dim=-1)
    diff = clean.mean(0) - degraded.mean(0)
    return diff / diff.norm()


def table7_prompts() -> tuple[list[str], list[str]]:
    """The paper's Table 7 prompt sets, from the builder (the one place they are written)."""
    from ctdegradbench.builder.simulate.prompts import HIGH_QUALITY_PROMPTS, LOW_QUALITY_PROMPTS

    return list(HIGH_QUALITY_PROMPTS), list(LOW_QUALITY_PROMPTS.values())


def set_open_clip_prompt_axis(model) -> None:
    """Build the full open_clip model of ``model.config`` (text tower included), load its
    weights, and store the prompt axis of Table 7 (Eq. 13-15) in ``model``."""
    import open_clip

    from ctdegradbench.model.backbones import open_clip_checkpoint

    cfg = model.config
    clip = open_clip.create_model(cfg.open_clip_model or "", pretrained=None, load_weights=False) \
        if cfg.open_clip_model and cfg.open_clip_model.startswith(("hf-hub:", "local-dir:")) else None
    if clip is None:
        raise OptionError("the prompt axis needs an open_clip model given as hf-hub:ORG/NAME or local-dir:/path")
    open_clip.load_checkpoint(clip, str(open_clip_checkpoint(cfg.open_clip_model, cfg.backbone_weights)))
    tokenizer = open_clip.get_tokenizer(cfg.open_clip_model)
    high, low = table7_prompts()
    model.set_quality_axis(prompt_quality_axis(clip.eval(), tokenizer, high, low), "prompts")
    model.config.high_quality_prompts, model.config.low_quality_prompts = high, low


def _seed_everything(seed: int) -> torch.Generator:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def predict_arrays(model, arrays: dict, batch_size: int = 256) -> dict:
    """Run the trainable stage on cached frozen arrays: probabilities, severity, fused embedding."""
    from ctdegradbench.model.data import batch_from_arrays

    model.eval()
    n = len(next(iter(arrays.values())))
    probs, severity, fused = [], [], []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            batch, _ = batch_from_arrays(arrays, np.arange(start, min(start + batch_size, n)), _needed_keys(model))
            out = model(frozen=batch)
            probs.append(out.probabilities.numpy())
            severity.append(out.severity.numpy())
            fused.append(out.fused_embedding.numpy())
    return {"probabilities": np.concatenate(probs), "severity": np.concatenate(severity),
            "fused_embedding": np.concatenate(fused)}


def _needed_keys(model) -> set:
    cfg = model.config
    keys = set()
    if cfg.use_semantic_branch:
        keys |= {"embedding", "patch_tokens"}
    if cfg.use_spectral_branch:
        keys |= {"spectrum", "hf_ratio"}
    if cfg.use_image_branch:
        keys.add("texture")
    if cfg.use_spacing_input:
        keys.add("log_spacing")
    if getattr(cfg, "use_native_statistics", False):
        keys.add("native_statistics")
    if getattr(cfg, "patch_cnn_width", 0):
        keys |= {"patches", "coarse"}
    return keys


def _score(metrics: dict) -> float:
    qwk = metrics["qwk"] if np.isfinite(metrics["qwk"]) else 0.0
    return 0.5 * (metrics["accuracy"] + qwk)


def prepare_data(dataset_dirs, *, backbone="efficientnet_lite0", backbone_options=None, overrides=None,
                 cache_dir=None, progress=True, log=print) -> dict:
    """Load the splits and the cached frozen arrays (shared by every run on the same data).

    ``overrides`` may change the frozen stage (``image_size``, ``hu_windows``, ...; see
    ``data.FROZEN_FIELDS``); other keys are ignored here.
    """
    from ctdegradbench.model import SeSpeCTModel
    from ctdegradbench.model.data import frozen_arrays, load_benchmark, load_references

    if backbone == "none":
        return prepare_grid_data(dataset_dirs, overrides=overrides, cache_dir=cache_dir, progress=progress, log=log)
    t0 = time.perf_counter()
    splits = {name: load_benchmark(dataset_dirs, name) for name in ("train", "validation", "test")}
    for name, split in splits.items():
        if len(split) == 0:
            raise OptionError(f"the {name} split of {', '.join(map(str, dataset_dirs))} is empty: build the "
                              f"dataset from more patients (the split is by patient)")
        if split.left_out:
            log(f"{name}: left out rows of classes outside the model's labels: {split.left_out}")
    frozen_overrides = {k: v for k, v in (overrides or {}).items() if k in FROZEN_FIELDS}
    full = SeSpeCTModel(make_config(backbone, frozen_overrides, **(backbone_options or {})))
    full.load_backbone_weights()
    arrays = {name: frozen_arrays(full, split.dataset, "image", split.fingerprint, cache_dir, desc=f"frozen {name}",
                                  progress=progress)
              for name, split in splits.items()}
    refs, ref_fp = load_references(dataset_dirs, "train")
    ref_arrays = frozen_arrays(full, refs, "reference", "references-" + ref_fp, cache_dir, desc="frozen references",
                               progress=progress)
    return {"splits": splits, "arrays": arrays, "reference_arrays": ref_arrays, "full_config": full.config,
            "seconds": time.perf_counter() - t0}


class _Column:
    """Row -> one column's array of a ``datasets.Dataset`` (read lazily)."""

    def __init__(self, dataset, column: str):
        self.dataset, self.column = dataset.with_format("numpy", columns=[column]), column

    def __getitem__(self, row: int) -> np.ndarray:
        return self.dataset[int(row)][self.column]


class _Rows:
    """Row -> ``column[rows[row]]``: another table's rows in this table's order."""

    def __init__(self, column, rows):
        self.column, self.rows = column, rows

    def __getitem__(self, row: int) -> np.ndarray:
        return self.column[self.rows[row]]


def _clean_rows(dataset_dirs, split: str):
    """The ``references`` rows of ``split``: the dataset, spacings, patient keys, reference ids."""
    from ctdegradbench.model.data import load_config
    from ctdegradbench.builder.dataset.options import REFERENCES_CONFIG

    ds, _ = load_config(dataset_dirs, REFERENCES_CONFIG, split)
    return ds, np.asarray(ds["pixel_spacing_mm"], float), list(ds["patient_key"]), list(ds["reference_id"])


def rows_key(*columns) -> str:
    """A content key of a split's rows (their ids, and for degraded rows the simulator version and
    seed that made each, in order), so cached grid features are found again whatever folder or loader
    the same rows come from, and a build with another ``--seed`` or simulator gets its own."""
    import hashlib

    text = "|".join("/".join(map(str, row)) for row in zip(*columns))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def prepare_grid_data(dataset_dirs, *, overrides=None, cache_dir=None, progress=True, log=print,
                      with_train: bool = True) -> dict:
    """Splits and frozen arrays of the physical-grid model (``backbone="none"``); with
    ``with_train`` False (measuring trained models only) the train split keeps its rows as loaded
    and gets no arrays.

    Train: every degraded row in ``GRID_VIEWS["degraded"]`` views and the clean rows (each
    reference slice as stored and its clean FBP, the simulator's reconstruction without added
    degradation) labelled ``clean`` (level 0), views as in ``GRID_VIEWS``; view 0 is the row as
    stored, the others :func:`~ctdegradbench.model.data.draw_acquisition` draws (coarser pixels,
    a cropped field of view); a drawn view of a degraded row whose degradation that acquisition
    hid (:func:`~ctdegradbench.model.data.degradation_visible`, against the row's clean FBP acquired
    alike) is labelled ``clean``. Validation / test: the degraded rows as stored (the paper's ten-class
    metrics) and, apart, the reference slices (the ``clean`` rate).
    """
    from ctdegradbench.model import SeSpeCTModel
    from ctdegradbench.model.data import CLEAN_CLASS_NAME, SESPECT_LABEL_NAMES, SplitData, grid_arrays, load_benchmark

    t0 = time.perf_counter()
    full = SeSpeCTModel(make_config("none", {k: v for k, v in (overrides or {}).items() if k in GRID_CONFIG_FIELDS}))
    splits = {name: load_benchmark(dataset_dirs, name, label_names=SESPECT_LABEL_NAMES)
              for name in ("train", "validation", "test")}
    for name, split in splits.items():
        if len(split) == 0:
            raise OptionError(f"the {name} split of {', '.join(map(str, dataset_dirs))} is empty: build the "
                              f"dataset from more patients (the split is by patient)")
        if split.spacings is None:
            raise OptionError(f"{', '.join(map(str, dataset_dirs))} has no pixel_spacing_mm column: rebuild it with "
                              "this version of ct-degradbench build")
    clean_id = SESPECT_LABEL_NAMES.index(CLEAN_CLASS_NAME)
    arrays, clean_eval = {}, {}
    for name, split in splits.items():
        refs, ref_spacing, ref_patients, ref_ids = _clean_rows(dataset_dirs, name)
        made = [split.provenance] if split.provenance else []
        # the clean FBP of a reference is the simulator's too: keyed by the build's simulator versions
        versions = sorted({row.split("/")[0] for row in split.provenance or []})
        ref_key = f"{name}-references-{rows_key(ref_ids)}" + "".join(f"-{v}" for v in versions)
        deg_key = f"{name}-degraded-{rows_key(split.reference_ids, split.settings, split.levels, *made)}"
        if name != "train":
            arrays[name] = grid_arrays(full, _Column(split.dataset, "image"), split.spacings, views=1, seed=1,
                                       key=deg_key, cache_dir=cache_dir, desc=f"grid {name}", progress=progress)
            clean_eval[name] = grid_arrays(full, _Column(refs, "reference"), ref_spacing, views=1, seed=2,
                                           key=ref_key, cache_dir=cache_dir, desc=f"grid {name} clean",
                                           progress=progress)
            continue
        if not with_train:
            continue
        fbp, ref_row = _Column(refs, "clean_fbp"), {rid: k for k, rid in enumerate(ref_ids)}
        pairs = _Rows(fbp, [ref_row[rid] for rid in split.reference_ids])
        deg = grid_arrays(full, _Column(split.dataset, "image"), split.spacings, views=GRID_VIEWS["degraded"], seed=1,
                          key=deg_key, cache_dir=cache_dir, pairs=pairs, desc=f"grid {name}", progress=progress)
        hidden = ~deg["visible"]
        parts, patients, ids = [deg], [np.asarray(split.patient_keys)[deg["row"]]], \
            [np.asarray(split.reference_ids)[deg["row"]]]
        labels = [np.where(hidden, clean_id, split.labels[deg["row"]])]
        levels = [np.where(hidden, 0, split.levels[deg["row"]])]
        settings = [np.where(hidden, CLEAN_CLASS_NAME, np.asarray(split.settings, dtype=object)[deg["row"]])]
        for seed, column in enumerate(("reference", "clean_fbp"), start=3):
            a = grid_arrays(full, _Column(refs, column), ref_spacing, views=GRID_VIEWS[column], seed=seed,
                            key=f"{ref_key}-{column}", cache_dir=cache_dir, desc=f"grid train {column}",
                            progress=progress)
            parts.append(a)
            labels.append(np.full(len(a["row"]), clean_id))
            levels.append(np.zeros(len(a["row"]), np.int64))
            settings.append(np.full(len(a["row"]), CLEAN_CLASS_NAME, dtype=object))
            patients.append(np.asarray(ref_patients)[a["row"]])
            ids.append(np.asarray(ref_ids)[a["row"]])
        arrays[name] = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        splits[name] = SplitData(dataset=None, labels=np.concatenate(labels), levels=np.concatenate(levels),
                                 settings=list(np.concatenate(settings)), patient_keys=list(np.concatenate(patients)),
                                 reference_ids=list(np.concatenate(ids)), fingerprint=split.fingerprint)
        log(f"train: {len(deg['row'])} entries of degraded rows ({int(hidden.sum())} drawn views whose "
            f"degradation the acquisition hid, labelled clean), {len(splits[name]) - len(deg['row'])} clean entries")
    return {"splits": splits, "arrays": arrays, "reference_arrays": None, "clean_eval": clean_eval,
            "clean_id": clean_id, "full_config": full.config, "seconds": time.perf_counter() - t0}


def clean_rate(model, arrays, clean_id: int) -> float:
    """Fraction of the clean slices whose predicted class is ``clean``."""
    pred = predict_arrays(model, arrays)
    return float(np.mean(pred["probabilities"].argmax(1) == clean_id))


def train_sespect(dataset_dirs, out=None, *, backbone="efficientnet_lite0", backbone_options=None, ablate=(),
                  overrides=None, epochs=DEFAULT_EPOCHS, batch_size=DEFAULT_BATCH_SIZE, lr=DEFAULT_LR,
                  weight_decay=DEFAULT_WEIGHT_DECAY, seed=0, ensemble=1, patch_cnn=0, patch_cnn_epochs=PATCH_CNN_EPOCHS,
                  cache_dir=None, prepared=None, progress=True, log=print, command=None) -> TrainResult:
    """Train SeSpeCT (see the module docstring); writes the checkpoint to ``out`` when given.

    ``ensemble`` K > 1: K members trained one at a time on the same prepared data (seeds ``seed`` ..
    ``seed + K - 1``, each kept at its own best validation epoch), assembled into one model with
    ``ensemble_size`` K (:func:`assemble_ensemble`); the metrics are the assembled model's.

    ``patch_cnn`` w > 0 (``backbone="none"``): then a patch CNN of width w is trained on the same
    training entries (:func:`train_patch_cnn`, ``patch_cnn_epochs`` epochs, seed ``seed``) and fused
    with the members (:func:`attach_patch_cnn`)."""
    from tqdm.auto import tqdm

    from ctdegradbench.model import SeSpeCTForDegradationEstimation
    from ctdegradbench.model.data import batch_from_arrays
    from ctdegradbench.model.metrics import task_metrics

    if epochs < 1 or batch_size < 2:
        raise OptionError(f"need --epochs >= 1 and --batch-size >= 2, got {epochs}, {batch_size}")
    if ensemble > 1 and backbone != "none":
        raise OptionError(f"--ensemble {ensemble} needs --backbone none (the members share one frozen stage), "
                          f"got --backbone {backbone}")
    if patch_cnn and backbone != "none":
        raise OptionError(f"--patch-cnn {patch_cnn} needs --backbone none (the patches are cut from the physical "
                          f"grid), got --backbone {backbone}")
    if out:
        from ctdegradbench.core.outputs import OutputFolder

        OutputFolder(out, "train")      # refused before any work when it would replace a user's files
    start = time.perf_counter()
    if patch_cnn:
        overrides = {**(overrides or {}), "patch_cnn_width": patch_cnn}
    prepared = prepared or prepare_data(dataset_dirs, backbone=backbone, backbone_options=backbone_options,
                                        overrides=overrides, cache_dir=cache_dir, progress=progress, log=log)
    if patch_cnn:
        members = train_sespect(dataset_dirs, None, backbone=backbone, ablate=ablate,
                                overrides={k: v for k, v in overrides.items() if k != "patch_cnn_width"}, epochs=epochs,
                                batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed, ensemble=ensemble,
                                prepared=prepared, progress=progress, log=log)
        from ctdegradbench.model.real_artifacts import METAL_LABELS

        log(f"patch CNN (width {patch_cnn}, seed {seed})")
        cnn_config = make_config(backbone, overrides)
        net, cnn_facts = train_patch_cnn(cnn_config, prepared, epochs=patch_cnn_epochs, seed=seed, progress=progress,
                                         log=log)
        weight, cnn_facts["validation_weights"] = choose_patch_cnn_weight(members.model, net, prepared, METAL_LABELS)
        log(f"patch CNN weight {weight:g} (validation: " + ", ".join(
            f"{r['weight']:g}: {r['score']:.3f}" for r in cnn_facts["validation_weights"]) + ")")
        model = attach_patch_cnn(members.model, net, cnn_config, weight, METAL_LABELS)
        validation, _ = split_metrics(model, prepared, "validation")
        validation["member_best_epochs"] = members.validation.get("member_best_epochs") or [members.best_epoch]
        return _finish_run(model, prepared, out, dataset_dirs, validation=validation, best_epoch=members.best_epoch,
                           history=members.history, train_seconds=members.seconds["train"] + cnn_facts["seconds"],
                           start=start, ablate=ablate, seed=seed, epochs=epochs, command=command,
                           extra_facts={"patch_cnn": cnn_facts})
    if ensemble > 1:
        members = []
        for k in range(ensemble):
            log(f"ensemble member {k + 1}/{ensemble} (seed {seed + k})")
            members.append(train_sespect(dataset_dirs, None, backbone=backbone, backbone_options=backbone_options,
                                         ablate=ablate, overrides=overrides, epochs=epochs, batch_size=batch_size,
                                         lr=lr, weight_decay=weight_decay, seed=seed + k, prepared=prepared,
                                         progress=progress, log=log))
        model = assemble_ensemble([m.model for m in members])
        validation, _ = split_metrics(model, prepared, "validation")
        validation["member_best_epochs"] = [m.best_epoch for m in members]
        return _finish_run(model, prepared, out, dataset_dirs, validation=validation, best_epoch=members[0].best_epoch,
                           history=[{**h, "member": k} for k, m in enumerate(members) for h in m.history],
                           train_seconds=sum(m.seconds["train"] for m in members), start=start,
                           ablate=ablate, seed=seed, epochs=epochs, command=command)
    splits, arrays = prepared["splits"], prepared["arrays"]
    generator = _seed_everything(seed)
    cfg_overrides = dict(overrides or {})
    cfg_overrides.update(ablation_overrides(ablate))
    config = make_config(backbone, cfg_overrides, **(backbone_options or {}))
    for name in FROZEN_FIELDS + ("semantic_embed_dim", "label_names"):
        if getattr(config, name) != getattr(prepared["full_config"], name):
            raise OptionError(f"the prepared frozen features were computed with {name}="
                              f"{getattr(prepared['full_config'], name)!r}, this run asks for {getattr(config, name)!r}")
    model = SeSpeCTForDegradationEstimation(config)
    if config.use_semantic_branch:
        if backbone == "open_clip" and (backbone_options or {}).get("prompt_axis", True):
            set_open_clip_prompt_axis(model)
        else:
            model.set_quality_axis(image_prototype_axis(prepared["reference_arrays"]["embedding"],
                                                        arrays["train"]["embedding"]), "image_prototypes")
        model.load_backbone_weights()
    keys = _needed_keys(model)
    train = splits["train"]
    labels = torch.from_numpy(train.labels)
    levels = torch.from_numpy(train.levels)
    params = [p for p in model.parameters() if p.requires_grad]      # the frozen backbone's are not
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(train) / batch_size)
    total_steps = epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps)))
    best, history = None, []
    t_train = time.perf_counter()
    val = splits["validation"]
    bar = tqdm(range(1, epochs + 1), desc="epochs", disable=not progress, unit="epoch")
    for epoch in bar:
        model.train()
        order = torch.randperm(len(train), generator=generator).numpy()
        running = {"loss": 0.0, "cls": 0.0, "reg": 0.0, "rank": 0.0, "con": 0.0}
        for b in range(steps_per_epoch):
            idx = order[b * batch_size:(b + 1) * batch_size]
            if len(idx) < 2:
                continue
            batch, idx = batch_from_arrays(arrays["train"], idx, keys)
            output = model(frozen=batch, labels=labels[idx], levels=levels[idx])
            optimizer.zero_grad(set_to_none=True)
            output.loss.backward()
            optimizer.step()
            scheduler.step()
            running["loss"] += float(output.loss.detach()) / steps_per_epoch
            for k, v in output.loss_terms.items():
                running[k] += float(v.detach()) / steps_per_epoch
        pred = predict_arrays(model, arrays["validation"])
        metrics = task_metrics(val.labels, pred["probabilities"], val.levels, pred["severity"], val.settings,
                               config.label_names, config.max_level)
        score = _score(metrics)
        extra = {}
        if prepared.get("clean_eval"):
            extra["val_clean_rate"] = clean_rate(model, prepared["clean_eval"]["validation"], prepared["clean_id"])
            score = (2 * score + extra["val_clean_rate"]) / 3
        history.append({"epoch": epoch, **{f"train_{k}": v for k, v in running.items()},
                        "val_accuracy": metrics["accuracy"], "val_qwk": metrics["qwk"], "val_mae": metrics["mae"],
                        **extra, "val_score": score})
        bar.set_postfix(loss=f"{running['loss']:.3f}", val_acc=f"{metrics['accuracy']:.3f}",
                        val_qwk=f"{metrics['qwk']:.3f}")
        if not progress:
            log(f"epoch {epoch}/{epochs}: loss {running['loss']:.3f}, validation accuracy {metrics['accuracy']:.3f}, "
                f"QWK {metrics['qwk']:.3f}"
                + (f", clean rate {extra['val_clean_rate']:.3f}" if extra else "")
                + f" ({time.perf_counter() - t_train:.0f} s)")
        if best is None or score > best[0]:
            best = (score, epoch, copy.deepcopy(model.state_dict()), metrics)
    train_seconds = time.perf_counter() - t_train
    model.load_state_dict(best[2])
    validation = best[3]
    if prepared.get("clean_eval"):
        validation["clean_rate"] = next(h["val_clean_rate"] for h in history if h["epoch"] == best[1])
    if config.clean_prior is not None and config.clean_label in config.label_names:   # after the epoch choice
        shift = adjust_clean_prior(model, train.labels)
        log(f"clean logit {shift:+.3f}: from the training share of clean entries to the prior {config.clean_prior:.3f}")
        validation, _ = split_metrics(model, prepared, "validation")
    return _finish_run(model, prepared, out, dataset_dirs, validation=validation, best_epoch=best[1], history=history,
                       train_seconds=train_seconds, start=start, ablate=ablate, seed=seed, epochs=epochs,
                       command=command)


def _finish_run(model, prepared, out, dataset_dirs, *, validation, best_epoch, history, train_seconds, start,
                ablate, seed, epochs, command, extra_facts=None) -> TrainResult:
    """The trained ``model``'s test metrics and :class:`TrainResult` (one model or an assembled
    ensemble); the checkpoint folder is written when ``out`` is given."""
    test = prepared["splits"]["test"]
    test_metrics, pred = split_metrics(model, prepared, "test")
    result = TrainResult(out=Path(out) if out else None, metrics=test_metrics, validation=validation,
                         best_epoch=best_epoch, history=history,
                         split_sizes={name: split.summary() for name, split in prepared["splits"].items()},
                         seconds={"prepare": prepared["seconds"], "train": train_seconds,
                                  "total": time.perf_counter() - start},
                         model=model, test_outputs={**pred, "labels": test.labels, "levels": test.levels,
                                                    "settings": test.settings})
    if out:
        save_run(result, dataset_dirs, ablate=ablate, seed=seed, epochs=epochs, command=command,
                 extra_facts=extra_facts)
    return result


def split_metrics(model, prepared: dict, name: str) -> tuple[dict, dict]:
    """Task metrics of ``model`` on the prepared split ``name`` (and its clean rate, for a model with
    the ``clean`` class), and the predictions they come from."""
    from ctdegradbench.model.metrics import add_accuracy_intervals, task_metrics

    split, cfg = prepared["splits"][name], model.config
    pred = predict_arrays(model, prepared["arrays"][name])
    metrics = task_metrics(split.labels, pred["probabilities"], split.levels, pred["severity"], split.settings,
                           cfg.label_names, cfg.max_level)
    add_accuracy_intervals(metrics, split.labels, pred["probabilities"], cfg.label_names, split.patient_keys)
    if prepared.get("clean_eval"):
        metrics["clean_rate"] = clean_rate(model, prepared["clean_eval"][name], prepared["clean_id"])
    return metrics, pred


# The patch CNN's recipe (train_patch_cnn): AdamW with a one-cycle schedule, batches of 64.
PATCH_CNN_BATCH, PATCH_CNN_LR, PATCH_CNN_WEIGHT_DECAY = 64, 2e-3, 1e-4
# Weights of the patch CNN in the fused answer among which the validation split chooses (choose_patch_cnn_weight).
PATCH_CNN_WEIGHTS = (0.25, 0.5, 0.75)


def train_patch_cnn(config, prepared: dict, *, epochs: int = PATCH_CNN_EPOCHS, seed: int = 0, progress: bool = True,
                    log=print) -> tuple:
    """Train the patch CNN of ``config`` (``patch_cnn_width`` > 0) end to end on the prepared training
    entries' ``patches`` and ``coarse`` (the members' training views, labels and levels).

    Loss: cross-entropy on the class plus SmoothL1 on the level of the degraded entries; AdamW
    (``PATCH_CNN_LR``, weight decay ``PATCH_CNN_WEIGHT_DECAY``) with a one-cycle schedule, batches of
    ``PATCH_CNN_BATCH``, each batch turned by a random multiple of 90 degrees and flipped left-right with
    probability 1/2 (CT slices have no preferred in-plane orientation for a degradation). The epoch with
    the best ten-class accuracy on the validation split's degraded rows (as stored) is kept; then the clean
    logit is shifted to ``config.clean_prior`` (:func:`shift_clean_logit`). Returns the network and its
    facts (seed, epochs, kept epoch, history, seconds)."""
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from ctdegradbench.model.metrics import ten_class_predictions
    from ctdegradbench.model.modeling_sespect import PatchCNN

    _seed_everything(seed)
    arrays, train = prepared["arrays"]["train"], prepared["splits"]["train"]
    if "patches" not in arrays:
        raise OptionError("the prepared data holds no patches: prepare it with a config whose patch_cnn_width > 0")
    patches = torch.from_numpy(arrays["patches"].astype(np.float32))
    coarse = torch.from_numpy(arrays["coarse"].astype(np.float32))
    labels = torch.from_numpy(np.asarray(train.labels, np.int64))
    levels = torch.from_numpy(np.asarray(train.levels, np.float32))
    degraded_entries = labels != config.label_names.index(config.clean_label)
    val, val_arrays = prepared["splits"]["validation"], prepared["arrays"]["validation"]
    net = PatchCNN(config)
    optimizer = torch.optim.AdamW(net.parameters(), PATCH_CNN_LR, weight_decay=PATCH_CNN_WEIGHT_DECAY)
    steps = max(1, len(labels) // PATCH_CNN_BATCH)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, PATCH_CNN_LR, total_steps=epochs * steps)
    best, history, t0 = None, [], time.perf_counter()
    for epoch in tqdm(range(1, epochs + 1), desc="patch CNN epochs", disable=not progress, unit="epoch"):
        net.train()
        order, total = torch.randperm(len(labels)), 0.0
        for k in range(steps):
            rows = order[k * PATCH_CNN_BATCH:(k + 1) * PATCH_CNN_BATCH]
            turns = int(torch.randint(4, ()))
            p, c = torch.rot90(patches[rows], turns, (-2, -1)), torch.rot90(coarse[rows], turns, (-2, -1))
            if torch.rand(()) < 0.5:
                p, c = p.flip(-1), c.flip(-1)
            logits, severity = net(p, c)
            loss = F.cross_entropy(logits, labels[rows])
            if degraded_entries[rows].any():
                loss = loss + F.smooth_l1_loss(severity[degraded_entries[rows]], levels[rows][degraded_entries[rows]])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) / steps
        probabilities, _ = patch_cnn_outputs(net, val_arrays)
        accuracy = float(np.mean(ten_class_predictions(probabilities, config.label_names) == val.labels))
        history.append({"epoch": epoch, "train_loss": total, "val_ten_class_accuracy": accuracy})
        if not progress:
            log(f"patch CNN epoch {epoch}/{epochs}: loss {total:.3f}, validation ten-class accuracy {accuracy:.3f} "
                f"({time.perf_counter() - t0:.0f} s)")
        if best is None or accuracy > best[0]:
            best = (accuracy, epoch, copy.deepcopy(net.state_dict()))
    net.load_state_dict(best[2])
    shift = shift_clean_logit(net.class_bias, config, train.labels)
    log(f"patch CNN: epoch {best[1]} kept (validation ten-class accuracy {best[0]:.3f}); clean logit {shift:+.3f}")
    return net.eval(), {"width": config.patch_cnn_width, "seed": seed, "epochs": epochs, "best_epoch": best[1],
                        "history": history, "seconds": time.perf_counter() - t0}


def patch_cnn_outputs(net, arrays: dict, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The patch CNN's class probabilities and severities (levels) on cached ``patches`` / ``coarse``
    (run on the device of ``net``'s weights)."""
    net.eval()
    device = next(net.parameters()).device
    probs, severity = [], []
    with torch.no_grad():
        for i in range(0, len(arrays["patches"]), batch_size):
            rows = slice(i, i + batch_size)
            logits, level = net(torch.as_tensor(np.asarray(arrays["patches"][rows], np.float32), device=device),
                                torch.as_tensor(np.asarray(arrays["coarse"][rows], np.float32), device=device))
            probs.append(logits.softmax(-1).cpu().numpy())
            severity.append(level.cpu().numpy())
    return np.concatenate(probs), np.concatenate(severity)


def choose_patch_cnn_weight(members, net, prepared: dict, gate_labels) -> tuple[float, list[dict]]:
    """The patch CNN's weight in the fused answer (one of ``PATCH_CNN_WEIGHTS``), chosen on the validation
    split, never on the test split or the real artifacts: the weight with the best mean of the ten-class
    and the eleven-way accuracy on the degraded rows and the ``clean`` rate on the reference slices, each
    fused with the gate of ``gate_labels``. ``members`` is the model without the patch CNN. Returns the
    weight and every weight's rates (the table stored in ``metrics.json``)."""
    from ctdegradbench.model.metrics import ten_class_predictions
    from ctdegradbench.model.modeling_sespect import fuse_with_patch_cnn

    names = members.config.label_names
    gate = torch.tensor([n in (gate_labels or ()) for n in names])
    labels = prepared["splits"]["validation"].labels
    parts = {"degraded": prepared["arrays"]["validation"], "clean": prepared["clean_eval"]["validation"]}
    answers = {k: (torch.from_numpy(predict_arrays(members, a)["probabilities"]),
                   torch.from_numpy(patch_cnn_outputs(net, a)[0])) for k, a in parts.items()}
    table = []
    for weight in PATCH_CNN_WEIGHTS:
        fused = {k: fuse_with_patch_cnn(m, c, weight, gate).numpy() for k, (m, c) in answers.items()}
        row = {"weight": weight,
               "ten_class_accuracy": float(np.mean(ten_class_predictions(fused["degraded"], names) == labels)),
               "accuracy": float(np.mean(fused["degraded"].argmax(1) == labels)),
               "clean_rate": float(np.mean(fused["clean"].argmax(1) == names.index(members.config.clean_label)))}
        row["score"] = (row["ten_class_accuracy"] + row["accuracy"] + row["clean_rate"]) / 3
        table.append(row)
    return max(table, key=lambda r: r["score"])["weight"], table


def attach_patch_cnn(model, net, net_config, weight: float, gate) -> "SeSpeCTForDegradationEstimation":
    """``model`` (one member or an ensemble, no patch CNN) with the trained patch CNN ``net`` fused in: the
    config takes the width, geometry and windows ``net`` was built with (``net_config``),
    ``patch_cnn_weight`` = ``weight`` and ``metal_gate_labels`` = ``gate`` (``None``: no gate)."""
    from ctdegradbench.model import SeSpeCTForDegradationEstimation

    config = copy.deepcopy(model.config)
    for name in PATCH_CNN_INPUT_FIELDS:
        setattr(config, name, getattr(net_config, name))
    config.patch_cnn_weight = float(weight)
    config.metal_gate_labels = None if gate is None else list(gate)
    fused = SeSpeCTForDegradationEstimation(config)
    fused.load_state_dict({**model.state_dict(), **{f"patch_cnn.{k}": v for k, v in net.state_dict().items()}})
    return fused.eval()


def assemble_ensemble(models) -> "SeSpeCTForDegradationEstimation":
    """One model with ``ensemble_size = len(models)`` holding the trained ``models`` (same config,
    ensemble_size 1 each): the first as its own trunk and heads, the others as ``members``."""
    from ctdegradbench.model import SeSpeCTForDegradationEstimation

    config = copy.deepcopy(models[0].config)
    config.ensemble_size = len(models)
    ensemble = SeSpeCTForDegradationEstimation(config)
    state = dict(models[0].state_dict())
    for k, member in enumerate(models[1:]):
        state.update({f"members.{k}.{key}": value for key, value in member.state_dict().items()})
    ensemble.load_state_dict(state)
    return ensemble.eval()


def ensemble_members(model) -> list:
    """The single models of ``model`` (itself, or each member of an ensemble), ``ensemble_size`` 1
    each, in member order, without the patch CNN: the inverse of :func:`assemble_ensemble`."""
    from ctdegradbench.model import SeSpeCTForDegradationEstimation
    from ctdegradbench.model.modeling_sespect import member_config

    first = SeSpeCTForDegradationEstimation(member_config(model.config))
    first.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith(("members.", "patch_cnn."))})
    return [first.eval(), *(copy.deepcopy(member).eval() for member in getattr(model, "members", []))]


# config fields that may differ between checkpoints merged into one ensemble (the patch CNN's come from
# the one checkpoint that has one)
PATCH_CNN_INPUT_FIELDS = PATCH_FIELDS + ("patch_hu_windows",)       # the patch CNN's width, inputs and windows
PATCH_CNN_FIELDS = PATCH_CNN_INPUT_FIELDS + ("patch_cnn_weight", "metal_gate_labels")
MERGE_FREE_FIELDS = ("ensemble_size", "transformers_version", "_name_or_path", "architectures") + PATCH_CNN_FIELDS


def adjust_clean_prior(model, labels) -> float:
    """Post-hoc logit adjustment (Saerens et al. 2002, Menon et al. 2021) of a single model trained on
    ``labels``: its clean logit is shifted by ``logit(p) - logit(q)``, ``p`` = ``config.clean_prior``
    and ``q`` the share of ``clean_label`` in ``labels``, so its probabilities are those of a classifier
    trained with the prior ``p``: the odds of ``clean`` against every other class scale by
    ``(p / (1 - p)) / (q / (1 - q))``, the odds among the other classes stay. Returns the shift."""
    return shift_clean_logit(model.classifier.bias, model.config, labels)


def shift_clean_logit(bias: torch.Tensor, config, labels) -> float:
    """Add ``logit(p) - logit(q)`` to the ``clean_label`` entry of a classifier's logit ``bias`` (see
    :func:`adjust_clean_prior`; ``p`` = ``config.clean_prior``, ``q`` the share of clean ``labels``).
    Returns the shift."""
    q = float(np.mean(np.asarray(labels) == config.label_names.index(config.clean_label)))
    if not 0.0 < q < 1.0:
        raise OptionError(f"the training entries are {'all' if q else 'none'} {config.clean_label!r}: the clean "
                          "prior needs both clean and degraded entries")
    p = config.clean_prior
    shift = math.log(p / (1 - p)) - math.log(q / (1 - q))
    with torch.no_grad():
        bias[config.label_names.index(config.clean_label)] += shift
    return shift


def merge_checkpoints(model_dirs, dataset_dirs, out=None, *, cache_dir=None, progress=True, log=print,
                      command=None) -> TrainResult:
    """One ensemble checkpoint holding every member of the physical-grid checkpoints ``model_dirs``
    (each written by ``train --backbone none``, the same architecture; members trained on different
    exports or seeds), measured like a trained one on the validation and test splits of
    ``dataset_dirs``. Each run's ``metrics.json`` gives the members' seeds, kept epochs, history and
    training command (``merged_from`` in the new ``metrics.json``); written to ``out`` when given.

    At most one of them may hold a patch CNN (``train --patch-cnn``): the merged checkpoint fuses it with
    every member, with that checkpoint's fusion settings (its facts become ``patch_cnn``)."""
    from ctdegradbench.model.predict import load_model

    if len(model_dirs) < 2:
        raise OptionError(f"--merge needs two or more checkpoints, got {len(model_dirs)}")
    if out:
        from ctdegradbench.core.outputs import OutputFolder

        OutputFolder(out, "train")      # refused before any work when it would replace a user's files
    start = time.perf_counter()
    runs = []
    for folder in map(Path, model_dirs):
        model = load_model(folder, option="--merge")
        if getattr(model.config, "pixel_spacing_mm", None) is None:
            raise OptionError(f"--merge {folder}: a pixel-grid checkpoint (backbone {model.config.backbone}); only "
                              "checkpoints of --backbone none share one frozen stage")
        facts_file = folder / "metrics.json"
        if not facts_file.is_file():
            raise OptionError(f"--merge {folder}: no metrics.json (the facts train writes: seeds, epochs, "
                              "command); merge checkpoint folders written by ct-degradbench train")
        runs.append((folder, model, json.loads(facts_file.read_text())))
    reference = {k: v for k, v in runs[0][1].config.to_dict().items() if k not in MERGE_FREE_FIELDS}
    for folder, model, _ in runs[1:]:
        theirs = {k: v for k, v in model.config.to_dict().items() if k not in MERGE_FREE_FIELDS}
        differ = sorted(k for k in set(reference) | set(theirs) if reference.get(k) != theirs.get(k))
        if differ:
            raise OptionError(f"--merge {folder}: its config differs from {runs[0][0]}'s in {differ[0]} "
                              f"({theirs.get(differ[0])!r} against {reference.get(differ[0])!r}); members of one "
                              "ensemble need the same architecture, frozen stage and clean prior")
    merged_from, history = [], []
    for i, (folder, model, facts) in enumerate(runs):
        size = getattr(model.config, "ensemble_size", 1)
        kept = (facts.get("validation") or {}).get("member_best_epochs") or [facts.get("best_epoch")] * size
        # a merged checkpoint brings its own runs (members in the same order)
        merged_from += facts.get("merged_from") or [{
            "checkpoint": folder.name, "members": size, "seeds": [facts["seed"] + k for k in range(size)],
            "best_epochs": kept, "datasets": facts.get("datasets"), "command": facts.get("command"),
            "seconds": (facts.get("seconds") or {}).get("total")}]
        history += [{**h, "run": i} for h in facts.get("history", [])]
    with_cnn = [(folder, model, facts) for folder, model, facts in runs if model.patch_cnn is not None]
    if len(with_cnn) > 1:
        raise OptionError(f"--merge: {with_cnn[0][0]} and {with_cnn[1][0]} both hold a patch CNN; a merged checkpoint "
                          "fuses one (merge the members of one of them with a checkpoint without)")
    seeds = [seed for r in merged_from for seed in r["seeds"]]
    epochs_kept = [epoch for r in merged_from for epoch in r["best_epochs"]]
    log(f"merging {len(seeds)} members of {len(runs)} checkpoints")
    first = (with_cnn[0] if with_cnn else runs[0])[1].config
    prepared = prepare_grid_data(dataset_dirs, overrides={k: getattr(first, k) for k in GRID_CONFIG_FIELDS},
                                 cache_dir=cache_dir, progress=progress, log=log, with_train=False)
    model = assemble_ensemble([single for _, m, _ in runs for single in ensemble_members(m)])
    extra = {}
    if with_cnn:
        folder, holder, facts = with_cnn[0]
        gate = holder.config.metal_gate_labels
        weight, table = choose_patch_cnn_weight(model, holder.patch_cnn, prepared, gate)     # for these members
        log(f"patch CNN of {folder.name}: weight {weight:g} on the validation split")
        model = attach_patch_cnn(model, holder.patch_cnn, holder.config, weight, gate)
        extra["patch_cnn"] = {"checkpoint": folder.name, "datasets": facts.get("datasets"),
                              "command": facts.get("command"), **(facts.get("patch_cnn") or {}),
                              "validation_weights": table}
    validation, _ = split_metrics(model, prepared, "validation")
    validation["member_best_epochs"] = epochs_kept
    trained_on = list(dict.fromkeys(d for r in merged_from for d in (r["datasets"] or [])))
    return _finish_run(model, prepared, out, dataset_dirs, validation=validation, best_epoch=epochs_kept[0],
                       history=history, train_seconds=sum((f.get("seconds") or {}).get("train", 0.0) for *_, f in runs),
                       start=start, ablate=runs[0][2].get("ablate", []), seed=runs[0][2]["seed"],
                       epochs=runs[0][2]["epochs"], command=command,
                       extra_facts={"merged_from": merged_from, "member_seeds": seeds, "datasets": trained_on,
                                    "measured_on": [str(d) for d in dataset_dirs], **extra})


def save_run(result: TrainResult, dataset_dirs, *, ablate, seed, epochs, command=None, extra_facts=None) -> list[str]:
    """Write the checkpoint folder: save_pretrained files, metrics.json, README.md (model card), .eval_results/.

    The folder follows the output rule of ``core.outputs``: everything is written into
    a staging folder first and moved in only if it replaces nothing of the user's. Returns the
    files written.
    """
    from ctdegradbench.core.outputs import OutputFolder
    from ctdegradbench.model.card import write_model_card

    folder = OutputFolder(result.out, "train")
    out = folder.staging()
    result.model.save_pretrained(out)
    facts = {"test": result.metrics, "validation": result.validation, "best_epoch": result.best_epoch,
             "epochs": epochs, "seed": seed, "ablate": list(ablate or ()), "split_sizes": result.split_sizes,
             "seconds": result.seconds, "datasets": [str(d) for d in dataset_dirs], "history": result.history,
             "command": command, **(extra_facts or {})}
    (out / "metrics.json").write_text(json.dumps(facts, indent=1, default=float))
    write_model_card(out, result.model.config, facts)
    return folder.commit(out)
