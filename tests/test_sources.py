"""Reference-CT sources: the default pydicom slices, DICOM folders, NIfTI files, bad input."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from scipy import ndimage

from ctdegradbench.builder.sources import (
    BODY_HU,
    DEFAULT_SOURCE_FILES,
    MIN_IMAGE_PX,
    SourceError,
    default_source_paths,
    estimate_noise_sd,
    format_table,
    load_default_source,
    load_dicom_folder,
    load_nifti,
    load_source,
    save_preview,
)
from ctdegradbench.builder.sources.phantoms import body_disk, marked_volume

# Air calibration: a CT scanner's air reads -1000 HU to within a few HU (measured on the three
# default slices with air around the patient: -999, -1002, -1000); 25 HU catches a wrong rescale.
AIR_PEAK_TOL_HU = 25.0
# Soft tissue (brain ~35, muscle ~50, liver ~60 HU) peaks inside this range.
SOFT_TISSUE_PEAK_HU = (0.0, 100.0)
# Noise estimator on white Gaussian noise: errors measured <= 1.2 % over 5 seeds at 128 px
# (<= 2.5 % at 64 px); 4 % leaves room for other seeds without hiding a scale error.
NOISE_SD_RTOL = 0.04
# With edges (air, fat, bone) in the image the median of local SDs must stay as close:
# measured +0.7 .. +2.9 % on the phantom below.
NOISE_SD_EDGE_RTOL = 0.05
# Correlated noise (white noise blurred by a Gaussian of 1 px) is underestimated by the 7 x 7
# window: measured -11.7 .. -12.9 %; the docstring documents about 12 %.
CORRELATED_BIAS_RANGE = (-0.18, -0.06)
# The spine (the most persistent bone in the central band of the body) lies in the posterior
# half of the body in every supine CT: measured 0.57-0.83 of the body's height on the shared
# volumes (0.17-0.43 when read upside down), 0.61 / 0.77 on the two default abdomen slices.
SPINE_POSTERIOR_MIN = 0.5
GANTRY_TILT_DEG = float(np.degrees(np.arccos(0.9272)))  # from J2K_pixelrep_mismatch's orientation


# --------------------------------------------------------------------------------------------
# Synthetic data
# --------------------------------------------------------------------------------------------


def write_dicom(path, hu, *, patient_id="PAT-A", study_uid="1.2.826.0.1.3680043.8.498.10",
                series_uid="1.2.826.0.1.3680043.8.498.11", z=0.0, instance=1,
                orientation=(1, 0, 0, 0, 1, 0), spacing=(0.8, 0.8), modality="CT", pixels=True,
                position=True, intercept=-1024.0, slope=1.0):
    """Write a minimal single-frame image (or, with pixels=False, a non-image object) with pydicom."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

    sop_class = {"CT": CTImageStorage, "MR": MRImageStorage}.get(modality, "1.2.840.10008.5.1.4.1.1.88.11")
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = patient_id, study_uid, series_uid
    ds.SeriesNumber, ds.InstanceNumber = 2, instance
    ds.ConvolutionKernel, ds.KVP, ds.SliceThickness = "STANDARD", 120, 2.5
    if pixels:
        hu = np.asarray(hu)
        ds.Rows, ds.Columns = hu.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = intercept, slope
        ds.PixelSpacing = list(spacing)
        ds.ImageOrientationPatient = list(orientation)
        if position:
            ds.ImagePositionPatient = [-100.0, -100.0, float(z)]
        ds.PixelData = np.round((hu - intercept) / slope).astype(np.int16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return path


def write_nifti(path, data, *, spacing=(0.8, 0.8, 2.5), affine=None, sform_code=2, qform_code=0):
    import nibabel as nib

    affine = np.diag([*spacing, 1.0]) if affine is None else affine
    img = nib.Nifti1Image(np.asarray(data), affine)
    img.set_sform(affine, code=sform_code)
    img.set_qform(affine, code=qform_code)
    nib.save(img, str(path))
    return path


def spine_row_fraction(hu_slices) -> float:
    """Row of the spine relative to the body's top (0) and bottom (1), from the slices' anatomy.

    The spine is taken as the most persistent bone (> 300 HU in the most slices) inside the
    central tenth-width band of the largest body component (pixels > -500 HU in most slices);
    contrast-filled heart chambers and the sternum are less persistent or smaller.
    """
    hu = np.stack(hu_slices).astype(np.int32)
    persistence = (hu > 300).mean(axis=0)
    body = (hu > BODY_HU).mean(axis=0) > 0.5
    labels, _ = ndimage.label(body)
    body = labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)
    rows, cols = np.nonzero(body)
    top, bottom = rows.min(), rows.max()
    centre, width = cols.mean(), cols.max() - cols.min()
    band = np.zeros_like(body)
    band[:, int(centre - 0.1 * width):int(centre + 0.1 * width) + 1] = True
    p = np.where(band & body, persistence, 0.0)
    spine = p >= 0.8 * p.max()
    return float((np.nonzero(spine)[0].mean() - top) / (bottom - top))


