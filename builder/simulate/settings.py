"""The one place for CT-DegradBench's settings and class names (paper Section 2.3, Table 8).

A *setting* is a single degradation (S1..S5) or a mixture (M1..M5) of degradation types
(the names of :data:`ctdegradbench.builder.degradations.REGISTRY`), generated at every
severity level L0 (mildest) .. L3 (strongest). Each degradation's own severity parameter,
unit and level table live with its operator (``builder/degradations/<type>.py``).

Mixtures apply their components in the order listed (paper Table 8): the physical cause
acts first, photon noise of the low-dose acquisition last.

Settings outside the paper (``in_paper=False``) are opt-in: the ``all`` config and the
paper's ten classes do not include them unless asked.

The label contract (one place, imported by the dataset's ``ClassLabel`` and by the model's
``id2label``): :data:`CLASS_NAMES` in id order is the paper's ten classes (ids 0..9), then
``clean`` (id 10: no added degradation, the estimator's answer for a reference slice), then
the opt-in settings' classes (``S6_ring`` id 11). The paper's class ids never change.

This module imports nothing heavy, so the command line can list configs before it loads
torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from ctdegradbench.core.errors import OptionError
from ctdegradbench.core.levels import LEVELS, check_level

__all__ = ["LEVELS", "check_level", "Setting", "SETTINGS", "PAPER_SETTINGS", "CLASS_NAMES", "PAPER_CLASS_NAMES",
           "CLEAN_CLASS_NAME", "class_id",
           "SETTINGS_BY_CODE", "SETTINGS_BY_CONFIG", "get_setting", "NOISE", "BLUR", "STREAK", "ALIASING", "METAL"]

# The paper's degradation types (registry names).
NOISE, BLUR, STREAK, ALIASING, METAL = "noise", "blur", "streak", "aliasing", "metal"


@dataclass(frozen=True)
class Setting:
    """One benchmark setting: a single degradation (S*) or a mixture (M*).

    ``components`` lists the degradation types in the order they are applied; ``in_paper``
    says whether the paper defines it (the others are opt-in).
    """

    code: str          # "S1" .. "M5"
    class_name: str    # the paper's label, e.g. "S1_noise", "M5_m+b+n"
    config_name: str   # the dataset config, e.g. "single_noise", "mixture_m5"
    components: tuple[str, ...]
    description: str
    in_paper: bool = True

    @property
    def is_mixture(self) -> bool:
        return len(self.components) > 1


SETTINGS: tuple[Setting, ...] = (
    Setting("S1", "S1_noise", "single_noise", (NOISE,), "noise"),
    Setting("S2", "S2_blur", "single_blur", (BLUR,), "loss of sharpness (blur)"),
    Setting("S3", "S3_streak", "single_streak", (STREAK,), "streak artifacts"),
    Setting("S4", "S4_aliasing", "single_aliasing", (ALIASING,), "sparse-view aliasing"),
    Setting("S5", "S5_metal", "single_metal", (METAL,), "metal artifacts"),
    Setting("M1", "M1_b+n", "mixture_m1", (BLUR, NOISE), "loss of sharpness + noise"),
    Setting("M2", "M2_s+n", "mixture_m2", (STREAK, NOISE), "streaks + noise"),
    Setting("M3", "M3_m+n", "mixture_m3", (METAL, NOISE), "metal + noise"),
    Setting("M4", "M4_a+n", "mixture_m4", (ALIASING, NOISE), "aliasing + noise"),
    Setting("M5", "M5_m+b+n", "mixture_m5", (METAL, BLUR, NOISE), "metal + loss of sharpness + noise"),
    Setting("S6", "S6_ring", "single_ring", ("ring",), "ring artifacts", in_paper=False),
)

PAPER_SETTINGS: tuple[Setting, ...] = tuple(s for s in SETTINGS if s.in_paper)
SETTINGS_BY_CODE: dict[str, Setting] = {s.code: s for s in SETTINGS}
SETTINGS_BY_CONFIG: dict[str, Setting] = {s.config_name: s for s in SETTINGS}
PAPER_CLASS_NAMES: tuple[str, ...] = tuple(s.class_name for s in PAPER_SETTINGS)
#: The class of a slice with no added degradation (label id 10, after the paper's ten).
CLEAN_CLASS_NAME = "clean"
#: Every class name in label-id order: paper ten (0..9), ``clean`` (10), opt-in settings (``S6_ring`` 11, ...).
CLASS_NAMES: tuple[str, ...] = (PAPER_CLASS_NAMES + (CLEAN_CLASS_NAME,)
                                + tuple(s.class_name for s in SETTINGS if not s.in_paper))


def class_id(name: str) -> int:
    """The label id of a class name (:data:`CLASS_NAMES`); one error line for an unknown name."""
    if name not in CLASS_NAMES:
        raise OptionError(f"unknown class {name!r}; expected one of: {', '.join(CLASS_NAMES)}")
    return CLASS_NAMES.index(name)


def get_setting(code_or_config: str) -> Setting:
    """Look a setting up by code (``"M3"``), config name (``"mixture_m3"``) or class name."""
    for s in SETTINGS:
        if code_or_config in (s.code, s.config_name, s.class_name):
            return s
    known = ", ".join(f"{s.code}/{s.config_name}" for s in SETTINGS)
    raise OptionError(f"unknown setting {code_or_config!r}; expected one of: {known}")
