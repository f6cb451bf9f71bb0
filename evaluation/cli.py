"""The benchmark's commands of ``ct-degradbench`` (registered by :func:`add_commands`).

Sub-commands::

    ct-degradbench bench iqa   --dataset DIR [--configs ...] [--metrics ...] --out DIR
    ct-degradbench bench drift --dataset DIR [--configs ...] [--encoders ...] --out DIR
    ct-degradbench bench tasks --dataset DIR --predictions FILE --out FILE
    ct-degradbench leaderboard push --results FILE --repo-id ORG/MODEL --dataset-id ORG/DATASET [--dry-run DIR]
    ct-degradbench leaderboard show PATH...
    ct-degradbench metrics list
    ct-degradbench metrics push --namespace ORG
    ct-degradbench leaderboard eval-yaml DIR

Only argparse and pathlib are imported here; torch, piq and datasets load inside the commands.
"""

from __future__ import annotations

import argparse
from pathlib import Path



class _FORMATTER(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help unless the help already states its default
    or there is none to state (None, False, a required option)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or action.required:
            return text
        return f"{text} (default: %(default)s)"


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", type=Path, required=True, help="dataset folder written by `ct-degradbench build`")
    p.add_argument("--configs", nargs="+", default=None, metavar="CONFIG",
                   help="setting configs to evaluate (default: every setting config of the dataset)")
    p.add_argument("--split", default="test", help="split to evaluate (patients unseen by any model: test)")
    p.add_argument("--out", type=Path, required=True,
                   help="output folder: results.json, tables.md, *.png, configs/*.json (reused on rerun)")
    p.add_argument("--targets", nargs="+", default=["reference", "clean_fbp"], choices=["reference", "clean_fbp"],
                   help="what each degraded image is compared with: the reference slice and/or its clean FBP")
    p.add_argument("--window", nargs=2, type=float, default=[-300.0, 300.0], metavar=("LO", "HI"),
                   help="HU window mapped to [0, 1] before every metric / encoder (values outside are clipped)")
    p.add_argument("--max-references", type=int, default=None, metavar="N",
                   help="evaluate only N reference slices of each config, spread over patients (each patient's "
                        "first slice, then second, ...), with all their levels; the counts used / available are "
                        "recorded (default: all)")
    p.add_argument("--batch-size", type=int, default=8, help="images per batch (>= 1)")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")
    p.add_argument("--bootstrap", type=int, default=1000,
                   help="bootstrap resamples over patients for the correlation CIs (0: no CIs)")
    p.add_argument("--confidence", type=float, default=0.95, help="level of the bootstrap CIs, in (0, 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_commands(sub, active: str | None = None, argv=()) -> None:
    """Register ``bench`` and ``leaderboard`` on ``sub`` (an ``argparse`` sub-parsers object).

    ``active`` and ``argv`` (the command being run and its arguments) are the dispatcher's
    protocol; these commands are cheap to declare, so they are always declared in full.
    """
    from ctdegradbench.evaluation.encoders import DEFAULT_ENCODERS
    from ctdegradbench.evaluation.iqa import DEFAULT_METRICS, METRICS

    bench = sub.add_parser("bench", help="benchmark IQA metrics / embedding drift against severity, score estimators",
                           description="Reproduce the paper's benchmark on a built dataset: IQA metrics (Tables 1, 10) "
                                       "and embedding drift (Tables 11, 12) against severity, per setting and level; "
                                       "score an estimator's predictions (classification, severity).")
    bsub = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCH")

    p = bsub.add_parser("iqa", help="full-reference (and no-reference) IQA metrics vs severity",
                        formatter_class=_FORMATTER,
                        description="Every degraded image of the split against its reference slice and its clean FBP: "
                                    "mean +- std per setting and level (Table 10), Spearman / Pearson / Kendall with "
                                    "severity per setting with patient-bootstrap CIs (Table 1), figures and a leaderboard "
                                    "of metrics. Metrics: " + ", ".join(
                                        f"{m.name} ({m.implementation})" for m in METRICS.values()) + ".")
    p.set_defaults(func=_cmd_iqa)
    _add_run_options(p)
    p.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS), choices=list(METRICS), metavar="METRIC",
                   help=f"metrics to compute, any of {', '.join(METRICS)}")
    p.add_argument("--weights-dir", type=Path, default=None,
                   help="folder holding checkpoints/<file> for lpips / dists (default: torch's hub folder)")

    p = bsub.add_parser("drift", help="embedding drift (1 - cosine) of image encoders vs severity",
                        formatter_class=_FORMATTER,
                        description="Cosine distance between the embeddings of each degraded image and of its "
                                    "reference / clean FBP, per setting and level (Table 12), and its correlation with "
                                    "severity (Table 11). Encoders: efficientnet_lite0[@SIZE], st_lpips_alex, "
                                    "st_lpips_vgg (offline), open_clip:hf-hub:ORG/REPO, open_clip:local-dir:/path, "
                                    "open_clip:ARCH@/checkpoint (no CLIP weights ship on PyPI: local ones offline).")
    p.set_defaults(func=_cmd_drift)
    _add_run_options(p)
    p.add_argument("--encoders", nargs="+", default=list(DEFAULT_ENCODERS), metavar="ENCODER",
                   help="encoders to compare")

    p = bsub.add_parser("tasks", help="score an estimator's predictions (classification, severity)",
                        formatter_class=_FORMATTER,
                        description="Degradation-type classification (accuracy, macro F1, per-class one-vs-rest, ROC AUC, "
                                    "confusion) and severity estimation (MAE, RMSE, QWK, Spearman per setting) through "
                                    "the evaluate modules; writes a results JSON for `leaderboard push`. Predictions: "
                                    ".jsonl or .csv rows with sample_id, label (index or class name), severity (float, "
                                    "level units; or level), probabilities ({class: p}, JSON only), as `evaluate "
                                    "--predictions` writes them; or the JSON of `predict --json`.")
    p.set_defaults(func=_cmd_tasks)
    p.add_argument("--dataset", type=Path, required=True, help="dataset folder")
    p.add_argument("--predictions", type=Path, required=True, help="predictions .jsonl, .csv or predict's .json")
    p.add_argument("--config", default="all", help="config the predictions cover")
    p.add_argument("--split", default="test", help="split the predictions cover")
    p.add_argument("--model", default=None, help="model name in the results (default: the predictions file name)")
    p.add_argument("--out", type=Path, required=True, help="results JSON to write")

    board = sub.add_parser("leaderboard", help="Hub leaderboard: push a model's results, show local tables",
                           description="Publish scores as the Hub shows them (a model repo's .eval_results/*.yaml, "
                                       "a benchmark dataset's eval.yaml) and render local leaderboards.")
    lsub = board.add_subparsers(dest="leaderboard_command", required=True, metavar="ACTION")

    p = lsub.add_parser("push", help="upload .eval_results/<file>.yaml to a model repo", formatter_class=_FORMATTER,
                        description="Write the task values of a `bench tasks` result (or of `evaluate`'s metrics "
                                    "JSON) as .eval_results/<file>.yaml of the model repo, in one commit (nothing is "
                                    "written if it fails). With --dry-run DIR nothing is uploaded: DIR/.eval_results/"
                                    "<file>.yaml and DIR/model_card_results.md (model-index + table) are written.")
    p.set_defaults(func=_cmd_push)
    p.add_argument("--results", type=Path, required=True, help="results JSON of `bench tasks` or `evaluate`")
    p.add_argument("--repo-id", default=None, help="ORG/NAME of the model repo (required unless --dry-run)")
    p.add_argument("--dry-run", type=Path, default=None, metavar="DIR",
                   help="write the files into DIR instead of uploading (existing files are never replaced)")
    p.add_argument("--dataset-id", required=True, help="ORG/NAME of the benchmark dataset repo (with eval.yaml)")
    p.add_argument("--filename", default="ct-degradbench.yaml", help="file name under .eval_results/")
    p.add_argument("--source-url", default=None, help="URL of the evaluation's source (logs, paper, ...)")
    p.add_argument("--source-name", default=None, help="display name of the source")
    p.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    p.add_argument("--revision", default=None, help="branch to commit to")
    p.add_argument("--token", default=None, help="Hugging Face token (default: the stored login or HF_TOKEN)")
    p.add_argument("--endpoint", default=None, help="Hub endpoint URL (default: huggingface.co)")

    p = lsub.add_parser("show", help="render local leaderboards (Markdown)",
                        description="Model table from `bench tasks` results or folders with .eval_results/, and "
                                    "score leaderboards (which metric / encoder tracks severity best) from "
                                    "`bench iqa` / `bench drift` results.")
    p.set_defaults(func=_cmd_show)
    p.add_argument("paths", nargs="+", type=Path, help="results.json files or folders holding one or .eval_results/")

    _add_metrics_commands(sub)

    p = lsub.add_parser("eval-yaml", help="write eval.yaml (benchmark registration) into a dataset folder",
                        formatter_class=_FORMATTER)
    p.set_defaults(func=_cmd_eval_yaml)
    p.add_argument("folder", type=Path, help="exported dataset folder")
    p.add_argument("--evaluation-framework", default="ct-degradbench", help="framework id written to eval.yaml")


