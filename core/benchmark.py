"""The benchmark's leaderboard tasks: the dataset export registers them in its ``eval.yaml``, the
evaluation scores them (so they live in the kernel, below both).

The Hugging Face Hub shows a leaderboard for a benchmark dataset whose repository root holds
an ``eval.yaml`` (``name``, ``description``, ``evaluation_framework`` and ``tasks``, each
``{id, config, split}``); model repositories publish their scores for these task ids in
``.eval_results/*.yaml`` (``ct-degradbench leaderboard push``). The tasks are one place
(:data:`TASKS`): the export writes them, the leaderboard commands read them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

EVAL_YAML = "eval.yaml"
DEFAULT_FRAMEWORK = "ct-degradbench"
DEFAULT_NAME = "CT-DegradBench"
DEFAULT_DESCRIPTION = (
    "CT-DegradBench: physics-informed CT degradations (noise, blur, streaks, sparse-view aliasing, metal and five "
    "mixtures, four severity levels each) simulated in the sinogram domain from real CT. Tasks: degradation-type "
    "classification and severity estimation on the test split, whose patients are never seen in training.")


@dataclass(frozen=True)
class Task:
    """A leaderboard task: its id, the dataset config and split, where a ``bench tasks``
    result holds its value (``path`` of keys) and the key of the same value in the metrics of
    ``ct-degradbench evaluate`` (``metric_key``)."""

    id: str
    path: tuple[str, ...]
    metric_key: str
    description: str
    config: str = "all"
    split: str = "test"


TASKS: tuple[Task, ...] = (
    Task("degradation_classification_accuracy", ("classification", "accuracy"), "accuracy",
         "accuracy of the degradation type over all settings"),
    Task("degradation_classification_macro_f1", ("classification", "macro_f1"), "macro_f1",
         "macro F1 of the degradation type"),
    Task("severity_spearman_single", ("severity", "mean_spearman_single"), "mean_spearman_single",
         "Spearman of predicted severity with the level, mean over the single settings"),
    Task("severity_spearman_mixture", ("severity", "mean_spearman_mixtures"), "mean_spearman_mixtures",
         "Spearman of predicted severity with the level, mean over the mixtures"),
    Task("severity_qwk", ("severity", "qwk"), "qwk", "quadratic weighted kappa of the rounded predicted severity"),
)


def eval_yaml_content(name: str = DEFAULT_NAME, description: str = DEFAULT_DESCRIPTION,
                      evaluation_framework: str = DEFAULT_FRAMEWORK, tasks=TASKS) -> dict:
    """The ``eval.yaml`` mapping: name, description, evaluation_framework, tasks [{id, config, split}]."""
    return {"name": name, "description": description, "evaluation_framework": evaluation_framework,
            "tasks": [{"id": t.id, "config": t.config, "split": t.split} for t in tasks]}


def write_eval_yaml_file(folder, content: dict) -> Path:
    """Write ``content`` as ``<folder>/eval.yaml`` through a temporary name and a rename."""
    path = Path(folder) / EVAL_YAML
    tmp = Path(folder) / f".{EVAL_YAML}.tmp"
    tmp.write_text(yaml.safe_dump(content, sort_keys=False, allow_unicode=True, width=100), encoding="utf-8")
    os.replace(tmp, path)
    return path
