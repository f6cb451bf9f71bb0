"""The soft-tissue noise that slices hold before any simulated degradation: the references of an
export (as stored and their clean reconstruction, per split and source) next to the noise of the
rows with the least added noise (``single_noise`` level 0: the reference's own noise plus the
smallest simulated dose reduction) and to the real scans of ``../shared/ct-real-artifacts``
(low-dose and clean body groups, per patient).

    python benchmarks/native_noise.py --dataset DIR [--data ../shared/ct-real-artifacts] [--json out.json]

The noise is the first of SeSpeCT's native statistics (``native_statistics``: 1.4826 x MAD of the
high-pass residual in eroded soft tissue, HU, at the slice's own pixel spacing). Reported: minimum,
median, 90th percentile and maximum per group. It tells whether a reference's own noise lies inside
the range the model was trained on, how it compares with real low-dose noise, and whether a row
without added noise (the clean reconstruction) already holds more noise than the training rows
labelled with added noise (S1 L0): where it does, no reader of the image alone can tell the two labels apart.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "ct-real-artifacts"


def _summary(values) -> dict:
    v = np.asarray(values, float)
    return {"n": int(v.size), "min": float(v.min()), "median": float(np.median(v)),
            "p90": float(np.percentile(v, 90)), "max": float(v.max())}


def reference_noise(dataset: Path) -> dict:
    """``{split: {source: {"stored": summary, "clean_fbp": summary}}}`` over the export's references."""
    from ctdegradbench.builder.dataset.options import REFERENCES_CONFIG
    from ctdegradbench.builder.sources.reference import source_of
    from ctdegradbench.model.data import load_config
    from ctdegradbench.model.image_processing_sespect import native_statistics

    out = {}
    for split in ("train", "validation", "test"):
        refs, _ = load_config([dataset], REFERENCES_CONFIG, split)
        by_source: dict[str, dict[str, list]] = {}
        for row in refs.select_columns(["patient_key", "pixel_spacing_mm", "reference", "clean_fbp"]):
            spacing = float(row["pixel_spacing_mm"])
            group = by_source.setdefault(source_of(row["patient_key"]), {"stored": [], "clean_fbp": []})
            for column in ("stored", "clean_fbp"):
                hu = np.asarray(row["reference" if column == "stored" else column], np.float32)
                group[column].append(float(native_statistics(hu, spacing)[0]))
        out[split] = {src: {k: _summary(v) for k, v in cols.items()} for src, cols in sorted(by_source.items())}
    return out


def lowest_noise_rows(dataset: Path, setting: str = "S1", level: int = 0) -> dict:
    """``{split: {source: summary}}`` of the soft-tissue noise of the rows of ``setting`` at ``level``
    (default S1 L0: the reference's own noise plus the least simulated noise)."""
    from ctdegradbench.builder.dataset.options import ALL_CONFIG
    from ctdegradbench.builder.sources.reference import source_of
    from ctdegradbench.model.data import load_config
    from ctdegradbench.model.image_processing_sespect import native_statistics

    out = {}
    for split in ("train", "validation", "test"):
        rows, _ = load_config([dataset], ALL_CONFIG, split)
        keep = [i for i, (s, lv) in enumerate(zip(rows["setting"], rows["level"])) if s == setting and lv == level]
        by_source: dict[str, list] = {}
        for row in rows.select(keep).select_columns(["patient_key", "pixel_spacing_mm", "image"]):
            hu = np.asarray(row["image"], np.float32)
            by_source.setdefault(source_of(row["patient_key"]), []).append(
                float(native_statistics(hu, float(row["pixel_spacing_mm"]))[0]))
        out[split] = {src: _summary(v) for src, v in sorted(by_source.items())}
    return out


def real_noise(data: Path) -> dict:
    """``{group: {item: summary}}`` for the low-dose and clean body scans of ct-real-artifacts."""
    from ctdegradbench.model.image_processing_sespect import native_statistics
    from ctdegradbench.model.real_artifacts import collect

    out: dict[str, dict] = {}
    rows = [r for r in collect(data, max_clean=0) if r["group"] in ("low_dose", "clean_body")]
    for group in ("low_dose", "clean_body"):
        for item in sorted({r["item"] for r in rows if r["group"] == group}):
            out.setdefault(group, {})[item] = _summary(
                [native_statistics(r["hu"], r["pixel_spacing_mm"])[0] for r in rows if r["item"] == item])
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, required=True, help="an exported CT-DegradBench folder")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the ct-real-artifacts folder")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    from ctdegradbench.core.errors import CTDegradBenchError
    from ctdegradbench.core.outputs import check_file_output, write_json_output
    from ctdegradbench.model.real_artifacts import labels_file

    try:                                    # refused before any work: nothing of the user's is replaced
        if args.json:
            check_file_output(args.json, "--json")
        labels_file(args.data)
        refs = reference_noise(args.dataset)
        least_added = lowest_noise_rows(args.dataset)
    except CTDegradBenchError as err:
        print(f"native_noise: error: {err}", file=sys.stderr)
        return 2
    real = real_noise(args.data)

    def fmt(s):
        return f"{s['min']:5.1f} {s['median']:6.1f} {s['p90']:6.1f} {s['max']:6.1f}  (n {s['n']})"

    print("soft-tissue noise (HU): min median p90 max")
    for split, sources in refs.items():
        for src, cols in sources.items():
            print(f"{split:<10} {src:<20} stored {fmt(cols['stored'])}   clean FBP {fmt(cols['clean_fbp'])}"
                  f"   S1 L0 rows {fmt(least_added[split][src])}")
    for group, items in real.items():
        for item, s in items.items():
            print(f"real {group:<10} {item:<36} {fmt(s)}")
    if args.json:
        write_json_output(args.json, {"dataset": str(args.dataset), "references": refs,
                                       "s1_l0_rows": least_added, "real": real}, "--json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
