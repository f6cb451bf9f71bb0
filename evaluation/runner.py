"""The benchmark runs: ``bench iqa``, ``bench drift`` and ``bench tasks``.

``run_scores`` reads each setting config of a dataset split in batches, computes one value per
degraded image and scorer (an IQA metric, or an encoder's cosine drift) against each target
(the reference slice, its clean FBP; ``none`` for no-reference metrics), and keeps the values
per config in ``<out>/configs/<config>.json``. A config whose file exists with the same
fingerprint (dataset files and sizes, split, window, scorers) is reused, so an interrupted run
resumes config by config. Then the per-row values of all configs are aggregated into
``<out>/results.json`` (mean +- std per setting and level, correlation with severity with
patient-bootstrap CIs), ``<out>/tables.md`` and the figures ``<out>/*.png``.
"""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path

import numpy as np

from ctdegradbench.core.errors import InputError, OptionError
from ctdegradbench.core.outputs import OutputFolder
from ctdegradbench.core.version import version
from ctdegradbench.builder.dataset.reader import ExportedFolder
from ctdegradbench.evaluation.data import iter_batches
from ctdegradbench.evaluation.iqa import check_image_size, get_metrics, window_hu
from ctdegradbench.evaluation.options import BenchOptions

NO_REFERENCE = "none"


def _to_tensor(hu: np.ndarray, window, device):
    import torch

    return torch.from_numpy(window_hu(hu, window)[:, None]).to(device)


class _IQAScorer:
    """Per batch: every IQA metric of every target."""

    def __init__(self, names, options: BenchOptions):
        self.metrics = get_metrics(names)
        self.options = options
        build_options = {"weights_dir": options.weights_dir}
        self.scorers = {m.name: m.build(options.device, build_options) for m in self.metrics}

    def describe(self) -> dict:
        return {m.name: m.describe() for m in self.metrics}

    def targets(self) -> list[str]:
        fr = list(self.options.targets) if any(m.full_reference for m in self.metrics) else []
        return fr + ([NO_REFERENCE] if any(not m.full_reference for m in self.metrics) else [])

    def score(self, batch, refs) -> dict[str, dict[str, np.ndarray]]:
        x = _to_tensor(batch.image, self.options.window, self.options.device)
        check_image_size(self.metrics, min(batch.image.shape[1:]))
        out: dict[str, dict[str, np.ndarray]] = {}
        for target in self.options.targets:
            y = _to_tensor(np.stack([refs[rid][target] for rid in batch.reference_id]), self.options.window,
                           self.options.device)
            out[target] = {m.name: self.scorers[m.name](x, y).detach().cpu().double().numpy()
                           for m in self.metrics if m.full_reference}
        nr = {m.name: self.scorers[m.name](x).detach().cpu().double().numpy()
              for m in self.metrics if not m.full_reference}
        if nr:
            out[NO_REFERENCE] = nr
        return {t: v for t, v in out.items() if v}


class _DriftScorer:
    """Per batch: cosine distance between each encoder's embedding of the degraded image and of
    the target (target embeddings are computed once per reference slice and cached)."""

    def __init__(self, specs, options: BenchOptions, encoders=None):
        from ctdegradbench.evaluation.encoders import build_encoder

        self.options = options
        self.encoders = encoders if encoders is not None else [build_encoder(s, options.device) for s in specs]
        self.cache: dict = {}

    def describe(self) -> dict:
        return {e.name: {"display": e.name, "implementation": e.description, "dim": e.dim, "lower_better": True,
                         "range": [0.0, 2.0], "full_reference": True, "parameters": {"distance": "1 - cosine"}}
                for e in self.encoders}

    def targets(self) -> list[str]:
        return list(self.options.targets)

    def score(self, batch, refs) -> dict[str, dict[str, np.ndarray]]:
        import torch

        from ctdegradbench.evaluation.encoders import cosine_distance

        x = _to_tensor(batch.image, self.options.window, self.options.device)
        out: dict[str, dict[str, np.ndarray]] = {t: {} for t in self.options.targets}
        for encoder in self.encoders:
            degraded = encoder.embed(x)
            for target in self.options.targets:
                missing = sorted({rid for rid in batch.reference_id if (encoder.name, target, rid) not in self.cache})
                if missing:
                    y = _to_tensor(np.stack([refs[rid][target] for rid in missing]), self.options.window,
                                   self.options.device)
                    for rid, e in zip(missing, encoder.embed(y)):
                        self.cache[(encoder.name, target, rid)] = e
                ref = torch.stack([self.cache[(encoder.name, target, rid)] for rid in batch.reference_id])
                out[target][encoder.name] = cosine_distance(degraded, ref).detach().cpu().double().numpy()
        return out


