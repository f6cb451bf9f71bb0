"""Where a model's answers go, per source: the confusion of true setting against answer from
``ct-degradbench evaluate --predictions`` files, one table per source of the rows.

    python benchmarks/confusion_by_source.py FILE.jsonl [FILE.jsonl ...] [--json out.json]

The true class of a row is the class of the setting in its sample id
(``<source>/<patient>/.../<setting>/L<level>/r<realization>``, ``builder.core.seeding``); the
source is the id's first part. Printed per source: rows, accuracy, and for each true class the rows
answered right and where the others went (``clean`` included). It shows what a source's errors
have in common, e.g. an answer with noise added where none was (the reference's own noise) or
an answer without blur where blur was added.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path


def confusion_by_source(files) -> dict[str, dict[str, Counter]]:
    """``{source: {true class: Counter(answer -> rows)}}`` over the rows of ``files``."""
    from ctdegradbench.builder.core.seeding import parse_sample_id
    from ctdegradbench.builder.simulate.settings import get_setting
    from ctdegradbench.evaluation.tasks import read_predictions

    out: dict[str, dict[str, Counter]] = {}
    for row in (row for path in files for row in read_predictions(path)):
        reference, code, _level, _realization = parse_sample_id(row["sample_id"])
        truth = get_setting(code).class_name
        out.setdefault(reference.split("/", 1)[0], {}).setdefault(truth, Counter())[row.get("label")] += 1
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("predictions", type=Path, nargs="+", metavar="FILE",
                        help="per-row predictions of `ct-degradbench evaluate` (.jsonl)")
    parser.add_argument("--json", type=Path, default=None, help="write the tables as JSON here")
    args = parser.parse_args(argv)
    from ctdegradbench.builder.simulate.settings import PAPER_CLASS_NAMES
    from ctdegradbench.core.errors import CTDegradBenchError
    from ctdegradbench.core.outputs import check_file_output, write_json_output

    try:                                    # refused before any work: nothing of the user's is replaced
        if args.json:
            check_file_output(args.json, "--json")
        tables = confusion_by_source(args.predictions)
    except CTDegradBenchError as err:
        print(f"confusion_by_source: error: {err}", file=sys.stderr)
        return 2
    for source, by_truth in sorted(tables.items()):
        rows = sum(sum(c.values()) for c in by_truth.values())
        right = sum(c[truth] for truth, c in by_truth.items())
        print(f"{source}: {right} of {rows} rows right ({right / rows:.3f})")
        for truth in [n for n in PAPER_CLASS_NAMES if n in by_truth] + sorted(set(by_truth) - set(PAPER_CLASS_NAMES)):
            counts = by_truth[truth]
            wrong = ", ".join(f"{answer} {n}" for answer, n in counts.most_common() if answer != truth)
            print(f"  {truth:<12} right {counts[truth]:4d} of {sum(counts.values()):4d}"
                  + (f"   wrong: {wrong}" if wrong else ""))
    if args.json:
        write_json_output(args.json, {"predictions": [str(p) for p in args.predictions],
                                      "sources": {s: {t: dict(c) for t, c in by.items()} for s, by in tables.items()}},
                          "--json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
