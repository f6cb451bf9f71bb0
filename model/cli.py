"""SeSpeCT's commands of ``ct-degradbench``: handlers of ``train``, ``predict`` and ``evaluate``
(their options are declared once in :mod:`ctdegradbench.model.options`), named by the command
table (``ct_degradbench.COMMANDS``).

    ct-degradbench train    --dataset DIR [DIR ...] --out DIR [--backbone B] [--ablate ...] [--epochs N] [--seed S]
                            [--ensemble K] [--patch-cnn WIDTH] | --merge CHECKPOINT ... --dataset DIR --out DIR
    ct-degradbench predict  FILE [FILE ...] [--model DIR] [--json]
    ct-degradbench evaluate [--model DIR] --dataset DIR [DIR ...] [--split test] [--json] [--out FILE]
                            [--predictions FILE] [--bootstrap N]

Heavy modules (torch, transformers, datasets) are imported inside the handlers.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ctdegradbench.model.options import EvaluateOptions, PredictOptions, TrainOptions


def train(options: TrainOptions) -> int:
    from ctdegradbench.core.outputs import OutputFolder

    OutputFolder(options.out, "train")       # refused before torch loads when it would replace a user's files
    from ctdegradbench.model.train import merge_checkpoints, train_sespect

    backbone_options = {"open_clip_model": options.open_clip_model, "backbone_weights": options.backbone_weights}
    command = "ct-degradbench " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("ct-degradbench") \
        else None
    if options.merge:
        result = merge_checkpoints(options.merge, options.dataset, options.out, cache_dir=options.cache_dir,
                                   progress=options.progress, command=command)
    else:
        result = train_sespect(options.dataset, options.out, backbone=options.backbone,
                               backbone_options=backbone_options, ablate=list(options.ablate), epochs=options.epochs,
                               batch_size=options.batch_size, lr=options.lr, seed=options.seed,
                               ensemble=options.ensemble, patch_cnn=options.patch_cnn,
                               patch_cnn_epochs=options.patch_cnn_epochs, cache_dir=options.cache_dir,
                               progress=options.progress,
                               command=command)
    m = result.metrics
    made = (f"{result.model.config.ensemble_size} members merged" if options.merge
            else f"best epoch {result.best_epoch}")
    ten = f" (ten classes {m['ten_class']['accuracy']:.3f})" if "ten_class" in m else ""
    print(f"wrote {options.out}: {made}; test accuracy {m['accuracy']:.3f}{ten}, macro F1 "
          f"{m['macro_f1']:.3f}, MAE {m['mae']:.3f}, QWK {m['qwk']:.3f}, mean Spearman single "
          f"{m['mean_spearman_single']:.3f} / mixtures {m['mean_spearman_mixtures']:.3f}; "
          f"{result.seconds['total']:.0f} s")
    print(OutputFolder(options.out, "train").summary())
    return 0


def predict(options: PredictOptions) -> int:
    from ctdegradbench.core.errors import InputError
    from ctdegradbench.model.predict import (NAME_WIDTH, LeftOut, answer_summary, format_table, iter_inputs,
                                             left_out_note, load_model, predict_slices, status_warning, to_json)

    model = load_model(options.model)
    predictions, errors, left_out = [], {}, {}
    for path in options.files:
        for where, slices in iter_inputs(path, nifti_axes=options.nifti_axes, png_offset=options.png_offset,
                                         pixel_spacing=options.pixel_spacing):
            if isinstance(slices, LeftOut):
                left_out[where] = slices.reason
                continue
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
            if not options.json:            # each result as soon as it is ready (the header once)
                print(format_table(ready, header=not predictions, width=NAME_WIDTH), flush=True)
            predictions += ready
    if options.json:
        print(to_json(predictions, errors, left_out))
    elif len(predictions) > 1:     # on stderr, like the notes: stdout stays one table row per slice
        print(f"ct-degradbench: {answer_summary(predictions)}", file=sys.stderr)
    if left_out:
        print(f"ct-degradbench: note: {left_out_note(left_out)}", file=sys.stderr)
    if errors:
        print(f"ct-degradbench: {len(predictions)} slices predicted, {len(errors)} inputs skipped", file=sys.stderr)
    warning = status_warning(predictions)
    if warning:
        print(f"ct-degradbench: {warning}", file=sys.stderr)
    if not predictions and errors:
        return 2
    return 1 if errors else 0


def evaluate(options: EvaluateOptions) -> int:
    import json

    from ctdegradbench.core.outputs import check_file_output, write_json_output

    out = check_file_output(options.out or Path(f"sespect_eval_{options.split}.json"))   # before any work
    from ctdegradbench.model.evaluate import evaluate_checkpoint, format_metrics

    # each metrics file's own rows file: a second evaluate with another --out keeps the first one's rows
    predictions = check_file_output(options.predictions or out.with_name(f"{out.stem}_predictions.jsonl"),
                                    "--predictions")
    metrics = evaluate_checkpoint(options.model, options.dataset, options.split, batch_size=options.batch_size,
                                  predictions_path=predictions, n_boot=options.n_boot)
    write_json_output(out, metrics)
    print(json.dumps(metrics, indent=1, default=float) if options.json else format_metrics(metrics))
    print(f"metrics written to {out}, per-row predictions to {predictions}", file=sys.stderr)
    left_out = metrics["split"].get("left_out")
    if left_out:      # classes the model does not have: no row written, so `bench tasks` would refuse the file
        print("note: rows of classes the model does not know were left out ("
              + ", ".join(f"{name}: {n}" for name, n in left_out.items()) + "); `bench tasks` scores every row of a "
              "config, so score a config without them", file=sys.stderr)
    return 0
