"""The Hub leaderboard: the dataset's ``eval.yaml``, a model's ``.eval_results/*.yaml``, push, show.

As the Hub documents it (docs/hub/eval-results, a work-in-progress feature): a dataset repo
becomes a *benchmark* with an ``eval.yaml`` at its root::

    name: CT-DegradBench
    description: ...
    evaluation_framework: ct-degradbench
    tasks:
      - id: degradation_classification_accuracy
        config: all
        split: test

and a model repo publishes scores as ``.eval_results/*.yaml``, a list of entries
``{dataset: {id, task_id[, revision]}, value[, date][, source: {url[, name][, user]}][, notes]}``
(written with huggingface_hub's ``EvalResultEntry``). The Hub validates ``eval.yaml`` at push
time and shows a benchmark's leaderboard once the dataset is on its allow-list.

Task values are read from a ``bench tasks`` result (:data:`TASKS` says where); higher is
better for every task.
"""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path

import yaml

from ctdegradbench.core.benchmark import (DEFAULT_DESCRIPTION, DEFAULT_FRAMEWORK, DEFAULT_NAME,  # noqa: F401
                                          EVAL_YAML, TASKS, Task, eval_yaml_content, write_eval_yaml_file)
from ctdegradbench.core.errors import InputError, InputNotFoundError, OptionError, RemoteError

EVAL_RESULTS_FOLDER = ".eval_results"


def task_values(result: dict, tasks=TASKS) -> dict[str, float]:
    """``{task id: value}`` of the tasks a ``bench tasks`` result (or the metrics of
    ``ct-degradbench evaluate``) holds; undefined ones are left out."""
    values = {}
    for task in tasks:
        node = result
        for key in (task.path if result.get("kind") != "evaluate" else (task.metric_key,)):
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, (int, float)) and not math.isnan(node):
            values[task.id] = float(node)
    return values


def _declared_splits(folder: Path) -> dict[str, set[str]]:
    from ctdegradbench.builder.dataset.reader import ExportedFolder

    return {config: {s for s, files in splits.items() if files} for config, splits in ExportedFolder(folder).files.items()}


def write_eval_yaml(folder, *, name: str = DEFAULT_NAME, description: str = DEFAULT_DESCRIPTION,
                    evaluation_framework: str = DEFAULT_FRAMEWORK, tasks=TASKS, check: bool = True) -> Path:
    """Write ``<folder>/eval.yaml`` registering the benchmark tasks; return its path.

    With ``check`` (default) every task's config and split must be declared, with files, in the
    folder's ``README.md`` (so call it after the card and data are written, before the folder is
    moved into place). The file is written through a temporary name and a rename.

    Raises
    ------
    InputError
        A task whose config / split the folder does not hold.
    """
    folder = Path(folder)
    if check:
        declared = _declared_splits(folder)
        for task in tasks:
            if task.split not in declared.get(task.config, set()):
                raise InputError(f"task {task.id}: config {task.config!r} split {task.split!r} is not in {folder}")
    return write_eval_yaml_file(folder, eval_yaml_content(name, description, evaluation_framework, tasks))


def eval_result_entries(result: dict, dataset_id: str, *, source_url: str | None = None,
                        source_name: str | None = None, date: str | None = None, revision: str | None = None,
                        notes: str | None = None):
    """``EvalResultEntry`` objects (huggingface_hub) for every task value of a ``bench tasks`` result."""
    from huggingface_hub import EvalResultEntry

    values = result.get("tasks") or task_values(result)
    if not values:
        raise InputError("the results hold no leaderboard task value; run `ct-degradbench bench tasks` or "
                         "`ct-degradbench evaluate` first")
    date = date or datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    return [EvalResultEntry(dataset_id=dataset_id, task_id=task_id, value=round(value, 6), dataset_revision=revision,
                            date=date, source_url=source_url, source_name=source_name if source_url else None,
                            notes=notes)
            for task_id, value in values.items()]


def eval_results_yaml(entries) -> str:
    """The ``.eval_results/*.yaml`` text of ``entries``."""
    from huggingface_hub import eval_result_entries_to_yaml

    return yaml.safe_dump(eval_result_entries_to_yaml(list(entries)), sort_keys=False)


