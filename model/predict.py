"""``ct-degradbench predict``: degradation type, severity and class probabilities per CT slice.

Inputs (each path is read on its own; a bad one is reported and the others still run):

- DICOM: a file or a folder (every axial CT series under it), through the builder's loader,
  so orientation (ImageOrientationPatient), rescale and padding are handled as in the dataset;
- NIfTI (``.nii`` / ``.nii.gz``): every axial slice, orientation from the affine or ``nifti_axes``;
- 16-bit PNG: one slice, ``HU = value - png_offset`` (default 1024: 0 is -1024 HU);
- ``.npy``: a 2-D slice or a 3-D stack ``(slices, H, W)``, already in HU.

Pixel spacing: DICOM (PixelSpacing) and NIfTI (the affine) carry it; a PNG or ``.npy`` has none,
so ``pixel_spacing`` (``--pixel-spacing``) is required for them by a physical-grid model
(``config.pixel_spacing_mm``), which resamples every slice to its own grid. A slice the model
cannot judge (no body, non-finite or non-CT values, a pixel spacing outside the trained range)
gets that status as its answer instead of a class (``Prediction.status``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ctdegradbench.core.errors import CTDegradBenchError, InputError, InputNotFoundError
from ctdegradbench.core.hu import PNG_OFFSET_HU

HU_RANGE = (-32768, 32767)      # int16, what the builder's loaders accept (``_checked_square``)

NIFTI_SUFFIXES = (".nii", ".nii.gz")
READ_AS_FILE = (".npy", ".png") + NIFTI_SUFFIXES     # read one by one, in a folder too


def check_hu(where: str, arr: np.ndarray) -> np.ndarray:
    """``arr`` as a float32 HU slice after the builder's checks, or InputError naming the problem.

    The checks are those of the dataset's reference slices (``builder.sources.loaders``): real
    numbers, finite, at least ``MIN_IMAGE_PX`` pixels on each side, values in the int16 range
    that CT stores (-32768 .. 32767 HU); a slice that fails them would get a confident but
    meaningless class.
    """
    from ctdegradbench.builder.sources.options import MIN_IMAGE_PX

    if np.iscomplexobj(arr):
        raise InputError(f"{where}: holds complex values (dtype {arr.dtype}); expected real HU")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise InputError(f"{where}: dtype {arr.dtype} is not numeric; expected HU numbers")
    if min(arr.shape) < MIN_IMAGE_PX:
        raise InputError(f"{where}: image is {arr.shape[0]} x {arr.shape[1]} px; expected at least {MIN_IMAGE_PX} px "
                         "on each side")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise InputError(f"{where}: {int(bad.sum())} pixel(s) NaN or inf; expected finite HU")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < HU_RANGE[0] or hi > HU_RANGE[1]:
        raise InputError(f"{where}: values {lo:.4g} .. {hi:.4g} are outside the CT range {HU_RANGE[0]} .. "
                         f"{HU_RANGE[1]} HU; expected a slice in HU")
    return arr.astype(np.float32)


@dataclass
class SliceInput:
    name: str
    hu: np.ndarray
    pixel_spacing_mm: float | None = None   # native pixel side in mm (None: unknown)


@dataclass
class Prediction:
    name: str
    label: str | None        # class name; None when the status is not "ok"
    severity: float | None   # continuous s_hat clipped to [0, max_level]; None for "clean" or no answer
    level: int | None        # rounded severity
    probabilities: dict = field(default_factory=dict)
    status: str = "ok"       # "ok" or why the model cannot answer (see image_processing_sespect.STATUSES)

    def to_dict(self) -> dict:
        """The predictions row ``bench tasks`` reads (``sample_id`` = the slice name), plus ``level`` and
        ``status`` (label and severity are None where the model gives no answer)."""
        from ctdegradbench.evaluation.tasks import prediction_row

        return {**prediction_row(self.name, self.label, self.severity, self.probabilities), "level": self.level,
                "status": self.status}


def read_slices(path, *, nifti_axes=None, png_offset: float = PNG_OFFSET_HU,
                pixel_spacing: float | None = None) -> list[SliceInput]:
    """The HU slices of one input path (see the module docstring). Raises InputError / InputNotFoundError."""
    path = Path(path)
    if not path.exists():
        raise InputNotFoundError(f"{path} does not exist")
    name = path.name.lower()
    if name.endswith(".npy"):
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as err:
            raise InputError(f"{path}: not a readable .npy array ({type(err).__name__}: {err})") from err
        if arr.ndim not in (2, 3) or 0 in arr.shape:
            raise InputError(f"{path}: expected a 2-D HU slice or a (slices, H, W) stack, got shape {arr.shape} "
                             f"dtype {arr.dtype}")
        if arr.ndim == 2:
            return [SliceInput(path.name, check_hu(str(path), arr), pixel_spacing)]
        return [SliceInput(f"{path.name}[{i}]", check_hu(f"{path} slice {i}", arr[i]), pixel_spacing)
                for i in range(len(arr))]
    if name.endswith(".png"):
        from PIL import Image

        try:
            with Image.open(path) as img:
                mode = img.mode
                arr = np.asarray(img)
        except Exception as err:
            raise InputError(f"{path}: not a readable PNG ({type(err).__name__}: {err})") from err
        if arr.ndim != 2 or arr.dtype != np.uint16:
            raise InputError(f"{path}: expected a 16-bit greyscale PNG (HU + {png_offset:g}), got PIL mode {mode} "
                             f"({' x '.join(map(str, arr.shape))} px, {arr.dtype})")
        try:
            hu = check_hu(str(path), arr.astype(np.float32) - float(png_offset))
        except InputError as err:
            raise InputError(f"{err} (read as stored value - {png_offset:g}, --png-offset: was the PNG written "
                             "with another offset?)") from None
        return [SliceInput(path.name, hu, pixel_spacing)]
    from ctdegradbench.builder.sources import load_source

    try:
        result = load_source(str(path), nifti_axes=nifti_axes)
    except (InputError, ValueError, FileNotFoundError) as err:
        raise InputError(f"{path}: {err}") from err
    return [SliceInput(s.reference_id if path.is_dir() or len(result.slices) > 1 else path.name,
                       check_hu(s.reference_id, s.hu), float(s.pixel_spacing_mm))
            for s in result.slices]


@dataclass(frozen=True)
class LeftOut:
    """A file in a folder that is no axial CT image slice (a licence, a report, a localizer, another
    modality: :meth:`~ctdegradbench.builder.sources.loaders.SourceResult.is_other_object`), left out with its
    reason: a note, not an error."""
    reason: str


def iter_inputs(path, *, nifti_axes=None, png_offset: float = PNG_OFFSET_HU, pixel_spacing: float | None = None):
    """``(where, slices or LeftOut or CTDegradBenchError)`` for one input path, one pair per file as it
    is read.

    A file gives its slices (:func:`read_slices`). A folder gives each of its ``.npy``, ``.png``
    and NIfTI files as the same file given alone would, then the slices of its DICOM series;
    each other file it holds comes as a :class:`LeftOut` when it is no CT image slice at all
    (notes.txt, LICENSE, a report, a localizer) and as an InputError naming the file and why it
    was skipped when it is a CT slice that cannot be used (a truncated DICOM, undecodable pixels).
    A folder that gives neither slices nor errors gives an InputError: it holds no CT.
    """
    path = Path(path)
    if not path.is_dir():
        try:
            yield str(path), read_slices(path, nifti_axes=nifti_axes, png_offset=png_offset,
                                          pixel_spacing=pixel_spacing)
        except CTDegradBenchError as err:
            yield str(path), err
        return
    files = sorted(p for p in path.rglob("*") if p.is_file())
    if not files:
        yield str(path), InputError(f"{path}: the folder holds no files")
        return
    rest = []
    for file in files:
        if file.name.lower().endswith(READ_AS_FILE):
            try:
                yield str(file), read_slices(file, nifti_axes=nifti_axes, png_offset=png_offset,
                                              pixel_spacing=pixel_spacing)
            except CTDegradBenchError as err:
                yield str(file), err
        else:
            rest.append(file)
    if rest:
        from ctdegradbench.builder.sources.loaders import load_dicom_files

        result = load_dicom_files(rest, path)
        for reason, where in result.skipped_files:
            rel, _, detail = where.partition(": ")
            yield str(path / rel), (LeftOut(reason) if result.is_other_object(reason) else InputError(
                f"{path / rel}: skipped: {reason}" + (f" ({detail})" if detail else "")))
        if len(rest) == len(files) and not result.slices and all(
                result.is_other_object(reason) for reason, _ in result.skipped_files):
            counts = ", ".join(f"{reason}: {n}" for reason, n in result.skipped.items())
            yield str(path), InputError(f"{path}: the folder holds no CT image slice ({counts})")
            return
        good = []
        for s in result.slices:
            try:
                good.append(SliceInput(s.reference_id, check_hu(s.reference_id, s.hu), float(s.pixel_spacing_mm)))
            except InputError as err:
                yield s.reference_id, err
        if good:
            yield str(path), good


def run_batches(model, batches, total: int | None = None, desc: str | None = None, progress: bool = False):
    """Probabilities ``(N, C)``, severities ``(N,)`` and statuses (``"ok"`` or why the model cannot
    judge the slice; see ``SeSpeCTImageProcessor.slice_status``) of every slice in ``batches``, an
    iterable of ``(HU slices, pixel spacings in mm)`` pairs of lists. A physical-grid model
    resamples each slice with its pixel spacing; a pixel-grid (legacy) model pads each slice to a
    square and resizes it to its grid (the spacings are not used)."""
    import torch
    from tqdm.auto import tqdm

    physical = getattr(model.config, "pixel_spacing_mm", None) is not None
    processor = model.image_processor() if physical else None
    probs, severity, status = [], [], []
    model.eval()
    with torch.no_grad():
        for images, spacings in tqdm(batches, total=total, desc=desc, disable=not progress):
            if physical:
                batch = processor(list(images), list(spacings))
                out = model(pixel_values=batch["pixel_values"], pixel_spacing=batch["pixel_spacing"],
                            native_statistics=batch.get("native_statistics"))
                status += batch["status"]
            else:
                out = model(pixel_values=torch.cat([model.preprocess(torch.from_numpy(np.asarray(hu)))
                                                    for hu in images]))
                status += ["ok"] * len(images)
            probs.append(out.probabilities.numpy())
            severity.append(out.severity.numpy())
    if not probs:
        return np.zeros((0, len(model.config.label_names))), np.zeros(0), []
    return np.concatenate(probs), np.concatenate(severity), status


def predict_slices(model, slices: list[SliceInput], batch_size: int = 8) -> list[Prediction]:
    """Run ``model`` on HU slices (:func:`run_batches`): a physical-grid model needs each slice's
    pixel spacing and answers a status for slices it cannot judge; the severity is given for a
    degradation only, clipped to the model's levels."""
    cfg = model.config
    if getattr(cfg, "pixel_spacing_mm", None) is not None:
        missing = [s.name for s in slices if s.pixel_spacing_mm is None]
        if missing:
            raise InputError(f"{missing[0]}: no pixel spacing known (a .npy or .png slice): give --pixel-spacing MM, "
                             f"the pixel side in mm (this model works on a {cfg.pixel_spacing_mm:g} mm grid)")
    chunks = [slices[start:start + batch_size] for start in range(0, len(slices), batch_size)]
    probabilities, severities, status = run_batches(
        model, (([s.hu for s in chunk], [s.pixel_spacing_mm for s in chunk]) for chunk in chunks))
    clean = getattr(cfg, "clean_label", None)
    out = []
    for s, state, probs, sev in zip(slices, status, probabilities, severities):
        if state != "ok":
            out.append(Prediction(s.name, None, None, None, {}, state))
            continue
        label = cfg.label_names[int(probs.argmax())]
        severity = None if label == clean else float(np.clip(sev, 0, cfg.max_level))
        out.append(Prediction(s.name, label, severity,
                              None if severity is None else int(np.clip(np.rint(sev), 0, cfg.max_level)),
                              {n: float(p) for n, p in zip(cfg.label_names, probs)}))
    return out


