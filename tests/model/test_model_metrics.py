"""SeSpeCT's task metrics (through the evaluate modules) against hand and independent computations."""

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score

from ctdegradbench.model.metrics import task_metrics


def test_task_metrics_on_a_small_case():
    names = ["S1_noise", "S2_blur", "M1_b+n"]
    y = np.array([0, 0, 1, 2])
    probs = np.eye(3)[[0, 1, 1, 2]]
    levels = np.array([0, 3, 1, 2])
    severity = np.array([0.2, 2.6, 1.4, 2.0])
    m = task_metrics(y, probs, levels, severity, ["S1", "S1", "S2", "M1"], names)
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["per_class"]["S1_noise"]["f1"] == pytest.approx(2 / 3)     # tp 1, fn 1, fp 0
    assert m["per_class"]["S2_blur"]["accuracy"] == pytest.approx(0.75)
    assert m["mae"] == pytest.approx((0.2 + 0.4 + 0.4 + 0.0) / 4)         # continuous severity, level units
    assert m["per_setting"]["S1"]["spearman"] == pytest.approx(1.0)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert m["per_level"]["L3"] == {"accuracy": 0.0, "mae": pytest.approx(0.4), "n": 1}


def test_task_metrics_equal_scipy_and_sklearn_on_random_predictions():
    rng = np.random.default_rng(0)
    names = [f"c{i}" for i in range(10)]
    y = rng.integers(0, 10, 200)
    probs = rng.dirichlet(np.ones(10), 200)
    levels = rng.integers(0, 4, 200)
    severity = levels + rng.normal(0, 0.8, 200)
    settings = np.array([("S%d" if c < 5 else "M%d") % (c % 5 + 1) for c in y])
    m = task_metrics(y, probs, levels, severity, settings, names)

    clipped = np.clip(severity, 0, 3)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, probs.argmax(1)), abs=1e-12)
    assert m["macro_f1"] == pytest.approx(f1_score(y, probs.argmax(1), average="macro"), abs=1e-12)
    assert m["mae"] == pytest.approx(np.abs(clipped - levels).mean(), abs=1e-12)
    assert m["qwk"] == pytest.approx(cohen_kappa_score(levels, np.rint(clipped).astype(int), weights="quadratic"),
                                     abs=1e-12)
    rho = {code: spearmanr(levels[settings == code], clipped[settings == code]).statistic for code in set(settings)}
    for code, value in rho.items():
        assert m["per_setting"][code]["spearman"] == pytest.approx(value, abs=1e-12)
    assert m["mean_spearman_single"] == pytest.approx(np.mean([v for k, v in rho.items() if k[0] == "S"]), abs=1e-12)
    assert m["mean_spearman_mixtures"] == pytest.approx(np.mean([v for k, v in rho.items() if k[0] == "M"]),
                                                        abs=1e-12)
