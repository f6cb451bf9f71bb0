"""The simulation pipeline: reference slice -> degraded HU images + metadata + prompts.

For one reference slice (paper Figure 1):

1. ``mu = hu_to_mu(HU)`` (Eq. 2; pixels below -1000 HU, scanner padding, become air and are
   counted in ``reference_below_air_pixels``), one forward projection ``s = R(mu)`` (Eq. 3)
   on the 360-view parallel-beam geometry, and the clean FBP reconstruction (the
   reference's own reconstruction floor, ``PreparedReference.clean_fbp_hu``).
2. For every requested setting (S1..S5, M1..M5), level (L0..L3) and realization, draw the
   component levels (:mod:`builder.mixtures`) and each component's parameters from seeds
   derived from the sample id (:mod:`builder.seeding`), then apply the components to ``s``
   in the setting's order (:mod:`builder.severity`; metal, when present, first: it
   replaces ``s`` by the sinogram of the slice with metal inserted).
3. FBP (Eq. 4) of all degraded sinograms, batched by view subset, then
   ``HU = round_half_even(mu_to_hu(mu))`` as int16, clipped to the range a scanner stores
   (:func:`hu_range`, recorded per row as ``hu_range``): the floor ``-1024 HU`` (the lowest
   CT number of a 12-bit scanner; air reads about -1000) and the top of the 12-bit scale,
   ``3071 HU``, or of the extended CT scale, ``30710 HU``, for rows with metal and rows
   whose reference itself exceeds 3071 HU (scanners switch to it for metal; the 12-bit
   scale would clip every implant). The clipped pixels are counted per row
   (``clipped_low``, ``clipped_high``, ``clip_count`` their sum).

Replay. Each sample's metadata holds every drawn parameter and seed, the geometry and the
FBP filter; :meth:`Simulator.replay` rebuilds the image from the metadata and the reference
alone, bit-exactly when run on the device, dtype and projector backend recorded in the
metadata (``device``, ``dtype``, ``backend``). This needs the projector's FBP to give the
same result for an image whatever the batch it is reconstructed in (tested).

Metadata keys of a sample (top level): ``sample_id``, ``reference_id``, ``patient_key``,
``setting``, ``class_name``, ``level``, ``realization``, ``seed``, ``components`` (list of
:func:`builder.metadata.make_component` records in application order), ``geometry``,
``pixel_spacing_mm``, ``fbp_filter``, ``backend``, ``device``, ``dtype``,
``simulator_version``, ``config`` (:meth:`SimulationConfig.to_dict`), ``mu_water_per_mm``,
``clip_count``, ``clipped_low``, ``clipped_high``, ``hu_range``, ``clamped_bins`` (sinogram readings floored before the log: negative
readings of the noise operator plus the metal scan's readings below its floor, see
:mod:`builder.degradations.noise` and :mod:`builder.degradations.metal`),
``reference_below_air_pixels`` and ``reference_info``
(the reference's acquisition facts: kernel, slice thickness, noise SD, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata

import numpy as np
import torch

from ctdegradbench.builder.core.geometry import ParallelBeamGeometry
from ctdegradbench.core.errors import OptionError
from ctdegradbench.core.hu import MU_WATER_PER_MM, STORED_HU_MIN, count_below_air, hu_to_mu, mu_to_hu
from ctdegradbench.core.levels import LEVELS, check_level
from ctdegradbench.builder.core.seeding import (component_seed, levels_seed, make_sample_id,
                                                numpy_generator, sample_seed)
from ctdegradbench.builder.degradations import (ScanContext, SinogramState, get_degradation,
                                                make_component)
from ctdegradbench.builder.projector import ParallelBeamProjector
from ctdegradbench.builder.simulate.config import SimulationConfig
from ctdegradbench.builder.core.protocol import FILTERS
from ctdegradbench.builder.simulate.mixtures import setting_components
from ctdegradbench.builder.simulate.prompts import describe
from ctdegradbench.builder.simulate.settings import PAPER_SETTINGS, Setting, get_setting
from ctdegradbench.builder.sources.reference import ReferenceSlice

FBP_BATCH = 8          # sinograms reconstructed together (bounds the FBP's peak memory)
HU_RANGE = (STORED_HU_MIN, 30710)   # CT numbers a scanner stores: 12-bit floor, extended-scale top (metal)
HU_STANDARD_TOP = 3071      # top of the 12-bit scale: the top of rows without metal


def hu_range(has_metal: bool, reference_max_hu: float) -> tuple[int, int]:
    """``(low, high)`` CT numbers of a row: the extended scale for metal, or when the reference
    itself exceeds the 12-bit top (dense implants already in the patient); the 12-bit scale otherwise."""
    extended = has_metal or reference_max_hu > HU_STANDARD_TOP
    return HU_RANGE[0], HU_RANGE[1] if extended else HU_STANDARD_TOP


def simulator_version() -> str:
    """The installed ``ct-degradbench`` version, or ``"0+unknown"`` when it is not installed."""
    try:
        return importlib_metadata.version("ct-degradbench")
    except importlib_metadata.PackageNotFoundError:
        return "0+unknown"


@dataclass
class DegradedSample:
    """One degraded slice with its labels, metadata and prompt.

    Attributes
    ----------
    sample_id : str
        ``reference_id/setting/L<level>/r<realization>``.
    reference_id, patient_key : str
    setting : str
        ``"S1"`` .. ``"M5"``.
    class_name : str
        The paper's label, e.g. ``"M3_m+n"``.
    level : int
        Severity 0..3 (a mixture's: the maximum of its components' levels).
    realization : int
    image_hu : np.ndarray of int16, shape (N, N)
        The degraded reconstruction in HU.
    metadata : dict
        See the module docstring.
    prompt : str
        Structured natural-language description (:func:`builder.prompts.describe`).
    bbox : list of int
        Metal bounding box ``[x_min, y_min, x_max, y_max]`` (inclusive pixels); ``[]`` without metal.
    """

    sample_id: str
    reference_id: str
    patient_key: str
    setting: str
    class_name: str
    level: int
    realization: int
    image_hu: np.ndarray
    metadata: dict
    prompt: str
    bbox: list = field(default_factory=list)


@dataclass
class PreparedReference(ScanContext):
    """Per-reference work shared by all its samples: the operators' :class:`ScanContext`
    (reference, geometry, projector, ``mu``, clean sinogram, per-reference cache) and

    Attributes
    ----------
    clean_fbp_hu : np.ndarray of int16 (N, N)
        FBP of the clean sinogram in HU: the reconstruction floor every degradation adds to.
    clean_clip_count : int
        Pixels of the clean FBP clipped to the scanner's range (:data:`HU_RANGE`).
    below_air_pixels : int
        Reference pixels below -1000 HU that were treated as air.
    """

    clean_fbp_hu: np.ndarray = None
    clean_clip_count: int = 0
    below_air_pixels: int = 0

    def hu_range(self, components) -> tuple[int, int]:
        """The stored range of a row with these components (records or plan components, ``.type``/``["type"]``)."""
        kinds = [c["type"] if isinstance(c, dict) else c.type for c in components]
        return hu_range("metal" in kinds, float(np.max(self.reference.hu)))


@dataclass(frozen=True)
class _Component:
    type: str
    level: int
    order: int
    params: object


@dataclass(frozen=True)
class _Plan:
    setting: Setting
    level: int
    realization: int
    sample_id: str
    seed: int
    components: tuple[_Component, ...]


def _plain(value):
    """JSON-friendly copy of ``value`` (numpy scalars and arrays to Python numbers and lists)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


