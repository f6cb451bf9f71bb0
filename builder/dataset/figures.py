"""Figures: the dataset card's settings and implant grids, and the paper's Figure 4.

Images are shown in a soft-tissue window (level 40 HU, width 400 HU: [-160, 240] HU);
spectra as ``log(1 + |F(u, v)|)`` of the HU image with the zero frequency centred, the
representation SeSpeCT's spectral branch uses (paper Section 3.2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ctdegradbench.core.plotting import save_png
from ctdegradbench.core.levels import LEVELS
from ctdegradbench.core.hu import PREVIEW_WINDOW_HU
from ctdegradbench.builder.simulate.settings import SETTINGS, get_setting

WINDOW_HU = PREVIEW_WINDOW_HU            # the soft-tissue window of the dataset's preview PNGs
SINGLE_CODES = tuple(s.code for s in SETTINGS if not s.is_mixture and s.in_paper)


def log_spectrum(image_hu: np.ndarray) -> np.ndarray:
    """``log(1 + |F|)`` of an image, zero frequency at the centre."""
    return np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(np.asarray(image_hu, dtype=np.float64)))))


def _show(ax, image, title, window=WINDOW_HU):
    ax.imshow(np.asarray(image, dtype=np.float32), cmap="gray", vmin=window[0], vmax=window[1])
    ax.set_title(title, fontsize=8)
    ax.axis("off")


METAL_WINDOW_HU = (-400.0, 600.0)     # metal artifacts: dark bands and bright streaks beside bone


def _concatenated(dataset_dict):
    import datasets

    return datasets.concatenate_datasets([ds for ds in dataset_dict.values() if len(ds)])


def _rows_of(ds, predicate) -> list[dict]:
    """The rows of ``ds`` (realization 0) for which ``predicate(reference_id, setting, level)`` holds."""
    keys = zip(ds["reference_id"], ds["setting"], ds["level"], ds["realization"])
    index = [i for i, (rid, code, level, r) in enumerate(keys) if r == 0 and predicate(rid, code, level)]
    return list(ds.select(index).with_format("numpy")) if index else []


def _distinct_references(references, count: int = 2) -> list[dict]:
    """Up to ``count`` reference rows, of different body parts when the build has them."""
    rows = list(references.select_columns(["reference_id", "info"]))
    chosen, parts = [], set()
    for row in rows:
        part = (row["info"] or {}).get("body_part")
        if part not in parts:
            chosen.append(row["reference_id"])
            parts.add(part)
    for row in rows:
        if len(chosen) >= count:
            break
        if row["reference_id"] not in chosen:
            chosen.append(row["reference_id"])
    return chosen[:count]


def save_settings_grid(ds, refs, path) -> Path:
    """Every setting (rows) at L0 and L3 on up to two reference slices of different body parts
    (columns: reference, L0, L3 of each); ``ds``, ``refs``: the samples and references, every
    split in one dataset."""
    chosen = _distinct_references(refs)
    images = {(r["reference_id"], r["setting"], int(r["level"])): r["image"]
              for r in _rows_of(ds, lambda rid, code, level: rid in chosen and level in (LEVELS[0], LEVELS[-1]))}
    ref_rows = _rows_of_references(refs, chosen)
    ref_images = {r["reference_id"]: r["reference"] for r in ref_rows}
    names = {r["reference_id"]: f"patient {r['patient_id']}, slice {int(r['slice_index'])}" for r in ref_rows}
    codes = [s.code for s in SETTINGS if any(key[1] == s.code for key in images)]
    fig = Figure(figsize=(1.8 * 3 * len(chosen), 1.8 * len(codes)))
    axes = fig.subplots(len(codes), 3 * len(chosen), squeeze=False)
    for j, rid in enumerate(chosen):
        for i, code in enumerate(codes):
            _show(axes[i, 3 * j], ref_images[rid], "reference")
            for k, level in enumerate((LEVELS[0], LEVELS[-1])):
                image = images.get((rid, code, level))
                if image is None:
                    axes[i, 3 * j + 1 + k].axis("off")
                else:
                    _show(axes[i, 3 * j + 1 + k], image, f"{get_setting(code).class_name} L{level}")
    fig.suptitle("settings at L0 and L3; left: " + "; right: ".join(names[rid] for rid in chosen)
                 + f"\nwindow {WINDOW_HU[0]:.0f}..{WINDOW_HU[1]:.0f} HU", fontsize=9, wrap=True)
    fig.tight_layout()
    return save_png(fig, path, dpi=90)


def _rows_of_references(refs, reference_ids) -> list[dict]:
    index = [i for i, rid in enumerate(refs["reference_id"]) if rid in reference_ids]
    return list(refs.select(index).with_format("numpy"))


def save_implant_grid(ds, refs, path) -> Path | None:
    """One row per metal implant type the build holds (single metal setting): the reference and
    L0..L3 of the first slice that received that implant (``ds``, ``refs`` as for
    :func:`save_settings_grid`). ``None`` without metal rows."""
    metal = _rows_of(ds, lambda rid, code, level: code == "S5")
    first: dict[str, str] = {}
    for row in metal:
        implant = row["components"][0].get("implant") or "disk"
        first.setdefault(implant, row["reference_id"])
    if not first:
        return None
    by_key = {(r["reference_id"], int(r["level"])): r for r in metal}
    ref_images = {r["reference_id"]: r["reference"] for r in _rows_of_references(refs, set(first.values()))}
    fig = Figure(figsize=(2.0 * (1 + len(LEVELS)), 2.1 * len(first)))
    axes = fig.subplots(len(first), 1 + len(LEVELS), squeeze=False)
    for i, (implant, rid) in enumerate(first.items()):
        _show(axes[i, 0], ref_images[rid], f"reference ({implant})", METAL_WINDOW_HU)
        for j, level in enumerate(LEVELS):
            row = by_key.get((rid, level))
            if row is None:
                axes[i, j + 1].axis("off")
                continue
            component = row["components"][0]
            _show(axes[i, j + 1], row["image"], f"L{level}: {component.get('material')}, "
                  f"{float(component.get('metal_mm') or 0):g} mm steel-eq.", METAL_WINDOW_HU)
    fig.suptitle(f"metal implants (S5) by type, L0..L3; window {METAL_WINDOW_HU[0]:.0f}..{METAL_WINDOW_HU[1]:.0f} HU",
                 fontsize=9)
    fig.tight_layout()
    return save_png(fig, path, dpi=90)


def save_card_figures(samples, references, folder) -> list[tuple[str, str]]:
    """The card's figures under ``folder / "images"``: ``[(path relative to folder, caption), ...]``."""
    folder = Path(folder)
    ds, refs = _concatenated(samples), _concatenated(references)
    figures = [(save_settings_grid(ds, refs, folder / "images" / "settings_L0_L3.png"),
                "Every setting at L0 and L3 (one row per setting) on reference slices of different body parts")]
    implants = save_implant_grid(ds, refs, folder / "images" / "implants_L0_L3.png")
    if implants is not None:
        figures.append((implants, "Metal implants (single metal setting) by type, L0..L3"))
    return [(str(path.relative_to(folder)), caption) for path, caption in figures]