def histogram_peak(hu: np.ndarray, lo: int, hi: int) -> int:
    """HU of the highest peak of the (9-HU smoothed) histogram of values in [lo, hi)."""
    values = hu[(hu >= lo) & (hu < hi)].astype(np.int64) - lo
    counts = ndimage.uniform_filter1d(np.bincount(values, minlength=hi - lo).astype(float), 9)
    return int(np.argmax(counts)) + lo


# --------------------------------------------------------------------------------------------
# The default source
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_result():
    return load_default_source()


def test_default_source_is_exactly_the_five_package_files(default_result):
    names = [s.info["file"] for s in default_result.slices]
    assert names == [entry.file_name for entry in DEFAULT_SOURCE_FILES]
    assert len(names) == 5 and default_result.skipped == {}
    assert [p.name for p in default_source_paths()] == names
    assert {entry.package for entry in DEFAULT_SOURCE_FILES} == {"pydicom", "pydicom-data"}
    sizes = {s.info["file"]: s.image_size for s in default_result.slices}
    assert sizes == {"693_UNCR.dcm": 512, "bad_sequence.dcm": 512, "explicit_VR-UN.dcm": 512,
                     "J2K_pixelrep_mismatch.dcm": 512, "CT_small.dcm": 128}
    for s in default_result.slices:
        assert s.hu.dtype == np.int16 and s.source == "pydicom"
        assert s.info["modality"] == "CT" and s.info["noise_sd_hu"] > 0


def test_default_source_hu_is_plausible(default_result):
    for s in default_result.slices:
        low, high = SOFT_TISSUE_PEAK_HU
        assert low <= histogram_peak(s.hu, -50, 300) <= high, s.info["file"]
        if s.info["body_fraction"] < 0.6:  # slices with air around the patient
            assert abs(histogram_peak(s.hu, -1200, -800) + 1000) <= AIR_PEAK_TOL_HU, s.info["file"]
    padding = {s.info["file"]: s.info["padding_pixels"] for s in default_result.slices}
    hu_693 = default_result.slices[0].hu
    assert hu_693.min() == -3024 and padding["693_UNCR.dcm"] == np.count_nonzero(hu_693 < -1000)


def test_default_source_ids_are_stable_and_unique(default_result):
    again = load_source("default")
    ids = [s.reference_id for s in default_result.slices]
    assert ids == [s.reference_id for s in again.slices]
    assert len(set(ids)) == 5 and len({s.patient_key for s in default_result.slices}) == 5
    assert ids[0] == "pydicom/CQ500-CT-310/1.2.276.0.7230010.3.1.3.296485376.1.1521713419.1802493/0000"
    for a, b in zip(default_result.slices, again.slices):
        assert np.array_equal(a.hu, b.hu)


def test_default_orientation_flip_and_tilt(default_result):
    from pydicom.pixels import apply_modality_lut

    from ctdegradbench.builder.sources.dicom_io import dcmread

    by_file = {s.info["file"]: s for s in default_result.slices}
    pancreas = by_file["explicit_VR-UN.dcm"]
    ds = dcmread(default_source_paths()[2], pixels=True)
    stored = np.round(apply_modality_lut(ds.pixel_array, ds)).astype(np.int16)
    assert pancreas.info["display_transform"] == "flip rows"
    assert np.array_equal(pancreas.hu, stored[::-1])
    for name in ("bad_sequence.dcm", "explicit_VR-UN.dcm"):  # abdomen: spine at the back
        assert spine_row_fraction([by_file[name].hu]) > SPINE_POSTERIOR_MIN, name
    assert spine_row_fraction([stored]) < SPINE_POSTERIOR_MIN  # the stored layout is upside down
    assert by_file["J2K_pixelrep_mismatch.dcm"].info["gantry_tilt_deg"] == pytest.approx(GANTRY_TILT_DEG, abs=0.05)
    assert by_file["693_UNCR.dcm"].info["gantry_tilt_deg"] == 0.0


