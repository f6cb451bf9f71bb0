"""SeSpeCT's commands of ``ct-degradbench`` (registered by :func:`add_commands`).

Sub-commands::

    ct-degradbench train    --dataset DIR [DIR ...] --out DIR [--backbone B] [--ablate ...] [--epochs N] [--seed S]
    ct-degradbench predict  FILE [FILE ...] [--model DIR] [--json]
    ct-degradbench evaluate [--model DIR] --dataset DIR [DIR ...] [--split test] [--json] [--out FILE]
                            [--predictions FILE]

Heavy modules (torch, transformers, datasets) are imported inside the command functions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ctdegradbench.core.hu import PNG_OFFSET_HU

ABLATION_NAMES = ("semantic", "spectral", "image", "embedding", "reg", "rank", "con")


def int_in_range(low: int, high: int | None = None, unit: str = ""):
    """An argparse ``type``: an integer in ``low..high`` (no upper bound when ``high`` is None),
    else one error line naming the value."""
    expected = f">= {low}" if high is None else f"in {low}..{high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be an integer {expected}{unit}, got {text}")
        return value

    return parse


_positive_int = int_in_range(1)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of mm, got {text}")
    return value


def add_commands(sub, active: str | None = None, argv=()) -> None:
    """Register ``train``, ``predict`` and ``evaluate`` on ``sub`` (an argparse sub-parsers object).

    ``active`` and ``argv`` (the command being run and its arguments) are the dispatcher's
    protocol; these commands are cheap to declare, so they are always declared in full.
    """
    p = sub.add_parser("train", help="train SeSpeCT on exported dataset folders (split by patient)",
                       description="Train SeSpeCT: frozen-backbone features are computed once and cached, the "
                                   "trainable parts are fitted with the Eq. 24 loss, the epoch with the best "
                                   "validation (accuracy + QWK) / 2 is kept, and the test split is reported.")
    p.set_defaults(func=_cmd_train)
    p.add_argument("--dataset", type=Path, nargs="+", required=True, metavar="DIR",
                   help="one or more folders written by ct-degradbench build (their splits are concatenated)")
    p.add_argument("--out", type=Path, required=True, help="output folder of the checkpoint and its model card")
    p.add_argument("--backbone", default="none", choices=("none", "efficientnet_lite0", "open_clip"),
                   help="none (default, the shipped model): no frozen backbone, the spectral and image branches on "
                        "the physical grid (1 mm pixels, 384 mm field of view, native spacing as input), ten classes "
                        "+ clean, trained with coarser-pixel and cropped-FOV views; efficientnet_lite0 / open_clip: "
                        "the paper's semantic branch on the pixel grid (ten classes; open_clip needs --open-clip-model)")
    p.add_argument("--open-clip-model", default=None,
                   help="open_clip model: hf-hub:ORG/NAME (needs the Hub or its cache), local-dir:/path, or a "
                        "built-in name with --backbone-weights")
    p.add_argument("--backbone-weights", default=None,
                   help="backbone weights file (EfficientNet .pth; open_clip checkpoint or pretrained tag); default: "
                        "the packaged ImageNet EfficientNet-Lite0")
    p.add_argument("--ablate", nargs="*", default=[], choices=ABLATION_NAMES, metavar="PART",
                   help=f"switch parts off: branches (semantic, spectral, image, embedding = the projected global "
                        f"embedding) or loss terms (reg, rank, con); any of {', '.join(ABLATION_NAMES)}")
    p.add_argument("--epochs", type=_positive_int, default=15, help="training epochs (>= 1; default 15)")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="batch size (>= 2; default 64)")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate, cosine-decayed to 0 (default 1e-3)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation and batch order (default 0)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="frozen-feature cache (default: $CTDEGRADBENCH_CACHE or ~/.cache/ct-degradbench, "
                        "sespect-features/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = sub.add_parser("predict", help="predict degradation type and severity of CT slices",
                       description="Print degradation type, severity (0 = L0 .. 3 = L3) and class probabilities per "
                                   "slice. Inputs: DICOM file or folder, NIfTI, 16-bit PNG (HU + offset), .npy in "
                                   "HU. A bad file gives one error line; the others are still processed (exit 1).")
    p.set_defaults(func=_cmd_predict)
    p.add_argument("files", type=Path, nargs="+", metavar="FILE", help="DICOM file/folder, .nii[.gz], .png, .npy")
    p.add_argument("--model", type=Path, default=None, help="checkpoint folder (default: the shipped checkpoint)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--nifti-axes", default=None, help="patient direction of each NIfTI axis (e.g. LPS) when the "
                                                       "affine has none")
    p.add_argument("--png-offset", type=float, default=float(PNG_OFFSET_HU),
                   help=f"16-bit PNG holds HU + this offset (default {PNG_OFFSET_HU}: 0 is {-PNG_OFFSET_HU} HU)")
    p.add_argument("--pixel-spacing", type=_positive_float, default=None, metavar="MM",
                   help="pixel side in mm of .npy / .png inputs (required for them: they carry none; DICOM and "
                        "NIfTI give their own)")

    p = sub.add_parser("evaluate", help="task metrics of a SeSpeCT checkpoint on a dataset split",
                       description="Run a checkpoint on a split and compute accuracy, macro F1, per-class "
                                   "one-vs-rest accuracy and F1, micro AUC, MAE, RMSE, QWK and Spearman per setting.")
    p.set_defaults(func=_cmd_evaluate)
    p.add_argument("--model", type=Path, default=None, help="checkpoint folder (default: the shipped checkpoint)")
    p.add_argument("--dataset", type=Path, nargs="+", required=True, metavar="DIR", help="exported dataset folders")
    p.add_argument("--split", default="test", choices=("train", "validation", "test"), help="split (default test)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--out", type=Path, default=None,
                   help="metrics JSON file to write (default: sespect_eval_<split>.json in the current folder); "
                        "`leaderboard show / push` read it")
    p.add_argument("--predictions", type=Path, default=None, metavar="FILE",
                   help="per-row predictions (.jsonl: sample_id, label, severity, probabilities) to write, the file "
                        "`bench tasks --predictions` reads (default: sespect_predictions_<split>.jsonl beside --out)")
    p.add_argument("--batch-size", type=_positive_int, default=8, help="slices per forward pass (default 8)")


def _cmd_train(args) -> int:
    from ctdegradbench.core.outputs import OutputFolder

    OutputFolder(args.out, "train")       # refused before torch loads when it would replace a user's files
    from ctdegradbench.model.train import train_sespect

    options = {"open_clip_model": args.open_clip_model, "backbone_weights": args.backbone_weights}
    command = "ct-degradbench " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("ct-degradbench") \
        else None
    result = train_sespect(args.dataset, args.out, backbone=args.backbone, backbone_options=options,
                           ablate=args.ablate, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                           seed=args.seed, cache_dir=args.cache_dir, progress=not args.no_progress, command=command)
    m = result.metrics
    print(f"wrote {args.out}: best epoch {result.best_epoch}; test accuracy {m['accuracy']:.3f}, macro F1 "
          f"{m['macro_f1']:.3f}, MAE {m['mae']:.3f}, QWK {m['qwk']:.3f}, mean Spearman single "
          f"{m['mean_spearman_single']:.3f} / mixtures {m['mean_spearman_mixtures']:.3f}; "
          f"{result.seconds['total']:.0f} s")
    print(OutputFolder(args.out, "train").summary())
    return 0


def _cmd_predict(args) -> int:
    from ctdegradbench.core.errors import InputError
    from ctdegradbench.model.predict import (NAME_WIDTH, format_table, iter_inputs, load_model, predict_slices,
                                             status_warning, to_json)

    model = load_model(args.model)
    predictions, errors = [], {}
    for path in args.files:
        for where, slices in iter_inputs(path, nifti_axes=args.nifti_axes, png_offset=args.png_offset,
                                         pixel_spacing=args.pixel_spacing):
            if isinstance(slices, Exception):
                errors[where] = str(slices)
                print(f"ct-degradbench: error: {slices}", file=sys.stderr, flush=True)
                continue
            try:
                ready = predict_slices(model, slices)
            except InputError as err:      # e.g. a .npy / .png without --pixel-spacing for a physical-grid model
                errors[where] = str(err)
                print(f"ct-degradbench: error: {err}", file=sys.stderr, flush=True)
                continue
            if not args.json:            # each result as soon as it is ready (the header once)
                print(format_table(ready, header=not predictions, width=NAME_WIDTH), flush=True)
            predictions += ready
    if args.json:
        print(to_json(predictions, errors))
    if errors:
        print(f"ct-degradbench: {len(predictions)} slices predicted, {len(errors)} inputs skipped", file=sys.stderr)
    warning = status_warning(predictions)
    if warning:
        print(f"ct-degradbench: {warning}", file=sys.stderr)
    if not predictions and errors:
        return 2
    return 1 if errors else 0


def _cmd_evaluate(args) -> int:
    import json

    from ctdegradbench.core.outputs import check_file_output, write_json_output

    out = check_file_output(args.out or Path(f"sespect_eval_{args.split}.json"))   # before any work
    from ctdegradbench.model.evaluate import evaluate_checkpoint, format_metrics

    predictions = check_file_output(args.predictions or out.with_name(f"sespect_predictions_{args.split}.jsonl"),
                                    "--predictions")
    metrics = evaluate_checkpoint(args.model, args.dataset, args.split, batch_size=args.batch_size,
                                  predictions_path=predictions)
    write_json_output(out, metrics)
    print(json.dumps(metrics, indent=1, default=float) if args.json else format_metrics(metrics))
    print(f"metrics written to {out}, per-row predictions to {predictions}", file=sys.stderr)
    left_out = metrics["split"].get("left_out")
    if left_out:      # classes the model does not have: no row written, so `bench tasks` would refuse the file
        print("note: rows of classes the model does not know were left out ("
              + ", ".join(f"{name}: {n}" for name, n in left_out.items()) + "); `bench tasks` scores every row of a "
              "config, so score a config without them", file=sys.stderr)
    return 0
