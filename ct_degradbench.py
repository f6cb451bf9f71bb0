"""CT-DegradBench: the dataset builder and the ``ct-degradbench`` command.

The Hugging Face convention names a dataset's builder after the dataset; this thin entry
re-exports it from the library (installed as the package ``ctdegradbench``)::

    from ct_degradbench import CTDegradBench, with_references
    builder = CTDegradBench(config_name="mixture_m5", source="default", cache_dir="cache")

``main`` is the ``ct-degradbench`` command line. Its commands are one table (:data:`COMMANDS`):
each names its option dataclass (declared once with ``option()``, validated in the dataclass)
and its handler, imported only when that command is used (``--help`` and ``--version`` import
none). A problem the user can fix
(:class:`~ctdegradbench.core.errors.CTDegradBenchError`) ends with one line on stderr and exit
status 2; anything else keeps its traceback. The library never imports this file.
"""

from __future__ import annotations

import sys

from ctdegradbench.core.commands import Command, CommandParser, build_parser as _build_parser, run
from ctdegradbench.core.errors import CTDegradBenchError
from ctdegradbench.core.interrupts import quiet_resource_tracker

__all__ = ["CTDegradBench", "CTDegradBenchConfig", "with_references", "main", "build_parser", "COMMANDS"]


def __getattr__(name: str):
    """The builder class, its config and ``with_references``, imported on first use (so the
    command line starts without loading ``datasets`` and torch)."""
    if name in ("CTDegradBench", "CTDegradBenchConfig", "with_references"):
        from ctdegradbench.builder.dataset import hf_builder

        return getattr(hf_builder, name)
    raise AttributeError(f"module 'ct_degradbench' has no attribute {name!r}")


_B, _E, _M = "ctdegradbench.builder.cli", "ctdegradbench.evaluation.cli", "ctdegradbench.model"

