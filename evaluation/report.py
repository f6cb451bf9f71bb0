"""Markdown reports of a benchmark run, in the paper's layout, and the score leaderboard.

For ``bench iqa`` the tables are the equivalents of the paper's Table 10 (mean +- std per
setting and level) and Table 1 (Spearman rho / Pearson r with severity per setting, and the
means over single settings and mixtures); for ``bench drift`` of Tables 12 and 11. One set per
target (the reference slice, its clean FBP, ``none`` for no-reference metrics). Then the
patient-bootstrap confidence intervals, Kendall's tau, and the leaderboard of scores: which
metric / encoder tracks severity best, by the *oriented* Spearman rho (rho for a score that
should grow with severity, ``lower_better``; -rho for one that should fall), so that 1 always
means "perfectly monotone in the expected direction".
"""

from __future__ import annotations

import math
from pathlib import Path

from ctdegradbench.builder.simulate.settings import SETTINGS_BY_CODE

TABLES = {"iqa": ("Table 10", "Table 1"), "drift": ("Table 12", "Table 11")}
TARGET_TITLES = {"reference": "against the reference slice", "clean_fbp": "against the clean FBP",
                 "none": "no reference (degraded image only)"}
GROUPS = (("mean_single", "Mean (single)"), ("mean_mixtures", "Mean (mixtures)"))
#: The leaderboard row key of each group's mean oriented Spearman.
MEAN_SPEARMAN = {"mean_single": "mean_spearman_single", "mean_mixtures": "mean_spearman_mixtures"}


def setting_label(code: str) -> str:
    """The paper's name of a setting code (``"S1"`` -> ``"S1_noise"``), else the code."""
    setting = SETTINGS_BY_CODE.get(code)
    return setting.class_name if setting else code


def _fmt(v, digits=4) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _arrow(spec: dict) -> str:
    return "↓" if spec.get("lower_better") else "↑"


def settings_of(results: dict, target: str) -> list[str]:
    """Setting codes of a result's ``level_stats`` for ``target``: single settings (``S..``) first."""
    any_scorer = next(iter(results["level_stats"][target].values()))
    codes = list(any_scorer)
    return sorted(codes, key=lambda c: (c[0] != "S", c))