def spread_references(rows: dict, n: int) -> list[str]:
    """``n`` reference slices spread over patients: the patients' first slices (patients and
    slices in sorted order), then their second slices, and so on."""
    by_patient: dict[str, list[str]] = {}
    for rid, patient in sorted(set(zip(rows["reference_id"].tolist(), rows["patient_key"].tolist()))):
        by_patient.setdefault(patient, []).append(rid)
    order = [ids[k] for k in range(max(map(len, by_patient.values()))) for _, ids in sorted(by_patient.items())
             if k < len(ids)]
    return order[:n]


def _config_result(folder: ExportedFolder, config: str, scorer, fingerprint: dict, options: BenchOptions,
                   refs: dict) -> dict:
    """One config's rows and values; ``refs`` (reference id -> images) is shared by the configs,
    which mostly use the same reference slices: only the ids it lacks are read, then added to it."""
    from tqdm.auto import tqdm

    from ctdegradbench.evaluation.data import read_rows

    rows = read_rows(folder, config, options.split)
    available = sorted(set(rows["reference_id"].tolist()))
    chosen = spread_references(rows, options.max_references) if options.max_references else available
    keep = set(chosen)
    missing = [rid for rid in chosen if rid not in refs]
    if missing:
        refs.update(folder.references(missing))
    columns = {k: [] for k in ("sample_id", "patient_key", "setting", "level")}
    values: dict[str, dict[str, list]] = {}
    total = int(np.isin(rows["reference_id"], chosen).sum())
    with tqdm(total=total, desc=f"{config}/{options.split}", unit="img", disable=not options.progress) as bar:
        for batch in iter_batches(folder, config, options.split, options.batch_size):
            batch = batch.select(np.array([rid in keep for rid in batch.reference_id], dtype=bool))
            if not len(batch):
                continue
            scores = scorer.score(batch, refs)
            for k in columns:
                columns[k].extend(getattr(batch, k).tolist())
            for target, per_scorer in scores.items():
                for name, v in per_scorer.items():
                    values.setdefault(target, {}).setdefault(name, []).extend(np.asarray(v, dtype=float).tolist())
            bar.update(len(batch))
    return {"fingerprint": fingerprint, "config": config, "rows": columns, "values": values,
            "references": {"used": len(chosen), "available": len(available)}}


