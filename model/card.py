"""Model card of a trained SeSpeCT checkpoint: ``README.md`` from the ``model_card.md``
template (``string.Template``) with the measured test-split results as ``model-index``
metadata, and the leaderboard tasks' values as ``.eval_results/`` YAML for the Hub leaderboard
(task ids of the benchmark's ``eval.yaml``, ``ctdegradbench.core.benchmark.TASKS``, written by
``evaluation.leaderboard``, the same code as ``leaderboard push``)."""

from __future__ import annotations

import datetime
import platform
from importlib import resources
from pathlib import Path
from string import Template

from ctdegradbench.core.paper import ARXIV_ID, CITATION
from ctdegradbench.core.tables import markdown_table
from ctdegradbench.model.metrics import accuracy_ci_text, ci_text
from ctdegradbench.model.real_artifacts import RATES, interval_note, rate_cell

TEMPLATE = "model_card.md"
DATASET_ID = "ct-degradbench"
PAPER_URL = f"https://arxiv.org/abs/{ARXIV_ID}"
# (metric key in the metrics dict, model-index task type, pretty name) reported in model-index.
HEADLINE = (
    ("accuracy", "ct_degradation_classification", "accuracy"),
    ("macro_f1", "ct_degradation_classification", "macro F1"),
    ("micro_auc", "ct_degradation_classification", "micro AUC"),
    ("mae", "ct_severity_estimation", "MAE"),
    ("rmse", "ct_severity_estimation", "RMSE"),
    ("qwk", "ct_severity_estimation", "QWK"),
    ("mean_spearman_single", "ct_severity_estimation", "mean Spearman (single)"),
    ("mean_spearman_mixtures", "ct_severity_estimation", "mean Spearman (mixtures)"),
)


def _best_epochs(facts: dict) -> str:
    """The kept epoch, or each ensemble member's."""
    members = (facts.get("validation") or {}).get("member_best_epochs")
    return f"{', '.join(map(str, members))} (one per member)" if members else str(facts["best_epoch"])


def _seeds(facts: dict, config) -> str:
    """The seed, or the ensemble members' seeds."""
    size = getattr(config, "ensemble_size", 1)
    if facts.get("member_seeds"):        # merged from several runs (train --merge)
        return f"{', '.join(map(str, facts['member_seeds']))} ({size} members)"
    return f"{facts['seed']}-{facts['seed'] + size - 1} ({size} members)" if size > 1 else str(facts["seed"])


def _merged_text(facts: dict) -> str:
    """Where the members of a merged ensemble (``train --merge``) come from ("" for one run)."""
    runs = facts.get("merged_from")
    if not runs:
        return ""
    parts = [f"{r['members']} trained on {', '.join(f'`{Path(d).name}`' for d in r['datasets'] or ['?'])} "
             f"(seed{'s' if len(r['seeds']) > 1 else ''} {', '.join(map(str, r['seeds']))})" for r in runs]
    return (f" The members come from {len(runs)} training runs, merged by `ct-degradbench train --merge`: "
            + "; ".join(parts) + ".")


def _datasets_text(facts: dict) -> str:
    """The folders the model was trained on; for a merge (``train --merge``), also the folders it was
    measured on, whose splits the card's tables show."""
    text = ", ".join(f"`{name}`" for name in dict.fromkeys(Path(d).name for d in facts["datasets"]))
    if facts.get("measured_on"):
        text += ("; the members merged and measured on " + ", ".join(f"`{Path(d).name}`" for d in facts["measured_on"])
                 + ", whose splits the tables below show")
    return text


def _train_minutes(facts: dict) -> str:
    """Minutes the checkpoint took: the run, or each merged run and the merge."""
    seconds = facts["seconds"]["total"] + sum(r.get("seconds") or 0.0 for r in facts.get("merged_from") or [])
    return f"{seconds / 60:.1f}"