def load_results(path) -> dict:
    """A ``results.json`` (or a folder holding one) written by ``bench``, or ``evaluate``'s metrics JSON."""
    path = Path(path)
    path = path / "results.json" if path.is_dir() else path
    if not path.is_file():
        raise InputNotFoundError(f"no benchmark results at {path}")
    return json.loads(path.read_text(encoding="utf-8"))


def push_eval_results(result: dict, repo_id: str, dataset_id: str, *, filename: str = "ct-degradbench.yaml",
                      token: str | None = None, endpoint: str | None = None, revision: str | None = None,
                      create_pr: bool = False, source_url: str | None = None, source_name: str | None = None) -> str:
    """Upload ``.eval_results/<filename>`` with the task values of ``result`` to the model repo ``repo_id``.

    One commit of one file: either the file is on the Hub afterwards or nothing changed.
    Returns the commit (or pull request) URL.

    Raises
    ------
    RemoteError
        Offline mode, no token, an unreachable endpoint or a refusal (with the server's message).
    """
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    from ctdegradbench.builder.dataset.hub import http_refusal, one_line, resolve_token, transport_errors

    _check_names(dataset_id, filename, repo_id)
    text = eval_results_yaml(eval_result_entries(result, dataset_id, source_url=source_url, source_name=source_name))
    if constants.HF_HUB_OFFLINE:
        raise RemoteError("offline mode is on (HF_HUB_OFFLINE is set): unset it to push results; nothing was written")
    api = HfApi(endpoint=endpoint, token=resolve_token(token))
    try:
        info = api.upload_file(path_or_fileobj=text.encode("utf-8"), path_in_repo=f"{EVAL_RESULTS_FOLDER}/{filename}",
                               repo_id=repo_id, repo_type="model", revision=revision, create_pr=create_pr,
                               commit_message=f"CT-DegradBench evaluation results ({', '.join(result.get('tasks', {}))})")
    except OfflineModeIsEnabled as err:
        raise RemoteError(f"offline mode is on: {one_line(err)}; nothing was written") from None
    except HfHubHTTPError as err:
        raise RemoteError(f"the Hub at {api.endpoint} refused the upload to {repo_id} with {http_refusal(err)}; "
                          "nothing was written") from None
    except (*transport_errors(), OSError) as err:
        raise RemoteError(f"cannot reach the Hub at {api.endpoint}: {type(err).__name__}: {one_line(err)}; "
                          "nothing was written") from None
    return str(info.pr_url or info.commit_url)


def model_card_block(result: dict, dataset_id: str, model_name: str | None = None) -> str:
    """The model card's results, as a Markdown block to paste into a model repo's ``README.md``:
    the ``model-index`` metadata (YAML front matter, huggingface_hub's ``ModelCardData``) and a
    table of the leaderboard task values."""
    from huggingface_hub import EvalResult, ModelCardData

    values = result.get("tasks") or task_values(result)
    if not values:
        raise InputError("the results hold no leaderboard task value; run `ct-degradbench bench tasks` or "
                         "`ct-degradbench evaluate` first")
    described = {t.id: t.description for t in TASKS}
    split = result.get("split", "test")
    split = split.get("name", "test") if isinstance(split, dict) else split      # evaluate: {name, rows, ...}
    data = ModelCardData(model_name=model_name or result.get("model") or "model", eval_results=[
        EvalResult(task_type=task_id, dataset_type=dataset_id, dataset_name=f"CT-DegradBench ({split} split)",
                   dataset_config=result.get("config", "all"), dataset_split=split,
                   metric_type=task_id, metric_value=round(value, 6)) for task_id, value in values.items()])
    rows = "\n".join(f"| {task_id} | {value:.4f} | {described.get(task_id, '')} |" for task_id, value in values.items())
    return (f"---\n{data.to_yaml()}\n---\n\n## CT-DegradBench results\n\n"
            f"Dataset `{dataset_id}`, config `{result.get('config', 'all')}`, split `{split}`; "
            "higher is better.\n\n| task | value | what |\n|---|---:|---|\n" + rows + "\n")


