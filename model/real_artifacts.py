"""SeSpeCT judged on real scans with real, labelled artifacts (the ``ct-real-artifacts`` folder:
``labels.json`` beside the volumes and DICOM series; judge only, never used for training).

:func:`collect` reads the slices to judge, :func:`judge` predicts them with one checkpoint and
computes, over the slices the model answers (the others are counted, per status):

- **metal recall**: dental metal slices (``metal_slices`` of the ``metal_dental`` volumes)
  called a metal class (:data:`METAL_LABELS`: every class whose setting holds metal);
- **false-metal rate**: the ``clean_slices`` of the same head-and-neck collection (the metal
  patients' metal-free slices and the metal-free volumes) called a metal class;
- **clean rate**: slices of the clean body scans (``artifact: none`` outside that collection)
  called ``clean``, and the head-and-neck metal-free slices called ``clean`` (a checkpoint
  without a ``clean`` class scores 0);
- **low-dose vs clean AUC**: the probability that a real low-dose slice scores above a clean
  body slice (ties count one half; Mann-Whitney), by the degradation score ``1 - p(clean)``
  (without a clean class: the predicted severity);
- per body region (``body_part``) and group: the shares called ``clean`` and a metal class.

Every rate comes with a percentile interval (95 %,
:data:`~ctdegradbench.model.metrics.BOOTSTRAP_CONFIDENCE`) from a bootstrap over patients (each item of
``labels.json``, a volume or a series, is one patient): slices of one patient share anatomy,
scanner and artifact, so they are not independent. The AUC's resamples draw the low-dose and the
clean patients each from their own group.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ctdegradbench.builder.simulate.settings import METAL, SETTINGS
from ctdegradbench.model.metrics import BOOTSTRAP_CONFIDENCE, BOOTSTRAP_SEED

#: Classes whose setting holds metal (S5_metal, M3_m+n, M5_m+b+n): "called metal".
METAL_LABELS = tuple(s.class_name for s in SETTINGS if METAL in s.components)
#: The rates :func:`judge` reports, in table order.
RATES = ("metal_recall", "false_metal_rate", "clean_rate_body", "clean_rate_head_neck", "low_dose_vs_clean_auc")
DENTAL = "openkbp-dental"


def evenly(indices, n: int) -> list:
    """``n`` of ``indices`` evenly spaced from the first to the last (all of them when ``n`` <= 0
    or there are no more than ``n``)."""
    indices = list(indices)
    if n <= 0 or len(indices) <= n:
        return indices
    return [indices[i] for i in np.linspace(0, len(indices) - 1, n).round().astype(int)]


def labels_file(data) -> Path:
    """``data/labels.json``, the file that makes a folder a ct-real-artifacts folder; an ``InputError``
    naming the folder when it is missing."""
    from ctdegradbench.core.errors import InputError

    path = Path(data) / "labels.json"
    if not path.is_file():
        raise InputError(f"{path} not found: give the ct-real-artifacts folder")
    return path


def collect(data: Path, max_clean: int) -> list[dict]:
    """Slices to judge from ``data/labels.json``: ``{"group", "item", "body_part", "slice_index",
    "hu", "pixel_spacing_mm"}`` per slice. Groups: ``metal`` and ``head_neck_metal_free`` (the
    dental collection; each volume's clean slices subsampled evenly to ``max_clean``, every metal
    slice kept), ``low_dose`` and ``clean_body`` (every slice)."""
    from ctdegradbench.builder.sources import load_source
    from ctdegradbench.core.errors import InputError

    labels = json.loads(labels_file(data).read_text())
    rows = []
    for key, item in labels["items"].items():
        artifact = item["artifact"]
        result = load_source(str(Path(data) / key.rstrip("/")))
        by_index = {s.slice_index: s for s in result.slices}
        if key.startswith(DENTAL):
            picks = [("metal", k) for k in item.get("metal_slices", [])] if artifact == "metal_dental" else []
            picks += [("head_neck_metal_free", k) for k in evenly(item.get("clean_slices", []), max_clean)]
        elif artifact == "low_dose":
            picks = [("low_dose", k) for k in sorted(by_index)]
        elif artifact == "none":
            picks = [("clean_body", k) for k in sorted(by_index)]
        else:
            continue
        for group, k in picks:
            if k not in by_index:
                raise InputError(f"{key}: slice {k} of labels.json was not found by the loader "
                                 f"(it read slices {min(by_index)}..{max(by_index)})")
            s = by_index[k]
            rows.append({"group": group, "item": key, "body_part": item["body_part"], "slice_index": k,
                         "hu": s.hu.astype(np.float32), "pixel_spacing_mm": float(s.pixel_spacing_mm)})
    return rows


def auc(positive, negative) -> float:
    """Probability that a positive scores above a negative (ties count one half); NaN without
    both."""
    pos, neg = np.asarray(positive, float)[:, None], np.asarray(negative, float)[None, :]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def real_artifact_rates(groups: np.ndarray, labels: np.ndarray, scores: np.ndarray, clean: str | None) -> dict:
    """The rates of :data:`RATES` from the answered slices' ``groups``, predicted ``labels`` and
    degradation ``scores`` (NaN where a group has no slice)."""
    def rate(group, names):
        mask = groups == group
        return float(np.isin(labels[mask], names).mean()) if mask.any() else float("nan")

    return {"metal_recall": rate("metal", METAL_LABELS),
            "false_metal_rate": rate("head_neck_metal_free", METAL_LABELS),
            "clean_rate_body": rate("clean_body", [clean]) if clean else 0.0,
            "clean_rate_head_neck": rate("head_neck_metal_free", [clean]) if clean else 0.0,
            "low_dose_vs_clean_auc": auc(scores[groups == "low_dose"], scores[groups == "clean_body"])}


def rate_intervals(groups, labels, scores, patients, clean: str | None, n_boot: int = 1000,
                   seed: int = BOOTSTRAP_SEED, confidence: float = BOOTSTRAP_CONFIDENCE) -> dict:
    """Percentile patient-bootstrap interval of each rate (``rate -> [lo, hi]`` or None): each
    resample draws, within every group, as many of its patients as it holds, with replacement,
    and takes all their answered slices; a group of one patient gives no interval to the rates
    that read it."""
    from ctdegradbench.evaluation.stats import patient_resamples

    groups, patients = np.asarray(groups), np.asarray(patients)
    per_group = {g: np.flatnonzero(groups == g) for g in sorted(set(groups.tolist()))}
    draws = {g: patient_resamples(patients[idx], n_boot, seed + k) for k, (g, idx) in enumerate(per_group.items())}
    samples = {name: [] for name in RATES}
    for b in range(n_boot):
        idx = np.concatenate([per_group[g][draws[g][b]] for g in per_group])
        for name, value in real_artifact_rates(groups[idx], labels[idx], scores[idx], clean).items():
            samples[name].append(value)
    reads = {"metal_recall": ("metal",), "false_metal_rate": ("head_neck_metal_free",),
             "clean_rate_body": ("clean_body",), "clean_rate_head_neck": ("head_neck_metal_free",),
             "low_dose_vs_clean_auc": ("low_dose", "clean_body")}
    alpha = (1 - confidence) / 2
    out = {}
    for name, values in samples.items():
        values = np.asarray(values, float)
        values = values[~np.isnan(values)]
        several = all(len(set(patients[per_group.get(g, [])].tolist())) > 1 for g in reads[name])
        out[name] = ([float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))]
                     if several and values.size and n_boot > 0 else None)
    return out


def judge(model_dir, rows: list[dict], n_boot: int = 1000) -> dict:
    """Predict every slice of ``rows`` (:func:`collect`) with one checkpoint and compute the
    real-artifact rates, their patient-bootstrap intervals (``intervals``), the answers per
    group and the shares per body region."""
    from ctdegradbench.model.predict import SliceInput, load_model, predict_slices

    model = load_model(model_dir)
    cfg = model.config
    t = time.perf_counter()
    preds = predict_slices(model, [SliceInput(f"{r['item']}#{r['slice_index']}", r["hu"], r["pixel_spacing_mm"])
                                   for r in rows])
    seconds = time.perf_counter() - t
    clean = cfg.clean_label if getattr(cfg, "clean_label", None) in cfg.label_names else None
    ok = [p.status == "ok" for p in preds]
    answered = [(r, p) for r, p, good in zip(rows, preds, ok) if good]
    groups = np.array([r["group"] for r, _ in answered], dtype=object)
    labels = np.array([p.label for _, p in answered], dtype=object)
    scores = np.array([1.0 - p.probabilities[clean] if clean else
                       float(np.clip(max(p.severity or 0.0, 0.0), 0, cfg.max_level)) for _, p in answered])
    patients = np.array([r["item"] for r, _ in answered], dtype=object)
    summary = {}
    for r, p in zip(rows, preds):
        g = summary.setdefault(r["group"], {"n": 0, "answered": 0, "abstained": {}, "labels": {}})
        g["n"] += 1
        if p.status != "ok":
            g["abstained"][p.status] = g["abstained"].get(p.status, 0) + 1
        else:
            g["answered"] += 1
            g["labels"][p.label] = g["labels"].get(p.label, 0) + 1
    regions = {}
    for r, p in zip(rows, preds):
        g = regions.setdefault(f"{r['body_part']} / {r['group']}", {"n": 0, "answered": 0, "clean": 0, "metal": 0})
        g["n"] += 1
        if p.status == "ok":
            g["answered"] += 1
            g["clean"] += p.label == clean
            g["metal"] += p.label in METAL_LABELS
    return {"model": str(model_dir or "shipped"), "seconds": round(seconds, 1),
            **real_artifact_rates(groups, labels, scores, clean),
            "intervals": rate_intervals(groups, labels, scores, patients, clean, n_boot),
            "patients": {g: len(set(patients[groups == g].tolist())) for g in summary},
            "score": "1 - p(clean)" if clean else "predicted severity",
            "groups": {k: {"n": v["n"], "answered": v["answered"], "abstained": v["abstained"],
                           "top_labels": dict(sorted(v["labels"].items(), key=lambda kv: -kv[1])[:4])}
                       for k, v in summary.items()},
            "regions": {k: {"n": v["n"], "answered": v["answered"],
                            "clean_rate": v["clean"] / v["answered"] if v["answered"] else float("nan"),
                            "metal_rate": v["metal"] / v["answered"] if v["answered"] else float("nan")}
                        for k, v in sorted(regions.items())}}


def rate_cell(result: dict, name: str) -> str:
    """``0.979 (0.96-1.00)``: a rate of :func:`judge`'s ``result`` with its interval, as tables show it."""
    value, ci = result[name], (result.get("intervals") or {}).get(name)
    text = "n/a" if value is None or value != value else f"{value:.3f}"
    return text + (f" ({ci[0]:.2f}-{ci[1]:.2f})" if ci else "")


def interval_note(result: dict) -> str:
    """The sentence under a table of :func:`rate_cell` values: what the brackets are, over how many
    patients per group."""
    patients = result.get("patients") or {}
    return (f"In brackets: {BOOTSTRAP_CONFIDENCE:.0%} interval of a bootstrap over patients (" +
            ", ".join(f"{group} {n}" for group, n in patients.items()) + "); none for a group of one patient.")