def run_scores(kind: str, scorer, options: BenchOptions) -> dict:
    """Compute (or reuse) every config's values with ``scorer``, aggregate and write the reports."""
    from ctdegradbench.evaluation.plots import save_figures
    from ctdegradbench.evaluation.report import write_reports
    from ctdegradbench.evaluation.stats import level_table, severity_correlation_table

    folder = ExportedFolder(options.dataset)
    configs = options.configs or folder.setting_configs()
    unknown = [c for c in configs if c not in folder.setting_configs()]
    if unknown:
        raise OptionError(f"config(s) {', '.join(unknown)} not in {folder.path}; it has {', '.join(folder.setting_configs())}")
    lacking = [c for c in configs if not folder.has_split(c, options.split)]
    if options.configs and lacking:
        raise OptionError(f"config(s) {', '.join(lacking)} of {folder.path} have no {options.split!r} split")
    configs = [c for c in configs if c not in lacking]
    if not configs:
        raise InputError(f"no setting config of {folder.path} has a {options.split!r} split")
    out = Path(options.out)
    output = OutputFolder(out, f"bench {kind}")     # never replaces a file of the user's (core.outputs)
    for rel in ["results.json", "tables.md"] + [f"configs/{c}.json" for c in configs]:
        output.may_write(rel)
    output.open()
    describe = scorer.describe()
    started = time.perf_counter()
    parts, timing, refs = [], {}, {}
    for config in configs:
        fingerprint = {"kind": kind, "split": options.split, "max_references": options.max_references,
                       "reference_selection": "spread over patients (spread_references)", "window_hu": list(options.window),
                       "targets": scorer.targets(), "scorers": describe, "files": folder.fingerprint(config, options.split)}
        path = out / "configs" / f"{config}.json"
        if path.is_file() and f"configs/{config}.json" in output.owned:
            cached = json.loads(path.read_text(encoding="utf-8"))
            if cached.get("fingerprint") == json.loads(json.dumps(fingerprint)):
                parts.append(cached)
                timing[config] = "reused"
                continue
        t0 = time.perf_counter()
        part = _config_result(folder, config, scorer, fingerprint, options, refs)
        timing[config] = round(time.perf_counter() - t0, 2)
        output.write_json(f"configs/{config}.json", part)
        parts.append(part)
    rows = {k: np.concatenate([np.asarray(p["rows"][k]) for p in parts]) for k in parts[0]["rows"]}
    levels, settings, patients = rows["level"].astype(int), rows["setting"].astype(str), rows["patient_key"].astype(str)
    targets = scorer.targets()
    values = {t: {name: np.concatenate([np.asarray(p["values"][t][name], dtype=float) for p in parts])
                  for name in parts[0]["values"].get(t, {})} for t in targets}
    results = {
        "kind": kind, "dataset": str(folder.path), "split": options.split, "configs": configs,
        "configs_without_split": [c for c in folder.setting_configs() if not folder.has_split(c, options.split)],
        "window_hu": list(options.window), "targets": targets, "scorers": describe,
        "counts": {"rows": int(levels.size), "patients": len(set(patients.tolist())),
                   "per_setting": {c: int((settings == c).sum()) for c in sorted(set(settings.tolist()))},
                   "references_per_config": {p["config"]: p["references"] for p in parts}},
        "bootstrap": {"unit": "patient", "resamples": options.n_boot, "seed": options.seed,
                      "confidence": options.confidence, "interval": "percentile"},
        "timing": {"compute_seconds": round(time.perf_counter() - started, 2), "per_config": timing},
        "level_stats": {t: {name: level_table(v, settings, levels) for name, v in values[t].items()} for t in targets},
        "severity_correlation": {t: severity_correlation_table(values[t], levels, settings, patients, options.n_boot,
                                                               options.seed, options.confidence) for t in targets},
        "ct_degradbench_version": version(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    output.write_json("results.json", results)
    staged = output.staging()
    write_reports(results, staged)
    if options.figures:
        save_figures(results, staged)
    output.commit(staged)
    return results


def run_iqa(options: BenchOptions, metrics) -> dict:
    """``bench iqa``: the IQA metrics ``metrics`` (registry names) of every degraded image."""
    if not metrics:
        raise OptionError("no IQA metric given")
    return run_scores("iqa", _IQAScorer(list(metrics), options), options)


def run_drift(options: BenchOptions, encoders=None, built_encoders=None) -> dict:
    """``bench drift``: cosine drift of every encoder spec in ``encoders`` (or of ready
    :class:`~ctdegradbench.evaluation.encoders.Encoder` objects ``built_encoders``)."""
    if not encoders and not built_encoders:
        raise OptionError("no encoder given")
    return run_scores("drift", _DriftScorer(encoders, options, built_encoders), options)