CARD_BLOCK = "model_card_results.md"   # the model-card block written by a dry run


def write_eval_results_locally(result: dict, folder, dataset_id: str, *, filename: str = "ct-degradbench.yaml",
                               source_url: str | None = None, source_name: str | None = None,
                               model_name: str | None = None) -> list[Path]:
    """``leaderboard push --dry-run``: write ``<folder>/.eval_results/<filename>`` (exactly the
    text a push uploads) and ``<folder>/model_card_results.md`` (:func:`model_card_block`);
    return both paths. ``leaderboard show <folder>`` reads the first back.

    Raises
    ------
    OptionError
        A dataset id that is not ORG/NAME or a file name that is not NAME.yaml.
    InputError
        Either file exists already (nothing is overwritten; nothing is written).
    """
    _check_names(dataset_id, filename)
    folder = Path(folder)
    text = eval_results_yaml(eval_result_entries(result, dataset_id, source_url=source_url, source_name=source_name))
    block = model_card_block(result, dataset_id, model_name)
    targets = [folder / EVAL_RESULTS_FOLDER / filename, folder / CARD_BLOCK]
    existing = [str(t) for t in targets if t.exists()]
    if existing:
        raise InputError(f"{', '.join(existing)} exists already: give another --dry-run folder or --filename "
                         "(nothing was written)")
    targets[0].parent.mkdir(parents=True, exist_ok=True)
    for target, content in zip(targets, (text, block)):
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(content, encoding="utf-8")
        tmp.replace(target)
    return targets


def _check_names(dataset_id: str, filename: str, repo_id: str | None = None) -> None:
    if dataset_id.count("/") != 1 or (repo_id is not None and repo_id.count("/") != 1):
        raise OptionError(f"--repo-id and --dataset-id must be ORG/NAME, got {repo_id!r} and {dataset_id!r}")
    if not filename.endswith(".yaml") or "/" in filename:
        raise OptionError(f"--filename must be a plain NAME.yaml, got {filename!r}")


# ------------------------------------------------------------------ show

def _read_eval_results(folder: Path) -> dict[str, float]:
    values = {}
    for path in sorted((folder / EVAL_RESULTS_FOLDER).glob("*.yaml")):
        for entry in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            values[entry["dataset"]["task_id"]] = float(entry["value"])
    return values


def show(paths) -> str:
    """A Markdown leaderboard of ``paths``: ``bench tasks`` results and model folders with
    ``.eval_results/`` become rows of the model table; ``bench iqa`` / ``bench drift`` results
    become score leaderboards (oriented Spearman per setting)."""
    from ctdegradbench.evaluation.report import TARGET_TITLES, leaderboard_table

    models, sections = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir() and (path / EVAL_RESULTS_FOLDER).is_dir():
            models.append((path.name, _read_eval_results(path)))
            continue
        result = load_results(path)
        if result.get("kind") in ("tasks", "evaluate"):
            models.append((result.get("model", path.stem), result.get("tasks") or task_values(result)))
        elif result.get("kind") in ("iqa", "drift"):
            for target in result["targets"]:
                sections.append(f"## {result['kind']} scores, {TARGET_TITLES.get(target, target)} ({path})\n\n"
                                + leaderboard_table(result, target))
        else:
            raise InputError(f"{path}: not a ct-degradbench result (expected the JSON of `bench tasks`, `bench iqa`, "
                             "`bench drift` or `evaluate`, or a folder with .eval_results/)")
    parts = []
    if models:
        ids = [t.id for t in TASKS if any(t.id in v for _, v in models)]
        lines = ["| Model | " + " | ".join(ids) + " |", "|---|" + "---:|" * len(ids)]
        ranked = sorted(models, key=lambda m: -m[1].get(ids[0], -math.inf) if ids else 0)
        for name, values in ranked:
            lines.append(f"| {name} | " + " | ".join(f"{values[i]:.4f}" if i in values else "n/a" for i in ids) + " |")
        parts.append("## Models (higher is better)\n\n" + "\n".join(lines))
    return "\n\n".join(parts + sections) + "\n"
