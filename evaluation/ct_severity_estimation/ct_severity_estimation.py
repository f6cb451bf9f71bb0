"""CT severity estimation: MAE, RMSE, quadratic weighted kappa and Spearman per setting.

Self-contained ``evaluate`` module of CT-DegradBench (it imports nothing of the package): the
formulas live in the pure function :func:`severity_metrics`; :class:`CTSeverityEstimation` is a
thin ``evaluate.Metric`` around it.
"""

from __future__ import annotations

import math

import datasets
import evaluate
import numpy as np
from scipy import stats
from sklearn.metrics import cohen_kappa_score, mean_absolute_error, mean_squared_error

_CITATION = """\
@article{taifour2026ctdegradbench,
  title   = {CT-DegradBench: A Physics-Informed Benchmark for CT Degradation Detection and Severity Estimation},
  author  = {Taifour, Yousra Nabila and Tliba, Marouane and Ming, Zuheng and Luong, Marie and Aburaed, Nour and
             Chetouani, Aladine and Durak, Gorkem and Bruno, Alessandro and Cheikh, Faouzi Alaya and Zaidi, Habib and
             Bagci, Ulas and Beghdadi, Azeddine},
  journal = {arXiv preprint arXiv:2605.16431},
  year    = {2026}
}
"""

LEVELS = (0, 1, 2, 3)

_DESCRIPTION = """\
Severity-estimation scores of CT-DegradBench for a predicted severity (continuous or integer)
against the true level (0..3): MAE = mean |p - l| and RMSE = sqrt(mean (p - l)^2) in level units
(scikit-learn); the quadratic weighted kappa (scikit-learn's cohen_kappa_score, weights
"quadratic", labels 0..3) of the predictions rounded to the nearest level and clipped to 0..3;
Spearman's rho (scipy.stats.spearmanr) over all rows and, with settings, within each setting and
averaged over the single settings (codes starting with "S") and the mixtures ("M"), leaving out
undefined (NaN: constant input) values.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`): predicted severity per image, in level units.
    references (`list` of `int`): true severity level per image (0..3).
    settings (`list` of `str`, optional): setting code per image ("S1".."M5") for the
        per-setting Spearman.

Returns:
    mae (`float`), rmse (`float`), qwk (`float`), spearman (`float`),
    spearman_per_setting (`dict`, only with settings): code -> rho,
    mean_spearman_single, mean_spearman_mixtures (`float`, only with settings).

Examples:
    >>> sev = evaluate.load("ct_severity_estimation")  # doctest: +SKIP
    >>> results = sev.compute(predictions=[0.2, 1.4, 1.9, 3.0], references=[0, 1, 2, 3])
    >>> round(results["mae"], 4), round(results["rmse"], 4), results["qwk"], results["spearman"]
    (0.175, 0.2291, 1.0, 1.0)

    >>> results = sev.compute(predictions=[0, 1, 3, 2, 0, 0, 1, 1], references=[0, 1, 2, 3, 0, 1, 2, 3],
    ...                       settings=["S1"] * 4 + ["M2"] * 4)
    >>> round(results["spearman_per_setting"]["S1"], 4), round(results["spearman_per_setting"]["M2"], 4)
    (0.8, 0.8944)
"""


def _spearman(x, y) -> float:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(stats.spearmanr(x, y).statistic)


def _mean_defined(values) -> float:
    defined = [v for v in values if not math.isnan(v)]
    return float(np.mean(defined)) if defined else math.nan


def severity_metrics(predictions, references, settings=None) -> dict:
    """MAE, RMSE, quadratic weighted kappa (rounded, clipped predictions) and Spearman."""
    pred = np.asarray(predictions, dtype=np.float64)
    ref = np.asarray(references, dtype=np.int64)
    if pred.shape != ref.shape or pred.ndim != 1 or pred.size == 0:
        raise ValueError(f"predictions and references must be non-empty 1-D of equal length, got {pred.shape}, {ref.shape}")
    if not np.all(np.isfinite(pred)):
        raise ValueError("predictions must be finite")
    if not np.isin(ref, LEVELS).all():
        raise ValueError(f"references must be severity levels in {LEVELS}")
    rounded = np.clip(np.rint(pred), LEVELS[0], LEVELS[-1]).astype(np.int64)
    result = {
        "mae": float(mean_absolute_error(ref, pred)),
        "rmse": float(math.sqrt(mean_squared_error(ref, pred))),
        "qwk": float(cohen_kappa_score(ref, rounded, weights="quadratic", labels=list(LEVELS))),
        "spearman": _spearman(pred, ref),
    }
    if settings is not None:
        codes = np.asarray(settings, dtype=object)
        if codes.shape != pred.shape:
            raise ValueError(f"settings must have one code per prediction, got {codes.shape} for {pred.shape}")
        per = {code: _spearman(pred[codes == code], ref[codes == code]) for code in sorted(set(codes.tolist()))}
        result["spearman_per_setting"] = per
        result["mean_spearman_single"] = _mean_defined([v for c, v in per.items() if str(c).startswith("S")])
        result["mean_spearman_mixtures"] = _mean_defined([v for c, v in per.items() if str(c).startswith("M")])
    return result


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CTSeverityEstimation(evaluate.Metric):
    """Severity-estimation metrics of CT-DegradBench."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": datasets.Value("float64"),
                "references": datasets.Value("int64"),
            }),
            reference_urls=["https://arxiv.org/abs/2605.16431",
                            "https://scikit-learn.org/stable/modules/model_evaluation.html"],
        )

    def _compute(self, predictions, references, settings=None):
        return severity_metrics(predictions, references, settings)