def test_table_and_preview(default_result, tmp_path):
    table = format_table(default_result.slices)
    lines = table.splitlines()
    assert len(lines) == 2 + 5 and lines[0].startswith("reference_id")
    for s, line in zip(default_result.slices, lines[2:]):
        assert line.startswith(s.reference_id) and s.info["body_part"] in line
    out = save_preview(default_result.slices, tmp_path / "preview.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="at least one slice"):
        save_preview([], tmp_path / "empty.png")
    assert "5 slices, 5 patients, 5 series" in default_result.summary()


# --------------------------------------------------------------------------------------------
# DICOM orientation and folders
# --------------------------------------------------------------------------------------------

ORIENTATIONS = [
    ((1, 0, 0, 0, 1, 0), "none"),
    ((1, 0, 0, 0, -1, 0), "flip rows"),
    ((-1, 0, 0, 0, 1, 0), "flip columns"),
    ((-1, 0, 0, 0, -1, 0), "flip rows, flip columns"),
    ((0, 1, 0, 1, 0, 0), "transpose"),
    ((0, -1, 0, 1, 0, 0), "transpose, flip rows"),
]


@pytest.mark.parametrize("orientation, transform", ORIENTATIONS)
def test_dicom_orientation_gives_radiological_view(tmp_path, orientation, transform):
    """Markers keep the order of their patient coordinates: column with x (left), row with y (posterior)."""
    hu = body_disk(64)
    stored_markers = {700: (10, 20), 900: (40, 5), 1100: (25, 50)}  # value -> (row, col) as stored
    for value, (i, j) in stored_markers.items():
        hu[i, j] = value
    write_dicom(tmp_path / "a.dcm", hu, orientation=orientation, spacing=(0.7, 0.7))
    s = load_dicom_folder(tmp_path).slices[0]
    assert s.info["display_transform"] == transform
    if transform == "flip rows":  # explicit_VR-UN's orientation: rows stored posterior -> anterior
        assert np.array_equal(s.hu, hu[::-1])
    row_dir, col_dir = np.array(orientation[:3]), np.array(orientation[3:])
    patient, shown = {}, {}
    for value, (i, j) in stored_markers.items():
        # DICOM PS3.3 C.7.6.2.1.1: P = IPP + col * col_spacing * row_dir + row * row_spacing * col_dir
        patient[value] = j * 0.7 * row_dir + i * 0.7 * col_dir
        (r,), (c,) = np.nonzero(s.hu == value)
        shown[value] = (r, c)
    values = list(stored_markers)
    for a in values:
        for b in values:
            if a != b:
                assert np.sign(shown[a][1] - shown[b][1]) == np.sign(patient[a][0] - patient[b][0])
                assert np.sign(shown[a][0] - shown[b][0]) == np.sign(patient[a][1] - patient[b][1])


def test_dicom_sagittal_is_skipped(tmp_path):
    write_dicom(tmp_path / "sag.dcm", body_disk(64), orientation=(0, 1, 0, 0, 0, -1))
    with pytest.raises(SourceError, match="non-axial orientation"):
        load_dicom_folder(tmp_path)


@pytest.fixture
def dicom_folder(tmp_path):
    """Two CT series (6 + 4 slices, shuffled names), a duplicate, an SR, an MR and a text file."""
    rng = np.random.default_rng(20240611)
    root = tmp_path / "study"
    (root / "b").mkdir(parents=True)
    names = rng.permutation(20)
    z_a = [0.0, 2.5, 5.0, 7.5, 10.0, 12.5]
    for k, z in enumerate(z_a):  # InstanceNumber runs against position: position must win
        write_dicom(root / f"img{names[k]:03d}.dcm", body_disk(64, body_hu=10 * k), z=z, instance=50 - k)
    # same position as slice 2: the file with the lower InstanceNumber (slice 2's 48) is kept
    write_dicom(root / f"img{names[6]:03d}.dcm", body_disk(64, body_hu=999), z=5.0, instance=99)
    for k, z in enumerate([30.0, 10.0, 20.0, 0.0]):
        write_dicom(root / "b" / f"img{names[7 + k]:03d}.dcm", body_disk(64, body_hu=int(z)), z=z,
                    patient_id="PAT-B", study_uid="1.2.826.0.1.3680043.8.498.20",
                    series_uid="1.2.826.0.1.3680043.8.498.21", instance=k + 1)
    write_dicom(root / "report.dcm", None, modality="SR", pixels=False)
    write_dicom(root / "mr.dcm", body_disk(64), modality="MR", series_uid="1.2.826.0.1.3680043.8.498.30")
    (root / "README.txt").write_text("not DICOM")
    return root


def test_dicom_folder_groups_sorts_and_counts(dicom_folder):
    result = load_dicom_folder(dicom_folder)
    assert result.skipped == {
        "not a DICOM file": 1, "modality MR (not CT)": 1, "no pixel data (non-image object)": 1,
        "duplicate slice position": 1,
    }
    by_patient = {}
    for s in result.slices:
        by_patient.setdefault(s.patient_id, []).append(s)
    assert sorted(by_patient) == ["PAT-A", "PAT-B"]
    series_a = by_patient["PAT-A"]
    assert [s.slice_index for s in series_a] == list(range(6))
    assert [int(s.hu[32, 32]) for s in series_a] == [0, 10, 20, 30, 40, 50]  # inferior -> superior
    assert [int(s.hu[32, 32]) for s in by_patient["PAT-B"]] == [0, 10, 20, 30]
    assert {s.source for s in result.slices} == {"study"}
    assert series_a[0].reference_id == "study/PAT-A/1.2.826.0.1.3680043.8.498.11/0000"
    ids = [s.reference_id for s in result.slices]
    assert len(set(ids)) == 10 and ids == [s.reference_id for s in load_source(dicom_folder).slices]
    assert series_a[0].info["kernel"] == "STANDARD" and series_a[0].info["kvp"] == 120.0
    assert series_a[0].pixel_spacing_mm == pytest.approx(0.8)


def test_dicom_fallback_ids_and_instance_order(tmp_path):
    folder = tmp_path / "anon_case"
    folder.mkdir()
    for k, instance in enumerate([3, 1, 2]):  # no positions: InstanceNumber orders the series
        write_dicom(folder / f"{k}.dcm", body_disk(64, body_hu=instance), instance=instance,
                    patient_id="", position=False)
    s = load_dicom_folder(folder).slices
    assert [int(x.hu[32, 32]) for x in s] == [1, 2, 3]
    assert s[0].patient_id == "study-1.2.826.0.1.3680043.8.498.10"
    other = tmp_path / "no_study"
    other.mkdir()
    write_dicom(other / "x.dcm", body_disk(64), patient_id="", study_uid="")
    assert load_dicom_folder(other).slices[0].patient_id == "no_study"


# --------------------------------------------------------------------------------------------
# Square grid and resampling
# --------------------------------------------------------------------------------------------


def test_non_square_image_is_padded_with_air_and_resampled(tmp_path):
    hu = np.full((96, 128), 40, dtype=np.int16)
    hu[:4, :4] = -3024  # scanner padding
    write_dicom(tmp_path / "wide.dcm", hu, spacing=(0.5, 0.5))
    s = load_dicom_folder(tmp_path).slices[0]
    assert s.hu.shape == (128, 128) and s.pixel_spacing_mm == pytest.approx(0.5)
    assert np.all(s.hu[:16] == -1000) and np.all(s.hu[112:] == -1000)
    assert np.array_equal(s.hu[16:112], hu)
    assert s.info["padding_pixels"] == 16 and s.info["source_shape"] == [96, 128]

    small = load_dicom_folder(tmp_path, image_size=64).slices[0]
    assert small.hu.shape == (64, 64) and small.hu.dtype == np.int16
    assert small.pixel_spacing_mm == pytest.approx(1.0)  # same field of view, half the pixels
    assert small.hu.min() >= -1000  # padding became air before resampling
    assert small.hu[32, 32] == 40 and small.info["padding_pixels"] == 16


def test_tiny_image_is_a_counted_skip(tmp_path):
    write_dicom(tmp_path / "tiny.dcm", body_disk(32, radius_px=10))
    with pytest.raises(SourceError, match=f"image smaller than {MIN_IMAGE_PX} px: 1"):
        load_dicom_folder(tmp_path)
    write_dicom(tmp_path / "ok.dcm", body_disk(64), z=5.0, series_uid="1.2.826.0.1.3680043.8.498.99")
    result = load_dicom_folder(tmp_path)
    assert len(result.slices) == 1 and result.skipped == {f"image smaller than {MIN_IMAGE_PX} px": 1}


# --------------------------------------------------------------------------------------------
# NIfTI
# --------------------------------------------------------------------------------------------


def stored_layouts(display: np.ndarray):
    """(stored array, write_nifti kwargs, load kwargs) for several orientations of one display volume."""
    lps = display.transpose(2, 1, 0)  # x = column (left), y = row (posterior), z = slice (superior)
    ras = display[:, ::-1, ::-1].transpose(2, 1, 0)
    pli = display[::-1].transpose(1, 2, 0)  # x = row (posterior), y = column (left), z = inferior
    return [
        ("axes LPS, spacing-only affine", lps, {}, {"axes": "LPS"}),
        ("RAS affine", ras, {"affine": np.array([[0.8, 0, 0, -25.2], [0, 0.8, 0, -25.2], [0, 0, 2.5, 11.0],
                                                 [0, 0, 0, 1.0]]), "sform_code": 1}, {}),
        ("LPS affine", lps, {"affine": np.diag([-0.8, -0.8, 2.5, 1.0]), "sform_code": 1}, {}),
        ("axes PLI", pli, {"qform_code": 0, "sform_code": 0}, {"axes": "pli"}),
    ]


@pytest.mark.parametrize("case", range(4))
def test_nifti_orientation(tmp_path, case):
    display = marked_volume()
    name, stored, write_kw, load_kw = stored_layouts(display)[case]
    write_nifti(tmp_path / "vol.nii.gz", stored, **write_kw)
    result = load_nifti(tmp_path / "vol.nii.gz", **load_kw)
    assert len(result.slices) == 5, name
    for k, s in enumerate(result.slices):
        assert s.slice_index == k and np.array_equal(s.hu, display[k]), name


def test_nifti_spacing_only_affine_needs_axes(tmp_path):
    """The trap of the shared volumes: their spacing-only affine would mean RAS to nibabel (and show
    them rotated by 180 degrees); such an affine carries no orientation, so it is refused."""
    display = marked_volume()
    write_nifti(tmp_path / "vol.nii.gz", display.transpose(2, 1, 0))
    with pytest.raises(SourceError, match="voxel spacing only"):
        load_nifti(tmp_path / "vol.nii.gz")
    s = load_nifti(tmp_path / "vol.nii.gz", axes="RAS").slices
    assert np.array_equal(s[0].hu, display[0, ::-1, ::-1])  # read as RAS: rotated by 180 degrees


def test_nifti_without_orientation_needs_axes(tmp_path):
    write_nifti(tmp_path / "vol.nii", marked_volume().transpose(2, 1, 0), sform_code=0, qform_code=0)
    with pytest.raises(SourceError, match="no patient orientation in the header: 1"):
        load_nifti(tmp_path / "vol.nii")
    assert len(load_nifti(tmp_path / "vol.nii", axes="LPS").slices) == 5


def test_nifti_folder_stride_body_fraction_and_max_slices(tmp_path):
    sizes = [0, 4, 8, 12, 16, 20, 24, 28, 30, 30]  # body radius per slice, 0 = air only
    display = np.stack([body_disk(64, radius_px=r) if r else np.full((64, 64), -1000, np.int16)
                        for r in sizes])
    write_nifti(tmp_path / "case1.nii.gz", display.transpose(2, 1, 0))
    write_nifti(tmp_path / "case2.nii", display[:4].transpose(2, 1, 0))
    (tmp_path / "notes.txt").write_text("x")

    result = load_nifti(tmp_path, axes="LPS", stride=3, source="mine", patient_id="P7", info={"kernel": "B30f"})
    assert result.skipped == {"not a NIfTI file": 1, "between stride steps": 6 + 2}
    assert [(s.series_id, s.slice_index) for s in result.slices] == [
        ("case1", 0), ("case1", 3), ("case1", 6), ("case1", 9), ("case2", 0), ("case2", 3)]
    assert {s.patient_id for s in result.slices} == {"P7"} and result.slices[0].info["kernel"] == "B30f"
    assert result.slices[0].reference_id == "mine/P7/case1/0000"

    fractions = [float(np.mean(d > BODY_HU)) for d in display]
    kept = load_nifti(tmp_path / "case1.nii.gz", axes="LPS", min_body_fraction=0.2)
    expected = [k for k, f in enumerate(fractions) if f >= 0.2]
    assert [s.slice_index for s in kept.slices] == expected
    assert kept.skipped == {"body fraction below 0.2": 10 - len(expected)}
    assert kept.slices[0].patient_id == "case1" and kept.slices[0].source == tmp_path.name

    capped = load_nifti(tmp_path / "case1.nii.gz", axes="LPS", max_slices=3)
    assert [s.slice_index for s in capped.slices] == [0, 4, 9]  # evenly spaced, ends included
    assert capped.skipped == {"beyond max_slices": 7}
    assert load_source(tmp_path / "case1.nii.gz", nifti_axes="LPS", max_slices=3).skipped == capped.skipped


def test_metal_like_area_is_recorded_and_screened(tmp_path):
    """Each slice records its area above METAL_HU (pixels x spacing^2); --max-metal-area skips the
    slices above it, counted with the limit in the reason, and keeps the others' ids."""
    from ctdegradbench.builder.sources.loaders import format_table, metal_like_area_mm2
    from ctdegradbench.core.hu import METAL_HU
    from ctdegradbench.model.image_processing_sespect import METAL_HU as MODEL_METAL_HU

    sides = [0, 2, 4, 6]                          # metal squares of 0, 4, 16, 36 pixels at 0.8 mm
    display = np.stack([body_disk(64) for _ in sides]).astype(np.int16)
    for k, side in enumerate(sides):
        display[k, 30:30 + side, 30:30 + side] = 3071
    path = write_nifti(tmp_path / "metal.nii.gz", display.transpose(2, 1, 0))
    pixel_mm2 = 0.8 ** 2
    areas = [s.info["metal_like_area_mm2"] for s in load_nifti(path, axes="LPS").slices]
    assert areas == pytest.approx([side ** 2 * pixel_mm2 for side in sides], abs=0.01)

    screened = load_nifti(path, axes="LPS", max_metal_area_mm2=7.0)      # 16 px = 10.2 mm^2 and above go
    assert [s.slice_index for s in screened.slices] == [0, 1]
    assert screened.skipped == {"more than 7 mm^2 above 2500 HU (metal-like)": 2}
    table = format_table(screened.slices).splitlines()       # `sources` shows the area per slice
    assert table[0].endswith("metal mm2") and table[3].endswith(f"{4 * pixel_mm2:.1f}")
    assert metal_like_area_mm2(np.full((4, 4), METAL_HU + 1), 0.5) == pytest.approx(16 * 0.25)
    assert MODEL_METAL_HU == METAL_HU       # the checkpoint's processor holds its own copy of the threshold
    with pytest.raises(ValueError, match="--max-metal-area must be a finite number >= 0"):
        load_nifti(path, axes="LPS", max_metal_area_mm2=-1.0)


def test_nifti_nan_slice_is_a_counted_skip(tmp_path):
    display = marked_volume().astype(np.float32)
    display[2, 5, 5] = np.nan
    write_nifti(tmp_path / "nan.nii.gz", display.transpose(2, 1, 0))
    result = load_nifti(tmp_path / "nan.nii.gz", axes="LPS")
    assert [s.slice_index for s in result.slices] == [0, 1, 3, 4]
    assert result.skipped == {"non-finite values (NaN or inf)": 1}
    display[:] = np.nan
    write_nifti(tmp_path / "nan.nii.gz", display.transpose(2, 1, 0))
    with pytest.raises(SourceError, match="non-finite values"):
        load_nifti(tmp_path / "nan.nii.gz", axes="LPS")


def test_nifti_bad_volumes(tmp_path):
    mr_like = np.abs(marked_volume()).astype(np.int16)  # no value below -500 HU: no air
    write_nifti(tmp_path / "mr.nii.gz", mr_like.transpose(2, 1, 0))
    with pytest.raises(SourceError, match="not CT in HU"):
        load_nifti(tmp_path / "mr.nii.gz", axes="LPS")
    write_nifti(tmp_path / "4d.nii.gz", np.zeros((64, 64, 3, 2), np.int16) - 1000)
    with pytest.raises(SourceError, match="not a 3-D volume"):
        load_nifti(tmp_path / "4d.nii.gz", axes="LPS")
    huge = marked_volume().astype(np.float32)
    huge[1, 30, 30] = 40000.0
    write_nifti(tmp_path / "huge.nii.gz", huge.transpose(2, 1, 0))
    assert load_nifti(tmp_path / "huge.nii.gz", axes="LPS").skipped == {"HU outside the int16 range": 1}


# --------------------------------------------------------------------------------------------
# Bad input: corrupt files, empty folders, arguments
# --------------------------------------------------------------------------------------------


def test_corrupt_files_are_counted_or_reported(tmp_path):
    write_dicom(tmp_path / "good.dcm", body_disk(64), z=0.0)
    other = write_dicom(tmp_path / "other.dcm", body_disk(64), z=5.0)
    raw = other.read_bytes()
    other.unlink()
    (tmp_path / "truncated_pixels.dcm").write_bytes(raw[:-3000])
    (tmp_path / "truncated_header.dcm").write_bytes(raw[:200])
    (tmp_path / "truncated_before_pixels.dcm").write_bytes(raw[:raw.index(b"\xe0\x7f\x10\x00")])   # (7FE0,0010)
    (tmp_path / "garbage.dcm").write_bytes(b"\x00\x01not dicom" * 30)
    result = load_dicom_folder(tmp_path)
    assert len(result.slices) == 1
    assert result.skipped == {"not a DICOM file": 1, "unreadable DICOM file": 2, "pixel data could not be decoded": 1}
    assert ("unreadable DICOM file", "truncated_before_pixels.dcm: a CT image without pixel data (truncated?)") \
        in result.skipped_files
    assert "truncated_pixels.dcm: ValueError" in result.skip_examples["pixel data could not be decoded"]

    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "truncated_pixels.dcm").write_bytes(raw[:-3000])
    with pytest.raises(SourceError, match="pixel data could not be decoded: 1"):
        load_dicom_folder(alone)

    nifti = write_nifti(tmp_path / "vol.nii.gz", marked_volume().transpose(2, 1, 0))
    data = nifti.read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match="unreadable NIfTI file: 1"):
        load_nifti(tmp_path / "cut.nii.gz", axes="LPS")
    (tmp_path / "junk.nii.gz").write_bytes(gzip.compress(b"junk" * 100))
    with pytest.raises(SourceError, match="unreadable NIfTI file: 1"):
        load_nifti(tmp_path / "junk.nii.gz", axes="LPS")


