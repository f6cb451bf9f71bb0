"""Experiment (issue 21): a small CNN trained end to end on full-resolution body patches, beside the
shipped SeSpeCT checkpoint, and the two fused.

    python benchmarks/sespect_patch_cnn.py --train-data DIR --test-data DIR --out NEW_DIR
        [--real ../shared/ct-real-artifacts] [--predictions FILE] [--width 16] [--epochs 25] [--seed 0]
        [--weight 0.5] [--device cpu]

What it does, every step on the model's physical grid (``SeSpeCTImageProcessor``: 1 mm pixels,
384 px, body-centred):

1. **Inputs.** Each slice gives 3 patches of 48 x 48 px (48 mm; the checkpoint config's
   default geometry, :func:`cnn_config`) of body (:func:`body_patches`: the positions whose share of pixels above
   ``BODY_HU`` is highest, spread by farthest-point sampling from the body's centre, so the
   same slice always gives the same patches) and the whole grid at 6 mm (64 x 64 px, anti-aliased):
   the patches keep the noise and edge texture at full resolution, the coarse slice the global
   layout of streaks and metal. Each is seen through three HU windows.
2. **Training views**, drawn as SeSpeCT's own training draws them (``model.train.GRID_VIEWS``:
   each degraded row as stored and once re-acquired at a coarser pixel or a cropped field of
   view, ``draw_acquisition``; a view whose degradation that acquisition hid,
   ``degradation_visible``, is labelled ``clean``; each reference 12 times and its clean FBP 4
   times, labelled ``clean``), from the ``train`` split of ``--train-data``.
3. **CNN** (the checkpoint's ``modeling_sespect.PatchCNN``): one encoder shared by the patches (mean and max over them), one
   for the coarse slice, an MLP to the eleven logits and a severity; cross-entropy plus SmoothL1
   on the level, AdamW with a one-cycle schedule, random rotations by 90 degrees and flips; the
   epoch of best ten-class accuracy on the ``validation`` split (rows as stored) is kept.
4. **Measured**, for the shipped checkpoint, the CNN, the fused answer (geometric mean of the
   two probabilities, the CNN's weight ``--weight``, fixed in advance, not fitted) and the fused
   answer with the checkpoint's metal decision (``modeling_sespect.fuse_with_patch_cnn``): accuracy eleven-way and on
   the paper's ten classes, and the severity's mean Spearman (the checkpoint's, the CNN's, their
   mean), on the ``test`` split of ``--test-data`` (the
   checkpoint's probabilities from ``ct-degradbench evaluate --predictions FILE``, or computed
   here); the real-artifact rates of ``benchmarks/real_artifacts.py`` (4 clean slices per
   volume); and the answers on the 18 views of the invariance test (one clean slice of
   ``../shared/ct`` stored, at 1.5 / 2.5 / 3.5 mm, cropped to 200 / 160 mm).

It measured whether a learned full-resolution branch adds what the hand-made features miss; since
then ``ct-degradbench train --patch-cnn`` trains such a CNN into the checkpoint (the architecture, the
patches and the fusion are the checkpoint's code, imported here; the training loop is this experiment's). Writes ``--out/results.json`` (and the views and
weights it made there); ``--out`` must be a new or empty folder.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REAL = ROOT / ".." / "shared" / "ct-real-artifacts"
INVARIANCE_CT = ROOT / ".." / "shared" / "ct" / "itkelastix__series_00.nii.gz"


@functools.lru_cache(maxsize=None)
def cnn_config(width: int = 16):
    """The checkpoint's config of a patch CNN of width ``width`` over SeSpeCT's eleven classes: its
    default patch geometry (``patch_count``, ``patch_size``, ``patch_stride``, ``coarse_size``) and
    windows are the ones this experiment used."""
    from ctdegradbench.model import SeSpeCTConfig
    from ctdegradbench.model.data import SESPECT_LABEL_NAMES

    return SeSpeCTConfig(backbone="none", use_semantic_branch=False, pixel_spacing_mm=1.0, image_size=384,
                         label_names=list(SESPECT_LABEL_NAMES), patch_cnn_width=width)


def body_patches(grid: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """HU patches of the body of one grid slice and the coarse slice (``modeling_sespect.body_patches``
    with the config's geometry, the checkpoint's own), stored as float16."""
    from ctdegradbench.model.modeling_sespect import body_patches as cut

    cfg = cnn_config()
    patches, coarse = cut(grid, cfg.patch_count, cfg.patch_size, cfg.patch_stride, cfg.coarse_size)
    return patches.numpy().astype(np.float16), coarse.numpy().astype(np.float16)


def patch_cnn(width: int) -> nn.Module:
    """The checkpoint's ``PatchCNN`` of width ``width`` (:func:`cnn_config`)."""
    from ctdegradbench.model.modeling_sespect import PatchCNN

    return PatchCNN(cnn_config(width))


