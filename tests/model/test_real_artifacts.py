"""Judging on labelled real scans (model/real_artifacts.py, behind benchmarks/real_artifacts.py):
slices picked from labels.json, rates counted by hand, the AUC against scikit-learn, and intervals
from resampling whole patients within each group."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ctdegradbench.model.real_artifacts import (METAL_LABELS, collect, evenly, judge, rate_intervals,
                                                real_artifact_rates)


def test_metal_labels_are_the_settings_with_metal():
    assert METAL_LABELS == ("S5_metal", "M3_m+n", "M5_m+b+n")


def test_rates_counted_by_hand_and_auc_equals_sklearn():
    from sklearn.metrics import roc_auc_score

    groups = np.array(["metal"] * 4 + ["head_neck_metal_free"] * 5 + ["low_dose"] * 3 + ["clean_body"] * 4)
    labels = np.array(["S5_metal", "M3_m+n", "clean", "M5_m+b+n",                 # 3 of 4 metal
                       "clean", "clean", "S5_metal", "S1_noise", "clean",             # 1 of 5 false metal, 3 clean
                       "S1_noise", "clean", "M1_b+n",
                       "clean", "clean", "S4_aliasing", "clean"], dtype=object)        # 3 of 4 clean
    scores = np.array([0.9, 0.8, 0.1, 0.7, 0.1, 0.2, 0.6, 0.5, 0.1, 0.9, 0.3, 0.3, 0.1, 0.3, 0.8, 0.2])
    got = real_artifact_rates(groups, labels, scores, "clean")
    assert got["metal_recall"] == 0.75 and got["false_metal_rate"] == 0.2
    assert got["clean_rate_head_neck"] == 0.6 and got["clean_rate_body"] == 0.75
    pos, neg = scores[groups == "low_dose"], scores[groups == "clean_body"]   # a tie (0.3, 0.3) counts one half
    expected = roc_auc_score(np.r_[np.ones(len(pos)), np.zeros(len(neg))], np.r_[pos, neg])
    assert got["low_dose_vs_clean_auc"] == pytest.approx(expected, abs=1e-12)
    without_clean = real_artifact_rates(groups, labels, scores, None)
    assert without_clean["clean_rate_body"] == 0.0 and without_clean["clean_rate_head_neck"] == 0.0
    assert np.isnan(real_artifact_rates(groups[:4], labels[:4], scores[:4], "clean")["false_metal_rate"])


def test_intervals_resample_patients_within_groups():
    # metal: patient a all called metal, patient b none -> a resample is 0, 0.5 or 1, ends a quarter each
    groups = np.array(["metal"] * 6 + ["clean_body"] * 3)
    labels = np.array(["S5_metal"] * 3 + ["clean"] * 3 + ["clean"] * 3, dtype=object)
    patients = np.array(["a"] * 3 + ["b"] * 3 + ["c"] * 3, dtype=object)
    ci = rate_intervals(groups, labels, np.zeros(9), patients, "clean", n_boot=2000)
    assert ci["metal_recall"] == [0.0, 1.0]
    assert ci["clean_rate_body"] is None                 # one clean patient: no spread between patients
    assert ci["false_metal_rate"] is None and ci["low_dose_vs_clean_auc"] is None   # groups absent
    same = rate_intervals(groups, np.array(["S5_metal"] * 6 + ["clean"] * 3, dtype=object), np.zeros(9),
                          patients, "clean", n_boot=200)
    assert same["metal_recall"] == [1.0, 1.0]


def _volume(path, n_slices: int, metal_at=()):
    """A 64 x 64 x n NIfTI (axes L, P, S, as ct-real-artifacts writes them) of a water disk in air at
    2 mm pixels, with metal voxels at the given slices."""
    import nibabel as nib

    yy, xx = np.mgrid[:64, :64] - 32
    data = np.full((64, 64, n_slices), -1000, np.int16)
    data[xx ** 2 + yy ** 2 < 28 ** 2] = 40
    for k in metal_at:
        data[30:33, 30:33, k] = 3000
    nib.save(nib.Nifti1Image(data, np.diag([-2.0, -2.0, 3.0, 1.0])), str(path))


@pytest.fixture
def artifact_folder(tmp_path):
    (tmp_path / "openkbp-dental").mkdir()
    (tmp_path / "lowdose").mkdir()
    _volume(tmp_path / "openkbp-dental" / "pt_1.nii.gz", 8, metal_at=(2, 3))
    _volume(tmp_path / "openkbp-dental" / "pt_2.nii.gz", 8)
    _volume(tmp_path / "lowdose" / "thigh.nii.gz", 3)
    _volume(tmp_path / "clean.nii.gz", 2)
    items = {"openkbp-dental/pt_1.nii.gz": {"artifact": "metal_dental", "body_part": "head and neck",
                                            "metal_slices": [2, 3], "clean_slices": [6, 7]},
             "openkbp-dental/pt_2.nii.gz": {"artifact": "none", "body_part": "head and neck",
                                            "clean_slices": [0, 1, 2, 3, 4, 5, 6, 7]},
             "lowdose/thigh.nii.gz": {"artifact": "low_dose", "body_part": "thigh"},
             "clean.nii.gz": {"artifact": "none", "body_part": "abdomen"}}
    (tmp_path / "labels.json").write_text(json.dumps({"items": items}))
    return tmp_path


def test_collect_picks_the_labelled_slices(artifact_folder):
    rows = collect(artifact_folder, max_clean=3)
    picked = [(r["group"], r["item"].split("/")[-1], r["slice_index"]) for r in rows]
    assert picked == [("metal", "pt_1.nii.gz", 2), ("metal", "pt_1.nii.gz", 3),
                      ("head_neck_metal_free", "pt_1.nii.gz", 6), ("head_neck_metal_free", "pt_1.nii.gz", 7),
                      *[("head_neck_metal_free", "pt_2.nii.gz", k) for k in evenly(range(8), 3)],
                      *[("low_dose", "thigh.nii.gz", k) for k in range(3)],
                      *[("clean_body", "clean.nii.gz", k) for k in range(2)]]
    assert evenly(range(8), 3) == [0, 4, 7]
    assert rows[0]["pixel_spacing_mm"] == 2.0 and rows[0]["hu"].max() == 3000


def test_collect_names_a_labelled_slice_the_loader_does_not_find(artifact_folder):
    from ctdegradbench.core.errors import InputError

    labels = json.loads((artifact_folder / "labels.json").read_text())
    labels["items"]["openkbp-dental/pt_1.nii.gz"]["metal_slices"] = [2, 40]
    (artifact_folder / "labels.json").write_text(json.dumps(labels))
    with pytest.raises(InputError, match=r"pt_1.nii.gz: slice 40 of labels.json was not found"):
        collect(artifact_folder, max_clean=3)


def test_judge_counts_answers_abstentions_and_regions(artifact_folder, monkeypatch):
    """judge end to end with a stand-in model: metal slices called metal, the thigh noise, the rest
    clean, one abstention."""
    from types import SimpleNamespace

    import ctdegradbench.model.predict as predict

    def fake_predict(model, inputs):
        out = []
        for x in inputs:
            item, k = x.name.split("#")
            if item.endswith("pt_2.nii.gz") and k == "0":
                out.append(predict.Prediction(x.name, None, None, None, {}, status="no_body"))
                continue
            label = ("S5_metal" if x.hu.max() > 2500 else "S1_noise" if "thigh" in item else "clean")
            p_clean = 0.9 if label == "clean" else 0.05
            out.append(predict.Prediction(x.name, label, None, None, {"clean": p_clean}))
        return out

    config = SimpleNamespace(clean_label="clean", label_names=["S1_noise", "S5_metal", "clean"], max_level=3)
    monkeypatch.setattr(predict, "load_model", lambda _: SimpleNamespace(config=config))
    monkeypatch.setattr(predict, "predict_slices", fake_predict)
    got = judge("stand-in", collect(artifact_folder, max_clean=3), n_boot=50)
    assert got["metal_recall"] == 1.0 and got["false_metal_rate"] == 0.0
    assert got["clean_rate_head_neck"] == 1.0 and got["clean_rate_body"] == 1.0
    assert got["low_dose_vs_clean_auc"] == 1.0
    assert got["groups"]["head_neck_metal_free"] == {"n": 5, "answered": 4, "abstained": {"no_body": 1},
                                                     "top_labels": {"clean": 4}}
    assert got["patients"] == {"metal": 1, "head_neck_metal_free": 2, "low_dose": 1, "clean_body": 1}
    assert got["intervals"]["metal_recall"] is None                     # one metal patient
    assert got["intervals"]["false_metal_rate"] == [0.0, 0.0]
    assert got["regions"]["thigh / low_dose"] == {"n": 3, "answered": 3, "clean_rate": 0.0, "metal_rate": 0.0}


def test_a_folder_without_labels_json_is_refused_naming_it(tmp_path):
    from ctdegradbench.core.errors import InputError

    with pytest.raises(InputError, match=f"{tmp_path}/labels.json not found"):
        collect(tmp_path, max_clean=4)
