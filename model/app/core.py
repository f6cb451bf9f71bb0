"""The demo's work, without any user interface: read an upload, window a slice, ask SeSpeCT,
degrade a slice with the simulator, and read a ``bench iqa`` results folder.

Everything here takes and returns plain numpy arrays, dicts and paths, so it is tested without
a browser; :mod:`ctdegradbench.model.app.ui` only wires it to Gradio components.

Images are in Hounsfield units (HU): air -1000, water 0. A display window ``(low, high)`` maps
``low`` HU to black and ``high`` HU to white (linear, clipped).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ctdegradbench.core.errors import InputError, OptionError
from ctdegradbench.core.hu import PNG_OFFSET_HU, PREVIEW_WINDOW_HU

#: Grid side of the demo's simulations, px (the dataset's is 512; 256 keeps a CPU demo interactive).
DEMO_IMAGE_SIZE = 256

#: Display windows ``(low, high)`` in HU. Soft tissue is the builder's preview window (level 40,
#: width 400); lung: level -600, width 1500; bone: level 400, width 1800.
WINDOWS: dict[str, tuple[float, float]] = {
    "soft tissue": tuple(float(v) for v in PREVIEW_WINDOW_HU),
    "lung": (-1350.0, 150.0),
    "bone": (-500.0, 1300.0),
}

#: Half-range of the difference image's colour scale, HU (blue -DIFF_RANGE_HU .. red +DIFF_RANGE_HU).
DIFF_RANGE_HU = 100.0



UPLOAD_KINDS = "a DICOM file (or several of one series), a zipped DICOM series, NIfTI (.nii / .nii.gz), " \
               "a 16-bit greyscale PNG (HU + 1024) or a .npy array of HU"


@dataclass(frozen=True)
class UploadedSlice:
    """One axial slice of an upload: HU on a square grid and its pixel side in mm (None: unknown,
    a PNG or ``.npy`` without a spacing given)."""

    name: str
    hu: np.ndarray
    pixel_spacing_mm: float | None


# ------------------------------------------------------------------------------------ reading
def _is_plain_array(name: str) -> bool:
    return name.lower().endswith((".png", ".npy"))


def _square_int16(hu: np.ndarray) -> np.ndarray:
    from ctdegradbench.builder.sources.loaders import pad_to_square

    finite = np.where(np.isfinite(hu), hu, -1000.0)
    return np.round(pad_to_square(np.clip(finite, -32768, 32767))).astype(np.int16)


def read_upload(paths, pixel_spacing_mm: float | None = None, nifti_axes: str | None = None) -> list[UploadedSlice]:
    """The slices of an upload (one path, or several DICOM files of one series).

    DICOM and NIfTI go through the builder's loader (orientation, rescale, padding, spacing from
    the header); PNG and ``.npy`` through ``ct-degradbench predict``'s reader, with the pixel
    spacing ``pixel_spacing_mm`` given by the user (None: unknown). A ``.zip`` is unpacked and read
    as a DICOM / NIfTI folder. ``nifti_axes`` (e.g. ``"LPS"``) orients a NIfTI whose affine holds no
    orientation (None: from the header). Raises :class:`InputError` with one line naming the file.
    """
    from ctdegradbench.builder.sources import load_source
    from ctdegradbench.builder.sources.loaders import is_nifti_source
    from ctdegradbench.model.predict import read_slices

    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    if not paths:
        raise InputError(f"no file uploaded: expected {UPLOAD_KINDS}")
    if pixel_spacing_mm is not None and not (float(pixel_spacing_mm) > 0):
        raise InputError(f"pixel spacing {pixel_spacing_mm!r} mm: expected a positive number")
    if len(paths) == 1 and _is_plain_array(paths[0].name):
        try:
            slices = read_slices(paths[0], png_offset=PNG_OFFSET_HU)
        except InputError as err:
            raise InputError(f"{paths[0].name}: {_tail(err, paths[0])}") from None
        return [UploadedSlice(s.name, _square_int16(s.hu), pixel_spacing_mm) for s in slices]
    if any(_is_plain_array(p.name) for p in paths):
        raise InputError(f"{len(paths)} files uploaded with a PNG / .npy among them: upload one PNG or .npy "
                         "at a time, or several DICOM files of one series")
    with tempfile.TemporaryDirectory(prefix="ctdb-upload-") as tmp:
        spec = _staged(paths, Path(tmp))
        try:
            result = load_source(str(spec), nifti_axes=nifti_axes if is_nifti_source(str(spec)) else None)
        except (InputError, OptionError, ValueError, FileNotFoundError) as err:
            names = paths[0].name if len(paths) == 1 else f"{len(paths)} files ({paths[0].name}, ...)"
            raise InputError(f"{names}: not readable as CT ({_tail(err, spec)}); expected {UPLOAD_KINDS}") from None
    single = len(result.slices) == 1 and len(paths) == 1
    return [UploadedSlice(paths[0].name if single else s.reference_id, s.hu, float(s.pixel_spacing_mm))
            for s in result.slices]


def _tail(err: Exception, path: Path) -> str:
    """The error text without the (temporary) path it starts with."""
    text = str(err)
    for prefix in (f"{path}: ", f"{path.name}: "):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return text.replace(str(path.parent) + "/", "")


def _staged(paths: list[Path], tmp: Path) -> Path:
    """The path ``load_source`` reads: a NIfTI file as is, a zip unpacked, DICOM files in one folder."""
    if len(paths) == 1 and paths[0].name.lower().endswith((".nii", ".nii.gz")):
        return paths[0]
    folder = tmp / "upload"
    folder.mkdir()
    for i, path in enumerate(paths):
        if path.name.lower().endswith(".zip"):
            try:
                with zipfile.ZipFile(path) as zf:
                    zf.extractall(folder / f"zip{i}")
            except zipfile.BadZipFile as err:
                raise InputError(f"{path.name}: not a readable zip archive ({err})") from None
        else:
            shutil.copyfile(path, folder / (path.name if len(paths) == 1 else f"{i:05d}_{path.name}"))
    return folder


# ------------------------------------------------------------------------------------ display
def window_image(hu: np.ndarray, window: str | tuple[float, float]) -> np.ndarray:
    """8-bit greyscale of ``hu`` in a display window (a name of :data:`WINDOWS` or ``(low, high)`` HU)."""
    if isinstance(window, str):
        if window not in WINDOWS:
            raise OptionError(f"unknown window {window!r}; expected one of: {', '.join(WINDOWS)}")
        window = WINDOWS[window]
    low, high = window
    scaled = (np.asarray(hu, dtype=np.float64) - low) / (high - low)
    return np.round(np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)


def display_size(image: np.ndarray, minimum: int = 384) -> np.ndarray:
    """``image`` with each pixel repeated an integer number of times so that its side reaches
    ``minimum`` px on screen (nearest neighbour: no new values); larger images are unchanged."""
    factor = max(1, -(-minimum // image.shape[0]))
    return image if factor == 1 else np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def difference_image(diff_hu: np.ndarray, half_range: float = DIFF_RANGE_HU) -> np.ndarray:
    """RGB 8-bit of a HU difference: blue (-half_range) .. white (0) .. red (+half_range)."""
    from matplotlib import colormaps

    scaled = np.clip(np.asarray(diff_hu, dtype=np.float64) / (2 * half_range) + 0.5, 0.0, 1.0)
    return np.round(colormaps["RdBu_r"](scaled)[..., :3] * 255).astype(np.uint8)


# ------------------------------------------------------------------------------------ SeSpeCT
_MODEL = {}


def get_model(model_dir=None):
    """The SeSpeCT model (default: the shipped checkpoint), loaded once per folder."""
    from ctdegradbench.model.predict import load_model

    key = str(model_dir or "")
    if key not in _MODEL:
        _MODEL[key] = load_model(model_dir)
    return _MODEL[key]


def _slice_input(s: UploadedSlice):
    """``predict``'s input for a slice; the pixel spacing travels when that API takes it."""
    from ctdegradbench.model.predict import SliceInput

    names = {f.name for f in dataclasses.fields(SliceInput)}
    extra = {"pixel_spacing_mm": s.pixel_spacing_mm} if "pixel_spacing_mm" in names else {}
    return SliceInput(s.name, s.hu.astype(np.float32), **extra)