def cnn_outputs(net: nn.Module, patches: np.ndarray, coarse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The CNN's class probabilities and severity (levels) of every slice (``model.train.patch_cnn_outputs``)."""
    from ctdegradbench.model.train import patch_cnn_outputs

    return patch_cnn_outputs(net, {"patches": patches, "coarse": coarse})


def views(folder: Path, split: str, training: bool, progress) -> dict:
    """Patches, coarse slices, labels, levels of ``split``: the degraded rows (first ``n_degraded``
    entries) then the clean references; with ``training`` SeSpeCT's training views (module docstring)."""
    from ctdegradbench.builder.dataset.options import REFERENCES_CONFIG
    from ctdegradbench.model.data import (CLEAN_CLASS_NAME, SESPECT_LABEL_NAMES, acquire_view, load_benchmark,
                                          load_config)
    from ctdegradbench.model.image_processing_sespect import SeSpeCTImageProcessor
    from ctdegradbench.model.train import GRID_VIEWS

    processor, clean_id = SeSpeCTImageProcessor(), SESPECT_LABEL_NAMES.index(CLEAN_CLASS_NAME)
    counts = GRID_VIEWS if training else {"degraded": 1, "reference": 1, "clean_fbp": 0}
    data = load_benchmark([folder], split, label_names=SESPECT_LABEL_NAMES)
    refs, _ = load_config([folder], REFERENCES_CONFIG, split)
    ref_spacing, ref_row = np.asarray(refs["pixel_spacing_mm"], float), {r: i for i, r in enumerate(refs["reference_id"])}
    ref_images = refs.with_format("numpy", columns=["reference", "clean_fbp"])
    rng, out = np.random.default_rng(1), {"patches": [], "coarse": [], "labels": [], "levels": []}

    def add(hu, spacing, label, level):
        patches, coarse = body_patches(processor.to_grid(hu, spacing))
        for key, value in zip(out, (patches, coarse, label, level)):
            out[key].append(value)

    for i in progress(range(len(data)), f"{split} views"):
        hu, spacing = np.asarray(data.dataset[i]["image"], np.float32), float(data.spacings[i])
        add(hu, spacing, data.labels[i], data.levels[i])
        clean = ref_images[ref_row[data.reference_ids[i]]]["clean_fbp"]
        for _ in range(counts["degraded"] - 1):
            seen, seen_spacing, visible = acquire_view(hu, spacing, rng, clean)
            add(seen, seen_spacing, data.labels[i] if visible else clean_id, data.levels[i] if visible else 0)
    for column in ("reference", "clean_fbp"):
        for j in range(len(refs)):
            hu = np.asarray(ref_images[j][column], np.float32)
            for v in range(counts[column]):
                seen, seen_spacing, _ = (hu, ref_spacing[j], True) if v == 0 else acquire_view(hu, ref_spacing[j], rng)
                add(seen, seen_spacing, clean_id, 0)
    arrays = {k: np.stack(v) if k in ("patches", "coarse") else np.asarray(v) for k, v in out.items()}
    arrays["n_degraded"] = np.array(len(data) * counts["degraded"])
    return arrays


def train(train_views: dict, validation: dict, width: int, epochs: int, seed: int, device: str, log) -> nn.Module:
    """The CNN of the epoch with the best ten-class validation accuracy (degraded rows as stored)."""
    from ctdegradbench.model.data import CLEAN_CLASS_NAME, SESPECT_LABEL_NAMES
    from ctdegradbench.model.metrics import ten_class_predictions
    from ctdegradbench.model.train import PATCH_CNN_BATCH as BATCH
    from ctdegradbench.model.train import PATCH_CNN_LR as LEARNING_RATE
    from ctdegradbench.model.train import PATCH_CNN_WEIGHT_DECAY as WEIGHT_DECAY

    torch.manual_seed(seed)
    clean_id = SESPECT_LABEL_NAMES.index(CLEAN_CLASS_NAME)
    patches = torch.from_numpy(train_views["patches"].astype(np.float32)).to(device)
    coarse = torch.from_numpy(train_views["coarse"].astype(np.float32)).to(device)
    labels = torch.from_numpy(train_views["labels"].astype(np.int64)).to(device)
    levels = torch.from_numpy(train_views["levels"].astype(np.float32)).to(device)
    n_val = int(validation["n_degraded"])
    net = patch_cnn(width).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    steps = len(labels) // BATCH
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, LEARNING_RATE, total_steps=epochs * steps)
    best, state = -1.0, None
    for epoch in range(epochs):
        net.train()
        start, order = time.perf_counter(), torch.randperm(len(labels), device=device)
        for k in range(steps):
            rows = order[k * BATCH:(k + 1) * BATCH]
            p, c = patches[rows], coarse[rows]
            turns = int(torch.randint(4, ()))
            p, c = torch.rot90(p, turns, (-2, -1)), torch.rot90(c, turns, (-2, -1))
            if torch.rand(()) < 0.5:
                p, c = p.flip(-1), c.flip(-1)
            logits, severity = net(p, c)
            degraded = labels[rows] != clean_id
            loss = F.cross_entropy(logits, labels[rows]) + F.smooth_l1_loss(severity[degraded], levels[rows][degraded])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        answers = ten_class_predictions(
            cnn_outputs(net, validation["patches"][:n_val], validation["coarse"][:n_val])[0], SESPECT_LABEL_NAMES)
        accuracy = float(np.mean(answers == validation["labels"][:n_val]))
        log(f"epoch {epoch + 1}/{epochs}: validation ten-class accuracy {accuracy:.3f} "
            f"({time.perf_counter() - start:.0f} s)")
        if accuracy > best:
            best, state = accuracy, {k: v.detach().clone() for k, v in net.state_dict().items()}
    net.load_state_dict(state)
    return net


