"""Figures: the dataset card's sample grid and the paper's Figure 4.

Images are shown in a soft-tissue window (level 40 HU, width 400 HU: [-160, 240] HU);
spectra as ``log(1 + |F(u, v)|)`` of the HU image with the zero frequency centred, the
representation SeSpeCT's spectral branch uses (paper Section 3.2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ctdegradbench.builder.core.plotting import save_png
from ctdegradbench.builder.core.levels import LEVELS
from ctdegradbench.builder.simulate.settings import SETTINGS, get_setting

WINDOW_HU = (-160.0, 240.0)
SINGLE_CODES = tuple(s.code for s in SETTINGS if not s.is_mixture and s.in_paper)


def log_spectrum(image_hu: np.ndarray) -> np.ndarray:
    """``log(1 + |F|)`` of an image, zero frequency at the centre."""
    return np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(np.asarray(image_hu, dtype=np.float64)))))


def _show(ax, image, title, window=WINDOW_HU):
    ax.imshow(np.asarray(image, dtype=np.float32), cmap="gray", vmin=window[0], vmax=window[1])
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def save_sample_grid(samples, references, path) -> list[str]:
    """Write a grid (one row per setting present, reference + levels L0..L3) for one slice.

    ``samples`` / ``references`` are ``DatasetDict`` objects of one build. The slice shown is
    the first reference of the first non-empty split that has samples. Returns the written
    path(s) relative to the folder above ``images/``.
    """
    path = Path(path)
    split = next(name for name in samples if len(samples[name]))
    ds = samples[split]
    reference_id = ds[0]["reference_id"]
    rows = ds.filter(lambda rid: rid == reference_id, input_columns="reference_id").with_format("numpy")
    refs = references[split].filter(lambda rid: rid == reference_id, input_columns="reference_id")
    reference = np.asarray(refs.with_format("numpy")[0]["reference"])
    codes = [s.code for s in SETTINGS if s.code in set(rows["setting"])]
    fig = Figure(figsize=(2.0 * (1 + len(LEVELS)), 2.0 * len(codes)))
    axes = fig.subplots(len(codes), 1 + len(LEVELS), squeeze=False)
    by_key = {(r["setting"], int(r["level"])): r for r in rows if int(r["realization"]) == 0}
    for i, code in enumerate(codes):
        _show(axes[i, 0], reference, "reference")
        for j, level in enumerate(LEVELS):
            row = by_key.get((code, level))
            if row is None:
                axes[i, j + 1].axis("off")
                continue
            _show(axes[i, j + 1], row["image"], f"{get_setting(code).class_name} L{level}")
    fig.suptitle(f"CT-DegradBench samples of {reference_id}\nwindow {WINDOW_HU[0]:.0f}..{WINDOW_HU[1]:.0f} HU",
                 fontsize=9, wrap=True)
    fig.tight_layout()
    save_png(fig, path, dpi=110)
    return [f"{path.parent.name}/{path.name}"]


def save_figure4(reference, path, level: int = 2, simulation=None) -> Path:
    """The paper's Figure 4 for one ``ReferenceSlice``: each single degradation at ``level``
    in the image domain (top row) and as log-Fourier magnitude (bottom row)."""
    from ctdegradbench.builder.simulate.simulator import Simulator

    simulator = Simulator(simulation)
    samples = {s.setting: s for s in simulator.run(reference, settings=SINGLE_CODES, levels=(level,))}
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
