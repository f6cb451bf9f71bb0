"""Component severities of a setting at a global level (paper Section 2.3, "Mixed degradations").

Rule (also stated in the dataset card, :data:`MIXTURE_RULE`): a mixture at global level
``g`` draws each component's level independently and uniformly from the neighbouring
levels ``{max(g - 1, 0), g}``; if no component came out at ``g``, one component, chosen
uniformly, is set to ``g``. Hence the mixture's severity, the maximum of its components'
levels, always equals ``g``, and no component is more than one level below it (no
unrealistic combination of a strong and a negligible degradation). At ``g = 0`` every
component is at L0. A single degradation (S1..S5) is its one component at level ``g``.

For two components at ``g >= 1`` the pairs come out as (g, g) with probability 1/4 and
(g - 1, g) or (g, g - 1) with 3/8 each. For three components, each combination with exactly
one component at ``g`` has probability 1/8 + 1/24 = 1/6, and each with two or three at ``g``
1/8: every combination whose maximum is ``g`` occurs.

Components are applied in the order of :attr:`builder.severity.Setting.components` (the
paper's Table 8: the physical cause first, photon noise last).
"""

from __future__ import annotations

import numpy as np

from ctdegradbench.builder.simulate.settings import Setting, check_level, get_setting

MIXTURE_RULE = (
    "A mixture at global level g draws each component's level independently and uniformly from the "
    "neighbouring levels {max(g-1, 0), g}; if no component is at g, one component chosen uniformly is set "
    "to g. The mixture's severity, the maximum of its component levels, therefore always equals g. "
    "Components are applied in the order of the paper's Table 8 (physical cause first, photon noise last)."
)


def component_levels(global_level: int, n_components: int, rng: np.random.Generator) -> tuple[int, ...]:
    """Levels of ``n_components`` components whose maximum is ``global_level`` (see :data:`MIXTURE_RULE`).

    Draws only from ``rng``: ``n_components`` fair coin flips (``rng.integers(0, 2, n)``),
    then, if no flip landed on ``g``, one ``rng.integers(0, n)`` for the component raised to ``g``.
    A single component is always at ``g`` and draws nothing.
    """
    g = check_level(global_level)
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) or n_components < 1:
        raise ValueError(f"n_components must be a positive integer, got {n_components!r}")
    if n_components == 1:
        return (g,)
    lower = max(g - 1, 0)
    flips = rng.integers(0, 2, size=int(n_components))
    levels = [g if flip else lower for flip in flips]
    if g not in levels:
        levels[int(rng.integers(0, n_components))] = g
    return tuple(levels)


def setting_components(setting: Setting | str, global_level: int,
                       rng: np.random.Generator) -> tuple[tuple[str, int], ...]:
    """``((type, level), ...)`` of ``setting`` at ``global_level``, in application order."""
    setting = get_setting(setting) if isinstance(setting, str) else setting
    levels = component_levels(global_level, len(setting.components), rng)
    return tuple(zip(setting.components, levels))


def mixture_severity(levels) -> int:
    """The severity of a mixture: the maximum of its components' levels."""
    levels = [check_level(int(lv)) for lv in levels]
    if not levels:
        raise ValueError("a mixture needs at least one component level, got none")
    return max(levels)