def answers(shipped: np.ndarray, cnn: np.ndarray, weight: float, names) -> dict[str, np.ndarray]:
    """The probabilities compared: the checkpoint, the CNN, their weighted geometric mean and that mean
    with the checkpoint's metal decision (``modeling_sespect.fuse_with_patch_cnn`` without and with the
    gate of ``METAL_LABELS``)."""
    from ctdegradbench.model.modeling_sespect import fuse_with_patch_cnn
    from ctdegradbench.model.real_artifacts import METAL_LABELS

    s, c = torch.from_numpy(np.asarray(shipped, np.float64)), torch.from_numpy(np.asarray(cnn, np.float64))
    gate = torch.tensor([n in METAL_LABELS for n in names])
    return {"shipped": shipped, "cnn": cnn, "fused": fuse_with_patch_cnn(s, c, weight).numpy(),
            "fused_metal_gated": fuse_with_patch_cnn(s, c, weight, gate).numpy()}


def shipped_and_cnn(model, net, slices) -> tuple[np.ndarray, np.ndarray, list[int], np.ndarray]:
    """Probabilities of the checkpoint and of the CNN on the ``(hu, spacing)`` slices the checkpoint
    answers, the indices of those slices and the checkpoint's severities there (levels, unclipped)."""
    from ctdegradbench.model.image_processing_sespect import SeSpeCTImageProcessor
    from ctdegradbench.model.predict import run_batches

    batches = (([h for h, _ in slices[i:i + 8]], [s for _, s in slices[i:i + 8]]) for i in range(0, len(slices), 8))
    probs, severity, status = run_batches(model, batches)
    ok = [i for i, state in enumerate(status) if state == "ok"]
    processor = SeSpeCTImageProcessor.from_config(model.config)
    made = [body_patches(processor.to_grid(*slices[i])) for i in ok]
    cnn, _ = cnn_outputs(net, np.stack([p for p, _ in made]), np.stack([c for _, c in made]))
    return probs[ok], cnn, ok, severity[ok]


INVARIANCE_VIEWS_PER_SLICE = 6   # as stored, 3 pixel sizes, 2 crops


