"""References with metal of their own in an exported dataset, and what they do to a model's accuracy.

    python benchmarks/reference_metal_area.py --dataset DIR [--predictions FILE.jsonl ...]
        [--max-metal-area 7] [--json out.json]

For every reference slice of ``DIR`` (its ``references`` config): the area above ``METAL_HU``
(``builder.sources.loaders.metal_like_area_mm2``, the measure ``build --max-metal-area`` screens;
computed from the stored reference, so exports built before the screen existed work too), its
source and split. Reported: how many references lie above ``--max-metal-area`` per source and per
split, and with ``--predictions`` (per-row files of ``ct-degradbench evaluate``, e.g. one per split) each
reference's accuracy over its rows, and the accuracy of the rows of references below and above it
and per split and source.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path


def reference_areas(dataset: Path) -> list[dict]:
    """``{reference_id, source, split, metal_like_area_mm2}`` of every reference slice of ``dataset``."""
    from ctdegradbench.builder.dataset.options import REFERENCES_CONFIG
    from ctdegradbench.builder.dataset.reader import ExportedFolder
    from ctdegradbench.builder.sources.loaders import metal_like_area_mm2

    folder = ExportedFolder(dataset)
    out = []
    for split in folder.splits(REFERENCES_CONFIG):
        for batch in folder.batches(REFERENCES_CONFIG, split,
                                    columns=["reference_id", "source", "pixel_spacing_mm", "reference"]):
            for rid, source, spacing, hu in zip(batch["reference_id"], batch["source"], batch["pixel_spacing_mm"],
                                                batch["reference"]):
                out.append({"reference_id": str(rid), "source": str(source), "split": split,
                            "metal_like_area_mm2": round(metal_like_area_mm2(hu, float(spacing)), 2)})
    return out


def accuracy_by_reference(files) -> dict[str, list[int]]:
    """``reference_id -> [correct, rows]`` from ``evaluate`` predictions files (sample ids are
    ``<reference_id>/<setting>/<level>/r<realization>``)."""
    from ctdegradbench.builder.core.seeding import parse_sample_id
    from ctdegradbench.builder.simulate.settings import get_setting
    from ctdegradbench.evaluation.tasks import read_predictions

    counts: dict[str, list[int]] = {}
    for row in (row for path in files for row in read_predictions(path)):
        ref, code, _level, _realization = parse_sample_id(row["sample_id"])
        tally = counts.setdefault(ref, [0, 0])
        tally[0] += row["label"] == get_setting(code).class_name
        tally[1] += 1
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, required=True, help="an exported dataset folder")
    parser.add_argument("--predictions", type=Path, nargs="+", default=None, metavar="FILE",
                        help="per-row predictions of `ct-degradbench evaluate` on that dataset (one per split)")
    parser.add_argument("--max-metal-area", type=float, default=7.0, metavar="MM2",
                        help="area (mm^2) above which a reference counts as holding metal (default 7: the smallest "
                             "simulated implant is 7.1 mm^2)")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    from ctdegradbench.core.errors import CTDegradBenchError
    from ctdegradbench.core.outputs import check_file_output, write_json_output

    try:                                    # refused before any work: nothing of the user's is replaced
        if args.json:
            check_file_output(args.json, "--json")
        refs = reference_areas(args.dataset)
        acc = accuracy_by_reference(args.predictions) if args.predictions else None
    except CTDegradBenchError as err:       # a folder that is no export, a file of the user's, bad predictions
        print(f"reference_metal_area: error: {err}", file=sys.stderr)
        return 2
    above = [r for r in refs if r["metal_like_area_mm2"] > args.max_metal_area]
    summary = {"references": len(refs), "above": len(above),
               "above_by_source": dict(Counter(r["source"] for r in above)),
               "above_by_split": dict(Counter(r["split"] for r in above)),
               "by_split": dict(Counter(r["split"] for r in refs))}
    print(f"{len(above)} of {len(refs)} references hold more than {args.max_metal_area:g} mm^2 of metal-like pixels; "
          f"by source {summary['above_by_source']}, by split {summary['above_by_split']} (of {summary['by_split']})")
    if acc is not None:
        for r in refs:
            if r["reference_id"] in acc:
                correct, n = acc[r["reference_id"]]
                r["accuracy"], r["rows"] = round(correct / n, 4), n
        groups = [(f"{name} the limit", group) for name, group in
                  (("below", [r for r in refs if r not in above]), ("above", above))]
        groups += [(f"{split} {source}", [r for r in refs if (r["split"], r["source"]) == (split, source)])
                   for split, source in sorted({(r["split"], r["source"]) for r in refs})]
        for name, group in groups:
            scored = [acc[r["reference_id"]] for r in group if r["reference_id"] in acc]
            correct, n = sum(c for c, _ in scored), sum(n for _, n in scored)
            summary[f"accuracy {name}"] = round(correct / n, 4) if n else None
            print(f"rows of the {len(scored)} predicted references, {name}: "
                  + (f"accuracy {correct / n:.4f} over {n} rows" if n else "none"))
    for r in sorted(above, key=lambda r: -r["metal_like_area_mm2"]):
        print(f"  {r['metal_like_area_mm2']:8.1f} mm^2  {r['split']:10s}  "
              + (f"accuracy {r['accuracy']:.3f}  " if "accuracy" in r else "") + r["reference_id"])
    if args.json:
        write_json_output(args.json, {"dataset": str(args.dataset), "max_metal_area_mm2": args.max_metal_area,
                                      "summary": summary, "references": refs}, "--json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