def model_grid(model, s: UploadedSlice) -> dict:
    """The pixel spacing the model works at for ``s``: its physical grid (``config.pixel_spacing_mm``)
    when it has one, else the slice's field of view over the model's ``image_size`` pixels."""
    cfg = model.config
    grid = getattr(cfg, "pixel_spacing_mm", None)
    if grid is not None:
        return {"model_pixel_spacing_mm": float(grid), "model_grid": "physical (fixed mm per pixel)"}
    size = int(cfg.image_size)
    used = None if s.pixel_spacing_mm is None else s.pixel_spacing_mm * s.hu.shape[0] / size
    return {"model_pixel_spacing_mm": used, "model_grid": f"{size} px over the slice's field of view"}


def inspect_slice(model, s: UploadedSlice) -> dict:
    """SeSpeCT's answer for one slice, as ``predict`` returns it, plus the spacings.

    Keys: ``label`` (None when the model gives no class), ``status`` ("ok" or why it cannot
    answer), ``severity``, ``level`` (None when not given, e.g. for ``clean``), ``probabilities``
    (class -> probability, empty without an answer), ``pixel_spacing_mm`` (the slice's) and those
    of :func:`model_grid`.
    """
    from ctdegradbench.model.predict import predict_slices

    (p,) = predict_slices(model, [_slice_input(s)])
    return {"slice": s.name, "label": p.label, "status": getattr(p, "status", "ok"),
            "severity": p.severity, "level": p.level, "probabilities": dict(p.probabilities),
            "pixel_spacing_mm": s.pixel_spacing_mm, **model_grid(model, s)}


def answer_text(answer: dict) -> str:
    """One line: the class and severity, or the status when the model cannot answer."""
    if answer["status"] != "ok" or answer["label"] is None:
        return f"no answer: {answer['status']}"
    text = f"{answer['label']}"
    if answer["severity"] is not None:
        text += f", severity {answer['severity']:.2f} (L{answer['level']})"
    return text