def invariance_views() -> list[tuple[np.ndarray, float]]:
    """The 18 views of ``tests/model/test_sespect_grid.py``'s invariance test (3 slices x
    ``INVARIANCE_VIEWS_PER_SLICE``)."""
    from ctdegradbench.builder.sources import load_source
    from ctdegradbench.model.image_processing_sespect import BODY_HU

    out = []
    for s in load_source(str(INVARIANCE_CT), nifti_axes="LPS", max_slices=3, min_body_fraction=0.2).slices:
        hu, spacing = s.hu.astype(np.float32), float(s.pixel_spacing_mm)
        out.append((hu, spacing))
        for new in (1.5, 2.5, 3.5):
            size = round(hu.shape[0] * spacing / new)
            x = F.interpolate(torch.from_numpy(hu)[None, None], size=(size, size), mode="bilinear", antialias=True,
                              align_corners=False)[0, 0].numpy()
            out.append((x, spacing * hu.shape[0] / size))
        body = np.argwhere(hu > BODY_HU).mean(0).round().astype(int)
        for fov in (200.0, 160.0):
            half = int(fov / spacing / 2)
            r0, c0 = max(body[0] - half, 0), max(body[1] - half, 0)
            out.append((hu[r0:r0 + 2 * half, c0:c0 + 2 * half], spacing))
    return out


