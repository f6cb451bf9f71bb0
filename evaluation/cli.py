"""The benchmark's commands of ``ct-degradbench``: their options (``option()`` dataclasses,
validated once in ``__post_init__``) and their handlers, named by the command table
(``ct_degradbench.COMMANDS``). torch, piq and datasets load inside the handlers.

    ct-degradbench bench iqa   --dataset DIR [--configs ...] [--metrics ...] --out DIR
    ct-degradbench bench drift --dataset DIR [--configs ...] [--encoders ...] --out DIR
    ct-degradbench bench tasks --dataset DIR --predictions FILE --out FILE
    ct-degradbench leaderboard push --results FILE --repo-id ORG/MODEL --dataset-id ORG/DATASET [--dry-run DIR]
    ct-degradbench leaderboard show PATH...
    ct-degradbench leaderboard eval-yaml DIR
    ct-degradbench metrics list
    ct-degradbench metrics push --namespace ORG
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ctdegradbench.core.options import option
from ctdegradbench.evaluation import METRIC_MODULES
from ctdegradbench.evaluation.encoders import DEFAULT_ENCODERS
from ctdegradbench.evaluation.iqa import DEFAULT_METRICS, METRICS
from ctdegradbench.evaluation.options import BenchOptions


@dataclass(kw_only=True)
class IQAOptions(BenchOptions):
    """``bench iqa``: the run options and the metrics."""

    metrics: tuple[str, ...] = option(DEFAULT_METRICS, f"metrics to compute, any of {', '.join(METRICS)}",
                                      many=True, choices=tuple(METRICS), metavar="METRIC")
    weights_dir: Path | None = option(None, "folder holding checkpoints/<file> for lpips / dists", type=Path,
                                      none_means="torch's hub folder")


@dataclass(kw_only=True)
class DriftOptions(BenchOptions):
    """``bench drift``: the run options and the encoders."""

    encoders: tuple[str, ...] = option(DEFAULT_ENCODERS, "encoders to compare", many=True, metavar="ENCODER")


@dataclass(frozen=True, kw_only=True)
class TasksOptions:
    """``bench tasks``: the predictions to score and where the result goes."""

    dataset: Path = option(help="dataset folder", type=Path)
    predictions: Path = option(help="predictions .jsonl, .csv or predict's .json", type=Path)
    config: str = option("all", "config the predictions cover")
    split: str = option("test", "split the predictions cover")
    model: str | None = option(None, "model name in the results", none_means="the predictions file name")
    out: Path = option(help="results JSON to write", type=Path)


@dataclass(frozen=True, kw_only=True)
class LeaderboardPushOptions:
    """``leaderboard push``: a result and the model repository it is published to."""

    results: Path = option(help="results JSON of `bench tasks` or `evaluate`", type=Path)
    repo_id: str | None = option(None, "ORG/NAME of the model repo (required unless --dry-run)")
    dry_run: Path | None = option(None, "write the files into DIR instead of uploading (existing files are never "
                                  "replaced)", type=Path, metavar="DIR")
    dataset_id: str = option(help="ORG/NAME of the benchmark dataset repo (with eval.yaml)")
    filename: str = option("ct-degradbench.yaml", "file name under .eval_results/")
    source_url: str | None = option(None, "URL of the evaluation's source (logs, paper, ...)")
    source_name: str | None = option(None, "display name of the source")
    create_pr: bool = option(False, "open a pull request instead of committing")
    revision: str | None = option(None, "branch to commit to", none_means="the repository's main branch")
    token: str | None = option(None, "Hugging Face token", none_means="the stored login or HF_TOKEN")
    endpoint: str | None = option(None, "Hub endpoint URL", none_means="huggingface.co")


@dataclass(frozen=True, kw_only=True)
class ShowOptions:
    """``leaderboard show``: result files or folders."""

    paths: tuple[Path, ...] = option(help="results.json files or folders holding one or .eval_results/", type=Path,
                                     positional=True, nargs="+")


@dataclass(frozen=True, kw_only=True)
class EvalYamlOptions:
    """``leaderboard eval-yaml``: the dataset folder that gets the benchmark's registration."""

    folder: Path = option(help="exported dataset folder", type=Path, positional=True)
    evaluation_framework: str = option("ct-degradbench", "framework id written to eval.yaml")


