"""``ct-degradbench evaluate``: a checkpoint's task metrics on a dataset split (from pixels)."""

from __future__ import annotations

import numpy as np


def evaluate_checkpoint(model_dir, dataset_dirs, split: str = "test", batch_size: int = 8, progress: bool = True,
                        predictions_path=None, n_boot: int = 1000) -> dict:
    """Run the checkpoint on every row of ``split`` (HU images) and return the task metrics,
    with the split's size in patients / slices / rows and the rows left out (other classes).

    The accuracy comes with its 95 % patient-bootstrap interval (``accuracy_ci``, ``n_boot``
    resamples, 0: none) and per source of the patients (``per_source``: the part of the patient
    key before ``/``, e.g. ``ct-tcga-lung``), so a source's gap to the rest can be read against
    the spread between patients (:func:`~ctdegradbench.evaluation.stats.mean_with_patient_ci`).

    The metrics carry ``kind: "evaluate"``, the model's name and the leaderboard ``tasks``
    values, so ``leaderboard show / push`` read them. With ``predictions_path`` the per-row
    predictions (``sample_id``, label, severity, probabilities) are written there as JSON lines,
    the file ``bench tasks --predictions`` reads."""
    from ctdegradbench.model.data import load_benchmark
    from ctdegradbench.model.metrics import add_accuracy_intervals, task_metrics
    from ctdegradbench.model.predict import load_model

    model = load_model(model_dir)
    cfg = model.config
    data = load_benchmark(dataset_dirs, split, label_names=cfg.label_names)
    probs, severity, status = _run(model, data.dataset, "image", data.spacings, batch_size, f"evaluate {split}",
                                   progress)
    if predictions_path is not None:
        _write_rows(predictions_path, data, probs, severity, status, cfg)
    ok = np.array([s == "ok" for s in status], dtype=bool)
    abstained = {s: status.count(s) for s in sorted(set(status) - {"ok"})}
    if not ok.any():
        from ctdegradbench.core.errors import InputError

        raise InputError(f"the model answers none of the {len(status)} rows of split {split!r} "
                         f"({', '.join(f'{k}: {v}' for k, v in abstained.items())}): it cannot judge these slices")
    metrics = task_metrics(data.labels[ok], probs[ok], data.levels[ok], severity[ok],
                           [s for s, keep in zip(data.settings, ok) if keep], cfg.label_names, cfg.max_level)
    metrics["answered_rows"], metrics["abstained"] = int(ok.sum()), abstained
    add_accuracy_intervals(metrics, data.labels[ok], probs[ok], cfg.label_names, np.asarray(data.patient_keys)[ok],
                           n_boot)
    metrics["split"] = {"name": split, **data.summary(), "left_out": data.left_out}
    metrics["model_facts"] = {"quality_axis_source": cfg.quality_axis_source, "backbone": cfg.backbone,
                        "branches": [n for n, on in (("semantic", cfg.use_semantic_branch),
                                                     ("spectral", cfg.use_spectral_branch),
                                                     ("image", cfg.use_image_branch)) if on]}
    clean = getattr(cfg, "clean_label", None)
    if clean in cfg.label_names:
        from ctdegradbench.builder.dataset.options import REFERENCES_CONFIG
        from ctdegradbench.model.data import load_config

        refs, _ = load_config(dataset_dirs, REFERENCES_CONFIG, split)
        ref_probs, _, ref_status = _run(model, refs.with_format("numpy", columns=["reference"]), "reference",
                                        np.asarray(refs["pixel_spacing_mm"], float), batch_size, f"clean {split}",
                                        progress)
        answered = np.array([s == "ok" for s in ref_status], dtype=bool)
        metrics["clean_rate"] = (float(np.mean(ref_probs[answered].argmax(1) == cfg.label_names.index(clean)))
                                 if answered.any() else float("nan"))
        metrics["clean_slices"] = len(refs)
        metrics["clean_abstained"] = int((~answered).sum())
    return _as_result(metrics, model_dir)


def _as_result(metrics: dict, model_dir) -> dict:
    """``metrics`` as a result the leaderboard reads: kind, model name, config, split, task values."""
    from pathlib import Path

    from ctdegradbench.evaluation.leaderboard import task_values

    result = {"kind": "evaluate", "model": Path(model_dir).name if model_dir else "sespect", "config": "all",
              **metrics}
    result["tasks"] = task_values(result)
    return result