def _add_metrics_commands(sub) -> None:
    from ctdegradbench.evaluation import METRIC_MODULES

    metrics = sub.add_parser("metrics", help="the evaluate modules: where each load form works, push to the Hub",
                             description="The benchmark's task metrics are evaluate modules (ct_severity_corr, "
                                         "ct_degradation_classification, ct_severity_estimation).")
    msub = metrics.add_subparsers(dest="metrics_command", required=True, metavar="ACTION")
    p = msub.add_parser("list", help="each metric's folder and the forms that load it, with where they work")
    p.set_defaults(func=_cmd_metrics_list)
    p = msub.add_parser("push", help="publish the metrics as Hub Spaces ORG/<name> for evaluate.load('ORG/<name>')",
                        formatter_class=_FORMATTER,
                        description="Create (if missing) the Space ORG/<name> of each metric and commit its script, "
                                    "README, app.py (evaluate's widget) and requirements.txt, one commit per metric.")
    p.set_defaults(func=_cmd_metrics_push)
    p.add_argument("--namespace", required=True, help="Hub user or organisation (ORG)")
    p.add_argument("--names", nargs="+", default=list(METRIC_MODULES), choices=list(METRIC_MODULES), metavar="NAME",
                   help=f"metrics to push, any of {', '.join(METRIC_MODULES)} (default: all)")
    p.add_argument("--private", action="store_true", help="create missing Spaces private")
    p.add_argument("--token", default=None, help="Hugging Face token (default: the stored login or HF_TOKEN)")
    p.add_argument("--endpoint", default=None, help="Hub endpoint URL (default: huggingface.co)")


