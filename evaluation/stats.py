"""Statistics of the benchmark: mean +- std per (setting, level) and correlation with severity.

Point estimates of the correlations come from the ``ct_severity_corr`` evaluate module's pure
function (scipy's Spearman rho, Pearson r, Kendall tau-b; the one place of that formula).
Confidence intervals come from a bootstrap over patients: a resample draws as many patients
as the data hold, with replacement, and takes every row of each drawn patient (a patient drawn
twice contributes its rows twice), because rows of one patient are not independent (same
anatomy, same reference). Each resample recomputes the per-setting correlations and their
means over single settings and mixtures; the interval is the percentile interval
(``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles) of the resampled values that
are defined (a resample whose setting rows hold one level only, or a constant score, gives no
value; their count is reported). The resampling uses :func:`correlation_matrix`, a
vectorised form of the same three statistics, checked equal to scipy in the tests.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from ctdegradbench.evaluation.ct_severity_corr.ct_severity_corr import CORRELATIONS, severity_correlations

#: Above this many rows Kendall's tau is computed column by column with scipy (the vectorised
#: pairwise form holds n^2 signs per score).
PAIRWISE_MAX_ROWS = 1500


def level_table(values: np.ndarray, settings: np.ndarray, levels: np.ndarray) -> dict:
    """``{setting: {level: {"mean", "std", "n"}}}`` of one score, levels as strings (``"0"``..) as
    they read back from ``results.json``; std is the sample SD (ddof = 1, NaN for a single row)."""
    table: dict = {}
    for code in sorted(set(settings.tolist())):
        for level in sorted(set(levels[settings == code].tolist())):
            v = values[(settings == code) & (levels == level)]
            table.setdefault(code, {})[str(int(level))] = {
                "mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if v.size > 1 else math.nan, "n": int(v.size)}
    return table


def _pearson_columns(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    xc = x - x.mean(axis=0)
    yc = y - y.mean()
    denom = np.sqrt((xc ** 2).sum(axis=0) * (yc ** 2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc[:, None]).sum(axis=0) / denom
    return np.where(denom > 0, np.clip(r, -1.0, 1.0), np.nan)


def _kendall_columns(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    if n > PAIRWISE_MAX_ROWS:
        return np.array([stats.kendalltau(x[:, k], y).statistic if np.ptp(x[:, k]) > 0 and np.ptp(y) > 0 else np.nan
                         for k in range(x.shape[1])])
    iu = np.triu_indices(n, k=1)
    dy = np.sign(y[:, None] - y[None, :])[iu]
    dx = np.sign(x[:, None, :] - x[None, :, :])[iu]          # (pairs, scores)
    n0 = dy.size
    n1 = (dx == 0).sum(axis=0)
    n2 = int((dy == 0).sum())
    denom = np.sqrt((n0 - n1).astype(np.float64) * (n0 - n2))
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = (dx * dy[:, None]).sum(axis=0) / denom
    return np.where(denom > 0, np.clip(tau, -1.0, 1.0), np.nan)


def correlation_matrix(scores: np.ndarray, levels: np.ndarray) -> dict[str, np.ndarray]:
    """Spearman rho, Pearson r and Kendall tau-b of each column of ``scores`` (n, S) with
    ``levels`` (n,): ``{name: (S,)}``, NaN where undefined (fewer than 2 rows, a constant column
    or constant levels). Equal to scipy's ``spearmanr`` / ``pearsonr`` / ``kendalltau``."""
    x = np.asarray(scores, dtype=np.float64)
    y = np.asarray(levels, dtype=np.float64)
    if x.shape[0] < 2:
        nan = np.full(x.shape[1], np.nan)
        return {name: nan.copy() for name in CORRELATIONS}
    return {
        "spearman": _pearson_columns(stats.rankdata(x, axis=0), stats.rankdata(y)),
        "pearson": _pearson_columns(x, y),
        "kendall": _kendall_columns(x, y),
    }


def _group_means(per_setting: dict[str, np.ndarray], prefix: str) -> np.ndarray | None:
    members = [v for code, v in per_setting.items() if code.startswith(prefix)]
    if not members:
        return None
    stacked = np.stack(members)
    defined = (~np.isnan(stacked)).sum(axis=0)
    total = np.nansum(stacked, axis=0)
    return np.where(defined > 0, total / np.maximum(defined, 1), np.nan)


