"""The one place for CT-DegradBench's settings, class names and severity tables.

Paper Section 2.3 and Table 8. Severity levels are L0 (mildest) .. L3 (strongest).

Single degradations (S1..S5), with the physical parameter that sets each level:

=========  ===========  ==========================================  =====================
setting    class name   parameter (unit)                            L0 / L1 / L2 / L3
=========  ===========  ==========================================  =====================
S1         S1_noise     residual noise scaling gamma (Eq. 8)        1 / 2 / 2.5 / 4
S2         S2_blur      detector-axis Gaussian sigma (bins, Eq. 9)  0.8 / 1 / 1.5 / 2.5
S3         S3_streak    outlier amplitude dL (line integral, Eq.10) 0.25 / 0.5 / 1 / 2
S4         S4_aliasing  number of views N of 360 (Eq. 11)           180 / 90 / 60 / 45
S5         S5_metal     metal disk diameter (mm, Eq. 12)            3 / 6 / 10 / 15
=========  ===========  ==========================================  =====================

Mixtures (M1..M5) apply their components in the order listed (paper Table 8): the
physical cause acts first, photon noise of the low-dose acquisition last.
"""

from __future__ import annotations

from dataclasses import dataclass

LEVELS: tuple[int, ...] = (0, 1, 2, 3)

# Degradation types, in the paper's words; each names one operator in builder/degradations/.
NOISE, BLUR, STREAK, ALIASING, METAL = "noise", "blur", "streak", "aliasing", "metal"
DEGRADATION_TYPES: tuple[str, ...] = (NOISE, BLUR, STREAK, ALIASING, METAL)

# The parameter that sets the severity of each degradation type, and its value per level.
SEVERITY_PARAMETER: dict[str, str] = {
    NOISE: "gamma",
    BLUR: "sigma_bins",
    STREAK: "delta_l",
    ALIASING: "n_views",
    METAL: "diameter_mm",
}
SEVERITY_TABLE: dict[str, tuple[float, ...]] = {
    NOISE: (1.0, 2.0, 2.5, 4.0),
    BLUR: (0.8, 1.0, 1.5, 2.5),
    STREAK: (0.25, 0.5, 1.0, 2.0),
    ALIASING: (180, 90, 60, 45),
    METAL: (3.0, 6.0, 10.0, 15.0),
}


@dataclass(frozen=True)
class Setting:
    """One benchmark setting: a single degradation (S*) or a mixture (M*).

    ``components`` lists the degradation types in the order they are applied.
    """

    code: str          # "S1" .. "M5"
    class_name: str    # the paper's label, e.g. "S1_noise", "M5_m+b+n"
    config_name: str   # the dataset config, e.g. "single_noise", "mixture_m5"
    components: tuple[str, ...]
    description: str

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
)

SETTINGS_BY_CODE: dict[str, Setting] = {s.code: s for s in SETTINGS}
SETTINGS_BY_CONFIG: dict[str, Setting] = {s.config_name: s for s in SETTINGS}
CLASS_NAMES: tuple[str, ...] = tuple(s.class_name for s in SETTINGS)


def get_setting(code_or_config: str) -> Setting:
    """Look a setting up by code (``"M3"``), config name (``"mixture_m3"``) or class name."""
    for s in SETTINGS:
        if code_or_config in (s.code, s.config_name, s.class_name):
            return s
    known = ", ".join(f"{s.code}/{s.config_name}" for s in SETTINGS)
    raise ValueError(f"unknown setting {code_or_config!r}; expected one of: {known}")


def severity_value(degradation: str, level: int) -> float:
    """The physical parameter value of ``degradation`` at severity ``level`` (0..3)."""
    if degradation not in SEVERITY_TABLE:
        raise ValueError(f"unknown degradation type {degradation!r}; expected one of {DEGRADATION_TYPES}")
    check_level(level)
    return SEVERITY_TABLE[degradation][level]


def check_level(level: int) -> int:
    """Return ``level`` if it is a valid severity level (0..3), else raise ValueError."""
    if isinstance(level, bool) or not isinstance(level, int) or level not in LEVELS:
        raise ValueError(f"severity level must be an integer in {LEVELS}, got {level!r}")
    return level
