"""CT severity correlation: how well a score tracks the degradation severity level.

Self-contained ``evaluate`` module of CT-DegradBench (it imports nothing of the package):
the formulas live in the pure functions :func:`severity_correlation` and
:func:`severity_correlations`; :class:`CTSeverityCorr` is a thin ``evaluate.Metric`` around them.
"""

from __future__ import annotations

import math

import datasets
import evaluate
import numpy as np
from scipy import stats

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

_DESCRIPTION = """\
Correlation between a per-image score and the degradation severity level (L0 mildest .. L3
strongest) of CT-DegradBench: Spearman's rank correlation rho (ties get average ranks),
Pearson's r and Kendall's tau-b, each as computed by ``scipy.stats``. The sign is kept
(the paper's Table 1 convention): a score that grows with severity (a distance, a predicted
severity, an embedding drift) correlates positively, one that falls (PSNR, SSIM) negatively.
With ``settings`` the correlations are also computed within each setting (S1..S5 single
degradations, M1..M5 mixtures) and averaged over the single settings (codes starting with
``S``) and over the mixtures (codes starting with ``M``), as in the paper's Tables 1 and 11.
A correlation that is undefined (fewer than 2 rows, or a constant score or level) is NaN and
is left out of the means; ``n_undefined`` counts them.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `float`): one score per image (a metric value, an embedding drift
        or a predicted severity).
    references (`list` of `int`): the severity level of each image (0..3).
    settings (`list` of `str`, optional): the setting code of each image ("S1".."S5",
        "M1".."M5", or any other code); when given, per-setting correlations and their means
        are returned too.

Returns:
    spearman (`float`), pearson (`float`), kendall (`float`): over all rows.
    per_setting (`dict`, only with settings): code -> {"spearman", "pearson", "kendall", "n"}.
    mean_single, mean_mixtures (`dict`, only with settings): the mean of each correlation over
        the settings whose code starts with "S" / "M" (NaN when there is none).
    n_undefined (`int`, only with settings): per-setting correlations that were undefined.

Examples:
    >>> corr = evaluate.load("ct_severity_corr")  # doctest: +SKIP
    >>> results = corr.compute(predictions=[0.1, 0.2, 0.4, 0.3], references=[0, 1, 2, 3])
    >>> round(results["spearman"], 4), round(results["pearson"], 4), round(results["kendall"], 4)
    (0.8, 0.8, 0.6667)

    >>> results = corr.compute(predictions=[30.0, 28.0, 25.0, 20.0, 31.0, 31.5, 29.0, 27.0],
    ...                        references=[0, 1, 2, 3, 0, 1, 2, 3],
    ...                        settings=["S1"] * 4 + ["M1"] * 4)
    >>> round(results["per_setting"]["S1"]["spearman"], 4), round(results["per_setting"]["M1"]["spearman"], 4)
    (-1.0, -0.8)
    >>> round(results["mean_single"]["spearman"], 4), round(results["mean_mixtures"]["spearman"], 4)
    (-1.0, -0.8)
"""

CORRELATIONS = ("spearman", "pearson", "kendall")


def severity_correlation(scores, levels) -> dict[str, float]:
    """Spearman rho, Pearson r and Kendall tau-b between ``scores`` and ``levels``.

    Each is ``scipy.stats``' (``spearmanr``, ``pearsonr``, ``kendalltau`` with its default
    tau-b). Returns NaN for all three when fewer than 2 rows or either input is constant.
    """
    x = np.asarray(scores, dtype=np.float64)
    y = np.asarray(levels, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"scores and levels must be 1-D of equal length, got {x.shape} and {y.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"scores must be finite; got {int(np.sum(~np.isfinite(x)))} non-finite values")
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {name: math.nan for name in CORRELATIONS}
    return {
        "spearman": float(stats.spearmanr(x, y).statistic),
        "pearson": float(stats.pearsonr(x, y).statistic),
        "kendall": float(stats.kendalltau(x, y).statistic),
    }


def _mean_defined(values: list[float]) -> float:
    defined = [v for v in values if not math.isnan(v)]
    return float(np.mean(defined)) if defined else math.nan


def severity_correlations(scores, levels, settings=None) -> dict:
    """Correlations over all rows and, with ``settings``, per setting and their means.

    The mean over single settings (codes starting with ``"S"``) and over mixtures (``"M"``)
    averages the per-setting correlations (not a pooled correlation), leaving out undefined
    (NaN) ones, as the paper's "Mean" rows do.
    """
    result = dict(severity_correlation(scores, levels))
    if settings is None:
        return result
    codes = np.asarray(settings, dtype=object)
    x = np.asarray(scores, dtype=np.float64)
    y = np.asarray(levels, dtype=np.float64)
    if codes.shape != x.shape:
        raise ValueError(f"settings must have one code per score, got {codes.shape} for {x.shape}")
    per_setting = {}
    for code in sorted(set(codes.tolist())):
        mask = codes == code
        per_setting[code] = {**severity_correlation(x[mask], y[mask]), "n": int(mask.sum())}
    result["per_setting"] = per_setting
    for group, prefix in (("mean_single", "S"), ("mean_mixtures", "M")):
        members = [v for code, v in per_setting.items() if str(code).startswith(prefix)]
        result[group] = {name: _mean_defined([m[name] for m in members]) for name in CORRELATIONS}
    result["n_undefined"] = int(sum(math.isnan(v["spearman"]) for v in per_setting.values()))
    return result


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CTSeverityCorr(evaluate.Metric):
    """Spearman / Pearson / Kendall correlation of a score with CT degradation severity."""

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
                            "https://docs.scipy.org/doc/scipy/reference/stats.html"],
        )

    def _compute(self, predictions, references, settings=None):
        return severity_correlations(predictions, references, settings)
