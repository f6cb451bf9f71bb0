"""SeSpeCT on real scans with real, labelled artifacts (``../shared/ct-real-artifacts``; judge only,
never used for training), one or more checkpoints side by side.

    python benchmarks/real_artifacts.py [--data ../shared/ct-real-artifacts] [--model DIR ...]
        [--labels NAME ...] [--max-clean-per-volume 12] [--json out.json] [--threads 2] [--update-card DIR]

Reads ``labels.json`` and reports, per checkpoint (default: the shipped one), the rates of
:mod:`ctdegradbench.model.real_artifacts` (metal recall, false-metal rate, clean rates, low-dose vs
clean AUC) with their 95 % patient-bootstrap intervals, the answers per group and the shares per
body region. Each head-and-neck volume's clean slices are subsampled evenly to
``--max-clean-per-volume`` (speed); every metal slice is kept.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "ct-real-artifacts"


def format_table(results: list[dict]) -> str:
    from ctdegradbench.model.real_artifacts import RATES, interval_note, rate_cell

    lines = ["| checkpoint | " + " | ".join(RATES) + " | seconds |", "|---" * (len(RATES) + 2) + "|"]
    for r in results:
        lines.append(f"| {r.get('label', r['model'])} | " + " | ".join(rate_cell(r, n) for n in RATES)
                     + f" | {r['seconds']} |")
    lines.append(interval_note(results[-1]))
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
                        help="clean slices kept per head-and-neck volume, evenly spaced (default 12; 0: all)")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--labels", nargs="+", default=None, metavar="NAME",
                        help="a name per --model for the tables (default: the folder)")
    parser.add_argument("--update-card", type=Path, default=None, metavar="DIR",
                        help="a checkpoint folder written by ct-degradbench train: add these results to its "
                             "metrics.json and rewrite its model card (README.md)")
    args = parser.parse_args(argv)
    if args.max_clean_per_volume < 0:
        parser.error(f"--max-clean-per-volume must be 0 (all) or more, got {args.max_clean_per_volume}")
    if args.labels and len(args.labels) != len(args.model):
        parser.error(f"--labels needs one name per --model ({len(args.model)}), got {len(args.labels)}")
    from ctdegradbench.core.errors import CTDegradBenchError
    from ctdegradbench.core.outputs import check_file_output, write_json_output
    from ctdegradbench.model.real_artifacts import labels_file

    try:                                    # refused before any work: nothing of the user's is replaced
        if args.json:
            check_file_output(args.json, "--json")
        if args.update_card:
            check_checkpoint_folder(args.update_card)
        labels_file(args.data)
    except CTDegradBenchError as err:
        print(f"real_artifacts: error: {err}", file=sys.stderr)
        return 2
    import torch

    from ctdegradbench.model.real_artifacts import collect, judge

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
