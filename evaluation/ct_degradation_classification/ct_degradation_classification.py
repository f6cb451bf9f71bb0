"""CT degradation classification: accuracy, macro F1, per-class one-vs-rest scores, ROC AUC, confusion.

Self-contained ``evaluate`` module of CT-DegradBench (it imports nothing of the package): the
formulas live in the pure function :func:`classification_metrics`; :class:`CTDegradationClassification`
is a thin ``evaluate.Metric`` around it.
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score
from sklearn.preprocessing import label_binarize

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
Degradation-type classification scores of CT-DegradBench (classes S1_noise .. M5_m+b+n, and any
other classes a dataset holds), all computed with scikit-learn over the classes 0..K-1:
accuracy; macro F1 (the unweighted mean of the per-class F1, a class absent from both
predictions and references scoring 0); for each class k the one-vs-rest accuracy
mean([pred == k] == [ref == k]) and F1 (binary F1 of "is k"); the micro-average ROC AUC over
the one-vs-rest binarized references and the per-class scores (only when scores are given);
and the K x K confusion matrix C[i, j] = number of rows with reference i predicted as j.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted class index per image.
    references (`list` of `int`): true class index per image.
    scores (`list` of `list` of `float`, optional): per-image class scores (probabilities or
        logits), K per row; needed for the ROC AUC.
    num_classes (`int`, optional): K; default: the width of scores, else max label + 1.
    class_names (`list` of `str`, optional): K names used as keys of per_class (default "0".."K-1").

Returns:
    accuracy (`float`), macro_f1 (`float`),
    per_class (`dict`): name -> {"accuracy": one-vs-rest accuracy, "f1": one-vs-rest F1, "support": int},
    roc_auc_micro (`float` or None): micro-average one-vs-rest ROC AUC (None without scores),
    confusion_matrix (`list` of `list` of `int`): rows = references, columns = predictions.

Examples:
    >>> clf = evaluate.load("ct_degradation_classification")  # doctest: +SKIP
    >>> results = clf.compute(predictions=[0, 1, 2, 2], references=[0, 1, 1, 2], num_classes=3)
    >>> results["accuracy"], round(results["macro_f1"], 4)
    (0.75, 0.7778)
    >>> results["confusion_matrix"]
    [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    >>> results["per_class"]["1"]
    {'accuracy': 0.75, 'f1': 0.6666666666666666, 'support': 2}

    >>> results = clf.compute(predictions=[0, 1, 1], references=[0, 1, 0],
    ...                       scores=[[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]])
    >>> round(results["roc_auc_micro"], 4)
    0.8889
"""


def classification_metrics(predictions, references, scores=None, num_classes=None, class_names=None) -> dict:
    """Accuracy, macro F1, per-class one-vs-rest accuracy / F1, micro ROC AUC and confusion matrix.

    Classes are the integers 0..K-1 with K = ``num_classes``, else the width of ``scores``,
    else ``max(predictions, references) + 1``.
    """
    pred = np.asarray(predictions, dtype=np.int64)
    ref = np.asarray(references, dtype=np.int64)
    if pred.shape != ref.shape or pred.ndim != 1 or pred.size == 0:
        raise ValueError(f"predictions and references must be non-empty 1-D of equal length, got {pred.shape}, {ref.shape}")
    score_array = None if scores is None else np.asarray(scores, dtype=np.float64)
    if num_classes is None:
        num_classes = score_array.shape[1] if score_array is not None else int(max(pred.max(), ref.max())) + 1
    labels = list(range(int(num_classes)))
    if pred.min() < 0 or ref.min() < 0 or max(pred.max(), ref.max()) >= num_classes:
        raise ValueError(f"class indices must lie in 0..{num_classes - 1}")
    names = [str(k) for k in labels] if class_names is None else [str(n) for n in class_names]
    if len(names) != len(labels):
        raise ValueError(f"class_names has {len(names)} names for {len(labels)} classes")
    per_class_f1 = f1_score(ref, pred, labels=labels, average=None, zero_division=0)
    per_class = {
        name: {"accuracy": float(np.mean((pred == k) == (ref == k))), "f1": float(per_class_f1[k]),
               "support": int(np.sum(ref == k))}
        for k, name in zip(labels, names)
    }
    roc_auc = None
    if score_array is not None:
        if score_array.shape != (pred.size, len(labels)):
            raise ValueError(f"scores must have shape ({pred.size}, {len(labels)}), got {score_array.shape}")
        onehot = label_binarize(ref, classes=labels)
        if len(labels) == 2:          # label_binarize gives one column for two classes
            onehot = np.hstack([1 - onehot, onehot])
        roc_auc = float(roc_auc_score(onehot, score_array, average="micro"))
    return {
        "accuracy": float(accuracy_score(ref, pred)),
        "macro_f1": float(f1_score(ref, pred, labels=labels, average="macro", zero_division=0)),
        "per_class": per_class,
        "roc_auc_micro": roc_auc,
        "confusion_matrix": confusion_matrix(ref, pred, labels=labels).tolist(),
    }


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class CTDegradationClassification(evaluate.Metric):
    """Degradation-type classification metrics of CT-DegradBench."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": datasets.Value("int64"),
                "references": datasets.Value("int64"),
            }),
            reference_urls=["https://arxiv.org/abs/2605.16431",
                            "https://scikit-learn.org/stable/modules/model_evaluation.html"],
        )

    def _compute(self, predictions, references, scores=None, num_classes=None, class_names=None):
        return classification_metrics(predictions, references, scores, num_classes, class_names)