def _write_rows(path, data, probabilities: np.ndarray, severity: np.ndarray, status: list[str], cfg) -> None:
    """The per-row predictions of a split as ``bench tasks`` reads them, with each row's status (a row
    the model cannot judge has no label and no severity)."""
    from ctdegradbench.evaluation.tasks import prediction_row, write_predictions

    sample_ids = data.dataset.select_columns(["sample_id"]).with_format(None)["sample_id"]
    rows = [{**prediction_row(sid, cfg.label_names[int(p.argmax())] if state == "ok" else None,
                              float(np.clip(s, 0, cfg.max_level)) if state == "ok" else None,
                              dict(zip(cfg.label_names, p.tolist()))), "status": state}
            for sid, p, s, state in zip(sample_ids, probabilities, severity, status)]
    write_predictions(path, rows)


def _run(model, dataset, column: str, spacings, batch_size: int, desc: str, progress: bool):
    """:func:`~ctdegradbench.model.predict.run_batches` over every row of ``dataset[column]`` (HU)
    with the rows' pixel ``spacings`` (mm), ``batch_size`` rows read at a time."""
    from ctdegradbench.model.predict import run_batches

    starts = range(0, len(dataset), batch_size)
    batches = ((list(np.asarray(dataset[i:i + batch_size][column], dtype=np.float32)),
                list(spacings[i:i + batch_size])) for i in starts)
    return run_batches(model, batches, total=len(starts), desc=desc, progress=progress)


def _ten_class_lines(ten: dict | None, boot: dict | None) -> list[str]:
    """The report lines of the paper's ten-class task (``clean`` left out of the answers), if scored."""
    from ctdegradbench.model.metrics import accuracy_ci_text

    if not ten:
        return []
    return [f"ten classes (the paper's task: 'clean' left out of the answers): accuracy {ten['accuracy']:.3f}"
            f"{accuracy_ci_text(ten)}  macro F1 {ten['macro_f1']:.3f}  micro AUC {ten['micro_auc']:.3f}",
            *_source_lines(ten.get("per_source", {}), boot)]


def _source_lines(sources: dict, boot: dict | None) -> list[str]:
    """One report line per source of the patients (none for a single source): accuracy, interval, rows."""
    from ctdegradbench.model.metrics import ci_text

    return [f"  {source}: accuracy {p['value']:.3f}{ci_text(p['ci'], p['patients'], boot)} ({p['rows']} rows)"
            for source, p in sources.items() if len(sources) > 1]


def format_metrics(metrics: dict) -> str:
    """A short text report of :func:`evaluate_checkpoint`'s metrics."""
    from ctdegradbench.model.metrics import accuracy_ci_text

    s, sources, boot = metrics["split"], metrics.get("per_source", {}), metrics.get("bootstrap")
    lines = [f"split {s['name']}: {s['patients']} patients, {s['slices']} slices, {s['rows']} rows"
             + (f" (left out: {s['left_out']})" if s["left_out"] else ""),
             *([f"the model cannot judge {s['rows'] - metrics['answered_rows']} rows ("
                + ", ".join(f"{k}: {v}" for k, v in metrics["abstained"].items())
                + f"); the metrics below are over the {metrics['answered_rows']} rows it answers"]
               if metrics.get("abstained") else []),
             f"accuracy {metrics['accuracy']:.3f}{accuracy_ci_text(metrics)}"
             f"  macro F1 {metrics['macro_f1']:.3f}  micro AUC {metrics['micro_auc']:.3f}",
             *_source_lines(sources, boot),
             *_ten_class_lines(metrics.get("ten_class"), boot),
             f"severity MAE {metrics['mae']:.3f}  RMSE {metrics['rmse']:.3f}  QWK {metrics['qwk']:.3f}  mean Spearman "
             f"single {metrics['mean_spearman_single']:.3f} / mixtures {metrics['mean_spearman_mixtures']:.3f}",
             f"{'class':<12}{'acc':>7}{'F1':>7}{'n':>6}   {'setting':<8}{'rho':>7}{'MAE':>7}{'QWK':>7}"]
    classes = list(metrics["per_class"].items())
    settings = list(metrics["per_setting"].items())
    for i in range(max(len(classes), len(settings))):
        left = (f"{classes[i][0]:<12}{classes[i][1]['accuracy']:>7.3f}{classes[i][1]['f1']:>7.3f}"
                f"{classes[i][1]['support']:>6}" if i < len(classes) else " " * 32)
        right = (f"   {settings[i][0]:<8}{settings[i][1]['spearman']:>7.3f}{settings[i][1]['mae']:>7.3f}"
                 f"{settings[i][1]['qwk']:>7.3f}" if i < len(settings) else "")
        lines.append(left + right)
    return "\n".join(lines)
