"""Task metrics of SeSpeCT's predictions, computed through the benchmark's ``evaluate`` modules.

:func:`task_metrics` is the one call that training, ``ct-degradbench evaluate`` and the
experiment script use; it goes through ``ctdegradbench.evaluation.load_metric`` (the modules
``ct_degradation_classification`` and ``ct_severity_estimation``), which are tested against
scikit-learn and scipy.

Conventions (those of the evaluate modules): predicted class = argmax of the probabilities
(Eq. 22); the severity passed in is ``s_hat`` clipped to ``[0, max_level]``; MAE and RMSE are
in level units on that continuous value; QWK on it rounded to the nearest level; Spearman's
rho per setting between the true levels and the continuous value (ties take average ranks;
a constant side gives NaN, left out of the means); "mean Spearman single / mixtures" average
the settings S1..S5 / M1..M5 present.

A model with the eleventh class ``clean`` is scored twice on the rows of a degradation: as it answers
(eleven-way; a degraded row called ``clean`` is an error) and on the paper's ten-class task
(``ten_class``: which of the ten degradations, the class of highest probability with ``clean`` left
out, the probabilities renormalised over the ten).
"""

from __future__ import annotations

import numpy as np

from ctdegradbench.builder.simulate.settings import CLEAN_CLASS_NAME

#: The patient bootstrap of the accuracy: seed and level of its percentile interval.
BOOTSTRAP_SEED = 0
BOOTSTRAP_CONFIDENCE = 0.95


def task_metrics(y_true, probabilities, level_true, severity, settings, label_names, max_level: int = 3) -> dict:
    """Classification and severity metrics of one set of predictions, every number from the
    ``ct_degradation_classification`` and ``ct_severity_estimation`` evaluate modules.

    Returns accuracy, macro_f1, micro_auc, per_class, mae, rmse, qwk, confusion_matrix,
    per_setting (code -> spearman, mae, rmse, qwk, n), mean_spearman_single / _mixtures and
    per_level (``L0``.. -> class accuracy, level MAE, n); with a ``clean`` class in ``label_names``
    also ``ten_class`` (accuracy, macro_f1, micro_auc and per_level accuracy of the paper's ten-class
    task, :func:`ten_class_predictions`, over the rows of a degradation).
    """
    from ctdegradbench.evaluation import load_metric

    y_true = np.asarray(y_true, int)
    probabilities = np.asarray(probabilities, float)
    y_pred = probabilities.argmax(1)
    level_true = np.asarray(level_true, int)
    severity = np.clip(np.asarray(severity, float), 0, max_level)
    settings = np.asarray(settings)
    clf = load_metric("ct_degradation_classification").compute(
        predictions=y_pred.tolist(), references=y_true.tolist(), scores=probabilities.tolist(),
        num_classes=len(label_names), class_names=list(label_names))
    sev_metric = load_metric("ct_severity_estimation")

    def sev(mask, with_settings=False):
        kwargs = {"settings": settings[mask].tolist()} if with_settings else {}
        return sev_metric.compute(predictions=severity[mask].tolist(), references=level_true[mask].tolist(), **kwargs)

    everything = sev(np.ones(len(y_true), bool), with_settings=True)
    result = {"accuracy": clf["accuracy"], "macro_f1": clf["macro_f1"], "micro_auc": clf["roc_auc_micro"],
              "per_class": {k: v for k, v in clf["per_class"].items() if v["support"] or (y_pred == list(label_names).index(k)).any()},
              "mae": everything["mae"], "rmse": everything["rmse"], "qwk": everything["qwk"],
              "confusion_matrix": clf["confusion_matrix"], "per_setting": {},
              "mean_spearman_single": everything["mean_spearman_single"],
              "mean_spearman_mixtures": everything["mean_spearman_mixtures"]}
    for code in sorted(set(settings.tolist()), key=lambda c: (c[0] != "S", c)):   # S1..S5, then M1..M5
        m = settings == code
        part = sev(m)
        result["per_setting"][code] = {"spearman": everything["spearman_per_setting"][code], "mae": part["mae"],
                                       "rmse": part["rmse"], "qwk": part["qwk"], "n": int(m.sum())}
    result["per_level"] = {}
    for level in range(max_level + 1):
        m = level_true == level
        if m.any():
            result["per_level"][f"L{level}"] = {"accuracy": float((y_pred[m] == y_true[m]).mean()),
                                                "mae": float(np.abs(severity[m] - level).mean()), "n": int(m.sum())}
    if CLEAN_CLASS_NAME in label_names:
        result["ten_class"] = _ten_class_metrics(y_true, probabilities, level_true, list(label_names))
    return result