@dataclass(frozen=True, kw_only=True)
class MetricsPushOptions:
    """``metrics push``: the Hub namespace and the metrics published there."""

    namespace: str = option(help="Hub user or organisation (ORG)")
    names: tuple[str, ...] = option(METRIC_MODULES, f"metrics to push, any of {', '.join(METRIC_MODULES)}",
                                    many=True, choices=METRIC_MODULES, metavar="NAME")
    private: bool = option(False, "create missing Spaces private")
    token: str | None = option(None, "Hugging Face token", none_means="the stored login or HF_TOKEN")
    endpoint: str | None = option(None, "Hub endpoint URL", none_means="huggingface.co")


def _bench_output(options: BenchOptions, kind: str):
    """The output folder of ``bench iqa|drift``, refused before torch loads when it would replace a user's files."""
    from ctdegradbench.core.outputs import OutputFolder

    output = OutputFolder(options.out, f"bench {kind}")
    for rel in ("results.json", "tables.md"):
        output.may_write(rel)
    if options.threads is not None:
        import torch

        torch.set_num_threads(options.threads)
    return output


def bench_iqa(options: IQAOptions) -> int:
    from ctdegradbench.core.outputs import OutputFolder

    _bench_output(options, "iqa")
    from ctdegradbench.evaluation.runner import run_iqa

    run_iqa(options, list(options.metrics))
    print(OutputFolder(options.out, "bench iqa").summary())
    return 0


def bench_drift(options: DriftOptions) -> int:
    from ctdegradbench.core.outputs import OutputFolder

    _bench_output(options, "drift")
    from ctdegradbench.evaluation.runner import run_drift

    run_drift(options, list(options.encoders))
    print(OutputFolder(options.out, "bench drift").summary())
    return 0


def bench_tasks(options: TasksOptions) -> int:
    from ctdegradbench.core.outputs import check_file_output, write_json_output

    check_file_output(options.out)           # before any work
    from ctdegradbench.evaluation.tasks import run_tasks

    result = run_tasks(options.dataset, options.predictions, options.config, options.split, options.model)
    write_json_output(options.out, result)
    print("\n".join(f"{task}: {value:.4f}" for task, value in result["tasks"].items()))
    print(f"results written to {options.out}")
    return 0


def leaderboard_push(options: LeaderboardPushOptions) -> int:
    from ctdegradbench.core.errors import OptionError
    from ctdegradbench.evaluation.leaderboard import load_results, push_eval_results, write_eval_results_locally

    if options.dry_run is not None:
        paths = write_eval_results_locally(load_results(options.results), options.dry_run, options.dataset_id,
                                           filename=options.filename, source_url=options.source_url,
                                           source_name=options.source_name,
                                           model_name=options.repo_id.split("/")[-1] if options.repo_id else None)
        print("dry run, nothing uploaded; wrote " + " and ".join(str(p) for p in paths)
              + f"; view with: ct-degradbench leaderboard show {options.dry_run}")
        return 0
    if options.repo_id is None:
        raise OptionError("--repo-id ORG/NAME is required to push (or give --dry-run DIR to write the files locally)")
    url = push_eval_results(load_results(options.results), options.repo_id, options.dataset_id,
                            filename=options.filename, token=options.token, endpoint=options.endpoint,
                            revision=options.revision, create_pr=options.create_pr, source_url=options.source_url,
                            source_name=options.source_name)
    print(f"uploaded .eval_results/{options.filename} to {url}")
    return 0


def leaderboard_show(options: ShowOptions) -> int:
    from ctdegradbench.evaluation.leaderboard import show

    print(show(list(options.paths)), end="")
    return 0


def leaderboard_eval_yaml(options: EvalYamlOptions) -> int:
    from ctdegradbench.evaluation.leaderboard import write_eval_yaml

    print(f"written {write_eval_yaml(options.folder, evaluation_framework=options.evaluation_framework)}")
    return 0


def metrics_list(options=None) -> int:
    from ctdegradbench.evaluation import metric_module_path
    from ctdegradbench.evaluation.metrics_hub import load_forms

    for name in METRIC_MODULES:
        print(f"{name}: {metric_module_path(name)}")
        for where, line in load_forms(name):
            print(f"  {where}:\n    {line}")
    return 0


def metrics_push(options: MetricsPushOptions) -> int:
    from ctdegradbench.evaluation.metrics_hub import push_metrics

    for name, url in push_metrics(options.namespace, list(options.names), token=options.token,
                                  endpoint=options.endpoint, private=options.private).items():
        print(f"{options.namespace}/{name}: {url}  ->  evaluate.load('{options.namespace}/{name}')")
    return 0