def answer_summary(predictions: list[Prediction]) -> str:
    """One line under the table of a folder or volume: how many slices got each answer (most
    frequent first), and how many have none, e.g. ``77 slices: clean 76, S5_metal 1``."""
    counts = {}
    for p in predictions:
        if p.status == "ok":
            counts[p.label] = counts.get(p.label, 0) + 1
    unanswered = len(predictions) - sum(counts.values())
    answers = ", ".join(f"{label} {n}" for label, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return (f"{len(predictions)} slices: {answers or 'no answer'}"
            + (f"; {unanswered} without an answer" if unanswered and counts else ""))


def status_warning(predictions: list[Prediction]) -> str | None:
    """One warning line counting the slices without an answer, by status (None when all are ok)."""
    counts = {}
    for p in predictions:
        if p.status != "ok":
            counts[p.status] = counts.get(p.status, 0) + 1
    if not counts:
        return None
    return (f"warning: {sum(counts.values())} of {len(predictions)} slices have no answer: "
            + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))


def load_model(model_dir=None, option: str = "--model"):
    """A SeSpeCT model from ``model_dir`` (default: the shipped checkpoint); ``option`` is the
    command-line option that named the folder, for the message.

    A folder that is not a loadable SeSpeCT checkpoint raises InputError in one line naming the
    file and what is wrong: config.json missing, not JSON, of another model type or with a
    bad field; model.safetensors missing, truncated or not safetensors; weights whose names or
    shapes do not fit the config (a dimension or label count that differs).
    """
    import ctdegradbench.model as sespect

    folder = Path(model_dir) if model_dir else sespect.default_checkpoint()
    config_file, weights = folder / "config.json", folder / "model.safetensors"
    if not config_file.is_file():
        raise InputNotFoundError(f"no SeSpeCT checkpoint in {folder} (config.json missing): give {option} a folder "
                                 "written by ct-degradbench train")
    try:
        raw = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise InputError(f"{config_file}: not a readable JSON file ({err})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{config_file}: expected a JSON object, got {type(raw).__name__}")
    model_type = sespect.SeSpeCTConfig.model_type
    if raw.get("model_type") != model_type:
        raise InputError(f"{config_file}: model_type is {raw.get('model_type')!r}, expected {model_type!r} (a SeSpeCT "
                         "checkpoint written by ct-degradbench train)")
    if not weights.is_file():
        raise InputNotFoundError(f"{weights} is missing: the checkpoint's weights are needed")
    try:
        config = sespect.SeSpeCTConfig.from_dict(raw)
    except Exception as err:        # any bad field: wrong type, unknown backbone, bad label list, ...
        raise InputError(f"{config_file}: {_one_line(err)}") from None
    legacy = _check_weights(weights, config)
    from transformers.utils import logging as hf_logging

    from ctdegradbench.model.modeling_sespect import LEGACY_KEY_MAPPING

    hf_logging.disable_progress_bar()
    try:
        return sespect.SeSpeCTForDegradationEstimation.from_pretrained(
            str(folder), config=config, **({"key_mapping": LEGACY_KEY_MAPPING} if legacy else {})).eval()
    except (FileNotFoundError, OSError) as err:     # e.g. the backbone's pretrained weights
        raise InputError(f"{folder}: {_one_line(err)}") from None


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def _check_weights(weights: Path, config) -> bool:
    """InputError unless ``weights`` is a safetensors file whose tensors have the names and shapes
    that a model built from ``config`` expects (the frozen backbone's may be absent). Returns
    whether the names are of the layout before the trunk / head split (loaded with
    ``modeling_sespect.LEGACY_KEY_MAPPING``)."""
    import re

    import torch
    from safetensors import safe_open

    import ctdegradbench.model as sespect
    from ctdegradbench.model.modeling_sespect import LEGACY_KEY_MAPPING, is_backbone_key, is_legacy_state

    try:
        with safe_open(str(weights), framework="pt") as f:
            stored = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except Exception as err:
        raise InputError(f"{weights}: not a complete safetensors file ({_one_line(err)})") from None
    legacy = is_legacy_state(stored)
    if legacy:
        (pattern, prefix), = LEGACY_KEY_MAPPING.items()
        stored = {re.sub(pattern, prefix, name): shape for name, shape in stored.items()}
    with torch.device("meta"):
        expected = {name: tuple(t.shape)
                    for name, t in sespect.SeSpeCTForDegradationEstimation(config).state_dict().items()}
    wrong = [f"{n} {stored[n]} (config needs {expected[n]})" for n in stored if n in expected
             and stored[n] != expected[n]]
    if wrong:
        raise InputError(f"{weights}: tensor shapes do not fit {weights.parent / 'config.json'}: {wrong[0]}"
                         + (f" and {len(wrong) - 1} more" if len(wrong) > 1 else ""))
    missing = [n for n in expected if n not in stored and not is_backbone_key(n)]
    unknown = [n for n in stored if n not in expected]
    if missing or unknown:
        what = f"missing {missing[0]}" if missing else f"unknown tensor {unknown[0]}"
        raise InputError(f"{weights}: tensors do not fit {weights.parent / 'config.json'}: {what} "
                         f"({len(missing)} missing, {len(unknown)} unknown)")
    return legacy


