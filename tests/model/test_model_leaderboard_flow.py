"""From a model to a leaderboard file, with the commands a user runs (README "From a model to the
leaderboard"): a tiny model built from its config -> ``evaluate`` (metrics + per-row predictions)
-> ``bench tasks`` -> ``leaderboard push --dry-run`` -> ``leaderboard show``; and ``predict --json``
rows are read by the same predictions reader."""

import json

import numpy as np
import pytest
import yaml

from .conftest import synthetic_hu, tiny_config, write_tiny_dataset


@pytest.fixture(scope="module")
def model_and_paper_dataset(tmp_path_factory):
    """A tiny SeSpeCT (random weights, built from its config) saved as a checkpoint folder, and a
    tiny dataset folder whose ``all`` config holds the paper's ten settings."""
    import torch
    from transformers import AutoModelForImageClassification

    import ctdegradbench.model  # noqa: F401  (registers the model with the auto classes)
    from ctdegradbench.builder.simulate.settings import PAPER_SETTINGS

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("flow") / "tiny-sespect"
    AutoModelForImageClassification.from_config(tiny_config()).save_pretrained(folder)
    data = write_tiny_dataset(tmp_path_factory.mktemp("flow-data") / "bench", settings=PAPER_SETTINGS)
    return folder, data


def test_two_evaluations_keep_their_own_predictions(model_and_paper_dataset, tmp_path, monkeypatch):
    """Without --predictions each --out gets its own rows file beside it: evaluating a second model
    into another --out does not replace the first model's per-row predictions."""
    from ct_degradbench import main

    model, data = model_and_paper_dataset
    monkeypatch.chdir(tmp_path)
    for name in ("first", "second"):
        assert main(["evaluate", "--model", str(model), "--dataset", str(data), "--out", f"{name}.json"]) == 0
    assert (tmp_path / "first_predictions.jsonl").is_file() and (tmp_path / "second_predictions.jsonl").is_file()


def test_evaluate_to_bench_tasks_to_leaderboard_dry_run(model_and_paper_dataset, tmp_path, capsys):
    from ct_degradbench import main
    from ctdegradbench.core.benchmark import TASKS

    model, data = model_and_paper_dataset
    metrics_path, rows_path = tmp_path / "eval.json", tmp_path / "preds.jsonl"
    assert main(["evaluate", "--model", str(model), "--dataset", str(data), "--split", "test",
                 "--out", str(metrics_path), "--predictions", str(rows_path)]) == 0
    metrics = json.loads(metrics_path.read_text())
    rows = [json.loads(line) for line in rows_path.read_text().splitlines()]
    assert len(rows) == metrics["split"]["rows"] == 80 and len({r["sample_id"] for r in rows}) == 80
    for row in rows:
        assert set(row) == {"generator", "sample_id", "label", "severity", "probabilities", "status"}   # generator: ours
        assert row["status"] == "ok"
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert row["label"] == max(row["probabilities"], key=row["probabilities"].get)

    # bench tasks scores the same rows with the same evaluate modules: the same numbers
    tasks_path = tmp_path / "tasks.json"
    assert main(["bench", "tasks", "--dataset", str(data), "--predictions", str(rows_path), "--model", "tiny",
                 "--out", str(tasks_path)]) == 0
    tasks = json.loads(tasks_path.read_text())
    assert set(tasks["tasks"]) == set(metrics["tasks"]) == {t.id for t in TASKS}
    assert tasks["tasks"] == pytest.approx(metrics["tasks"], abs=1e-9)
    assert tasks["severity"]["mae"] == pytest.approx(metrics["mae"], abs=1e-9)
    assert tasks["classification"]["roc_auc_micro"] == pytest.approx(metrics["micro_auc"], abs=1e-9)

    # dry run: the .eval_results file a push would upload and the model-card block, locally
    for results, board in ((tasks_path, tmp_path / "board-tasks"), (metrics_path, tmp_path / "board-eval")):
        assert main(["leaderboard", "push", "--results", str(results), "--dataset-id", "lab/ct-degradbench",
                     "--dry-run", str(board)]) == 0
        entries = yaml.safe_load((board / ".eval_results" / "ct-degradbench.yaml").read_text())
        assert {e["dataset"]["task_id"]: e["value"] for e in entries} == pytest.approx(metrics["tasks"], abs=1e-6)
        assert {e["dataset"]["id"] for e in entries} == {"lab/ct-degradbench"}
        block = (board / "model_card_results.md").read_text()
        index = yaml.safe_load(block.split("---")[1])["model-index"][0]["results"]
        assert {r["metrics"][0]["type"] for r in index} == set(metrics["tasks"])
    capsys.readouterr()
    assert main(["leaderboard", "show", str(tmp_path / "board-eval"), str(metrics_path)]) == 0
    table = capsys.readouterr().out
    assert "| board-eval |" in table and "| tiny-sespect |" in table
    accuracy = f"{metrics['tasks']['degradation_classification_accuracy']:.4f}"
    assert table.count(accuracy) >= 2

    # nothing of the user's is overwritten: a second dry run into the same folder is refused
    assert main(["leaderboard", "push", "--results", str(tasks_path), "--dataset-id", "lab/ct-degradbench",
                 "--dry-run", str(tmp_path / "board-tasks")]) == 2
    assert "exists already" in capsys.readouterr().err


def test_predict_json_rows_are_predictions_rows(model_and_paper_dataset, tmp_path, capsys):
    from ct_degradbench import main
    from ctdegradbench.evaluation.tasks import read_predictions

    model, _ = model_and_paper_dataset
    name = "tcga/TCGA-AB-1234/1.3.6.1.4.1.14519.5.2.1.7777.9999.123456789012345678901234567890_slice0042.npy"
    np.save(tmp_path / name.replace("/", "_"), synthetic_hu(0, 2, np.random.default_rng(0)).astype(np.float32))
    path = tmp_path / name.replace("/", "_")
    assert main(["predict", str(path), "--model", str(model), "--json"]) == 0
    out = tmp_path / "predict.json"
    out.write_text(capsys.readouterr().out)
    (row,) = read_predictions(out)
    assert row["sample_id"] == path.name and row["level"] == row["severity"]
    assert main(["predict", str(path), "--model", str(model)]) == 0
    table = capsys.readouterr().out
    assert "tcga_TCGA-AB-1234" in table and "slice0042.npy" in table      # both ends of a long name
