"""Shared test fixtures.

Real CT volumes live in ``../shared/ct`` (beside the project, never committed). Tests that
need them use ``shared_ct_dir`` / ``real_hu_slices`` and are skipped, with the reason, on a
machine without that folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_CT = Path(__file__).resolve().parents[1].parent / "shared" / "ct"


@pytest.fixture(scope="session")
def shared_ct_dir() -> Path:
    if not SHARED_CT.is_dir() or not any(SHARED_CT.glob("*.nii.gz")):
        pytest.skip(f"real CT folder {SHARED_CT} is absent; these checks need the shared NIfTI volumes")
    return SHARED_CT


def load_nifti_slice(path: Path, index: int) -> tuple[np.ndarray, float]:
    """One axial slice of a shared volume as (rows, cols) int16 HU, and its pixel spacing in mm.

    The shared volumes store array axes (x, y, z) = (column, row, slice), so a slice is
    ``data[:, :, k].T``.
    """
    import nibabel as nib

    img = nib.load(str(path))
    hu = np.asarray(img.dataobj[:, :, index]).T
    return np.round(hu).astype(np.int16), float(img.header.get_zooms()[0])


@pytest.fixture(scope="session")
def real_hu_slices(shared_ct_dir) -> list[tuple[np.ndarray, float]]:
    """The middle slice of each shared series: [(hu int16 (512, 512), pixel spacing mm), ...]."""
    import nibabel as nib

    out = []
    for path in sorted(shared_ct_dir.glob("*.nii.gz")):
        depth = nib.load(str(path)).shape[2]
        out.append(load_nifti_slice(path, depth // 2))
    return out


@pytest.fixture(scope="session")
def nifti_body_source(tmp_path_factory):
    """Factory: a folder of NIfTI body phantoms (:func:`phantoms.body_volume`), one file per patient,
    with spacing-only affines; ``nifti_body_source(patients, slices, size, pixel_mm)``."""
    import nibabel as nib

    from ctdegradbench.builder.sources.phantoms import body_volume

    made: dict[tuple, Path] = {}

    def make(patients: int, slices: int, size: int, pixel_mm: float) -> Path:
        key = (patients, slices, size, pixel_mm)
        if key not in made:
            folder = tmp_path_factory.mktemp("nifti")
            for p in range(patients):
                affine = np.diag([pixel_mm, pixel_mm, 3.0, 1.0])
                affine[:3, 3] = (-size * pixel_mm / 2, -size * pixel_mm / 2, -40.0)   # an origin: RAS from the affine
                nib.save(nib.Nifti1Image(body_volume(p, slices, size), affine), str(folder / f"patient{p}.nii.gz"))
            made[key] = folder
        return made[key]

    return make


@pytest.fixture
def loopback_only(monkeypatch):
    """Refuse any socket connection outside 127.0.0.1, and keep huggingface_hub online,
    telemetry off and away from any stored token or real endpoint settings (for tests
    against the local Hub endpoint of ``tests/hub_endpoint.py``)."""
    import socket

    from huggingface_hub import constants

    real_connect = socket.socket.connect

    def connect(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"test tried to reach {address!r} outside the loopback interface")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