class Simulator:
    """Degrades reference slices; see the module docstring.

    Parameters
    ----------
    config : SimulationConfig or None
        ``None`` means the defaults.
    """

    def __init__(self, config: SimulationConfig | None = None):
        if config is None:
            config = SimulationConfig()
        if not isinstance(config, SimulationConfig):
            raise ValueError(f"config must be a SimulationConfig, got {type(config).__name__}")
        self.config = config
        self.device = torch.device(config.device)
        self.dtype = config.torch_dtype
        self._projectors: dict[tuple[int, float], ParallelBeamProjector] = {}

    # ------------------------------------------------------------ projectors
    def projector(self, geometry: ParallelBeamGeometry) -> ParallelBeamProjector:
        """The (cached) projector of ``geometry`` on this simulator's device, dtype and backend."""
        key = (int(geometry.image_size), float(geometry.pixel_spacing_mm))
        if key not in self._projectors:
            self._projectors[key] = ParallelBeamProjector(geometry, device=self.device, dtype=self.dtype,
                                                          backend=self.config.backend)
        return self._projectors[key]

    # ------------------------------------------------------------- prepare
    def prepare(self, reference: ReferenceSlice) -> PreparedReference:
        """mu map, clean sinogram and clean FBP of ``reference``."""
        if not isinstance(reference, ReferenceSlice):
            raise ValueError(f"expected a ReferenceSlice, got {type(reference).__name__}")
        geometry = ParallelBeamGeometry(reference.image_size, float(reference.pixel_spacing_mm))
        projector = self.projector(geometry)
        hu = torch.as_tensor(reference.hu, device=self.device).to(self.dtype)
        mu = hu_to_mu(hu)
        sinogram = projector(mu)
        images, clips = self._reconstruct(projector, sinogram.unsqueeze(0), None, self.config.fbp_filter)
        prepared = PreparedReference(reference=reference, geometry=geometry, projector=projector, mu=mu,
                                     sinogram=sinogram, clean_fbp_hu=images[0], clean_clip_count=sum(clips[0]),
                                     below_air_pixels=count_below_air(reference.hu))
        return prepared

    # ---------------------------------------------------------------- plan
    def _plan(self, prepared: PreparedReference, setting: Setting | str, level: int, realization: int) -> _Plan:
        """Draw every parameter of one sample (nothing is applied yet)."""
        setting = get_setting(setting) if isinstance(setting, str) else setting
        check_level(level)
        cfg = self.config
        sample_id = make_sample_id(prepared.reference.reference_id, setting.code, level, realization)
        seed = sample_seed(cfg.seed, sample_id)
        levels = setting_components(setting, level, numpy_generator(levels_seed(seed)))
        components = []
        for order, (kind, component_level) in enumerate(levels):
            params = get_degradation(kind).sample(component_level, prepared, component_seed(seed, order, kind), cfg)
            components.append(_Component(kind, component_level, order, params))
        return _Plan(setting, level, int(realization), sample_id, seed, tuple(components))

    # ------------------------------------------------------------- degrade
    def _degrade(self, prepared: PreparedReference, components) -> SinogramState:
        """Apply ``components`` (in order) to the clean sinogram."""
        state = SinogramState(prepared.sinogram)
        for comp in components:
            state = get_degradation(comp.type).apply(state, comp.params, prepared)
        return state

    @staticmethod
    def _reconstruct(projector, sinograms: torch.Tensor, views, filter_name: str, fine_views=None, ranges=None):
        """FBP of a batch ``(B, V', D)`` -> int16 HU images and per-image clip counts ``(low, high)``.

        ``fine_views``: per image, a metal scan's :class:`~builder.degradations.metal.FineViews`
        or ``None``; on full-view scans its correction (the metal seen by the finer views) is
        added to the FBP. ``HU = round(mu_to_hu(mu))`` (round half to even), then clipped to
        ``ranges`` (per image ``(low, high)``; default :data:`HU_RANGE`).
        """
        mu = projector.fbp(sinograms, views=views, filter_name=filter_name)
        if views is None and fine_views is not None:
            for i, fine in enumerate(fine_views):
                if fine is not None:
                    mu[i] += fine.correction(filter_name)
        if not bool(torch.isfinite(mu).all()):
            raise ValueError("FBP produced non-finite values; the degraded sinogram is not finite")
        hu = torch.round(mu_to_hu(mu))
        ranges = [HU_RANGE] * hu.shape[0] if ranges is None else ranges
        low = torch.tensor([r[0] for r in ranges], dtype=hu.dtype, device=hu.device)[:, None, None]
        high = torch.tensor([r[1] for r in ranges], dtype=hu.dtype, device=hu.device)[:, None, None]
        below = (hu < low).sum(dim=(-2, -1)).tolist()
        above = (hu > high).sum(dim=(-2, -1)).tolist()
        images = torch.minimum(torch.maximum(hu, low), high).to(torch.int16).cpu().numpy()
        return [img for img in images], [(int(a), int(b)) for a, b in zip(below, above)]

    # ----------------------------------------------------------------- run
    def run(self, reference: ReferenceSlice | PreparedReference, settings=None, levels=LEVELS,
            realizations=None) -> list[DegradedSample]:
        """All requested samples of one reference, from its one clean sinogram.

        Parameters
        ----------
        reference : ReferenceSlice or PreparedReference
        settings : str, iterable of str or None
            A setting code or config name, several, or ``None`` for the paper's ten (S1..S5, M1..M5).
        levels : int or iterable of int
            Global severity levels, default L0..L3.
        realizations : int, iterable of int or None
            A count (realizations ``0 .. n - 1``), explicit realization indices, or ``None``
            for ``config.realizations``.

        Returns
        -------
        list of DegradedSample, ordered by setting, level, realization.
        """
        settings = PAPER_SETTINGS if settings is None else (settings,) if isinstance(settings, (str, Setting)) \
            else tuple(settings)
        settings = tuple(get_setting(s) if isinstance(s, str) else s for s in settings)
        levels = (levels,) if isinstance(levels, int) else tuple(levels)
        levels = tuple(check_level(lv) for lv in levels)
        if realizations is None:
            realizations = range(self.config.realizations)
        elif isinstance(realizations, (int, np.integer)) and not isinstance(realizations, bool):
            if realizations < 1:
                raise OptionError(f"realizations must be a positive count, got {realizations!r}")
            realizations = range(int(realizations))
        for name, chosen in (("settings", settings), ("levels", levels), ("realizations", realizations)):
            if len(chosen) == 0:
                raise OptionError(f"{name} must name at least one, got none: nothing would be simulated")
        prepared = reference if isinstance(reference, PreparedReference) else self.prepare(reference)
        plans = [self._plan(prepared, s, lv, r) for s in settings for lv in levels for r in realizations]

        degraded = [self._degrade(prepared, plan.components) for plan in plans]
        images: list[np.ndarray | None] = [None] * len(plans)
        clips: list[int | None] = [None] * len(plans)
        groups: dict[bytes | None, list[int]] = {}     # samples reconstructed from the same views
        for i, state in enumerate(degraded):
            groups.setdefault(None if state.views is None else state.views.tobytes(), []).append(i)
        for indices in groups.values():
            views = degraded[indices[0]].views
            for start in range(0, len(indices), FBP_BATCH):
                chunk = indices[start:start + FBP_BATCH]
                batch = torch.stack([degraded[i].sinogram for i in chunk])
                out, counts = self._reconstruct(prepared.projector, batch, views, self.config.fbp_filter,
                                                [degraded[i].fine_views for i in chunk],
                                                [prepared.hu_range(plans[i].components) for i in chunk])
                for i, img, count in zip(chunk, out, counts):
                    images[i], clips[i] = img, count
        return [self._sample(prepared, plan, images[i], clips[i], degraded[i].clamped_bins) for i, plan in enumerate(plans)]

    # ------------------------------------------------------------ metadata
    @staticmethod
    def _component_record(prepared: PreparedReference, comp: _Component) -> dict:
        return make_component(get_degradation(comp.type), comp.params, comp.level, comp.order, prepared)

    def _sample(self, prepared: PreparedReference, plan: _Plan, image: np.ndarray, clips: tuple[int, int],
                clamped_bins: int) -> DegradedSample:
        ref = prepared.reference
        components = [self._component_record(prepared, c) for c in plan.components]
        metadata = {
            "sample_id": plan.sample_id,
            "reference_id": ref.reference_id,
            "patient_key": ref.patient_key,
            "setting": plan.setting.code,
            "class_name": plan.setting.class_name,
            "level": plan.level,
            "realization": plan.realization,
            "seed": plan.seed,
            "components": components,
            "geometry": prepared.geometry.to_dict(),
            "pixel_spacing_mm": float(ref.pixel_spacing_mm),
            "fbp_filter": self.config.fbp_filter,
            "backend": prepared.projector.backend,
            "device": self.config.device,
            "dtype": self.config.dtype,
            "simulator_version": simulator_version(),
            "config": self.config.to_dict(),
            "mu_water_per_mm": MU_WATER_PER_MM,
            "clip_count": int(sum(clips)),
            "clipped_low": int(clips[0]),
            "clipped_high": int(clips[1]),
            "hu_range": list(prepared.hu_range(plan.components)),
            "clamped_bins": int(clamped_bins),
            "reference_below_air_pixels": int(prepared.below_air_pixels),
            "reference_info": _plain(dict(ref.info)),
        }
        bbox = next((list(c["bbox"]) for c in components if c.get("bbox")), [])   # union box of all metal objects
        return DegradedSample(sample_id=plan.sample_id, reference_id=ref.reference_id, patient_key=ref.patient_key,
                              setting=plan.setting.code, class_name=plan.setting.class_name, level=plan.level,
                              realization=plan.realization, image_hu=image, metadata=metadata,
                              prompt=describe(metadata), bbox=[int(v) for v in bbox])

    # -------------------------------------------------------------- replay
    def replay(self, reference: ReferenceSlice | PreparedReference, metadata: dict) -> np.ndarray:
        """Rebuild a sample's int16 HU image from its metadata and its reference alone.

        Uses the recorded component parameters and seeds, geometry and FBP filter; the
        result equals the stored image bit-exactly when this simulator's device, dtype and
        projector backend are the recorded ones.
        """
        return self.replay_many(reference, [metadata])[0]

    def _replay_state(self, prepared: PreparedReference, metadata: dict):
        """The checked component records of ``metadata`` and its degraded sinogram state."""
        ref = prepared.reference
        if ref.reference_id != metadata["reference_id"]:
            raise ValueError(f"sample {metadata.get('sample_id')!r} was made from reference "
                             f"{metadata['reference_id']!r}, got reference {ref.reference_id!r}")
        if prepared.geometry.to_dict() != metadata["geometry"]:
            raise ValueError(f"sample geometry {metadata['geometry']} differs from the reference's "
                             f"{prepared.geometry.to_dict()}")
        if metadata["fbp_filter"] not in FILTERS:
            raise ValueError(f"unknown fbp_filter {metadata['fbp_filter']!r}; expected one of {FILTERS}")
        records = sorted(metadata["components"], key=lambda c: c["order"])
        components = [_Component(c["type"], c["level"], c["order"], get_degradation(c["type"]).params_from_record(c))
                      for c in records]
        return records, self._degrade(prepared, components)

    def replay_many(self, reference: ReferenceSlice | PreparedReference, metadatas) -> list[np.ndarray]:
        """:meth:`replay` of several samples of one reference, from its one prepared state (mu map,
        clean sinogram and projector made once): each sample's sinogram is degraded from the
        recorded parameters, then the samples sharing views and FBP filter are reconstructed in
        batches of ``FBP_BATCH``, as :meth:`run` made them. Returns the int16 HU images in the
        order of ``metadatas``; each equals what :meth:`replay` gives for it."""
        prepared = reference if isinstance(reference, PreparedReference) else self.prepare(reference)
        metadatas = list(metadatas)
        states = [self._replay_state(prepared, meta) for meta in metadatas]
        images: list[np.ndarray | None] = [None] * len(states)
        groups: dict[tuple, list[int]] = {}     # samples reconstructed from the same views with the same filter
        for i, (_, state) in enumerate(states):
            key = (None if state.views is None else state.views.tobytes(), metadatas[i]["fbp_filter"])
            groups.setdefault(key, []).append(i)
        for (_, filter_name), indices in groups.items():
            views = states[indices[0]][1].views
            for start in range(0, len(indices), FBP_BATCH):
                chunk = indices[start:start + FBP_BATCH]
                batch = torch.stack([states[i][1].sinogram for i in chunk])
                out, _ = self._reconstruct(prepared.projector, batch, views, filter_name,
                                           [states[i][1].fine_views for i in chunk],
                                           [prepared.hu_range(states[i][0]) for i in chunk])
                for i, img in zip(chunk, out):
                    images[i] = img
        return images
