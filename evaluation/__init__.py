"""The benchmark of CT-DegradBench: image-quality metrics and embedding drift against
severity, task metrics for estimators, reports and the Hub leaderboard.

Read top-down in the order results flow::

    data.py        a dataset folder's configs and splits; degraded / reference / clean-FBP
                   images in HU, read from its Parquet files in batches
    iqa.py         the HU window -> [0, 1] and the one registry of image-quality metrics
                   (name, implementation, parameters, lower_better, range)
    learned.py     learned perceptual metrics: ST-LPIPS (weights in its wheel), LPIPS / DISTS
                   (local weights only)
    encoders.py    image encoders for embedding drift (open_clip, EfficientNet-Lite0, ST-LPIPS)
    stats.py       mean +- std per (setting, level); correlation with severity and its
                   bootstrap confidence interval over patients
    runner.py      ``bench iqa`` / ``bench drift`` / ``bench tasks``: batched, resumable per config
    report.py      Markdown tables in the paper's layout (Tables 1, 10, 11, 12) and the
                   metric / encoder leaderboard
    plots.py       severity curves and the Spearman heat map (matplotlib, object-oriented API)
    leaderboard.py ``eval.yaml`` of the dataset, ``.eval_results/*.yaml`` of a model, push
                   (or ``--dry-run`` into a folder), show
    tasks.py       ``bench tasks``: the per-row predictions format and its scoring
    metrics_hub.py the evaluate modules as Hub Spaces (``metrics push``) and where each load form works
    cli.py         the ``bench`` and ``leaderboard`` commands
    ct_severity_corr/, ct_degradation_classification/, ct_severity_estimation/
                   ``evaluate`` modules, one folder each; every formula of the task metrics
                   lives in its module file

Nothing here imports the simulator; the builder never imports this package.
"""

from __future__ import annotations

from pathlib import Path

#: The ``evaluate`` modules shipped with the package: ``evaluation/<name>/<name>.py``.
METRIC_MODULES: tuple[str, ...] = ("ct_severity_corr", "ct_degradation_classification", "ct_severity_estimation")


def metric_module_path(name: str) -> Path:
    """The folder of the packaged ``evaluate`` module ``name`` (it holds ``<name>.py``)."""
    if name not in METRIC_MODULES:
        raise ValueError(f"unknown CT-DegradBench metric {name!r}; expected one of {', '.join(METRIC_MODULES)}")
    return Path(__file__).resolve().parent / name


def load_metric(name: str, **kwargs):
    """``evaluate.load`` of a packaged CT-DegradBench metric, from any folder and offline.

    ``evaluate.load`` resolves a bare name against the working directory
    (``./<name>/<name>.py``), then the Hub; passing the installed module's folder skips both,
    so this works from an installed wheel without a network. ``kwargs`` go to ``evaluate.load``.

    >>> corr = load_metric("ct_severity_corr")               # doctest: +SKIP
    >>> corr.compute(predictions=[0.1, 0.3], references=[0, 1])["spearman"]  # doctest: +SKIP
    1.0
    """
    import evaluate

    return evaluate.load(str(metric_module_path(name)), **kwargs)





def register_evaluate_modules() -> list[Path]:
    """Make the bare names (``evaluate.load("ct_severity_corr")``) resolve offline, from any folder.

    ``evaluate.load(name)`` without a folder of that name in the working directory asks the Hub
    for ``evaluate-metric/<name>`` and, when that fails (offline, or no such Hub module), falls
    back to its module cache: ``<HF_MODULES_CACHE>/evaluate_modules/metrics/
    evaluate-metric--<name>/<sha256>/<name>.py``. This writes each packaged module there, in
    evaluate's own layout (the hash is the SHA-256 of the script), and returns the written
    scripts. evaluate logs a warning ("Using the latest cached version ...") when it uses them.
    The path form, ``evaluate.load(str(metric_module_path(name)))``, needs none of this
    (:mod:`ctdegradbench.evaluation.metrics_hub` lists every form and where it works).
    """
    import hashlib
    import shutil

    from evaluate.loading import init_dynamic_modules

    root = Path(init_dynamic_modules()) / "metrics"
    written = []
    for name in METRIC_MODULES:
        script = metric_module_path(name) / f"{name}.py"
        folder = root / f"evaluate-metric--{name}"
        target = folder / hashlib.sha256(script.read_bytes()).hexdigest()
        target.mkdir(parents=True, exist_ok=True)
        for package in (root, folder, target):
            (package / "__init__.py").touch()
        shutil.copyfile(script, target / f"{name}.py")
        written.append(target / f"{name}.py")
    return written
__all__ = ["METRIC_MODULES", "load_metric", "metric_module_path", "register_evaluate_modules"]
