"""Leaderboard: eval.yaml, bench tasks through the evaluate modules, .eval_results pushed to a
local Hub endpoint (the real huggingface_hub client, loopback only), show."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from huggingface_hub import HfApi, constants, parse_eval_result_entries
from sklearn.metrics import f1_score

import ct_degradbench
from ctdegradbench.core.errors import InputError, RemoteError
from ctdegradbench.evaluation.leaderboard import TASKS, Task, push_eval_results, show, write_eval_yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hub_endpoint import LocalHub  # noqa: E402  (the shared local Hub of tests/)

TOKEN = "hf_test"


pytestmark = pytest.mark.usefixtures("loopback_only")


def test_eval_write_eval_yaml(bench_folder, tmp_path):
    path = write_eval_yaml(bench_folder)
    content = yaml.safe_load(path.read_text())
    assert path == bench_folder / "eval.yaml"
    assert set(content) == {"name", "description", "evaluation_framework", "tasks"}
    assert content["tasks"][0] == {"id": "degradation_classification_accuracy", "config": "all", "split": "test"}
    assert [t["id"] for t in content["tasks"]] == [t.id for t in TASKS]
    with pytest.raises(InputError, match="validation"):
        write_eval_yaml(bench_folder, tasks=[Task("x", ("a",), "a", "x", split="validation")])
    path.unlink()


def predictions(folder: Path, tmp_path: Path):
    rows = pq.read_table(folder / "data/single_noise/test-00000-of-00001.parquet").to_pylist() + \
        pq.read_table(folder / "data/single_blur/test-00000-of-00001.parquet").to_pylist() + \
        pq.read_table(folder / "data/mixture_m1/test-00000-of-00001.parquet").to_pylist()
    rng = np.random.default_rng(0)
    preds = []
    for r in rows:
        label = r["label"] if rng.random() < 0.7 else int(rng.integers(0, 10))
        preds.append({"sample_id": r["sample_id"], "label": label, "level": r["level"] + float(rng.normal(0, 0.6))})
    path = tmp_path / "model-a.jsonl"
    path.write_text("\n".join(json.dumps(p) for p in preds))
    return rows, preds, path


def test_eval_bench_tasks_and_push_and_show(bench_folder, tmp_path, capsys):
    rows, preds, path = predictions(bench_folder, tmp_path)
    out = tmp_path / "tasks.json"
    assert ct_degradbench.main(["bench", "tasks", "--dataset", str(bench_folder), "--predictions", str(path),
                                "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    truth = np.array([r["label"] for r in rows])
    guess = np.array([p["label"] for p in preds])
    assert result["tasks"]["degradation_classification_accuracy"] == pytest.approx(np.mean(truth == guess))
    assert result["tasks"]["degradation_classification_macro_f1"] == pytest.approx(
        f1_score(truth, guess, labels=list(range(10)), average="macro", zero_division=0))
    assert result["severity"]["mae"] == pytest.approx(np.mean([abs(p["level"] - r["level"]) for p, r in zip(preds, rows)]))
    assert set(result["tasks"]) == {t.id for t in TASKS}

    with LocalHub(token=TOKEN) as hub:
        HfApi(endpoint=hub.url, token=TOKEN).create_repo("lab/sespect")
        assert ct_degradbench.main(["leaderboard", "push", "--results", str(out), "--repo-id", "lab/sespect",
                                    "--dataset-id", "lab/ct-degradbench", "--endpoint", hub.url, "--token", TOKEN,
                                    "--source-url", "https://example.org/logs"]) == 0
        files = hub.repos[("model", "lab/sespect")].branches["main"]
        entries = parse_eval_result_entries(yaml.safe_load(files[".eval_results/ct-degradbench.yaml"]))
        assert {e.task_id: e.value for e in entries} == pytest.approx(result["tasks"], abs=1e-6)
        assert all(e.dataset_id == "lab/ct-degradbench" and e.source_url == "https://example.org/logs" for e in entries)
        commits = len(hub.commits)
        with pytest.raises(RemoteError, match="HTTP 401"):
            push_eval_results(result, "lab/sespect", "lab/ct-degradbench", endpoint=hub.url, token="hf_wrong")
        constants.HF_HUB_OFFLINE = True
        try:
            with pytest.raises(RemoteError, match="offline"):
                push_eval_results(result, "lab/sespect", "lab/ct-degradbench", endpoint=hub.url, token=TOKEN)
        finally:
            constants.HF_HUB_OFFLINE = False
        assert len(hub.commits) == commits           # nothing half-written
        local = tmp_path / "sespect"
        (local / ".eval_results").mkdir(parents=True)
        (local / ".eval_results" / "ct-degradbench.yaml").write_bytes(files[".eval_results/ct-degradbench.yaml"])
    table = show([out, local])
    assert "| model-a |" in table and "| sespect |" in table
    assert f"{result['tasks']['degradation_classification_accuracy']:.4f}" in table
    capsys.readouterr()


def test_eval_tasks_rejects_incomplete_predictions(bench_folder, tmp_path, capsys):
    _, preds, _ = predictions(bench_folder, tmp_path)
    path = tmp_path / "partial.jsonl"
    path.write_text("\n".join(json.dumps(p) for p in preds[:5]))
    code = ct_degradbench.main(["bench", "tasks", "--dataset", str(bench_folder), "--predictions", str(path),
                                "--out", str(tmp_path / "t.json")])
    assert code == 2 and "cover 5 of the 36" in capsys.readouterr().err