def _reproduce(facts: dict) -> str:
    """The command(s) that made the checkpoint: each merged run's, then the merge."""
    command = facts.get("command") or "ct-degradbench train --dataset DIR --out DIR"
    runs = [r["command"] for r in facts.get("merged_from") or [] if r.get("command")]
    return "`, then `".join([*runs, command])


def _source_rows(metrics: dict, name: str) -> list[list[str]]:
    """``[name + ", " + source, accuracy and interval]`` per source of the patients (none for one source)."""
    sources = metrics.get("per_source", {})
    return [[f"{name}, {source}", _fmt(p["value"]) + ci_text(p["ci"], p["patients"], metrics["bootstrap"])]
            for source, p in sources.items() if len(sources) > 1]


def _fmt(value) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"


def eval_results_text(metrics: dict, date: str | None = None, source_name: str = "ct-degradbench train") -> str:
    """The Hub ``.eval_results`` YAML of the test-split ``metrics``: one entry
    ``{dataset: {id, task_id}, value, date, source: {url, name}}`` per leaderboard task of
    ``core.benchmark.TASKS`` (read through each task's ``metric_key``)."""
    from ctdegradbench.evaluation.leaderboard import eval_result_entries, eval_results_yaml

    entries = eval_result_entries({"kind": "evaluate", **metrics}, DATASET_ID, source_url=PAPER_URL,
                                  source_name=source_name, date=date or datetime.date.today().isoformat())
    return eval_results_yaml(entries)


