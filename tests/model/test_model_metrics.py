"""The task metrics against independent computations."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from ctdegradbench.model.metrics import local_task_metrics, micro_auc, quadratic_weighted_kappa, spearman


def test_spearman_matches_scipy_with_ties():
    a, b = [0, 0, 1, 1, 2, 3, 3], [0.1, 0.3, 0.2, 0.9, 1.5, 2.0, 2.0]
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    assert np.isnan(spearman([1, 1, 1], [0.1, 0.2, 0.3]))


def test_qwk_by_hand():
    y, p = [0, 1, 2, 3], [0, 2, 2, 3]
    observed = np.zeros((4, 4))
    for i, j in zip(y, p):
        observed[i, j] += 1
    expected = np.outer(observed.sum(1), observed.sum(0)) / 4
    w = np.array([[(i - j) ** 2 / 9 for j in range(4)] for i in range(4)])
    assert quadratic_weighted_kappa(y, p, 4) == pytest.approx(1 - (w * observed).sum() / (w * expected).sum())
    assert quadratic_weighted_kappa(y, y, 4) == pytest.approx(1.0)


def test_micro_auc_counts_correctly_ordered_pairs():
    y = np.array([0, 1])
    probs = np.array([[0.7, 0.3], [0.4, 0.6]])
    # positives (0,0)=0.7 and (1,1)=0.6; negatives (0,1)=0.3, (1,0)=0.4: every positive above every negative
    assert micro_auc(y, probs) == pytest.approx(1.0)
    probs = np.array([[0.4, 0.6], [0.7, 0.3]])
    assert micro_auc(y, probs) == pytest.approx(0.0)


def test_task_metrics_on_a_small_case():
    names = ["S1_noise", "S2_blur", "M1_b+n"]
    y = np.array([0, 0, 1, 2])
    probs = np.eye(3)[[0, 1, 1, 2]]
    levels = np.array([0, 3, 1, 2])
    severity = np.array([0.2, 2.6, 1.4, 2.0])
    m = local_task_metrics(y, probs, levels, severity, ["S1", "S1", "S2", "M1"], names)
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["per_class"]["S1_noise"]["f1"] == pytest.approx(2 / 3)     # tp 1, fn 1, fp 0
    assert m["per_class"]["S2_blur"]["accuracy"] == pytest.approx(0.75)
    assert m["mae"] == pytest.approx((0.2 + 0.4 + 0.4 + 0.0) / 4)         # continuous severity, level units
    assert m["per_setting"]["S1"]["spearman"] == pytest.approx(1.0)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]


def test_local_metrics_equal_the_evaluate_modules_when_installed():
    evaluation = pytest.importorskip("ctdegradbench.evaluation", reason="the benchmark's evaluate modules are not installed")
    from ctdegradbench.model.metrics import module_task_metrics

    rng = np.random.default_rng(0)
    names = [f"c{i}" for i in range(10)]
    y = rng.integers(0, 10, 200)
    probs = rng.dirichlet(np.ones(10), 200)
    levels = rng.integers(0, 4, 200)
    severity = levels + rng.normal(0, 0.8, 200)
    settings = np.array([("S%d" if c < 5 else "M%d") % (c % 5 + 1) for c in y])
    a = local_task_metrics(y, probs, levels, severity, settings, names)
    b = module_task_metrics(evaluation.load_metric, y, probs, levels, severity, settings, names)
    for key in ("accuracy", "macro_f1", "micro_auc", "mae", "rmse", "qwk", "mean_spearman_single",
                "mean_spearman_mixtures"):
        assert a[key] == pytest.approx(b[key], abs=1e-9), key
    for code in a["per_setting"]:
        for key in ("spearman", "mae", "rmse", "qwk"):
            assert a["per_setting"][code][key] == pytest.approx(b["per_setting"][code][key], abs=1e-9, nan_ok=True)
    assert a["confusion_matrix"] == b["confusion_matrix"]
