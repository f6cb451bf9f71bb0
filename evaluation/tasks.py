"""``bench tasks``: score an estimator's predictions on a dataset split with the evaluate modules.

Predictions are a JSON-lines (``.jsonl``) or CSV file with one row per degraded image, or
the JSON document of ``ct-degradbench predict --json`` (its ``predictions`` list):

``sample_id``      (required) the dataset row's id
``label``          predicted degradation type: class index or class name (S1_noise .. M5_m+b+n, ...)
``severity``       predicted severity in level units (float; 0 = L0 .. 3 = L3); ``level`` is read
                   when there is no ``severity``
``probabilities``  (JSON only) ``{class name: probability}``; classes the dataset lacks are dropped,
                   dataset classes missing from it score 0
``scores``         (JSON only) per-class scores, one per class in the dataset's label order

``ct-degradbench evaluate`` and ``predict --json`` write these rows (:func:`prediction_row`).

Every formula is the ``ct_degradation_classification`` / ``ct_severity_estimation`` module's:
they are loaded with :func:`ctdegradbench.evaluation.load_metric` and their ``compute`` is called.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ctdegradbench.core.errors import InputError, InputNotFoundError
from ctdegradbench.builder.dataset.reader import ExportedFolder
from ctdegradbench.evaluation.data import read_rows


def class_names(folder: ExportedFolder, config: str, split: str) -> list[str]:
    """The label names of a config, from the features embedded in its Parquet files."""
    return list(folder.features(config, split)["label"].names)


def prediction_row(sample_id: str, label: str | None, severity: float | None,
                   probabilities: dict[str, float]) -> dict:
    """One predictions row as ``bench tasks`` reads it (the one place of its format). Numbers keep
    full precision: rounding would tie nearly equal severities and change Spearman's ranks. A
    slice without an answer (SeSpeCT's status) or a ``clean`` one has label / severity None."""
    return {"sample_id": str(sample_id), "label": None if label is None else str(label),
            "severity": None if severity is None else float(severity),
            "probabilities": {name: float(p) for name, p in probabilities.items()}}


def write_predictions(path, rows: list[dict]) -> Path:
    """Write ``rows`` as JSON lines (``.jsonl``) atomically; each row carries ``"generator"``, the mark
    that lets a rerun replace the file (``core.outputs``: a file of the user's is refused)."""
    from ctdegradbench.core.outputs import GENERATOR, check_file_output, replace_atomically

    path = check_file_output(Path(path), "--predictions")
    text = "".join(json.dumps({"generator": GENERATOR, **row}) + "\n" for row in rows)
    return replace_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _json_rows(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".json":
            document = json.loads(text)
            if not isinstance(document, dict) or not isinstance(document.get("predictions"), list):
                raise InputError(f"predictions file {path}: expected the JSON of `ct-degradbench predict --json` "
                                 "(a 'predictions' list) or a .jsonl file")
            return document["predictions"]
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError as err:
        raise InputError(f"predictions file {path}: not valid JSON ({err})") from None


def read_predictions(path) -> list[dict]:
    """Rows of a ``.jsonl``, ``.json`` (``predict --json``) or ``.csv`` predictions file (see the
    module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"predictions file {path} does not exist")
    if path.suffix in (".jsonl", ".json"):
        rows = _json_rows(path)
    elif path.suffix == ".csv":
        import csv

        with path.open(newline="", encoding="utf-8") as handle:
            rows = [{k: v for k, v in row.items() if v not in (None, "")} for row in csv.DictReader(handle)]
    else:
        raise InputError(f"predictions file {path}: expected a .jsonl, .json or .csv file")
    if not rows or any(not isinstance(row, dict) or "sample_id" not in row for row in rows):
        raise InputError(f"predictions file {path}: every row needs a sample_id (and label and/or severity)")
    for row in rows:
        if "severity" in row:          # the continuous estimate wins over a rounded level
            row["level"] = row["severity"]
    return rows


def _scores(row: dict, names: list[str], k: int) -> list[float] | None:
    """Per-class scores of a row in the dataset's label order (first ``k`` classes)."""
    if "scores" in row:
        return [float(v) for v in row["scores"][:k]]
    if isinstance(row.get("probabilities"), dict):
        return [float(row["probabilities"].get(name, 0.0)) for name in names[:k]]
    return None


def _label_index(value, names: list[str]) -> int:
    if isinstance(value, str) and not value.lstrip("-").isdigit():
        if value not in names:
            raise InputError(f"predicted label {value!r} is not a class of the dataset ({', '.join(names)})")
        return names.index(value)
    return int(value)


def run_tasks(dataset, predictions, config: str = "all", split: str = "test", model: str | None = None) -> dict:
    """Classification and severity metrics of ``predictions`` against ``dataset``'s ``config``/``split``."""
    from ctdegradbench.evaluation import load_metric
    from ctdegradbench.evaluation.leaderboard import task_values

    folder = ExportedFolder(dataset)
    rows = read_rows(folder, config, split)
    names = class_names(folder, config, split)
    by_id = {sid: i for i, sid in enumerate(rows["sample_id"].tolist())}
    preds = read_predictions(predictions)
    unknown = [p["sample_id"] for p in preds if p["sample_id"] not in by_id]
    if unknown:
        raise InputError(f"{len(unknown)} predicted sample ids are not in {config}/{split}, e.g. {unknown[0]!r}")
    missing = len(by_id) - len({p["sample_id"] for p in preds})
    if missing:
        raise InputError(f"predictions cover {len(by_id) - missing} of the {len(by_id)} rows of {config}/{split}; "
                         "score every row")
    index = np.array([by_id[p["sample_id"]] for p in preds])
    result = {"kind": "tasks", "model": model or Path(predictions).stem, "dataset": str(folder.path),
              "config": config, "split": split, "rows": len(preds), "class_names": names,
              "patients": len(set(rows["patient_key"][index].tolist()))}
    if all("label" in p for p in preds):
        predicted = [_label_index(p["label"], names) for p in preds]
        references = rows["label"][index].astype(int).tolist()
        # the classes are those up to the highest one present: the paper's ten for `all` (the opt-in
        # classes that follow them in the label names count only when a row or a prediction has one)
        k = max(max(predicted), max(references)) + 1
        scores = [_scores(p, names, k) for p in preds]
        scores = scores if all(s is not None for s in scores) else None
        result["classification"] = load_metric("ct_degradation_classification").compute(
            predictions=predicted, references=references, scores=scores, num_classes=k, class_names=names[:k])
    if all("level" in p for p in preds):
        result["severity"] = load_metric("ct_severity_estimation").compute(
            predictions=[float(p["level"]) for p in preds], references=rows["level"][index].astype(int).tolist(),
            settings=rows["setting"][index].astype(str).tolist())
    if "classification" not in result and "severity" not in result:
        raise InputError("predictions have neither a label nor a level on every row")
    result["tasks"] = task_values(result)
    return result
