"""The degradation registry: one object per degradation, each defined in its own module.

A degradation acts on the line integrals of one reference slice (its sinogram, views x
detector bins, before FBP). Its registry object declares everything the rest of the
project needs to know about it, so the simulator, the prompts, the dataset card and the
dataset features loop over :data:`REGISTRY` instead of naming degradation types:

* ``name``: the type recorded in metadata (``component["type"]``), e.g. ``"noise"``;
* ``title``: the paper's words for it, used in prompts and the card ("loss of sharpness");
* ``parameter``, ``unit``, ``levels``: the severity parameter, its unit and its value at
  L0..L3;
* ``fields``: the metadata record fields this type fills, ``name -> (type, meaning)``;
* ``physics``: a short Markdown statement of the physics for the dataset card;
* ``sample(level, context, seed, config)``: draws the parameters of one application, every
  random draw from ``seed``;
* ``apply(state, params, context)``: the deterministic operator on a :class:`SinogramState`;
* ``record(params, context)`` and ``params_from_record(record)``: the metadata record of
  the parameters and its inverse, which is what replay uses;
* ``phrase(record, geometry)``: the component in words, with its physical parameters, for
  the sample prompt (``geometry``: the sample's recorded geometry).

Adding a degradation is one new module that defines a :class:`Degradation` subclass and
registers an instance with :func:`register`, plus its import in ``degradations/__init__.py``
(and a setting that uses it, in ``builder/simulate/settings.py``).
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from ctdegradbench.core.errors import OptionError
from ctdegradbench.core.levels import check_level

# Record fields every component has, whatever its type.
COMMON_FIELDS: dict[str, tuple[str, str]] = {
    "type": ("str", "degradation type (the registry name: noise, blur, streak, aliasing, metal, ...)"),
    "level": ("int", "this component's severity level, 0..3"),
    "order": ("int", "position in the application order, 0 first"),
    "seed": ("int", "seed of this component's own random draws (null when it draws nothing)"),
}
FIELD_TYPES = ("str", "int", "float", "list[int]", "list[float]")


@dataclass
class ScanContext:
    """One reference slice as the operators see it (built once per reference by the simulator).

    Attributes
    ----------
    reference : ReferenceSlice
        The reference slice (HU, pixel spacing, provenance).
    geometry : ParallelBeamGeometry
    projector : ParallelBeamProjector
        The projector of ``geometry`` on the simulator's device and dtype.
    mu : tensor (N, N)
        Attenuation map in 1/mm.
    sinogram : tensor (V, D)
        Clean line integrals on all views.
    cache : dict
        Per-reference work an operator computes once and reuses for every sample of the
        reference (e.g. the tissue projections of the metal model), keyed by the operator.
    """

    reference: Any
    geometry: Any
    projector: Any
    mu: torch.Tensor
    sinogram: torch.Tensor
    cache: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SinogramState:
    """The measurement as the operators hand it on.

    ``sinogram`` holds line integrals ``(V', D)``; ``views`` the indices of the full scan's
    views it holds (``None``: all of them); ``clamped_bins`` counts readings floored before
    the log so far; ``fine_views`` the metal scan's noise-free increment on finer views
    (:class:`builder.degradations.metal.FineViews`, ``None`` without metal): a full-view
    reconstruction adds its ``correction(filter)`` to the FBP of ``sinogram`` (the metal
    seen by 1080 views instead of 360, without view aliasing); operators that act on the
    sinogram linearly along the detector (blur) act on it too.
    """

    sinogram: torch.Tensor
    views: np.ndarray | None = None
    clamped_bins: int = 0
    fine_views: Any = None

    def replace(self, **changes) -> "SinogramState":
        return dataclasses.replace(self, **changes)


class Degradation(abc.ABC):
    """One degradation: its declaration (class attributes) and its sampler, operator and record."""

    name: ClassVar[str]
    title: ClassVar[str]
    parameter: ClassVar[str]
    unit: ClassVar[str]
    levels: ClassVar[tuple[float, ...]]
    fields: ClassVar[dict[str, tuple[str, str]]]
    physics: ClassVar[str]

    def value(self, level: int) -> float:
        """The severity parameter at ``level`` (its :attr:`unit`)."""
        return self.levels[check_level(level)]

    @abc.abstractmethod
    def sample(self, level: int, context: ScanContext, seed: int, config) -> Any:
        """Parameters of one application at ``level``; random draws only from ``seed``.

        ``config`` is the simulator's ``SimulationConfig`` (the operator reads its own options).
        """

    @abc.abstractmethod
    def apply(self, state: SinogramState, params, context: ScanContext) -> SinogramState:
        """The degraded measurement (deterministic given ``params``)."""

    @abc.abstractmethod
    def record(self, params, context: ScanContext) -> dict:
        """Metadata fields (a subset of :attr:`fields`, plus ``seed`` when it draws) of ``params``."""

    @abc.abstractmethod
    def params_from_record(self, record: dict):
        """Inverse of :meth:`record`: the parameters to replay a recorded component."""

    @abc.abstractmethod
    def phrase(self, record: dict, geometry: dict) -> str:
        """The component in words with its physical parameters (no level), for the prompt;
        ``geometry`` is the sample's recorded geometry (``ParallelBeamGeometry.to_dict()``)."""


REGISTRY: dict[str, Degradation] = {}


def register(cls: type[Degradation]) -> type[Degradation]:
    """Class decorator: check the declaration and add an instance of ``cls`` to :data:`REGISTRY`."""
    degradation = cls()
    if degradation.name in REGISTRY:
        raise RuntimeError(f"degradation {degradation.name!r} is registered twice")
    if len(degradation.levels) != 4:
        raise RuntimeError(f"degradation {degradation.name!r} must give 4 levels, got {degradation.levels}")
    for name, (kind, _) in degradation.fields.items():
        if kind not in FIELD_TYPES:
            raise RuntimeError(f"field {name!r} of {degradation.name!r} has type {kind!r}; expected one of {FIELD_TYPES}")
    if degradation.parameter not in degradation.fields:
        raise RuntimeError(f"severity parameter {degradation.parameter!r} of {degradation.name!r} is not a record field")
    REGISTRY[degradation.name] = degradation
    return cls


def get_degradation(name: str) -> Degradation:
    """The registered degradation called ``name``; OptionError naming the known ones otherwise."""
    if name not in REGISTRY:
        raise OptionError(f"unknown degradation type {name!r}; expected one of {tuple(REGISTRY)}")
    return REGISTRY[name]


def component_fields() -> dict[str, tuple[str, str]]:
    """Every record field: :data:`COMMON_FIELDS`, then each registered type's own, in registry order.

    A field several types fill (``i0``) appears once; its meanings are joined, and its
    type must agree.
    """
    fields = dict(COMMON_FIELDS)
    for degradation in REGISTRY.values():
        for name, (kind, doc) in degradation.fields.items():
            if name not in fields:
                fields[name] = (kind, f"{degradation.name}: {doc}")
            elif fields[name][0] != kind:
                raise RuntimeError(f"field {name!r} has type {fields[name][0]!r} and {kind!r}")
            elif name not in COMMON_FIELDS:
                fields[name] = (kind, f"{fields[name][1]}; {degradation.name}: {doc}")
    return fields


def make_component(degradation: Degradation, params, level: int, order: int, context: ScanContext) -> dict:
    """The metadata record of one applied component: every field of :func:`component_fields`
    (those that do not apply to its type are ``None``)."""
    values = {"type": degradation.name, "level": check_level(level), "order": int(order), "seed": None}
    values.update(degradation.record(params, context))
    return {name: values.get(name) for name in component_fields()}