#: The commands, in the order of the help text: name, help, option dataclass, handler.
COMMANDS: tuple[Command, ...] = (
    Command("sources", "list and preview the reference CT slices of a source",
            f"{_B}:SourcesOptions", f"{_B}:sources"),
    Command("build", "simulate the configs and export a Hub-style Parquet folder",
            "ctdegradbench.builder.dataset.options:BuildOptions", f"{_B}:build"),
    Command("verify", "check an exported folder: every file, every row's labels and metadata, and replayed images",
            f"{_B}:VerifyOptions", f"{_B}:verify"),
    Command("push", "upload an exported dataset folder to the Hugging Face Hub", f"{_B}:PushOptions", f"{_B}:push"),
    Command("figure", "write the paper's Figure 4: mid-severity degradations and their spectra",
            f"{_B}:FigureOptions", f"{_B}:figure"),
    Command("bench", "benchmark IQA metrics / embedding drift against severity, score estimators",
            description="Reproduce the paper's benchmark on a built dataset: IQA metrics (Tables 1, 10) and "
                        "embedding drift (Tables 11, 12) against severity, per setting and level; score an "
                        "estimator's predictions (classification, severity).",
            metavar="BENCH", commands=(
                Command("iqa", "full-reference (and no-reference) IQA metrics vs severity", f"{_E}:IQAOptions",
                        f"{_E}:bench_iqa",
                        description="Every degraded image of the split against its reference slice and its clean "
                                    "FBP: mean +- std per setting and level (Table 10), Spearman / Pearson / Kendall "
                                    "with severity per setting with patient-bootstrap CIs (Table 1), figures and a "
                                    "leaderboard of metrics."),
                Command("drift", "embedding drift (1 - cosine) of image encoders vs severity", f"{_E}:DriftOptions",
                        f"{_E}:bench_drift",
                        description="Cosine distance between the embeddings of each degraded image and of its "
                                    "reference / clean FBP, per setting and level (Table 12), and its correlation "
                                    "with severity (Table 11). Encoders: efficientnet_lite0[@SIZE], st_lpips_alex, "
                                    "st_lpips_vgg (offline), open_clip:hf-hub:ORG/REPO, open_clip:local-dir:/path, "
                                    "open_clip:ARCH@/checkpoint (no CLIP weights ship on PyPI: local ones offline)."),
                Command("tasks", "score an estimator's predictions (classification, severity)", f"{_E}:TasksOptions",
                        f"{_E}:bench_tasks",
                        description="Degradation-type classification (accuracy, macro F1, per-class one-vs-rest, ROC "
                                    "AUC, confusion) and severity estimation (MAE, RMSE, QWK, Spearman per setting) "
                                    "through the evaluate modules; writes a results JSON for `leaderboard push`. "
                                    "Predictions: .jsonl or .csv rows with sample_id, label (index or class name), "
                                    "severity (float, level units; or level), probabilities ({class: p}, JSON only), "
                                    "as `evaluate --predictions` writes them; or the JSON of `predict --json`."),
            )),
    Command("leaderboard", "Hub leaderboard: push a model's results, show local tables",
            description="Publish scores as the Hub shows them (a model repo's .eval_results/*.yaml, a benchmark "
                        "dataset's eval.yaml) and render local leaderboards.",
            metavar="ACTION", commands=(
                Command("push", "upload .eval_results/<file>.yaml to a model repo", f"{_E}:LeaderboardPushOptions",
                        f"{_E}:leaderboard_push",
                        description="Write the task values of a `bench tasks` result (or of `evaluate`'s metrics "
                                    "JSON) as .eval_results/<file>.yaml of the model repo, in one commit (nothing is "
                                    "written if it fails). With --dry-run DIR nothing is uploaded: DIR/.eval_results/"
                                    "<file>.yaml and DIR/model_card_results.md (model-index + table) are written."),
                Command("show", "render local leaderboards (Markdown)", f"{_E}:ShowOptions", f"{_E}:leaderboard_show",
                        description="Model table from `bench tasks` results or folders with .eval_results/, and "
                                    "score leaderboards (which metric / encoder tracks severity best) from "
                                    "`bench iqa` / `bench drift` results."),
                Command("eval-yaml", "write eval.yaml (benchmark registration) into a dataset folder",
                        f"{_E}:EvalYamlOptions", f"{_E}:leaderboard_eval_yaml"),
            )),
    Command("metrics", "the evaluate modules: where each load form works, push to the Hub",
            description="The benchmark's task metrics are evaluate modules (ct_severity_corr, "
                        "ct_degradation_classification, ct_severity_estimation).",
            metavar="ACTION", commands=(
                Command("list", "each metric's folder and the forms that load it, with where they work",
                        run=f"{_E}:metrics_list"),
                Command("push", "publish the metrics as Hub Spaces ORG/<name> for evaluate.load('ORG/<name>')",
                        f"{_E}:MetricsPushOptions", f"{_E}:metrics_push",
                        description="Create (if missing) the Space ORG/<name> of each metric and commit its script, "
                                    "README, app.py (evaluate's widget) and requirements.txt, one commit per metric."),
            )),
    Command("train", "train SeSpeCT on exported dataset folders (split by patient)",
            f"{_M}.options:TrainOptions", f"{_M}.cli:train",
            description="Train SeSpeCT: frozen-backbone features are computed once and cached, the trainable parts "
                        "are fitted with the Eq. 24 loss, the epoch with the best validation (accuracy + QWK) / 2 "
                        "(with --backbone none: (accuracy + QWK + clean rate of the validation reference slices) / 3) "
                        "is kept, and the test split is reported."),
    Command("predict", "predict degradation type and severity of CT slices",
            f"{_M}.options:PredictOptions", f"{_M}.cli:predict",
            description="Print degradation type, severity (0 = L0 .. 3 = L3) and class probabilities per slice. "
                        "Inputs: DICOM file or folder, NIfTI, 16-bit PNG (HU + offset), .npy in HU. A bad file gives "
                        "one error line; the others are still processed (exit 1)."),
    Command("evaluate", "task metrics of a SeSpeCT checkpoint on a dataset split",
            f"{_M}.options:EvaluateOptions", f"{_M}.cli:evaluate",
            description="Run a checkpoint on a split and compute accuracy, macro F1, per-class one-vs-rest accuracy "
                        "and F1, micro AUC, MAE, RMSE, QWK and Spearman per setting."),
    Command("app", "web demo (Gradio): inspect, degrade, benchmark results",
            f"{_M}.app.cli:AppOptions", f"{_M}.app.cli:app",
            description="Start the CT-DegradBench web demo (needs the [app] extra: pip install "
                        "'ct-degradbench[app]'): Inspect (SeSpeCT's answer for an uploaded CT), Degrade (the "
                        "simulator on the default reference CT or the upload) and Benchmark (tables and figures of a "
                        "`bench iqa` results folder). --write-space writes it as a Hugging Face Space instead."),
)


def build_parser(argv=()) -> CommandParser:
    """The ``ct-degradbench`` argument parser (each command declares its options when used).
    ``argv`` is accepted for compatibility with callers that pass it; nothing is scanned."""
    from ctdegradbench.core.version import version

    return _build_parser("ct-degradbench", "Physics-informed CT degradation dataset builder, benchmark and "
                         "SeSpeCT estimator.", COMMANDS, version=version())


def command_parser(*names: str) -> CommandParser:
    """The declared parser of the command ``names`` (``"build"``, ``"bench", "iqa"``), e.g. to read its help."""
    parser = build_parser()
    for name in names:
        parser = next(a for a in parser._actions if a.dest.endswith("command")).choices[name].declare()
    return parser


def main(argv=None) -> int:
    """Entry point of the ``ct-degradbench`` command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    quiet_resource_tracker()        # before any worker pool starts the tracker
    try:
        args = build_parser().parse_args(argv)
        return run(args._command, args)
    except KeyboardInterrupt:
        from ctdegradbench.core.interrupts import report_interrupted

        return report_interrupted()
    except CTDegradBenchError as exc:
        print(f"ct-degradbench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
