"""SeSpeCT on real scans with real, labelled artifacts (``../shared/ct-real-artifacts``; judge only,
never used for training), one or more checkpoints side by side.

    python benchmarks/real_artifacts.py [--data ../shared/ct-real-artifacts] [--model DIR ...]
        [--max-clean-per-volume 12] [--json out.json] [--threads 2]

Reads ``labels.json`` and reports, per checkpoint (default: the shipped one):

- metal recall: dental metal slices (``metal_slices`` of the ``metal_dental`` volumes) called a
  metal class (S5_metal, M3_m+n, M5_m+b+n);
- false-metal rate: the ``clean_slices`` of the same head-and-neck collection (the metal
  patients' metal-free slices and the five metal-free volumes) called a metal class;
- clean rate: slices of the clean body scans (``artifact: none`` DICOM series) called ``clean``
  (a checkpoint without a ``clean`` class scores 0);
- low-dose vs clean AUC: the real low-dose slices ranked above those clean slices by the
  degradation score (``1 - p(clean)``; without a clean class: the predicted severity);
- abstained slices (a status instead of a class) per group;
- per body region (``body_part`` of labels.json) and group: the share of answered slices called
  ``clean`` and called a metal class.

Slices without an answer are left out of each rate and counted. Each volume's clean slices are
subsampled evenly to ``--max-clean-per-volume`` (speed); every metal slice is kept.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

METAL_CLASSES = ("S5_metal", "M3_m+n", "M5_m+b+n")
DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "ct-real-artifacts"


def _evenly(indices, n: int):
    indices = list(indices)
    if n <= 0 or len(indices) <= n:
        return indices
    return [indices[i] for i in np.linspace(0, len(indices) - 1, n).round().astype(int)]


def collect(data: Path, max_clean: int) -> list[dict]:
    """Slices to judge: ``{"group", "item", "body_part", "slice_index", "hu", "pixel_spacing_mm"}`` per slice."""
    from ctdegradbench.builder.sources import load_source

    labels = json.loads((data / "labels.json").read_text())
    rows = []
    for key, item in labels["items"].items():
        artifact = item["artifact"]
        result = load_source(str(data / key.rstrip("/")))
        by_index = {s.slice_index: s for s in result.slices}
        if key.startswith("openkbp-dental"):
            picks = [("metal", k) for k in item.get("metal_slices", [])] if artifact == "metal_dental" else []
            picks += [("head_neck_metal_free", k) for k in _evenly(item.get("clean_slices", []), max_clean)]
        elif artifact == "low_dose":
            picks = [("low_dose", k) for k in sorted(by_index)]
        elif artifact == "none":
            picks = [("clean_body", k) for k in sorted(by_index)]
        else:
            continue
        for group, k in picks:
            if k not in by_index:
                raise SystemExit(f"real_artifacts: {key} slice {k} of labels.json not found by the loader")
            s = by_index[k]
            rows.append({"group": group, "item": key, "body_part": item["body_part"], "slice_index": k,
                         "hu": s.hu.astype(np.float32),
                         "pixel_spacing_mm": float(s.pixel_spacing_mm)})
    return rows


def auc(positive, negative) -> float:
    """Probability that a positive scores above a negative (ties count one half)."""
    pos, neg = np.asarray(positive, float)[:, None], np.asarray(negative, float)[None, :]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def judge(model_dir, rows: list[dict]) -> dict:
    """Predict every slice with one checkpoint and compute the real-artifact metrics."""
    from ctdegradbench.model.predict import SliceInput, load_model, predict_slices

    model = load_model(model_dir)
    cfg = model.config
    t = time.perf_counter()
    preds = predict_slices(model, [SliceInput(f"{r['item']}#{r['slice_index']}", r["hu"], r["pixel_spacing_mm"])
                                   for r in rows])
    seconds = time.perf_counter() - t
    clean = getattr(cfg, "clean_label", None) if getattr(cfg, "clean_label", None) in cfg.label_names else None
    groups = {}
    for r, p in zip(rows, preds):
        g = groups.setdefault(r["group"], {"n": 0, "abstained": {}, "labels": [], "score": []})
        g["n"] += 1
        if p.status != "ok":
            g["abstained"][p.status] = g["abstained"].get(p.status, 0) + 1
            continue
        g["labels"].append(p.label)
        g["score"].append(1.0 - p.probabilities[clean] if clean else
                          float(np.clip(max(p.severity or 0.0, 0.0), 0, cfg.max_level)))

    def rate(group, names):
        labels = groups.get(group, {}).get("labels", [])
        return float(np.mean([lab in names for lab in labels])) if labels else float("nan")

    regions = {}
    for r, p in zip(rows, preds):
        g = regions.setdefault(f"{r['body_part']} / {r['group']}", {"n": 0, "answered": 0, "clean": 0, "metal": 0})
        g["n"] += 1
        if p.status == "ok":
            g["answered"] += 1
            g["clean"] += p.label == clean
            g["metal"] += p.label in METAL_CLASSES
    out = {"model": str(model_dir or "shipped"), "seconds": round(seconds, 1),
           "metal_recall": rate("metal", METAL_CLASSES),
           "false_metal_rate": rate("head_neck_metal_free", METAL_CLASSES),
           "clean_rate_body": rate("clean_body", (clean,)) if clean else 0.0,
           "clean_rate_head_neck": rate("head_neck_metal_free", (clean,)) if clean else 0.0,
           "low_dose_vs_clean_auc": auc(groups.get("low_dose", {}).get("score", []),
                                        groups.get("clean_body", {}).get("score", [])),
           "score": "1 - p(clean)" if clean else "predicted severity",
           "groups": {k: {"n": v["n"], "answered": len(v["labels"]), "abstained": v["abstained"],
                          "top_labels": dict(sorted(((lab, v["labels"].count(lab)) for lab in set(v["labels"])),
                                                    key=lambda kv: -kv[1])[:4])}
                      for k, v in groups.items()},
           "regions": {k: {"n": v["n"], "answered": v["answered"],
                           "clean_rate": v["clean"] / v["answered"] if v["answered"] else float("nan"),
                           "metal_rate": v["metal"] / v["answered"] if v["answered"] else float("nan")}
                       for k, v in sorted(regions.items())}}
    return out


def format_table(results: list[dict]) -> str:
    names = ["metal_recall", "false_metal_rate", "clean_rate_body", "clean_rate_head_neck", "low_dose_vs_clean_auc"]
    lines = ["| checkpoint | " + " | ".join(names) + " | seconds |", "|---" * (len(names) + 2) + "|"]
    for r in results:
        lines.append(f"| {r.get('label', r['model'])} | " + " | ".join(f"{r[n]:.3f}" for n in names) + f" | {r['seconds']} |")
    for r in results:
        lines.append(f"\n{r.get('label', r['model'])} (score for the AUC: {r['score']}):")
        for g, v in r["groups"].items():
            lines.append(f"  {g:<22} n {v['n']:>4}  answered {v['answered']:>4}  abstained {v['abstained']}  "
                         f"top {v['top_labels']}")
        lines.append("  per body region (rates of the answered slices):")
        for g, v in r["regions"].items():
            lines.append(f"  {g:<62} n {v['n']:>4}  answered {v['answered']:>4}  clean {v['clean_rate']:.3f}  "
                         f"metal {v['metal_rate']:.3f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the ct-real-artifacts folder")
    parser.add_argument("--model", nargs="+", default=[None], metavar="DIR",
                        help="checkpoint folders (default: the shipped one)")
    parser.add_argument("--max-clean-per-volume", type=int, default=12,
                        help="clean slices kept per head-and-neck volume, evenly spaced (default 12)")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--labels", nargs="+", default=None, metavar="NAME",
                        help="a name per --model for the tables (default: the folder)")
    parser.add_argument("--update-card", type=Path, default=None, metavar="DIR",
                        help="a checkpoint folder written by ct-degradbench train: add these results to its "
                             "metrics.json and rewrite its model card (README.md)")
    args = parser.parse_args(argv)
    if args.labels and len(args.labels) != len(args.model):
        parser.error(f"--labels needs one name per --model ({len(args.model)}), got {len(args.labels)}")
    from ctdegradbench.core.errors import OutputError
    from ctdegradbench.core.outputs import check_file_output, write_json_output

    try:                                    # refused before any work: nothing of the user's is replaced
        if args.json:
            check_file_output(args.json, "--json")
        if args.update_card:
            check_checkpoint_folder(args.update_card)
    except OutputError as err:
        print(f"real_artifacts: error: {err}", file=sys.stderr)
        return 2
    if not (args.data / "labels.json").is_file():
        print(f"real_artifacts: {args.data}/labels.json not found: give --data, the ct-real-artifacts folder",
              file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)
    rows = collect(args.data, args.max_clean_per_volume)
    counts = {}
    for r in rows:
        counts[r["group"]] = counts.get(r["group"], 0) + 1
    print(f"slices: {counts}", file=sys.stderr)
    results = [judge(m, rows) for m in args.model]
    for r, name in zip(results, args.labels or [None] * len(results)):
        r["label"] = name or r["model"]
    print(format_table(results))
    if args.json:
        write_json_output(args.json, {"results": results}, "--json")
    if args.update_card:
        update_card(args.update_card, results)
    return 0


def check_checkpoint_folder(folder: Path) -> None:
    """OutputError unless ``folder`` holds a checkpoint's ``metrics.json`` as ``ct-degradbench train``
    writes it (the card and metrics.json that ``--update-card`` rewrites are then the trainer's)."""
    from ctdegradbench.core.errors import OutputError

    try:
        facts = json.loads((Path(folder) / "metrics.json").read_text())
    except (OSError, ValueError) as err:
        raise OutputError(f"--update-card {folder}: no readable metrics.json of ct-degradbench train "
                          f"({type(err).__name__}); give a checkpoint folder written by train") from None
    if not (isinstance(facts, dict) and {"test", "best_epoch", "split_sizes"} <= set(facts)):
        raise OutputError(f"--update-card {folder}: its metrics.json was not written by ct-degradbench train; "
                          "refusing to rewrite it and the card")


def update_card(folder: Path, results: list[dict]) -> None:
    """Store ``results`` in ``folder/metrics.json`` and rewrite the checkpoint's model card."""
    from ctdegradbench.model.card import write_model_card
    from ctdegradbench.model.predict import load_model

    facts = json.loads((folder / "metrics.json").read_text())
    facts["real_artifacts"] = [{k: v for k, v in r.items() if k != "groups"} for r in results]
    (folder / "metrics.json").write_text(json.dumps(facts, indent=1, default=float))
    write_model_card(folder, load_model(folder).config, facts)
    print(f"model card of {folder} rewritten with the real-artifact table", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