def _cmd_metrics_list(args) -> int:
    from ctdegradbench.evaluation import METRIC_MODULES, metric_module_path
    from ctdegradbench.evaluation.metrics_hub import load_forms

    for name in METRIC_MODULES:
        print(f"{name}: {metric_module_path(name)}")
        for where, line in load_forms(name):
            print(f"  {where}:\n    {line}")
    return 0


def _cmd_metrics_push(args) -> int:
    from ctdegradbench.evaluation.metrics_hub import push_metrics

    for name, url in push_metrics(args.namespace, args.names, token=args.token, endpoint=args.endpoint,
                                  private=args.private).items():
        print(f"{args.namespace}/{name}: {url}  ->  evaluate.load('{args.namespace}/{name}')")
    return 0


def _check_options(args) -> None:
    """The option checks of ``bench iqa|drift`` and their output folder, before torch loads."""
    from ctdegradbench.core.errors import OptionError
    from ctdegradbench.core.outputs import OutputFolder

    if args.batch_size < 1:
        raise OptionError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.max_references is not None and args.max_references < 1:
        raise OptionError(f"--max-references must be >= 1, got {args.max_references}")
    if args.bootstrap < 0:
        raise OptionError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    if not 0 < args.confidence < 1:
        raise OptionError(f"--confidence must be in (0, 1), got {args.confidence}")
    if args.threads is not None and args.threads < 1:
        raise OptionError(f"--threads must be >= 1, got {args.threads}")
    if not args.window[0] < args.window[1]:
        raise OptionError(f"--window LO HI needs LO < HI, got {args.window[0]:g} {args.window[1]:g}")
    if not args.dataset.is_dir():
        from ctdegradbench.core.errors import InputNotFoundError

        what = "is not a folder" if args.dataset.exists() else "does not exist"
        raise InputNotFoundError(f"--dataset {args.dataset} {what}: give a folder written by ct-degradbench build")
    output = OutputFolder(args.out, f"bench {args.bench_command}")   # refused when it would replace a user's files
    for rel in ("results.json", "tables.md"):
        output.may_write(rel)