def measure(model, net, test: dict, predictions: Path | None, test_folder: Path, real: Path,
            weight: float) -> dict:
    """Test-split accuracies, real-artifact rates and invariance answers of the checkpoint, the CNN and
    the two fused."""
    from ctdegradbench.model.data import CLEAN_CLASS_NAME, load_benchmark
    from ctdegradbench.model.metrics import task_metrics, ten_class_predictions
    from ctdegradbench.model.real_artifacts import collect, rate_intervals, real_artifact_rates

    names = list(model.config.label_names)
    clean_id = names.index(CLEAN_CLASS_NAME)
    n = int(test["n_degraded"])
    labels = test["labels"][:n]
    if predictions:
        rows = [json.loads(line) for line in predictions.read_text().splitlines() if line.strip()]
        ids = load_benchmark([test_folder], "test", label_names=names).dataset.select_columns(
            ["sample_id"]).with_format(None)["sample_id"]
        by_id = {r["sample_id"]: r for r in rows}
        shipped = np.array([[by_id[i]["probabilities"][k] for k in names] for i in ids])
        shipped_severity = np.array([by_id[i]["severity"] for i in ids], float)
    else:
        split = load_benchmark([test_folder], "test", label_names=names)
        shipped, _, answered, shipped_severity = shipped_and_cnn(model, net, [(np.asarray(split.dataset[i]["image"], np.float32),
                                                             float(split.spacings[i])) for i in range(n)])
        if len(answered) < n:
            raise SystemExit(f"sespect_patch_cnn: the checkpoint answers {len(answered)} of the {n} test rows; "
                             "the comparison needs all of them")
    cnn, cnn_severity = cnn_outputs(net, test["patches"][:n], test["coarse"][:n])
    result = {"weight": weight, "test_rows": n}
    settings = [names[k].split("_")[0] for k in labels]
    for key, p in answers(shipped, cnn, weight, names).items():
        result[f"test_{key}"] = {"eleven": float(np.mean(p.argmax(1) == labels)),
                                 "ten": float(np.mean(ten_class_predictions(p, names) == labels))}
    # severity: the checkpoint's, the CNN's and their mean, by the benchmark's Spearman (task_metrics)
    for key, severity in (("shipped", shipped_severity), ("cnn", cnn_severity),
                          ("mean", (shipped_severity + cnn_severity) / 2)):
        m = task_metrics(labels, shipped, test["levels"][:n], severity, settings, names)
        result[f"test_severity_{key}"] = {k: m[k] for k in ("mean_spearman_single", "mean_spearman_mixtures", "qwk", "mae")}
    rows = collect(real, 4)
    shipped, cnn, ok, _ = shipped_and_cnn(model, net, [(r["hu"], r["pixel_spacing_mm"]) for r in rows])
    groups = np.array([rows[i]["group"] for i in ok], dtype=object)
    patients = np.array([rows[i]["item"] for i in ok], dtype=object)
    for key, p in answers(shipped, cnn, weight, names).items():
        said = np.array([names[j] for j in p.argmax(1)], dtype=object)
        result[f"real_{key}"] = {**real_artifact_rates(groups, said, 1 - p[:, clean_id], "clean"),
                                 "intervals": rate_intervals(groups, said, 1 - p[:, clean_id], patients, "clean")}
    shipped, cnn, _, _ = shipped_and_cnn(model, net, invariance_views())
    for key, p in answers(shipped, cnn, weight, names).items():
        said = [names[j] for j in p.argmax(1)]
        stored = [said[i - i % INVARIANCE_VIEWS_PER_SLICE] for i in range(len(said))]
        result[f"invariance_{key}"] = {"same_as_stored": int(sum(a == b for a, b in zip(said, stored))),
                                       "views": len(said), "answers": said}
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-data", type=Path, required=True, help="export whose train / validation splits train the CNN")
    parser.add_argument("--test-data", type=Path, required=True, help="export whose test split is measured")
    parser.add_argument("--out", type=Path, required=True, help="a new or empty folder for the views, weights, results")
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL, help="the ct-real-artifacts folder")
    parser.add_argument("--predictions", type=Path, help="the checkpoint's evaluate --predictions file of that test split")
    parser.add_argument("--model", default=None, help="SeSpeCT checkpoint (default: the shipped one)")
    parser.add_argument("--width", type=int, default=16, help="CNN width w (channels w, 2w, 4w)")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weight", type=float, default=0.5, help="the CNN's weight in the fused answer, 0..1")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    for name in ("width", "epochs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if not 0 <= args.weight <= 1:
        parser.error(f"--weight must be in [0, 1], got {args.weight}")
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        parser.error(f"--out {args.out} exists and is not an empty folder: give a new folder (nothing is replaced)")
    from ctdegradbench.core.errors import InputError
    from ctdegradbench.core.outputs import protected_reason
    from ctdegradbench.model.real_artifacts import labels_file

    if protected_reason(args.out):
        parser.error(f"--out {args.out} {protected_reason(args.out)}: give a new folder")
    try:
        labels_file(args.real)
    except InputError as err:
        parser.error(f"--real: {err}")
    if args.predictions and not args.predictions.is_file():
        parser.error(f"--predictions {args.predictions}: no such file")
    for name in ("train_data", "test_data"):
        if not (getattr(args, name) / "ct-degradbench-manifest.json").is_file():
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)}: not an export of ct-degradbench build "
                         "(no ct-degradbench-manifest.json)")
    from tqdm.auto import tqdm

    from ctdegradbench.model.predict import load_model

    args.out.mkdir(parents=True, exist_ok=True)
    progress = lambda items, desc: tqdm(items, desc=desc, file=sys.stderr)      # noqa: E731
    log = lambda text: print(text, file=sys.stderr, flush=True)                  # noqa: E731
    start = time.perf_counter()
    made = {}
    for name, folder, split, training in (("train", args.train_data, "train", True),
                                          ("validation", args.train_data, "validation", False),
                                          ("test", args.test_data, "test", False)):
        made[name] = views(folder, split, training, progress)
        np.savez(args.out / f"views_{name}.npz", **made[name])
    net = train(made["train"], made["validation"], args.width, args.epochs, args.seed, args.device, log)
    torch.save(net.state_dict(), args.out / "cnn.pt")
    result = measure(load_model(args.model), net, made["test"], args.predictions, args.test_data, args.real,
                     args.weight)
    result.update(command=" ".join(["python benchmarks/sespect_patch_cnn.py", *(argv or sys.argv[1:])]),
                  train_views=len(made["train"]["labels"]), width=args.width, epochs=args.epochs, seed=args.seed,
                  minutes=round((time.perf_counter() - start) / 60, 1))
    (args.out / "results.json").write_text(json.dumps(result, indent=1, default=float))
    for key in ("shipped", "cnn", "fused", "fused_metal_gated"):
        t, r, v = result[f"test_{key}"], result[f"real_{key}"], result[f"invariance_{key}"]
        print(f"{key:<17} test {t['eleven']:.3f} / ten {t['ten']:.3f}   real: metal {r['metal_recall']:.3f} "
              f"false metal {r['false_metal_rate']:.3f} clean body {r['clean_rate_body']:.3f} head-neck clean "
              f"{r['clean_rate_head_neck']:.3f} low-dose AUC {r['low_dose_vs_clean_auc']:.3f}   invariance "
              f"{v['same_as_stored']}/{v['views']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
