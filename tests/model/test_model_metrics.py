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


def test_ten_class_task_leaves_clean_out_of_the_answers():
    """Eleven classes: a degraded row whose most probable class is `clean` is an error eleven-way but
    answered by its most probable degradation on the paper's ten-class task; the ten-class AUC uses
    the probabilities renormalised over the ten (checked against scikit-learn)."""
    from sklearn.metrics import roc_auc_score

    from ctdegradbench.builder.simulate.settings import CLEAN_CLASS_NAME, PAPER_CLASS_NAMES
    from ctdegradbench.model.metrics import add_accuracy_intervals, ten_class_predictions

    names = [*PAPER_CLASS_NAMES, CLEAN_CLASS_NAME]                  # SeSpeCT's eleven classes
    clean = names.index(CLEAN_CLASS_NAME)
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(10), 6)
    probs = rng.dirichlet(np.ones(11), len(y))
    probs[:30, clean] = 5.0                                        # half the rows answered `clean` eleven-way
    probs /= probs.sum(1, keepdims=True)
    levels = rng.integers(0, 4, len(y))
    settings = [names[c].split("_")[0] for c in y]
    m = task_metrics(y, probs, levels, levels.astype(float), settings, names)

    ten = probs[:, :10].argmax(1)                                  # clean is the last class
    assert np.array_equal(ten_class_predictions(probs, names), ten)
    assert m["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == y))
    assert m["ten_class"]["accuracy"] == pytest.approx(np.mean(ten == y))
    assert m["ten_class"]["accuracy"] > m["accuracy"]
    assert m["ten_class"]["macro_f1"] == pytest.approx(f1_score(y, ten, average="macro"), abs=1e-12)
    renormalised = probs[:, :10] / probs[:, :10].sum(1, keepdims=True)
    assert m["ten_class"]["micro_auc"] == pytest.approx(
        roc_auc_score(np.eye(10)[y].ravel(), renormalised.ravel()), abs=1e-12)
    assert m["ten_class"]["per_level"]["L0"] == pytest.approx(np.mean((ten == y)[levels == 0]))

    patients = np.array([f"src{i % 2}/p{i % 6}" for i in range(len(y))])
    add_accuracy_intervals(m, y, probs, names, patients, n_boot=50)
    assert m["ten_class"]["per_source"]["src0"]["value"] == pytest.approx(np.mean((ten == y)[::2]))
    assert m["per_source"]["src0"]["value"] == pytest.approx(np.mean((probs.argmax(1) == y)[::2]))
    lo, hi = m["ten_class"]["accuracy_ci"]
    assert lo <= m["ten_class"]["accuracy"] <= hi


def test_ten_class_task_only_for_a_model_with_clean():
    names = ["S1_noise", "S2_blur", "M1_b+n"]
    m = task_metrics(np.array([0, 1, 2]), np.eye(3), np.array([0, 1, 2]), np.array([0.0, 1.0, 2.0]),
                     ["S1", "S2", "M1"], names)
    assert "ten_class" not in m