def _options(args):
    from ctdegradbench.evaluation.runner import BenchOptions

    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    return BenchOptions(dataset=args.dataset, out=args.out, configs=args.configs, split=args.split,
                        batch_size=args.batch_size, device=args.device, window=tuple(args.window),
                        targets=tuple(args.targets), n_boot=args.bootstrap, seed=args.seed,
                        confidence=args.confidence, max_references=args.max_references, weights_dir=getattr(args, "weights_dir", None),
                        progress=not args.quiet, figures=not args.no_figures)


def _cmd_iqa(args) -> int:
    from ctdegradbench.core.outputs import OutputFolder

    _check_options(args)                   # before torch loads
    from ctdegradbench.evaluation.runner import run_iqa

    run_iqa(_options(args), args.metrics)
    print(OutputFolder(args.out, "bench iqa").summary())
    return 0


def _cmd_drift(args) -> int:
    from ctdegradbench.core.outputs import OutputFolder

    _check_options(args)                   # before torch loads
    from ctdegradbench.evaluation.runner import run_drift

    run_drift(_options(args), args.encoders)
    print(OutputFolder(args.out, "bench drift").summary())
    return 0


def _cmd_tasks(args) -> int:
    from ctdegradbench.core.outputs import check_file_output, write_json_output

    check_file_output(args.out)           # before any work
    from ctdegradbench.evaluation.tasks import run_tasks

    result = run_tasks(args.dataset, args.predictions, args.config, args.split, args.model)
    write_json_output(args.out, result)
    print("\n".join(f"{task}: {value:.4f}" for task, value in result["tasks"].items()))
    print(f"results written to {args.out}")
    return 0


def _cmd_push(args) -> int:
    from ctdegradbench.core.errors import OptionError
    from ctdegradbench.evaluation.leaderboard import load_results, push_eval_results, write_eval_results_locally

    if args.dry_run is not None:
        paths = write_eval_results_locally(load_results(args.results), args.dry_run, args.dataset_id,
                                           filename=args.filename, source_url=args.source_url,
                                           source_name=args.source_name,
                                           model_name=args.repo_id.split("/")[-1] if args.repo_id else None)
        print("dry run, nothing uploaded; wrote " + " and ".join(str(p) for p in paths)
              + f"; view with: ct-degradbench leaderboard show {args.dry_run}")
        return 0
    if args.repo_id is None:
        raise OptionError("--repo-id ORG/NAME is required to push (or give --dry-run DIR to write the files locally)")
    url = push_eval_results(load_results(args.results), args.repo_id, args.dataset_id, filename=args.filename,
                            token=args.token, endpoint=args.endpoint, revision=args.revision,
                            create_pr=args.create_pr, source_url=args.source_url, source_name=args.source_name)
    print(f"uploaded .eval_results/{args.filename} to {url}")
    return 0


def _cmd_show(args) -> int:
    from ctdegradbench.evaluation.leaderboard import show

    print(show(args.paths), end="")
    return 0


def _cmd_eval_yaml(args) -> int:
    from ctdegradbench.evaluation.leaderboard import write_eval_yaml

    print(f"written {write_eval_yaml(args.folder, evaluation_framework=args.evaluation_framework)}")
    return 0
