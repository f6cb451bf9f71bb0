"""SeSpeCT experiments on the test split (patients never seen in training): the paper's
Tables 4-6 layout, baselines run the same way, a confusion matrix and a t-SNE figure.

    python benchmarks/sespect_experiments.py --dataset DIR [DIR ...] --out sespect-results [--epochs N]

Runs, all on the same cached frozen features and the same patient split:

- SeSpeCT, default recipe (every branch) -> main result, per-class (Table 5), per-setting
  severity (Table 6), per-level metrics, confusion matrix, t-SNE of the fused embedding;
- ablations (Table 4): without the semantic / spectral / image branch, without the projected
  global embedding, and without each of the regression, ranking and contrastive losses; plus
  the paper's two-branch model (semantic + spectral, no image branch);
- baselines: a linear probe (logistic regression for the class, ridge regression for the
  severity) on the frozen backbone's global embedding alone, and hand-made spectral + image
  statistics (radial log power spectrum in two windows, high-frequency ratio, directional
  spectral energy in 12 sectors, a Laplacian noise estimate, gradient and HU-histogram
  statistics) with gradient boosting (scikit-learn's HistGradientBoosting).

Writes ``results.md`` (tables), ``results.json`` (every number), ``confusion_matrix.png`` and
``tsne.png`` under ``--out``. Every number is measured by this run; nothing is copied in.
The offline backbone is EfficientNet-Lite0 with an image-prototype quality axis (a deviation
from the paper's BiomedCLIP prompt axis); the tables say so.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ctdegradbench.core.tables import markdown_table

ABLATION_RUNS = (
    ("full (same epochs as the ablations)", []),
    ("w/o B_sem (semantic branch)", ["semantic"]),
    ("w/o B_FFT (spectral branch)", ["spectral"]),
    ("w/o image branch (= paper's two branches)", ["image"]),
    ("w/o projected embedding z", ["embedding"]),
    ("w/o L_reg", ["reg"]),
    ("w/o L_rank", ["rank"]),
    ("w/o L_con", ["con"]),
)


def handmade_features(hu: np.ndarray) -> np.ndarray:
    """Hand-made spectral + image statistics of one HU slice (N x N)."""
    hu = np.maximum(hu.astype(np.float32), -1024.0)
    n = hu.shape[0]
    f = np.fft.fftshift(np.fft.fftfreq(n))
    radius = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2) / 0.5
    angle = np.mod(np.arctan2(f[:, None], f[None, :]), np.pi)
    r_bins = np.minimum((radius * 16).astype(int), 16)
    a_bins = np.minimum((angle / np.pi * 12).astype(int), 11)
    feats = []
    for lo, hi in ((-1000.0, 1000.0), (-160.0, 240.0)):
        w = np.clip((hu - lo) / (hi - lo), 0, 1)
        power = np.abs(np.fft.fftshift(np.fft.fft2(w))) ** 2
        radial = np.bincount(r_bins.ravel(), power.ravel(), 17)[:16] / np.maximum(np.bincount(r_bins.ravel(), None, 17)[:16], 1)
        feats += list(np.log10(radial + 1e-12))
        total = power.sum()
        feats.append(np.log10(power[radius > 0.5].sum() / total + 1e-12))
        ring = (radius > 0.25) & (radius <= 1.0)
        sectors = np.bincount(a_bins[ring], power[ring], 12)
        feats += list(np.log10(sectors / sectors.sum() + 1e-12))
    lap = hu[1:-1, 1:-1] * 4 - hu[:-2, 1:-1] - hu[2:, 1:-1] - hu[1:-1, :-2] - hu[1:-1, 2:]
    soft = (hu[1:-1, 1:-1] > -100) & (hu[1:-1, 1:-1] < 200)
    feats.append(np.median(np.abs(lap[soft])) if soft.sum() > 100 else 0.0)
    gy, gx = np.gradient(hu)
    g = np.hypot(gx, gy)
    feats += [g.mean(), np.percentile(g, 50), np.percentile(g, 90), np.percentile(g, 99)]
    hist = np.histogram(np.clip(hu, -1024, 3071), bins=24, range=(-1024, 3072))[0] / hu.size
    feats += list(hist)
    feats += [float(np.percentile(hu, p)) for p in (1, 50, 99, 99.9)]
    return np.asarray(feats, dtype=np.float64)


def baseline_metrics(train_x, test_x, train, test, kind, label_names):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import StandardScaler

    from ctdegradbench.model.metrics import task_metrics

    scaler = StandardScaler().fit(train_x)
    a, b = scaler.transform(train_x), scaler.transform(test_x)
    if kind == "linear":
        clf = LogisticRegression(max_iter=3000, C=1.0).fit(a, train.labels)
        reg = Ridge(alpha=1.0).fit(a, train.levels)
    else:
        clf = HistGradientBoostingClassifier(max_iter=300, learning_rate=0.1, random_state=0).fit(a, train.labels)
        reg = HistGradientBoostingRegressor(max_iter=300, learning_rate=0.1, random_state=0).fit(a, train.levels)
    probs = np.zeros((len(b), len(label_names)))
    probs[:, clf.classes_] = clf.predict_proba(b)
    return task_metrics(test.labels, probs, test.levels, reg.predict(b), test.settings, label_names)


def _f(x) -> str:
    return "n/a" if x is None or x != x else f"{x:.3f}"


def main_row(name, m):
    return [name, _f(m["accuracy"]), _f(m["macro_f1"]), _f(m["micro_auc"]), _f(m["mae"]), _f(m["rmse"]), _f(m["qwk"]),
            _f(m["mean_spearman_single"]), _f(m["mean_spearman_mixtures"])]


MAIN_HEADER = ["model", "accuracy", "macro F1", "micro AUC", "MAE", "RMSE", "QWK", "mean rho single", "mean rho mixtures"]


def save_figures(out: Path, outputs: dict, metrics: dict, label_names, seed: int = 0) -> None:
    """Confusion matrix and t-SNE of the fused embedding (matplotlib object API, no pyplot)."""
    import matplotlib
    from matplotlib.figure import Figure
    from sklearn.manifold import TSNE

    from ctdegradbench.core.plotting import save_png

    cm = np.asarray(metrics["confusion_matrix"], dtype=float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig = Figure(figsize=(7.5, 6.5))
    ax = fig.add_subplot()
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(label_names)), label_names, rotation=45, ha="right")
    ax.set_yticks(range(len(label_names)), label_names)
    for i in range(len(label_names)):
        for j in range(len(label_names)):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"SeSpeCT confusion matrix, test split (accuracy {metrics['accuracy']:.3f})")
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of the true class")
    fig.tight_layout()
    save_png(fig, out / "confusion_matrix.png", dpi=120)

    emb = TSNE(n_components=2, perplexity=30, init="pca", random_state=seed).fit_transform(outputs["fused_embedding"])
    fig = Figure(figsize=(13, 6))
    cmap = matplotlib.colormaps["tab10"]
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for c, name in enumerate(label_names):
        m = outputs["labels"] == c
        ax1.scatter(emb[m, 0], emb[m, 1], s=8, color=cmap(c), label=name, marker="o" if c < 5 else "^")
    ax1.legend(fontsize=7, markerscale=2, loc="best")
    ax1.set_title("t-SNE of the fused embedding z_f, by degradation type")
    sc = ax2.scatter(emb[:, 0], emb[:, 1], s=8, c=outputs["levels"], cmap="viridis")
    fig.colorbar(sc, ax=ax2, label="severity level")
    ax2.set_title("same embedding, by severity level")
    for ax in (ax1, ax2):
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    save_png(fig, out / "tsne.png", dpi=110)


def run_main(args, out: Path, prepared: dict, results: dict, label_names) -> None:
    """Train the main SeSpeCT run into OUT/sespect and record its test metrics and figures."""
    from ctdegradbench.model.train import train_sespect

    main_run = train_sespect(args.dataset, out / "sespect", prepared=prepared, epochs=args.epochs, seed=args.seed,
                             progress=False, log=lambda text: print(text, flush=True),
                             command=f"ct-degradbench train --dataset {' '.join(map(str, args.dataset))} "
                                     f"--out {out / 'sespect'} --epochs {args.epochs} --seed {args.seed}")
    results["sespect"] = {"test": main_run.metrics, "best_epoch": main_run.best_epoch, "seconds": main_run.seconds,
                          "epochs": args.epochs}
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    print(f"SeSpeCT: acc {main_run.metrics['accuracy']:.3f} ({main_run.seconds['train']:.0f} s training)", flush=True)
    save_figures(out, main_run.test_outputs, main_run.metrics, label_names, args.seed)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, nargs="+", required=True, help="exported dataset folders")
    parser.add_argument("--out", type=Path, default=Path("sespect-results"), help="output folder")
    parser.add_argument("--epochs", type=int, default=15, help="epochs of the main SeSpeCT run (default 15, the "
                                                                 "ct-degradbench train default)")
    parser.add_argument("--ablation-epochs", type=int, default=None, help="epochs of the ablation runs (default: --epochs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--skip-ablations", action="store_true")
    parser.add_argument("--resume", action="store_true",
                        help="keep the main run and the ablations already recorded in OUT/results.json "
                             "(an interrupted run) and run only what is missing")
    args = parser.parse_args(argv)

    from ctdegradbench.model.train import prepare_data, train_sespect

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    prepared = prepare_data(args.dataset, cache_dir=args.cache_dir)
    splits, arrays = prepared["splits"], prepared["arrays"]
    label_names = list(prepared["full_config"].label_names)
    results = {"split_sizes": {k: v.summary() for k, v in splits.items()}, "prepare_seconds": prepared["seconds"],
               "backbone": "EfficientNet-Lite0 (ImageNet), image-prototype quality axis (offline deviation)"}
    print("split sizes:", results["split_sizes"], flush=True)
    if args.resume and (out / "results.json").is_file():
        recorded = json.loads((out / "results.json").read_text())
        if recorded["split_sizes"] != results["split_sizes"]:
            raise SystemExit(f"--resume: {out / 'results.json'} was made on other splits "
                             f"({recorded['split_sizes']}); expected {results['split_sizes']}")
        results.update({k: recorded[k] for k in ("sespect", "ablations", "prepare_seconds") if k in recorded})
    if "sespect" in results:
        print(f"SeSpeCT: acc {results['sespect']['test']['accuracy']:.3f} (recorded)", flush=True)
    else:
        run_main(args, out, prepared, results, label_names)

    results.setdefault("ablations", {})
    if not args.skip_ablations:
        for name, ablate in ABLATION_RUNS:
            if name in results["ablations"]:
                continue
            run = train_sespect(args.dataset, None, prepared=prepared, ablate=ablate,
                                epochs=args.ablation_epochs or args.epochs, seed=args.seed, progress=False,
                                log=lambda text: None)
            results["ablations"][name] = {"test": run.metrics, "best_epoch": run.best_epoch, "seconds": run.seconds,
                                          "epochs": args.ablation_epochs or args.epochs}
            print(f"{name}: acc {run.metrics['accuracy']:.3f}", flush=True)
            (out / "results.json").write_text(json.dumps(results, indent=1, default=float))

    train, test = splits["train"], splits["test"]
    emb_train = np.asarray(arrays["train"]["embedding"], dtype=np.float64)
    emb_test = np.asarray(arrays["test"]["embedding"], dtype=np.float64)
    emb_train /= np.linalg.norm(emb_train, axis=1, keepdims=True)
    emb_test /= np.linalg.norm(emb_test, axis=1, keepdims=True)
    t = time.perf_counter()
    results["baselines"] = {"linear probe on frozen EfficientNet-Lite0 embedding":
                            {"test": baseline_metrics(emb_train, emb_test, train, test, "linear", label_names),
                             "seconds": time.perf_counter() - t}}
    t = time.perf_counter()
    hand_train = np.stack([handmade_features(np.asarray(row["image"])) for row in train.dataset])
    hand_test = np.stack([handmade_features(np.asarray(row["image"])) for row in test.dataset])
    results["baselines"]["hand-made spectral + image statistics, gradient boosting"] = {
        "test": baseline_metrics(hand_train, hand_test, train, test, "gbm", label_names),
        "seconds": time.perf_counter() - t}
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    (out / "results.md").write_text(report(results, label_names))
    print(report(results, label_names))
    return 0


def report(results: dict, label_names) -> str:
    m = results["sespect"]["test"]
    lines = ["# SeSpeCT on CT-DegradBench: test split (unseen patients)", "",
             f"Main run: {results['sespect']['epochs']} epochs (best validation epoch {results['sespect']['best_epoch']}).",
             "",
             f"Backbone: {results['backbone']}.", "",
             markdown_table(["split", "patients", "slices", "rows"],
                    [[k, v["patients"], v["slices"], v["rows"]] for k, v in results["split_sizes"].items()]),
             "", "## Main result and baselines", "",
             markdown_table(MAIN_HEADER, [main_row("SeSpeCT (all branches)", m)]
                    + [main_row(k, v["test"]) for k, v in results["baselines"].items()]),
             "", f"## Ablations (paper Table 4 layout; every row trained for "
                 f"{next(iter(results['ablations'].values()), {}).get('epochs', 'n/a')} epochs)", "",
             markdown_table(["variant", "accuracy", "F1", "MAE", "RMSE", "QWK", "mean rho single", "mean rho mixtures"],
                    [[k, _f(v["test"]["accuracy"]), _f(v["test"]["macro_f1"]), _f(v["test"]["mae"]),
                        _f(v["test"]["rmse"]), _f(v["test"]["qwk"]), _f(v["test"]["mean_spearman_single"]),
                        _f(v["test"]["mean_spearman_mixtures"])] for k, v in results["ablations"].items()]),
             "", "## Per class (paper Table 5 layout): one-vs-rest accuracy and F1", "",
             markdown_table(["class", "accuracy", "F1", "n"],
                    [[k, _f(v["accuracy"]), _f(v["f1"]), v["support"]] for k, v in m["per_class"].items()]),
             "", "## Per setting severity (paper Table 6 layout)", "",
             markdown_table(["setting", "MAE", "RMSE", "QWK", "Spearman", "n"],
                    [[k, _f(v["mae"]), _f(v["rmse"]), _f(v["qwk"]), _f(v["spearman"]), v["n"]]
                     for k, v in m["per_setting"].items()]),
             "", "## Per severity level", "",
             markdown_table(["level", "class accuracy", "level MAE", "n"],
                    [[k, _f(v["accuracy"]), _f(v["mae"]), v["n"]] for k, v in m["per_level"].items()]),
             "", f"Training time of the main run: {results['sespect']['seconds']['train']:.0f} s (frozen features "
                 f"cached: {results['prepare_seconds']:.0f} s to prepare).",
             ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
