"""Truncation of the reference (builder.sources.truncation): detection, skip and padding."""

from __future__ import annotations

import numpy as np
import pytest

from ctdegradbench.builder.sources.truncation import (BORDER_PX, apply_truncation_mode, border_body_fraction, border_mask,
                                                      is_truncated, pad_truncated)
from ctdegradbench.builder.sources.phantoms import body_disk


def cut_body(size: int = 64) -> np.ndarray:
    """A body ellipse wider than the image: cut by the left and right borders."""
    yy, xx = np.mgrid[:size, :size] - size / 2 + 0.5
    hu = np.full((size, size), -1000, np.int16)
    hu[(xx / 40.0) ** 2 + (yy / 20.0) ** 2 <= 1] = 40
    return hu


def test_a_body_inside_the_field_of_view_is_not_truncated():
    hu = body_disk(64, radius_px=24)
    assert border_body_fraction(hu) == 0.0 and not is_truncated(hu)
    image, info = apply_truncation_mode(hu, "skip")
    assert image is hu and info == {"truncated": False, "border_body_fraction": 0.0}


def test_a_cut_body_is_detected_with_its_border_fraction():
    hu = cut_body()
    ring = border_mask(64)
    assert ring.sum() == 4 * BORDER_PX * (64 - BORDER_PX)                # the outermost BORDER_PX pixels
    assert border_body_fraction(hu) == pytest.approx(np.count_nonzero((hu > -500) & ring) / ring.sum(), abs=1e-12)
    assert border_body_fraction(hu) > 0.1
    assert is_truncated(hu)
    assert apply_truncation_mode(hu, "skip")[0] is None


def test_padding_continues_the_body_so_it_no_longer_touches_the_border():
    hu = cut_body()
    padded, pad = pad_truncated(hu)
    assert padded.shape == (64 + 2 * pad, 64 + 2 * pad)
    assert np.array_equal(padded[pad:pad + 64, pad:pad + 64], hu)  # the reference is unchanged inside
    assert not is_truncated(padded)
    assert np.all(padded[32, pad - 3:pad] > -500)                  # tissue continues past the old border
    image, info = apply_truncation_mode(hu, "pad")
    assert info["truncated"] and info["truncation_pad_px"] == pad and image.shape == padded.shape
    with pytest.raises(ValueError, match="truncation"):
        apply_truncation_mode(hu, "crop")


def test_loader_records_truncation(nifti_body_source):
    from ctdegradbench.builder.sources import load_source

    result = load_source(nifti_body_source(1, 2, 64, 1.0), nifti_axes="LPS")
    assert all("truncated" in s.info and "border_body_fraction" in s.info for s in result.slices)
    with pytest.raises(ValueError, match="truncation"):
        load_source(nifti_body_source(1, 2, 64, 1.0), nifti_axes="LPS", truncation="maybe")