def test_non_image_or_non_ct_alone_is_a_clear_error(tmp_path):
    (tmp_path / "sr").mkdir()
    write_dicom(tmp_path / "sr" / "report.dcm", None, modality="SR", pixels=False)
    with pytest.raises(SourceError, match=r"no CT found in .*sr: no pixel data \(non-image object\): 1"):
        load_source(tmp_path / "sr")
    (tmp_path / "mr").mkdir()
    write_dicom(tmp_path / "mr" / "mr.dcm", body_disk(64), modality="MR")
    with pytest.raises(SourceError, match=r"modality MR \(not CT\): 1"):
        load_source(tmp_path / "mr")


def test_empty_missing_and_unrecognised_sources(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for loader in (load_source, load_dicom_folder, load_nifti):
        with pytest.raises(SourceError, match="no CT found in .*empty: the folder holds no files"):
            loader(empty)
    with pytest.raises(FileNotFoundError, match="expected 'default', a DICOM folder"):
        load_source(tmp_path / "missing")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("hello")
    with pytest.raises(SourceError, match="no CT found in .*docs: not a DICOM file: 1"):
        load_source(tmp_path / "docs")


@pytest.mark.parametrize("kwargs, message", [
    ({"stride": 0}, "stride must be an integer >= 1"),
    ({"min_body_fraction": 1.5}, "--min-body-fraction must be a finite number >= 0 and < 1"),
    ({"min_body_fraction": 1.0}, "--min-body-fraction must be a finite number >= 0 and < 1"),
    ({"image_size": 32}, f"--image-size must be an integer >= {MIN_IMAGE_PX} px or nothing"),
    ({"max_slices": 0}, "--max-slices must be an integer >= 1"),
    ({"axes": "LPX"}, "axes='LPX' is not an orientation code"),
    ({"axes": "LLS"}, "axes='LLS' is not an orientation code"),
])
def test_bad_arguments_raise_value_error(tmp_path, kwargs, message):
    path = write_nifti(tmp_path / "vol.nii.gz", marked_volume().transpose(2, 1, 0))
    with pytest.raises(ValueError, match=message):
        load_nifti(path, **kwargs)


def test_single_dicom_file_loads(tmp_path):
    path = write_dicom(tmp_path / "one.dcm", body_disk(64))
    result = load_source(path)
    assert len(result.slices) == 1 and result.slices[0].source == tmp_path.name


# --------------------------------------------------------------------------------------------
# Noise estimate
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sd", [5.0, 20.0, 60.0])
def test_noise_sd_on_flat_phantom(sd):
    rng = np.random.default_rng(int(sd))
    image = 40.0 + rng.normal(0.0, sd, (128, 128))
    assert estimate_noise_sd(image) == pytest.approx(sd, rel=NOISE_SD_RTOL)


def test_noise_sd_ignores_edges_and_reports_correlation_bias():
    rng = np.random.default_rng(3)
    y, x = np.mgrid[:256, :256] - 127.5
    r = np.hypot(x, y)
    phantom = np.full((256, 256), -1000.0)
    phantom[r < 120] = -100.0  # fat ring
    phantom[r < 110] = 40.0  # soft tissue
    phantom[(r > 50) & (r < 60)] = 800.0  # bone ring
    phantom[(np.abs(x - 30) < 8) & (np.abs(y) < 40)] = 150.0  # enhanced organ
    sd = 20.0
    assert estimate_noise_sd(phantom + rng.normal(0.0, sd, phantom.shape)) == pytest.approx(sd, rel=NOISE_SD_EDGE_RTOL)

    blurred = ndimage.gaussian_filter(rng.normal(0.0, 1.0, (256, 256)), 1.0)
    correlated = 40.0 + blurred / blurred.std() * 30.0
    bias = estimate_noise_sd(correlated) / 30.0 - 1.0
    assert CORRELATED_BIAS_RANGE[0] < bias < CORRELATED_BIAS_RANGE[1]

    air_only = np.full((128, 128), -1000.0) + rng.normal(0.0, 10.0, (128, 128))
    assert np.isnan(estimate_noise_sd(air_only))


# --------------------------------------------------------------------------------------------
# The shared real volumes (skipped when ../shared/ct is absent)
# --------------------------------------------------------------------------------------------


def test_shared_volumes_load_in_anatomical_orientation(shared_ct_dir):
    import nibabel as nib

    result = load_source(shared_ct_dir, nifti_axes="LPS", max_slices=12, image_size=128)
    assert result.skipped.get("not a NIfTI file", 0) == len([p for p in shared_ct_dir.iterdir()
                                                              if p.is_file() and not p.name.endswith(".nii.gz")])
    by_series: dict[str, list] = {}
    for s in result.slices:
        by_series.setdefault(s.series_id, []).append(s)
    assert len(by_series) == len(list(shared_ct_dir.glob("*.nii.gz")))
    for series, slices in by_series.items():
        assert spine_row_fraction([s.hu for s in slices]) > SPINE_POSTERIOR_MIN, series

    path = shared_ct_dir / "totalsegmentator__example_ct_dicom.nii.gz"
    if path.exists():
        full = load_nifti(path, axes="LPS", max_slices=3)
        img = nib.load(str(path))
        for s in full.slices:  # the documented plain read of these files
            assert np.array_equal(s.hu, np.asarray(img.dataobj[:, :, s.slice_index]).T)
        assert full.slices[0].pixel_spacing_mm == pytest.approx(float(img.header.get_zooms()[0]))
        wrong = load_nifti(path, axes="RAS", max_slices=3)  # the affine read as RAS: upside down
        assert spine_row_fraction([s.hu for s in wrong.slices]) < SPINE_POSTERIOR_MIN