def spacing_text(answer: dict) -> str:
    native = answer["pixel_spacing_mm"]
    used = answer["model_pixel_spacing_mm"]
    return (f"slice pixel spacing: {'unknown' if native is None else f'{native:.3f} mm'}; "
            f"model grid: {answer['model_grid']}"
            + ("" if used is None else f", {used:.3f} mm per pixel"))


# ------------------------------------------------------------------------------------ Degrade
_DEFAULT = {}
_PREPARED = {}


def default_references(image_size: int = DEMO_IMAGE_SIZE) -> list:
    """The default reference CT of ``ct-degradbench build`` (five slices shipped in pydicom /
    pydicom-data), on a ``image_size`` grid; loaded once."""
    from ctdegradbench.builder.sources import load_default_source

    if image_size not in _DEFAULT:
        _DEFAULT[image_size] = load_default_source(image_size=image_size).slices
    return _DEFAULT[image_size]


def reference_label(ref) -> str:
    return f"{ref.info.get('body_part', '?').lower()}: {ref.info.get('file', ref.patient_id)}"


def uploaded_reference(s: UploadedSlice, image_size: int = DEMO_IMAGE_SIZE):
    """A :class:`ReferenceSlice` from an uploaded slice, resampled to ``image_size`` px (its pixel
    spacing must be known: the physics of every degradation is in mm)."""
    from ctdegradbench.builder.sources import ReferenceSlice
    from ctdegradbench.builder.sources.loaders import resample_square

    if s.pixel_spacing_mm is None:
        raise InputError(f"{s.name}: pixel spacing unknown (a PNG / .npy): enter it in mm in the Inspect tab "
                         "to degrade this slice")
    image, spacing = resample_square(s.hu, s.pixel_spacing_mm, image_size)
    return ReferenceSlice(hu=np.round(image).astype(np.int16), pixel_spacing_mm=spacing, source="upload",
                          patient_id="upload", series_id=s.name, slice_index=0, info={"file": s.name})


def degrade(ref, setting: str, level: int, realization: int = 0, seed: int = 0) -> dict:
    """Simulate one degraded row of ``ref`` (setting code, level 0..3) with the dataset's simulator.

    Returns ``reference_hu``, ``clean_fbp_hu`` (the reference's own FBP, the floor every degraded
    image shares), ``degraded_hu`` (int16), ``difference_hu`` (degraded - clean FBP), ``prompt``,
    ``metadata`` and ``sample_id``.
    """
    from ctdegradbench.builder.simulate.config import SimulationConfig
    from ctdegradbench.builder.simulate.simulator import Simulator

    key = (ref.reference_id, ref.image_size, float(ref.pixel_spacing_mm), seed)
    if key not in _PREPARED:
        _PREPARED.clear()          # one reference at a time: a prepared sinogram is a few MB
        simulator = Simulator(SimulationConfig(seed=seed))
        _PREPARED[key] = (simulator, simulator.prepare(ref))
    simulator, prepared = _PREPARED[key]
    (sample,) = simulator.run(prepared, setting, int(level), realizations=[int(realization)])
    clean = np.asarray(prepared.clean_fbp_hu)
    return {"reference_hu": ref.hu, "clean_fbp_hu": clean, "degraded_hu": sample.image_hu,
            "difference_hu": sample.image_hu.astype(np.float64) - clean, "prompt": sample.prompt,
            "metadata": sample.metadata, "sample_id": sample.sample_id}


def write_row(row: dict, folder: Path) -> list[Path]:
    """The row as ``<name>.json`` (sample id, prompt, metadata) and ``<name>.png`` (the degraded
    image as a 16-bit PNG of HU + 1024, which ``ct-degradbench predict`` and the Inspect tab read)."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = row["sample_id"].replace("/", "_")
    json_path, png_path = folder / f"{stem}.json", folder / f"{stem}.png"
    record = {"sample_id": row["sample_id"], "prompt": row["prompt"], "png_offset_hu": PNG_OFFSET_HU,
              "metadata": row["metadata"]}
    json_path.write_text(json.dumps(record, indent=1, default=_plain), encoding="utf-8")
    stored = np.clip(row["degraded_hu"].astype(np.int32) + PNG_OFFSET_HU, 0, 65535).astype(np.uint16)
    Image.fromarray(stored).save(png_path)
    return [json_path, png_path]


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ------------------------------------------------------------------------------------ Benchmark
def read_results(folder) -> tuple[str, list[Path]]:
    """``tables.md`` and the figures (``*.png``, sorted) of a ``bench iqa`` / ``bench drift`` results folder."""
    folder = Path(folder)
    tables = folder / "tables.md"
    if not tables.is_file():
        raise InputError(f"--results {folder}: no tables.md there; expected a folder written by "
                         "`ct-degradbench bench iqa --out DIR`")
    return tables.read_text(encoding="utf-8"), sorted(folder.glob("*.png"))