def write_model_card(out: Path, config, facts: dict) -> Path:
    """Write ``out/README.md`` and ``out/.eval_results/ct-degradbench.yaml`` from measured ``facts``."""
    from huggingface_hub import EvalResult, ModelCardData

    metrics = facts["test"]
    offline = config.quality_axis_source == "image_prototypes"
    results = [EvalResult(task_type=task, dataset_type=DATASET_ID, dataset_name="CT-DegradBench (test split)",
                          metric_type=key, metric_name=name, metric_value=round(float(metrics[key]), 4))
               for key, task, name in HEADLINE if metrics.get(key) == metrics.get(key)]
    data = ModelCardData(library_name="transformers", license="apache-2.0", tags=["ct", "image-quality", "sespect"],
                         model_name="SeSpeCT" + (" (EfficientNet-Lite0, image-prototype axis)" if offline else ""),
                         eval_results=results)
    if config.use_semantic_branch and offline:
        semantic = ("Frozen ImageNet EfficientNet-Lite0 (offline backbone; no text tower, so the quality axis of "
                    "Eq. 15 is built from image prototypes: mean embedding of clean reference slices minus mean of "
                    "degraded training slices, a **deviation from the paper's prompt axis**); global and patch "
                    "scores on that axis (Eq. 16-18: mean, max, std)"
                    + (" plus a projection of the global embedding." if config.semantic_use_embedding else "."))
    elif config.use_semantic_branch:
        semantic = (f"Frozen open_clip image tower `{config.open_clip_model}`; quality axis from the paper's Table 7 "
                    "prompts (Eq. 13-15); global and patch scores on it (Eq. 16-18: mean, max, std).")
    elif config.backbone == "none":
        semantic = "None in this checkpoint: no pretrained backbone, every weight trained on CT-DegradBench."
    else:
        semantic = "Off in this checkpoint (ablation)."
    image_text = ("**Image branch** (beyond the paper): a light CNN on fixed texture maps of the full-resolution "
                  "slice (block mean and block RMS of the 3x3 high-pass residual of each window)."
                  if config.use_image_branch else "")
    branches = ", ".join(n for n, on in (("semantic", config.use_semantic_branch),
                                         ("spectral", config.use_spectral_branch),
                                         ("image", config.use_image_branch)) if on)
    sizes = facts["split_sizes"]
    split_table = markdown_table(["split", "patients", "slices", "rows"],
                         [[s, v["patients"], v["slices"], v["rows"]] for s, v in sizes.items()])
    accuracy_ci = accuracy_ci_text(metrics)
    ten = metrics.get("ten_class")
    results_table = markdown_table(["metric", "value"],
                                   [[name, _fmt(metrics.get(key)) + (accuracy_ci if key == "accuracy" else "")]
                                    for key, _, name in HEADLINE]
                                   + _source_rows(metrics, "accuracy")
                                   + ([["accuracy, ten classes", _fmt(ten["accuracy"]) + accuracy_ci_text(ten)],
                                       ["macro F1, ten classes", _fmt(ten["macro_f1"])],
                                       *_source_rows(ten, "accuracy, ten classes")] if ten else []))
    setting_table = markdown_table(["setting", "n", "Spearman", "MAE", "RMSE", "QWK"],
                           [[k, v["n"], _fmt(v["spearman"]), _fmt(v["mae"]), _fmt(v["rmse"]), _fmt(v["qwk"])]
                            for k, v in metrics["per_setting"].items()])
    physical = getattr(config, "pixel_spacing_mm", None) is not None
    has_clean = getattr(config, "clean_label", None) in config.label_names
    if physical:
        lo, hi = config.spacing_range_mm
        grid_text = (f"**Physical grid.** Every slice is resampled with its own pixel spacing to "
                     f"{config.pixel_spacing_mm:g} mm pixels, centred on the body and padded with air or cropped to "
                     f"{config.image_size} px ({config.image_size * config.pixel_spacing_mm:g} mm field of view), never "
                     f"stretched (`SeSpeCTImageProcessor`, `image_processing_sespect.py`); the native pixel spacing is "
                     f"an input of the fusion MLP. Trained native spacings: {lo:g}-{hi:g} mm (coarser-pixel and "
                     f"cropped-field-of-view views of each training slice). A slice without body, with non-finite or "
                     f"non-CT values, or a spacing outside that range gets a status instead of a class.")
        if getattr(config, "use_native_statistics", False):
            grid_text += (" **Native statistics**: resampling averages the noise texture away, so the processor "
                          "also measures, at the slice's own spacing, the noise std in soft tissue and in air (HU, "
                          "robust, high-pass residual), the residual's power in bands of 0.05-0.35 lp/mm, the "
                          "metal area (mm^2, above 2500 HU), the maximum HU and a streak anisotropy"
                          + (", and the noise power spectrum inside soft tissue in bands of 0.1-0.8 lp/mm"
                             if getattr(config, "native_statistics_count", 8) > 8 else "")
                          + "; a small MLP fuses them (`native_statistics`, `NativeStatisticsEncoder`). Training "
                          "views also have their air masked to constant -1024 HU or coarser pixels without "
                          "anti-aliasing.")
        if getattr(config, "ensemble_size", 1) > 1:
            grid_text += (f" **Ensemble**: {config.ensemble_size} members, trained one at a time (with different "
                          "seeds or data), read the same frozen features; their probabilities and severities are "
                          "averaged.")
        if getattr(config, "patch_cnn_width", 0):
            gate = getattr(config, "metal_gate_labels", None)
            cnn = facts.get("patch_cnn") or {}
            epochs = cnn.get("epochs")
            chosen = ", ".join(f"{r['weight']:g}" for r in cnn.get("validation_weights", []))
            grid_text += (f" **Patch CNN**: a CNN of width {config.patch_cnn_width} trained end to end (from scratch, "
                          f"on the members' training views{f', {epochs} epochs' if epochs else ''}) "
                          f"on {config.patch_count} body patches of {config.patch_size * config.pixel_spacing_mm:g} mm at "
                          f"full resolution (picked deterministically: highest body share, spread over the body) and the "
                          f"whole grid at {config.image_size * config.pixel_spacing_mm / config.coarse_size:g} mm pixels; "
                          f"its probabilities are fused with the members' (weighted geometric mean, weight "
                          f"{config.patch_cnn_weight:g}"
                          + (f", chosen on the validation split among {chosen})" if chosen else ")")
                          + (f", the members alone deciding the total probability of {', '.join(f'`{n}`' for n in gate)} "
                             "(they read the metal area at the native spacing; the patch CNN alone missed real metal "
                             "on coarse head-and-neck volumes)" if gate else "")
                          + "; the severity is the mean of the two.")
    else:
        grid_text = (f"**Pixel grid.** Every slice is padded to a square and resized to {config.image_size} px, "
                     f"whatever its pixel spacing.")
    clean_text = ("The eleventh class `clean` (no added degradation) is trained from the reference slices and "
                  "their clean reconstructions; a severity is reported only for the ten degradation classes."
                  if has_clean else "There is no 'no degradation' class: a clean slice is assigned one of the ten "
                                    "settings, usually at level 0.")
    limitations = ("**Limitations.** Trained on simulated degradations of a few dozen patients' slices (see the "
                   "split table); the backbone is an ImageNet model, not a medical vision-language model"
                   if offline else "**Limitations.** Trained on simulated degradations of a few dozen patients")
    limitations += ("; severity levels are relative to the simulator's tables (L0-L3 per degradation), not a "
                    "clinical grading. " + clean_text)
    if facts.get("limitations"):
        limitations += " " + facts["limitations"]
    real = facts.get("real_artifacts") or []
    real_table = (markdown_table(["checkpoint", *RATES], [[r.get("label", r["model"]), *(rate_cell(r, n) for n in RATES)]
                                                          for r in real])
                  + ("\n\n" + interval_note(real[-1]) if any(r.get("intervals") for r in real) else "")
                  if real else "Not measured for this checkpoint (run `benchmarks/real_artifacts.py`).")
    region_rows = [[r.get("label", r["model"]), region, v["n"], v["answered"], _fmt(v["clean_rate"]),
                    _fmt(v["metal_rate"])] for r in real for region, v in (r.get("regions") or {}).items()]
    if region_rows:
        real_table += "\n\nPer body region and group (rates of the slices with an answer):\n\n" + markdown_table(
            ["checkpoint", "body region / group", "slices", "answered", "called clean", "called metal"], region_rows)
    ten_note = ("Accuracy and F1 are over the ten degradation classes' rows; a degraded slice called `clean` "
                "counts as an error. The paper's ten-class task (\"ten classes\": which of the ten degradations, "
                "the most probable class with `clean` left out) is scored beside it on the same rows. Clean "
                f"reference slices of the test patients called `clean`: {_fmt(metrics.get('clean_rate'))}."
                if has_clean else "")
    fields = {
        "metadata": data.to_yaml(), "semantic_text": semantic, "image_text": image_text, "branches": branches,
        "windows": ", ".join(f"[{lo:g}, {hi:g}] HU" for lo, hi in config.hu_windows),
        "image_size": config.image_size, "spectral_size": config.spectral_size, "hf_cutoff": config.hf_cutoff,
        "fusion_dim": config.fusion_dim, "lambda_reg": config.lambda_reg, "lambda_rank": config.lambda_rank,
        "lambda_con": config.lambda_con, "rank_margin": config.rank_margin,
        "temperature": config.contrastive_temperature, "datasets": _datasets_text(facts),
        "split_table": split_table, "epochs": facts["epochs"], "best_epoch": _best_epochs(facts), "seed": _seeds(facts, config),
        "ablate": ", ".join(facts["ablate"]) or "none", "results_table": results_table, "setting_table": setting_table,
        "limitations": limitations, "grid_text": grid_text + _merged_text(facts), "real_table": real_table,
        "ten_note": ten_note, "train_minutes": _train_minutes(facts),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPU cores",
        "command": _reproduce(facts), "citation": CITATION.strip(),
    }
    template = Template(resources.files("ctdegradbench.model").joinpath(TEMPLATE).read_text())
    card = out / "README.md"
    card.write_text(template.substitute(fields))
    folder = out / ".eval_results"
    folder.mkdir(exist_ok=True)
    (folder / f"{DATASET_ID}.yaml").write_text(eval_results_text(metrics))
    return card