def save_figure4(reference, path, level: int = 2, simulation=None, progress: bool = True) -> Path:
    """The paper's Figure 4 for one ``ReferenceSlice``: each single degradation at ``level``
    in the image domain (top row) and as log-Fourier magnitude (bottom row). ``progress``: a bar
    on a terminal's stderr over the clean sinogram and the five settings, naming the step running."""
    from tqdm.auto import tqdm

    from ctdegradbench.builder.simulate.simulator import Simulator

    simulator = Simulator(simulation)
    samples = {}
    with tqdm(total=1 + len(SINGLE_CODES), desc=f"figure 4 (L{level})", unit=" step",
              disable=None if progress else True) as bar:          # None: only on a terminal
        bar.set_postfix_str("clean sinogram + FBP")
        prepared = simulator.prepare(reference)
        bar.update()
        for code in SINGLE_CODES:
            bar.set_postfix_str(f"{code} {get_setting(code).class_name}")
            (samples[code],) = simulator.run(prepared, settings=code, levels=(level,), realizations=1)
            bar.update()
    columns = [("reference", reference.hu)] + [
        (get_setting(code).description, samples[code].image_hu) for code in SINGLE_CODES]
    fig = Figure(figsize=(2.2 * len(columns), 4.6))
    axes = fig.subplots(2, len(columns))
    for j, (title, image) in enumerate(columns):
        _show(axes[0, j], image, title)
        axes[1, j].imshow(log_spectrum(image), cmap="magma")
        axes[1, j].axis("off")
    fig.suptitle(f"{reference.reference_id}: severity L{level} (top: HU, window "
                 f"{WINDOW_HU[0]:.0f}..{WINDOW_HU[1]:.0f}; bottom: log(1+|F|))", fontsize=9)
    fig.tight_layout()
    return save_png(fig, path, dpi=120)
