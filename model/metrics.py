"""Task metrics of SeSpeCT's predictions, computed through the benchmark's ``evaluate`` modules.

:func:`task_metrics` is the one call that training, ``ct-degradbench evaluate`` and the
experiment script use. It goes through ``ctdegradbench.evaluation.load_metric`` (the modules
``ct_degradation_classification`` and ``ct_severity_estimation``) when that package is
installed, and otherwise through :func:`local_task_metrics`, which follows the same
definitions and returns the same names.

Conventions (those of the evaluate modules): predicted class = argmax of the probabilities
(Eq. 22); the severity passed in is ``s_hat`` clipped to ``[0, max_level]``; MAE and RMSE are
in level units on that continuous value; QWK on it rounded to the nearest level; Spearman's
rho per setting between the true levels and the continuous value (ties take average ranks;
a constant side gives NaN, left out of the means); "mean Spearman single / mixtures" average
the settings S1..S5 / M1..M5 present.
"""

from __future__ import annotations

import numpy as np


def _rank(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x)


def spearman(a, b) -> float:
    """Spearman's rho (Pearson correlation of average ranks); NaN when either side is constant."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(_rank(a), _rank(b))[0, 1])


def quadratic_weighted_kappa(y_true, y_pred, n_levels: int) -> float:
    """Cohen's kappa with quadratic weights ``(i - j)^2 / (n - 1)^2`` over levels ``0..n-1``."""
    y_true, y_pred = np.asarray(y_true, int), np.asarray(y_pred, int)
    observed = np.zeros((n_levels, n_levels))
    np.add.at(observed, (y_true, y_pred), 1)
    expected = np.outer(observed.sum(1), observed.sum(0)) / max(observed.sum(), 1)
    i, j = np.indices((n_levels, n_levels))
    weights = (i - j) ** 2 / (n_levels - 1) ** 2
    denom = (weights * expected).sum()
    return float(1.0 - (weights * observed).sum() / denom) if denom > 0 else float("nan")


def _f1(tp, fp, fn) -> float:
    return float(2 * tp / (2 * tp + fp + fn)) if (2 * tp + fp + fn) > 0 else 0.0


def micro_auc(y_true, probabilities) -> float:
    """Micro-averaged one-vs-rest ROC AUC (every class-sample pair pooled), by the rank formula."""
    probabilities = np.asarray(probabilities, float)
    onehot = np.zeros_like(probabilities, dtype=bool)
    onehot[np.arange(len(y_true)), np.asarray(y_true, int)] = True
    scores, truth = probabilities.ravel(), onehot.ravel()
    n_pos, n_neg = truth.sum(), (~truth).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _rank(scores)
    return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def local_task_metrics(y_true, probabilities, level_true, severity, settings, label_names, max_level: int = 3) -> dict:
    """Classification and severity metrics (same names as the evaluate modules' outputs)."""
    y_true = np.asarray(y_true, int)
    probabilities = np.asarray(probabilities, float)
    y_pred = probabilities.argmax(1)
    level_true = np.asarray(level_true, int)
    severity = np.clip(np.asarray(severity, float), 0, max_level)
    level_pred = np.rint(severity).astype(int)
    settings = np.asarray(settings)
    per_class, f1s = {}, []
    for c, name in enumerate(label_names):
        tp = int(((y_pred == c) & (y_true == c)).sum())
        fp = int(((y_pred == c) & (y_true != c)).sum())
        fn = int(((y_pred != c) & (y_true == c)).sum())
        support = int((y_true == c).sum())
        if support == 0 and tp + fp == 0:
            continue
        f1 = _f1(tp, fp, fn)
        f1s.append(f1)
        per_class[name] = {"accuracy": float(((y_pred == c) == (y_true == c)).mean()), "f1": f1, "support": support}
    err = severity - level_true
    result = {
        "accuracy": float((y_pred == y_true).mean()),
        "macro_f1": float(np.mean(f1s)) if f1s else float("nan"),
        "micro_auc": micro_auc(y_true, probabilities),
        "per_class": per_class,
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err ** 2).mean())),
        "qwk": quadratic_weighted_kappa(level_true, level_pred, max_level + 1),
        "confusion_matrix": np.bincount(y_true * len(label_names) + y_pred,
                                        minlength=len(label_names) ** 2).reshape(len(label_names), -1).tolist(),
    }
    per_setting = {}
    for code in sorted(set(settings.tolist())):
        m = settings == code
        e = err[m]
        per_setting[code] = {"spearman": spearman(level_true[m], severity[m]), "mae": float(np.abs(e).mean()),
                             "rmse": float(np.sqrt((e ** 2).mean())),
                             "qwk": quadratic_weighted_kappa(level_true[m], level_pred[m], max_level + 1),
                             "n": int(m.sum())}
    result["per_setting"] = per_setting
    for group, prefix in (("single", "S"), ("mixtures", "M")):
        values = [v["spearman"] for k, v in per_setting.items() if k.startswith(prefix) and np.isfinite(v["spearman"])]
        result[f"mean_spearman_{group}"] = float(np.mean(values)) if values else float("nan")
    levels = {}
    for level in range(max_level + 1):
        m = level_true == level
        if m.any():
            levels[f"L{level}"] = {"accuracy": float((y_pred[m] == y_true[m]).mean()),
                                   "mae": float(np.abs(err[m]).mean()), "n": int(m.sum())}
    result["per_level"] = levels
    return result


def task_metrics(y_true, probabilities, level_true, severity, settings, label_names, max_level: int = 3) -> dict:
    """The task metrics of one set of predictions (the one call every caller uses): through the
    evaluate modules when ``ctdegradbench.evaluation`` is installed, else :func:`local_task_metrics`."""
    try:
        from ctdegradbench.evaluation import load_metric
    except ImportError:
        return local_task_metrics(y_true, probabilities, level_true, severity, settings, label_names, max_level)
    return module_task_metrics(load_metric, y_true, probabilities, level_true, severity, settings, label_names,
                               max_level)


def module_task_metrics(load_metric, y_true, probabilities, level_true, severity, settings, label_names,
                        max_level: int = 3) -> dict:
    """:func:`local_task_metrics`' dict, every number from the ``ct_degradation_classification``
    and ``ct_severity_estimation`` evaluate modules (``load_metric(name)`` gives each)."""
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
              "mean_spearman_single": everything["spearman_mean_single"],
              "mean_spearman_mixtures": everything["spearman_mean_mixture"]}
    for code in sorted(set(settings.tolist())):
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
    return result
