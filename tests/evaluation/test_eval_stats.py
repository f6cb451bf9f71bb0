"""Statistics: vectorised correlations equal scipy; the bootstrap resamples patients, not rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ctdegradbench.evaluation.stats import (
    correlation_matrix,
    level_table,
    mean_with_patient_ci,
    patient_resamples,
    severity_correlation_table,
)

TOL = 1e-10


@pytest.mark.parametrize("n", [5, 40, 1600])       # 1600 > PAIRWISE_MAX_ROWS: scipy's kendalltau path
def test_eval_correlation_matrix_equals_scipy(n):
    rng = np.random.default_rng(n)
    levels = rng.integers(0, 4, n)
    scores = np.stack([np.round(rng.normal(size=n), 1), levels + rng.normal(0, 0.3, n), -levels * 1.0], axis=1)
    got = correlation_matrix(scores, levels)
    for k in range(scores.shape[1]):
        assert got["spearman"][k] == pytest.approx(stats.spearmanr(scores[:, k], levels).statistic, abs=TOL)
        assert got["pearson"][k] == pytest.approx(stats.pearsonr(scores[:, k], levels).statistic, abs=TOL)
        assert got["kendall"][k] == pytest.approx(stats.kendalltau(scores[:, k], levels).statistic, abs=TOL)


def test_eval_correlation_matrix_undefined_is_nan():
    got = correlation_matrix(np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]]), np.array([0, 1, 2]))
    assert all(math.isnan(got[c][0]) for c in got) and got["spearman"][1] == pytest.approx(1.0)
    const_levels = correlation_matrix(np.array([[0.0], [1.0]]), np.array([2, 2]))
    assert all(math.isnan(v[0]) for v in const_levels.values())


def test_eval_resamples_draw_whole_patients():
    patients = np.array(["a"] * 3 + ["b"] * 5 + ["c"] * 2)
    for idx in patient_resamples(patients, n_boot=50, seed=3):
        drawn = [patients[i] for i in idx]
        for key in set(drawn):                      # each drawn patient contributes all its rows, k times
            count = drawn.count(key)
            assert count % int((patients == key).sum()) == 0
        assert sum(drawn.count(k) // int((patients == k).sum()) for k in set(drawn)) == 3


def test_eval_bootstrap_interval_brackets_a_strong_trend():
    rng = np.random.default_rng(4)
    patients = np.repeat([f"p{i}" for i in range(8)], 8)
    levels = np.tile(np.arange(4), 16)
    settings = np.tile(np.repeat(["S1", "M1"], 4), 8)
    good = levels + rng.normal(0, 0.4, levels.size)
    noise = rng.normal(size=levels.size)
    table = severity_correlation_table({"good": good, "noise": noise}, levels, settings, patients, n_boot=300, seed=0)
    g = table["good"]["S1"]["spearman"]
    assert g["ci"][0] <= g["value"] <= g["ci"][1] and g["ci"][0] > 0.5 and g["n_boot_defined"] == 300
    n = table["noise"]["mean_single"]["spearman"]
    assert n["ci"][0] <= n["value"] <= n["ci"][1] and n["ci"][1] < g["ci"][0]   # no trend: far below
    assert table["good"]["S1"]["patients"] == 8 and table["good"]["S1"]["n"] == 32
    single = table["good"]["mean_single"]["spearman"]["value"]
    assert single == pytest.approx(stats.spearmanr(good[settings == "S1"], levels[settings == "S1"]).statistic, abs=TOL)


def test_eval_level_table_matches_numpy():
    values = np.array([1.0, 2.0, 4.0, 8.0, 3.0])
    settings = np.array(["S1", "S1", "S1", "S1", "M2"])
    levels = np.array([0, 0, 1, 1, 3])
    table = level_table(values, settings, levels)
    assert table["S1"]["0"]["mean"] == 1.5 and table["S1"]["1"]["std"] == pytest.approx(np.std([4, 8], ddof=1))
    assert table["M2"]["3"]["n"] == 1 and math.isnan(table["M2"]["3"]["std"])


def test_eval_mean_ci_resamples_whole_patients():
    # patient a: all right, b: all wrong, 10 rows each; a resample holds a twice, b twice or one
    # of each, so every resampled mean is 0, 0.5 or 1 and each end is drawn a quarter of the time
    values = np.r_[np.ones(10), np.zeros(10)]
    patients = np.array(["a"] * 10 + ["b"] * 10)
    got = mean_with_patient_ci(values, patients, n_boot=2000, seed=1)
    assert got["value"] == 0.5 and got["patients"] == 2 and got["rows"] == 20
    assert got["ci"] == [0.0, 1.0]
    narrow = mean_with_patient_ci(values, patients, n_boot=2000, seed=1, confidence=0.4)
    assert narrow["ci"] == [0.5, 0.5]                 # the middle 40 % of draws: the half-half ones


def test_eval_mean_ci_needs_two_patients_and_says_so():
    one = mean_with_patient_ci(np.array([1.0, 0.0, 1.0]), np.array(["p", "p", "p"]))
    assert one["ci"] is None and one["value"] == pytest.approx(2 / 3)
    assert mean_with_patient_ci(np.array([1.0, 0.0]), np.array(["p", "q"]), n_boot=0)["ci"] is None
    with pytest.raises(ValueError, match=r"shapes \(3,\) and \(2,\)"):
        mean_with_patient_ci(np.zeros(3), np.array(["p", "q"]))
    with pytest.raises(ValueError, match="confidence must lie in \\(0, 1\\), got 1.5"):
        mean_with_patient_ci(np.zeros(2), np.array(["p", "q"]), confidence=1.5)
