"""The evaluate modules: doctests, values against scipy / scikit-learn / hand computations, loading."""

from __future__ import annotations

import doctest
import importlib
import math
import os
import subprocess
import sys

import evaluate
import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import confusion_matrix, f1_score, roc_auc_score

from ctdegradbench.core.paper import CITATION
from ctdegradbench.evaluation import METRIC_MODULES, load_metric

TOL = 1e-12          # same formula, float64 round-off only
DOCTEST_NAMES = {"ct_severity_corr": "corr", "ct_degradation_classification": "clf", "ct_severity_estimation": "sev"}


def module_of(name):
    return importlib.import_module(f"ctdegradbench.evaluation.{name}.{name}")


@pytest.mark.parametrize("name", METRIC_MODULES)
def test_eval_module_doctests_pass(name, offline, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                       # loads from the package path, not the cwd
    metric = load_metric(name)
    assert metric.citation == CITATION
    text = module_of(name)._KWARGS_DESCRIPTION
    test = doctest.DocTestParser().get_doctest(text, {DOCTEST_NAMES[name]: metric, "evaluate": evaluate}, name, None, 0)
    runner = doctest.DocTestRunner()
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted >= 3 and result.failed == 0


def test_eval_severity_corr_equals_scipy_per_setting():
    rng = np.random.default_rng(0)
    n = 120
    levels = rng.integers(0, 4, n)
    scores = np.round(levels * 0.4 + rng.normal(0, 0.5, n), 1)          # ties
    settings = rng.choice(["S1", "S2", "M1", "M4"], n)
    out = module_of("ct_severity_corr").severity_correlations(scores, levels, settings)
    assert abs(out["spearman"] - stats.spearmanr(scores, levels).statistic) < TOL
    for code in ("S1", "S2", "M1", "M4"):
        m = settings == code
        got = out["per_setting"][code]
        assert abs(got["spearman"] - stats.spearmanr(scores[m], levels[m]).statistic) < TOL
        assert abs(got["pearson"] - np.corrcoef(scores[m], levels[m])[0, 1]) < 1e-10
        assert abs(got["kendall"] - stats.kendalltau(scores[m], levels[m]).statistic) < TOL
        assert got["n"] == int(m.sum())
    single = np.mean([out["per_setting"][c]["spearman"] for c in ("S1", "S2")])
    assert abs(out["mean_single"]["spearman"] - single) < TOL


def test_eval_severity_corr_undefined_is_nan_and_left_out():
    out = module_of("ct_severity_corr").severity_correlations(
        [1.0, 1.0, 1.0, 0.1, 0.5, 0.9], [0, 1, 2, 0, 1, 2], ["S1", "S1", "S1", "S2", "S2", "S2"])
    assert math.isnan(out["per_setting"]["S1"]["spearman"]) and out["n_undefined"] == 1
    assert out["mean_single"]["spearman"] == pytest.approx(1.0)
    assert math.isnan(out["mean_mixtures"]["spearman"])


def test_eval_classification_matches_sklearn_and_hand_counts():
    rng = np.random.default_rng(1)
    k, n = 10, 300
    ref = rng.integers(0, k, n)
    pred = np.where(rng.random(n) < 0.6, ref, rng.integers(0, k, n))
    scores = rng.dirichlet(np.ones(k), n)
    scores[np.arange(n), ref] += 0.5
    out = module_of("ct_degradation_classification").classification_metrics(pred, ref, scores.tolist(), k)
    assert out["accuracy"] == pytest.approx(np.mean(pred == ref), abs=TOL)
    assert out["macro_f1"] == pytest.approx(f1_score(ref, pred, average="macro"), abs=TOL)
    counts = np.zeros((k, k), int)
    np.add.at(counts, (ref, pred), 1)                                   # hand-made confusion matrix
    assert out["confusion_matrix"] == counts.tolist() == confusion_matrix(ref, pred).tolist()
    for c in range(k):                                                   # one-vs-rest by hand
        tp = counts[c, c]
        fp, fn = counts[:, c].sum() - tp, counts[c, :].sum() - tp
        assert out["per_class"][str(c)]["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=TOL)
        assert out["per_class"][str(c)]["accuracy"] == pytest.approx(np.mean((pred == c) == (ref == c)), abs=TOL)
    onehot = np.eye(k)[ref]
    assert out["roc_auc_micro"] == pytest.approx(roc_auc_score(onehot.ravel(), scores.ravel()), abs=TOL)


def test_eval_severity_estimation_matches_hand_formulas():
    rng = np.random.default_rng(2)
    n = 200
    ref = rng.integers(0, 4, n)
    pred = np.clip(ref + rng.normal(0, 0.8, n), -0.7, 3.9)
    settings = rng.choice(["S3", "M2"], n)
    out = module_of("ct_severity_estimation").severity_metrics(pred, ref, settings)
    assert out["mae"] == pytest.approx(np.mean(np.abs(pred - ref)), abs=TOL)
    assert out["rmse"] == pytest.approx(np.sqrt(np.mean((pred - ref) ** 2)), abs=TOL)
    rounded = np.clip(np.rint(pred), 0, 3).astype(int)                  # quadratic weighted kappa by hand
    observed = np.zeros((4, 4))
    np.add.at(observed, (ref, rounded), 1)
    expected = np.outer(observed.sum(1), observed.sum(0)) / n
    weights = (np.subtract.outer(np.arange(4), np.arange(4)) ** 2) / 9.0
    qwk = 1 - (weights * observed).sum() / (weights * expected).sum()
    assert out["qwk"] == pytest.approx(qwk, abs=1e-10)
    for code in ("S3", "M2"):
        m = settings == code
        assert out["spearman_per_setting"][code] == pytest.approx(stats.spearmanr(pred[m], ref[m]).statistic, abs=TOL)
    assert out["mean_spearman_single"] == out["spearman_per_setting"]["S3"]


def test_eval_modules_reject_bad_input():
    with pytest.raises(ValueError, match="severity levels"):
        module_of("ct_severity_estimation").severity_metrics([0.5], [7])
    with pytest.raises(ValueError, match="class indices"):
        module_of("ct_degradation_classification").classification_metrics([0, 3], [0, 1], num_classes=3)


def test_eval_bare_name_resolves_after_registration(tmp_path):
    """evaluate.load("ct_severity_corr") from a folder without it: offline, evaluate skips the Hub
    and falls back to its module cache, which register_evaluate_modules fills. A fresh process,
    since evaluate imports its module cache as a package once per process."""
    script = (
        "import evaluate\n"
        "try:\n    evaluate.load('ct_severity_corr'); raise SystemExit('resolved before registration')\n"
        "except FileNotFoundError:\n    pass\n"
        "from ctdegradbench.evaluation import register_evaluate_modules\n"
        "assert all(str(p).startswith(%r) for p in register_evaluate_modules())\n"
        "m = evaluate.load('ct_severity_corr')\n"
        "print(m.compute(predictions=[0.3, 0.1, 0.2], references=[2, 0, 1])['spearman'])\n"
    ) % str(tmp_path / "modules")
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1",
           "HF_EVALUATE_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "1.0"


def test_eval_path_load_from_repo_root(offline, monkeypatch):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    monkeypatch.chdir(root)
    metric = evaluate.load("evaluation/ct_severity_estimation")
    assert metric.compute(predictions=[0, 1, 2], references=[0, 1, 2])["mae"] == 0.0


def test_standalone_modules_carry_the_kernels_facts():
    """evaluate.load runs a module file on its own, so each carries its own copy of the paper's
    facts it needs; the copies must equal the kernel's (one fact, one source of truth)."""
    from ctdegradbench.core.levels import LEVELS

    for name in METRIC_MODULES:
        assert module_of(name)._CITATION == CITATION, name
    assert module_of("ct_severity_estimation").LEVELS == LEVELS