def oriented(value, lower_better: bool):
    """Spearman oriented so that 1 means monotone in the expected direction."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    return value if lower_better else -value


def level_stats_table(results: dict, target: str) -> str:
    scorers = results["level_stats"][target]
    specs = results["scorers"]
    head = "| Setting | " + " | ".join(f"{specs[n]['display']} {_arrow(specs[n])}" for n in scorers) + " |"
    lines = [head, "|---|" + "---:|" * len(scorers)]
    for code in settings_of(results, target):
        levels = sorted(next(iter(scorers.values()))[code], key=int)
        for level in levels:
            cells = []
            for name in scorers:
                s = scorers[name][code][level]
                cells.append(f"{_fmt(s['mean'])} ± {_fmt(s['std'])}")
            lines.append(f"| {setting_label(code)} L{level} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def correlation_table(results: dict, target: str, cell) -> str:
    table = results["severity_correlation"][target]
    specs = results["scorers"]
    head = "| Setting | " + " | ".join(f"{specs[n]['display']} {_arrow(specs[n])}" for n in table) + " |"
    lines = [head, "|---|" + "---:|" * len(table)]
    for code in settings_of(results, target):
        lines.append(f"| {setting_label(code)} | " + " | ".join(cell(table[n][code]) for n in table) + " |")
    for group, title in GROUPS:
        if all(group in table[n] for n in table):
            lines.append(f"| {title} | " + " | ".join(cell(table[n][group]) for n in table) + " |")
    return "\n".join(lines)


def _rho_r(entry) -> str:
    return f"{_fmt(entry['spearman']['value'])} / {_fmt(entry['pearson']['value'])}"


def _rho_ci(entry) -> str:
    ci = entry["spearman"].get("ci")
    return f"{_fmt(entry['spearman']['value'], 3)} [{_fmt(ci[0], 3)}, {_fmt(ci[1], 3)}]" if ci else \
        f"{_fmt(entry['spearman']['value'], 3)} [n/a]"


def _tau(entry) -> str:
    return _fmt(entry["kendall"]["value"])


def score_leaderboard(results: dict, target: str) -> list[dict]:
    """Scores ranked by their mean oriented Spearman over the settings (best first)."""
    table = results["severity_correlation"][target]
    codes = settings_of(results, target)
    board = []
    for name, groups in table.items():
        lower = results["scorers"][name]["lower_better"]
        per_setting = {code: oriented(groups[code]["spearman"]["value"], lower) for code in codes}
        defined = [v for v in per_setting.values() if not math.isnan(v)]
        board.append({"scorer": name, "display": results["scorers"][name]["display"],
                      "mean": sum(defined) / len(defined) if defined else math.nan,
                      **{MEAN_SPEARMAN[g]: oriented(groups[g]["spearman"]["value"], lower) if g in groups else math.nan
                         for g, _ in GROUPS},
                      "per_setting": per_setting})
    return sorted(board, key=lambda row: -row["mean"] if not math.isnan(row["mean"]) else math.inf)


def leaderboard_table(results: dict, target: str) -> str:
    board = score_leaderboard(results, target)
    codes = settings_of(results, target)
    lines = ["| Rank | Score | Mean | Mean (single) | Mean (mixtures) | " + " | ".join(codes) + " |",
             "|---:|---|---:|---:|---:|" + "---:|" * len(codes)]
    for rank, row in enumerate(board, 1):
        lines.append(f"| {rank} | {row['display']} | {_fmt(row['mean'], 3)} | {_fmt(row['mean_spearman_single'], 3)} | "
                     f"{_fmt(row['mean_spearman_mixtures'], 3)} | " + " | ".join(_fmt(row['per_setting'][c], 3) for c in codes) + " |")
    best = [f"{c}: {max(board, key=lambda r: -math.inf if math.isnan(r['per_setting'][c]) else r['per_setting'][c])['display']}"
            for c in codes]
    return "\n".join(lines) + "\n\nBest per setting: " + "; ".join(best) + "."


def markdown_report(results: dict) -> str:
    level_title, corr_title = TABLES[results["kind"]]
    what = "image-quality metrics" if results["kind"] == "iqa" else "embedding drift (1 - cosine similarity)"
    counts = results["counts"]
    boot = results["bootstrap"]
    parts = [
        f"# CT-DegradBench benchmark: {what}",
        "",
        f"Dataset `{results['dataset']}`, split `{results['split']}`: {counts['rows']} degraded images of "
        f"{counts['patients']} patients ("
        + ", ".join(f"{c}: {r['used']} of {r['available']} reference slices" for c, r in
                    counts.get("references_per_config", {}).items()) + f"); window {results['window_hu'][0]:g} .. {results['window_hu'][1]:g} HU -> [0, 1]; "
        f"ct-degradbench {results['ct_degradbench_version']}, {results['created']}; "
        f"compute {results['timing']['compute_seconds']} s (per config: "
        + ", ".join(f"{c} {t}" for c, t in results["timing"]["per_config"].items()) + ").",
        "",
        "Scores: " + "; ".join(f"**{s['display']}** ({s['implementation']}, {_arrow(s)})"
                               for s in results["scorers"].values()) + ".",
        "",
        f"Correlations: signed, with the level (L0..L3); positive = the score grows with severity. "
        f"CIs: {boot['confidence']:.0%} percentile bootstrap over {boot['unit']}s, {boot['resamples']} resamples.",
    ]
    for target in results["targets"]:
        title = TARGET_TITLES.get(target, target)
        parts += ["", f"## {level_title} equivalent: mean ± std per setting and level, {title}", "",
                  level_stats_table(results, target),
                  "", f"## {corr_title} equivalent: Spearman ρ / Pearson r with severity, {title}", "",
                  correlation_table(results, target, _rho_r),
                  "", f"### Spearman ρ with {boot['confidence']:.0%} CI over patients, {title}", "",
                  correlation_table(results, target, _rho_ci),
                  "", f"### Kendall τ-b with severity, {title}", "",
                  correlation_table(results, target, _tau),
                  "", f"### Leaderboard: oriented Spearman (1 = monotone in the expected direction), {title}", "",
                  leaderboard_table(results, target)]
    return "\n".join(parts) + "\n"


def write_reports(results: dict, out: Path) -> list[Path]:
    """Write ``tables.md`` (the figures are ``evaluation.plots.save_figures``, which reads this module)."""
    path = Path(out) / "tables.md"
    path.write_text(markdown_report(results), encoding="utf-8")
    return [path]