def ten_class_predictions(probabilities: np.ndarray, label_names) -> np.ndarray:
    """The paper's ten-class answer of each row: the id (in ``label_names``) of the most probable class
    other than ``clean``."""
    probabilities = np.array(probabilities, dtype=float)
    probabilities[:, list(label_names).index(CLEAN_CLASS_NAME)] = -np.inf
    return probabilities.argmax(1)


def _ten_class_metrics(y_true, probabilities, level_true, label_names: list[str]) -> dict:
    """Accuracy, macro F1, micro AUC (probabilities renormalised over the ten classes) and accuracy per
    level of the ten-class task on the rows whose true class is a degradation."""
    from ctdegradbench.evaluation import load_metric

    clean = label_names.index(CLEAN_CLASS_NAME)
    rows = y_true != clean
    ten = [i for i in range(len(label_names)) if i != clean]
    to_ten = {old: new for new, old in enumerate(ten)}
    scores = probabilities[rows][:, ten]
    scores = scores / np.clip(scores.sum(1, keepdims=True), 1e-12, None)
    predicted = ten_class_predictions(probabilities[rows], label_names)
    clf = load_metric("ct_degradation_classification").compute(
        predictions=[to_ten[int(p)] for p in predicted], references=[to_ten[int(t)] for t in y_true[rows]],
        scores=scores.tolist(), num_classes=len(ten), class_names=[label_names[i] for i in ten])
    correct, levels = predicted == y_true[rows], level_true[rows]
    return {"accuracy": clf["accuracy"], "macro_f1": clf["macro_f1"], "micro_auc": clf["roc_auc_micro"],
            "rows": int(rows.sum()),
            "per_level": {f"L{level}": float(correct[levels == level].mean()) for level in sorted(set(levels.tolist()))}}


def add_accuracy_intervals(metrics: dict, y_true, probabilities, label_names, patient_keys, n_boot: int = 1000) -> dict:
    """:func:`accuracy_by_source` of the answers in ``probabilities`` added to ``metrics`` (from
    :func:`task_metrics` on the same rows), and of the ten-class answers to ``metrics["ten_class"]``."""
    y_true, patient_keys = np.asarray(y_true), np.asarray(patient_keys)
    metrics.update(accuracy_by_source(np.asarray(probabilities).argmax(1) == y_true, patient_keys, n_boot))
    if "ten_class" in metrics:
        rows = y_true != list(label_names).index(CLEAN_CLASS_NAME)
        correct = ten_class_predictions(np.asarray(probabilities)[rows], label_names) == y_true[rows]
        metrics["ten_class"].update(accuracy_by_source(correct, patient_keys[rows], n_boot))
    return metrics


def accuracy_by_source(correct: np.ndarray, patient_keys: np.ndarray, n_boot: int = 1000) -> dict:
    """The accuracy's patient-bootstrap interval over every row (``accuracy_ci``) and the accuracy
    per source of the patients (``per_source``: source -> value, ci, patients, rows; the source is
    the first part of the ``source/patient`` key), from ``correct`` (one bool per row) and the rows'
    ``patient_keys``; the resampling (``n_boot`` resamples, 0: no intervals) is recorded under
    ``bootstrap``. A source's gap to the rest is read against the spread between patients."""
    from ctdegradbench.builder.sources.reference import source_of
    from ctdegradbench.evaluation.stats import mean_with_patient_ci

    sources = np.array([source_of(key) for key in patient_keys.tolist()])
    overall = mean_with_patient_ci(correct, patient_keys, n_boot, BOOTSTRAP_SEED, BOOTSTRAP_CONFIDENCE)
    return {"accuracy_ci": overall["ci"],
            "per_source": {src: mean_with_patient_ci(correct[sources == src], patient_keys[sources == src], n_boot,
                                                     BOOTSTRAP_SEED, BOOTSTRAP_CONFIDENCE)
                           for src in sorted(set(sources.tolist()))},
            "bootstrap": {"unit": "patient", "resamples": n_boot, "seed": BOOTSTRAP_SEED,
                          "confidence": BOOTSTRAP_CONFIDENCE, "interval": "percentile"}}


def accuracy_ci_text(metrics: dict) -> str:
    """:func:`ci_text` of the overall accuracy of :func:`accuracy_by_source`'s ``metrics`` (over the
    patients of every source)."""
    sources = metrics.get("per_source", {})
    return ci_text(metrics.get("accuracy_ci"), sum(p["patients"] for p in sources.values()), metrics.get("bootstrap"))


def ci_text(ci, patients: int, bootstrap: dict) -> str:
    """`` (95% CI 0.797-0.938 over 7 patients)``: a patient-bootstrap interval as reports print it;
    `` (1 patient, no interval)`` for one patient, empty when no interval was asked for."""
    if ci:
        return f" ({bootstrap['confidence']:.0%} CI {ci[0]:.3f}-{ci[1]:.3f} over {patients} patients)"
    return " (1 patient, no interval)" if patients == 1 else ""