NAME_WIDTH = 56   # widest slice name in the table; longer ones lose their middle


def short_name(name: str, width: int = NAME_WIDTH) -> str:
    """``name`` in at most ``width`` characters: its start (source / patient) and its end
    (series tail / slice index) with ``...`` between, never cut from one side only."""
    if len(name) <= width:
        return name
    head = (width - 3) // 2
    return name[:head] + "..." + name[-(width - 3 - head):]


def format_table(predictions: list[Prediction], top: int = 3, header: bool = True, width: int | None = None) -> str:
    """The predictions as a table; ``header=False`` and a fixed ``width`` continue one printed earlier."""
    width = width or max([5] + [len(short_name(p.name)) for p in predictions])
    lines = [f"{'slice':<{width}} {'type':<12} {'severity':>8} {'level':>5}  top classes"] if header else []
    for p in predictions:
        if p.status != "ok":
            lines.append(f"{short_name(p.name):<{width}} {p.status}")
            continue
        best = sorted(p.probabilities.items(), key=lambda kv: -kv[1])[:top]
        severity = f"{p.severity:>8.2f} {'L' + str(p.level):>5}" if p.severity is not None else f"{'-':>8} {'-':>5}"
        lines.append(f"{short_name(p.name):<{width}} {p.label:<12} {severity}  "
                     + ", ".join(f"{k} {v:.2f}" for k, v in best))
    return "\n".join(lines)


def to_json(predictions: list[Prediction], errors: dict, left_out: dict) -> str:
    """The ``--json`` document: the predictions, the inputs that failed (path -> error) and the files
    of a folder left out as no CT image slice (path -> reason)."""
    return json.dumps({"predictions": [p.to_dict() for p in predictions], "errors": errors, "left_out": left_out},
                      indent=1)


def left_out_note(left_out: dict) -> str:
    """One line on the files left out of folders: their count by reason, with one example each."""
    by_reason: dict[str, list[str]] = {}
    for where, reason in left_out.items():
        by_reason.setdefault(reason, []).append(where)
    parts = ", ".join(f"{reason}: {len(ws)} (e.g. {ws[0]})" for reason, ws in by_reason.items())
    return f"left out {len(left_out)} file{'s' * (len(left_out) != 1)} holding no axial CT image slice: {parts}"
