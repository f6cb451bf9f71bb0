"""Figures of a benchmark run (matplotlib's object-oriented API; no pyplot state).

``severity_<target>.png``: one panel per score, its mean +- std (error bars) against the level
per setting, single settings solid, mixtures dashed. ``spearman_<target>.png``: heat map of the
signed Spearman rho with severity per score (rows) and setting (columns, then the means).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np

from ctdegradbench.core.plotting import save_png
from ctdegradbench.evaluation.report import GROUPS, TARGET_TITLES, setting_label, settings_of


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


KIND_TITLES = {"iqa": "IQA", "drift": "Embedding drift"}


def severity_figure(results: dict, target: str):
    stats = results["level_stats"][target]
    names = list(stats)
    codes = settings_of(results, target)
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig = _figure(max(3.6 * cols + 1.8, 7.5), 2.8 * rows + 0.6)   # wide enough for the title
    cmap = matplotlib.colormaps["tab10"]
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        for j, code in enumerate(codes):
            per_level = stats[name][code]
            levels = sorted(int(k) for k in per_level)
            mean = [per_level[str(lv)]["mean"] for lv in levels]
            std = [per_level[str(lv)]["std"] for lv in levels]
            ax.errorbar(levels, mean, yerr=np.nan_to_num(std), label=setting_label(code), color=cmap(j % 10),
                        linestyle="-" if code.startswith("S") else "--", marker="o", markersize=3, capsize=2)
        spec = results["scorers"][name]
        if results["kind"] == "drift":
            ax.set_title(spec["display"], fontsize=9)
            ax.set_ylabel("cosine distance to the reference", fontsize=8)
        else:
            ax.set_title(f"{spec['display']} ({'lower' if spec['lower_better'] else 'higher'} = better)", fontsize=9)
        ax.set_xlabel("severity level")
        ax.set_xticks(sorted({int(k) for code in codes for k in stats[name][code]}))
        ax.grid(alpha=0.3)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8)
    fig.suptitle(f"{KIND_TITLES.get(results['kind'], results['kind'])} vs severity, {TARGET_TITLES.get(target, target)} "
                 f"({results['counts']['rows']} images, {results['counts']['patients']} patients)", fontsize=10)
    return fig


def spearman_figure(results: dict, target: str):
    table = results["severity_correlation"][target]
    names = list(table)
    codes = settings_of(results, target)
    columns = codes + [g for g, _ in GROUPS if all(g in table[n] for n in names)]
    titles = [setting_label(c) for c in codes] + [t for g, t in GROUPS if g in columns]
    values = np.array([[table[n][c]["spearman"]["value"] for c in columns] for n in names], dtype=float)
    fig = _figure(1.0 * len(columns) + 3.0, max(0.45 * len(names) + 1.8, 3.0))
    ax = fig.add_subplot()
    image = ax.imshow(values, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(columns)), titles, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), [results["scorers"][n]["display"] for n in names], fontsize=8)
    for i in range(len(names)):
        for j in range(len(columns)):
            v = values[i, j]
            ax.text(j, i, "n/a" if math.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if not math.isnan(v) and abs(v) > 0.6 else "black")
    fig.colorbar(image, ax=ax, label="Spearman ρ")
    ax.set_title(f"Spearman ρ with severity, {TARGET_TITLES.get(target, target)}", fontsize=10)
    return fig


def save_figures(results: dict, out: Path) -> list[Path]:
    paths = []
    for target in results["targets"]:
        for stem, make in (("severity", severity_figure), ("spearman", spearman_figure)):
            path = Path(out) / f"{stem}_{target}.png"
            paths.append(save_png(make(results, target), path, dpi=110))
    return paths
