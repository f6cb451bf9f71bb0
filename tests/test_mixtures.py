"""The mixture rule: component levels from neighbouring levels, severity = max = global level."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from ctdegradbench.builder.simulate.mixtures import component_levels, mixture_severity, setting_components
from ctdegradbench.builder.core.seeding import numpy_generator
from ctdegradbench.builder.simulate.settings import LEVELS, SETTINGS

DRAWS = 4000
# Frequencies from 4000 draws have standard errors below 0.008; 0.035 is over 4 of them.
FREQUENCY_ATOL = 0.035


def expected_distribution(g: int, k: int) -> dict[tuple[int, ...], float]:
    """Exact law of the rule, enumerated: k fair coins over {g-1, g}, then one raised if none is g."""
    law: dict[tuple[int, ...], float] = {}
    for flips in itertools.product((0, 1), repeat=k):
        levels = [g if f else g - 1 for f in flips]
        if g in levels:
            law[tuple(levels)] = law.get(tuple(levels), 0.0) + 0.5 ** k
        else:
            for i in range(k):
                raised = list(levels)
                raised[i] = g
                law[tuple(raised)] = law.get(tuple(raised), 0.0) + 0.5 ** k / k
    return law


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.code)
def test_severity_is_the_global_level_and_components_are_neighbours(setting):
    rng = numpy_generator(123)
    for g in LEVELS:
        for _ in range(200):
            components = setting_components(setting, g, rng)
            assert tuple(kind for kind, _ in components) == setting.components   # Table 8 order
            levels = [level for _, level in components]
            assert mixture_severity(levels) == g
            assert set(levels) <= {max(g - 1, 0), g}


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("g", [1, 2, 3])
def test_every_combination_occurs_with_its_probability(k, g):
    rng = numpy_generator(1000 * k + g)
    counts = Counter(component_levels(g, k, rng) for _ in range(DRAWS))
    law = expected_distribution(g, k)
    possible = {c for c in itertools.product((g - 1, g), repeat=k) if max(c) == g}
    assert set(counts) == set(law) == possible          # not degenerate: all 2^k - 1 combinations
    for combination, probability in law.items():
        assert counts[combination] / DRAWS == pytest.approx(probability, abs=FREQUENCY_ATOL)


def test_level_zero_and_single_settings():
    rng = numpy_generator(0)
    assert component_levels(0, 3, rng) == (0, 0, 0)
    for g in LEVELS:
        assert setting_components("S3", g, rng) == (("streak", g),)


def test_draws_come_only_from_the_given_generator():
    a = [component_levels(2, 3, numpy_generator(77)) for _ in range(5)]
    assert len(set(a)) == 1
    np.random.seed(0)   # the global generator must not matter
    assert component_levels(2, 3, numpy_generator(77)) == a[0]
    draws = {component_levels(2, 3, numpy_generator(s)) for s in range(40)}
    assert len(draws) > 1


def test_invalid_inputs_raise():
    rng = numpy_generator(0)
    with pytest.raises(ValueError, match="level"):
        component_levels(4, 2, rng)
    with pytest.raises(ValueError, match="n_components"):
        component_levels(1, 0, rng)
    with pytest.raises(ValueError, match="unknown setting"):
        setting_components("M9", 1, rng)
    with pytest.raises(ValueError, match="level"):
        mixture_severity([1, 5])

