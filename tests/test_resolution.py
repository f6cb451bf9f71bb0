"""The resolution rule of the severity levels (builder.simulate.resolution)."""

import pytest

from ctdegradbench.core.errors import OptionError
from ctdegradbench.builder.simulate.resolution import check_resolution


@pytest.mark.parametrize("spacing, size", [(0.56, 512), (0.977, 512), (1.0, 256)])
def test_clinical_grids_pass(spacing, size):
    check_resolution(spacing, size)


def test_coarse_or_small_grids_fail_with_the_size_that_would_work():
    with pytest.raises(OptionError, match="5.47 mm is above 1 mm and image size 64 px is below 256 px.*350 px"):
        check_resolution(350 / 64, 64)
    with pytest.raises(OptionError, match="image size 128 px"):
        check_resolution(0.5, 128)