def patient_resamples(patients: np.ndarray, n_boot: int, seed: int) -> list[np.ndarray]:
    """``n_boot`` row-index arrays, each the rows of as many patients drawn with replacement."""
    keys = sorted(set(patients.tolist()))
    rows = [np.flatnonzero(patients == key) for key in keys]
    rng = np.random.default_rng(seed)
    return [np.concatenate([rows[k] for k in rng.integers(0, len(keys), size=len(keys))]) for _ in range(n_boot)]


def mean_with_patient_ci(values, patients, n_boot: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict:
    """Mean of per-row ``values`` (e.g. 1.0 for a right answer, 0.0 for a wrong one) with its
    percentile patient-bootstrap interval (resamples as in :func:`patient_resamples`).

    Returns ``{"value", "ci": [lo, hi] | None, "patients", "rows"}``; ``ci`` is None with fewer
    than two patients or ``n_boot`` 0 (one patient says nothing about the spread between patients).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    values = np.asarray(values, dtype=np.float64)
    patients = np.asarray(patients)
    if values.shape != patients.shape or values.ndim != 1 or not values.size:
        raise ValueError(f"values and patients must be two equally long, non-empty 1-D arrays, got shapes "
                         f"{values.shape} and {patients.shape}")
    n_patients = len(set(patients.tolist()))
    ci = None
    if n_boot > 0 and n_patients > 1:
        means = np.array([values[idx].mean() for idx in patient_resamples(patients, n_boot, seed)])
        alpha = (1 - confidence) / 2
        ci = [float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))]
    return {"value": float(values.mean()), "ci": ci, "patients": n_patients, "rows": int(values.size)}


def severity_correlation_table(scores: dict[str, np.ndarray], levels: np.ndarray, settings: np.ndarray,
                               patients: np.ndarray, n_boot: int = 1000, seed: int = 0,
                               confidence: float = 0.95) -> dict:
    """Correlation of each score with severity, per setting and averaged, with patient-bootstrap CIs.

    Returns ``{score: {group: {corr: {"value", "ci": [lo, hi] | None, "n_boot_defined"}}}}`` where
    group is a setting code, ``"mean_single"`` or ``"mean_mixtures"``, and corr is spearman /
    pearson / kendall. ``"n"`` (rows) and ``"patients"`` are given per setting.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    names = list(scores)
    matrix = np.stack([np.asarray(scores[name], dtype=np.float64) for name in names], axis=1)
    levels = np.asarray(levels)
    settings = np.asarray(settings).astype(str)
    codes = sorted(set(settings.tolist()))
    table: dict = {name: {} for name in names}
    for k, name in enumerate(names):
        point = severity_correlations(matrix[:, k], levels, settings)
        for code in codes:
            table[name][code] = {c: {"value": point["per_setting"][code][c]} for c in CORRELATIONS}
            table[name][code]["n"] = point["per_setting"][code]["n"]
            table[name][code]["patients"] = len(set(patients[settings == code].tolist()))
        for group, prefix in (("mean_single", "S"), ("mean_mixtures", "M")):
            if any(code.startswith(prefix) for code in codes):
                table[name][group] = {c: {"value": point[group][c]} for c in CORRELATIONS}
    if n_boot <= 0 or len(set(patients.tolist())) < 2:
        for name in names:
            for group in table[name].values():
                for c in CORRELATIONS:
                    group[c].update({"ci": None, "n_boot_defined": 0})
        return table
    boot: dict[str, dict[str, list[np.ndarray]]] = {}
    for idx in patient_resamples(patients, n_boot, seed):
        per_setting = {}
        for code in codes:
            rows = idx[settings[idx] == code]
            per_setting[code] = correlation_matrix(matrix[rows], levels[rows]) if rows.size else \
                {c: np.full(len(names), np.nan) for c in CORRELATIONS}
        groups = dict(per_setting)
        for group, prefix in (("mean_single", "S"), ("mean_mixtures", "M")):
            means = {c: _group_means({code: v[c] for code, v in per_setting.items()}, prefix) for c in CORRELATIONS}
            if means["spearman"] is not None:
                groups[group] = means
        for group, values in groups.items():
            for c in CORRELATIONS:
                boot.setdefault(group, {}).setdefault(c, []).append(values[c])
    alpha = (1 - confidence) / 2
    for group, per_corr in boot.items():
        for c, samples in per_corr.items():
            samples = np.stack(samples)                       # (n_boot, scores)
            for k, name in enumerate(names):
                if group not in table[name]:
                    continue
                defined = samples[:, k][~np.isnan(samples[:, k])]
                ci = [float(np.quantile(defined, alpha)), float(np.quantile(defined, 1 - alpha))] if defined.size else None
                table[name][group][c].update({"ci": ci, "n_boot_defined": int(defined.size)})
    return table
