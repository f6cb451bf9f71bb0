"""End to end: build every config from a tiny NIfTI source, export, load back offline."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pytest

from ctdegradbench.builder.dataset.build import build_dataset
from ctdegradbench.builder.dataset.options import BuildOptions, settings_for
from ct_degradbench import main as cli_main
from ctdegradbench.builder.dataset.export import partial_dir
from ctdegradbench.builder.dataset.features import row_to_metadata
from ctdegradbench.builder.simulate.settings import CLASS_NAMES, LEVELS, PAPER_SETTINGS
from ctdegradbench.builder.simulate.config import SimulationConfig
from ctdegradbench.builder.sources import SourceOptions
from ctdegradbench.builder.dataset.verify import verify_folder

IMAGE_SIZE = 64
PIXEL_MM = 2.0          # 128 mm field of view: room for the 15 mm metal disk inside the body
N_PATIENTS = 4
SLICES_PER_PATIENT = 2


@pytest.fixture(scope="module")
def tiny_source(nifti_body_source) -> Path:
    return nifti_body_source(N_PATIENTS, SLICES_PER_PATIENT, IMAGE_SIZE, PIXEL_MM)


@pytest.fixture(scope="module")
def built(tiny_source, tmp_path_factory):
    """The whole dataset (every config) built once from the tiny source."""
    root = tmp_path_factory.mktemp("export")
    out = root / "ct-degradbench"
    summary = build_dataset(BuildOptions(out=out, source=SourceOptions(sources=(str(tiny_source),),
                                                                       image_size=IMAGE_SIZE),
                                         simulation=SimulationConfig(seed=7), allow_uncalibrated_grid=True))
    return out, summary


def test_every_config_loads_offline_by_name(built, monkeypatch):
    out, summary = built
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(out.parent)
    names = set(datasets.get_dataset_config_names("ct-degradbench"))
    assert names == {s.config_name for s in PAPER_SETTINGS} | {"all", "references"}
    for setting in PAPER_SETTINGS:
        ds = datasets.load_dataset("ct-degradbench", setting.config_name)
        features = next(iter(ds.values())).features
        assert features["label"].names == list(CLASS_NAMES)
        assert features["image"] == datasets.Array2D(shape=(None, IMAGE_SIZE), dtype="int16")
        rows = sum(len(split) for split in ds.values())
        assert rows == N_PATIENTS * SLICES_PER_PATIENT * len(LEVELS)
        for split in ds.values():
            assert set(split["setting"]) == {setting.code}
            assert set(split["level"]) <= set(LEVELS)
            assert {CLASS_NAMES[i] for i in split["label"]} == {setting.class_name}
        levels = [lv for split in ds.values() for lv in split["level"]]
        assert sorted(set(levels)) == list(LEVELS)


def test_all_config_points_at_setting_files_without_copies(built):
    out, summary = built
    assert not (out.parent / f".{out.name}.cache").exists()     # the default builder cache is removed
    parquet_dirs = {p.parent.name for p in out.glob("data/*/*.parquet")}
    assert "all" not in parquet_dirs
    ds = datasets.load_dataset(str(out), "all")
    total = sum(len(split) for split in ds.values())
    assert total == len(PAPER_SETTINGS) * N_PATIENTS * SLICES_PER_PATIENT * len(LEVELS)
    assert len(set(sid for split in ds.values() for sid in split["sample_id"])) == total   # ids unique


def test_no_patient_in_two_splits(built):
    out, _ = built
    for config in ("all", "references"):
        ds = datasets.load_dataset(str(out), config)
        patients = {name: set(split["patient_key"]) for name, split in ds.items()}
        names = list(patients)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                assert not patients[a] & patients[b], (config, a, b)
    refs = datasets.load_dataset(str(out), "references")
    assert sum(len(s) for s in refs.values()) == N_PATIENTS * SLICES_PER_PATIENT


def test_metal_rows_have_bbox_and_others_none(built):
    out, _ = built
    ds = datasets.concatenate_datasets(list(datasets.load_dataset(str(out), "all").values()))
    for row in ds.select_columns(["setting", "bbox", "components"]):
        has_metal = any(c["type"] == "metal" for c in row["components"])
        assert (len(row["bbox"]) == 4) == has_metal
        if has_metal:
            x0, y0, x1, y1 = row["bbox"]
            assert 0 <= x0 <= x1 < IMAGE_SIZE and 0 <= y0 <= y1 < IMAGE_SIZE


def test_verify_checks_files_rows_references_and_every_stratum(built):
    out, _ = built
    report = verify_folder(out, seed=1)
    assert report.ok, report.text()
    strata = len(PAPER_SETTINGS) * len(LEVELS)
    rows = len(PAPER_SETTINGS) * N_PATIENTS * SLICES_PER_PATIENT * len(LEVELS)
    assert any(f"{rows} sample rows" in line for line in report.checked)
    assert any(f"{N_PATIENTS * SLICES_PER_PATIENT} references: clean FBP re-simulated" in line
               for line in report.checked)
    assert any(f"{2 * strata} images re-simulated over {strata} (config, level) strata, {2 * strata} identical" in line
               for line in report.checked)


def test_with_references_gives_int16_pairs(built):
    from ct_degradbench import with_references

    out, _ = built
    ds = datasets.load_dataset(str(out), "mixture_m3")
    pairs = with_references(ds, datasets.load_dataset(str(out), "references"))
    split = next(iter(pairs))
    row = pairs[split][0]
    for key in ("image", "reference", "clean_fbp"):
        assert row[key].dtype == np.int16 and row[key].shape == (IMAGE_SIZE, IMAGE_SIZE)
    meta = row_to_metadata(datasets.load_dataset(str(out), "mixture_m3")[split][0])
    assert meta["reference_id"] == row["reference_id"]


def test_viewer_preview_column_and_torch_dtype(built):
    """The exported README's features list an Image column (what the Hub's viewer shows) beside
    the exact int16 HU array; the preview is the HU image in the soft-tissue window, grey level
    within one step of the linear map; torch format keeps int16 when asked."""
    import torch
    import yaml
    from PIL import Image

    from ctdegradbench.builder.dataset.features import PREVIEW_WINDOW_HU

    out, _ = built
    meta = yaml.safe_load((out / "README.md").read_text().split("---")[1])
    for info in meta["dataset_info"]:
        features = {f["name"]: f for f in info["features"]}
        assert features["preview"]["dtype"] == "image", info["config_name"]
        hu_column = "image" if "image" in features else "reference"
        assert features[hu_column]["dtype"]["array2_d"]["dtype"] == "int16"
    labels = next(i for i in meta["dataset_info"] if i["config_name"] == "single_noise")
    names = {f["name"]: f for f in labels["features"]}["label"]["dtype"]["class_label"]["names"]
    assert [names[i] for i in sorted(names, key=int)] == list(CLASS_NAMES)
    assert CLASS_NAMES.index("clean") == 10 and CLASS_NAMES.index("S6_ring") == 11
    row = datasets.load_dataset(str(out), "single_noise", split="train")[0]
    assert isinstance(row["preview"], Image.Image) and row["preview"].mode == "L"
    lo, hi = PREVIEW_WINDOW_HU
    expected = np.clip((np.asarray(row["image"], np.float64) - lo) * 255 / (hi - lo), 0, 255)
    assert np.abs(np.asarray(row["preview"], np.float64) - expected).max() <= 0.5 + 1e-6
    ds = datasets.load_dataset(str(out), "single_noise", split="train")
    assert ds.with_format("torch", columns=["image"], dtype=torch.int16)[0]["image"].dtype == torch.int16
    assert ds.with_format("torch", columns=["image"])[0]["image"].dtype == torch.int64      # datasets' default


def test_card_states_measured_counts(built):
    from ctdegradbench.builder.dataset.hub import check_dataset_folder

    out, summary = built
    assert len(check_dataset_folder(out)) == len(list(out.glob("data/*/*.parquet")))   # ready to push
    card = (out / "README.md").read_text()
    assert "configs:" in card and "dataset_info:" in card
    assert "| `single_noise` |" in card
    for figure in ("settings_L0_L3.png", "implants_L0_L3.png"):
        assert (out / "images" / figure).stat().st_size > 10_000 and f"](images/{figure})" in card
    import yaml

    from ctdegradbench.core.benchmark import TASKS

    leaderboard = yaml.safe_load((out / "eval.yaml").read_text())        # the Hub's benchmark registration
    assert [t["id"] for t in leaderboard["tasks"]] == [t.id for t in TASKS]
    assert all(t["config"] == "all" and t["split"] == "test" for t in leaderboard["tasks"])


def test_interrupted_build_leaves_no_output_and_keeps_old(built, tiny_source, tmp_path, monkeypatch):
    import shutil

    out, _ = built
    copy = tmp_path / "ct-degradbench"
    shutil.copytree(out, copy)
    before = sorted(p.name for p in copy.rglob("*"))

    import ctdegradbench.builder.dataset.export as export

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "write_split", boom)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(BuildOptions(out=copy, configs=("single_blur",), overwrite=True, cache_dir=tmp_path / "cache",
                                   allow_uncalibrated_grid=True,
                                   source=SourceOptions(sources=(str(tiny_source),), image_size=IMAGE_SIZE,
                                                        max_slices=1)))
    assert sorted(p.name for p in copy.rglob("*")) == before    # old output untouched
    assert not partial_dir(copy).exists()                       # no half-written folder left


def test_settings_for_rejects_unknown_config():
    assert settings_for(["mixture_m5", "single_noise"]) == ("S1", "M5")
    with pytest.raises(ValueError, match="unknown config 'mixture_m9'"):
        settings_for(["mixture_m9"])


@pytest.mark.parametrize("argv, message", [
    (["build", "--configs", "mixture_m9"], "unknown config 'mixture_m9'"),
    (["build", "--source", "/nonexistent/ct"], "/nonexistent/ct"),
    (["verify", "/nonexistent/folder"], "/nonexistent/folder"),
    (["push", "/nonexistent/folder", "--repo-id", "org/name"], "/nonexistent/folder"),
    (["push", "/nonexistent/folder", "--repo-id", "no-slash"], "no-slash"),
    (["figure", "--slice", "99"], "--slice must be in 0..4"),
])
def test_cli_bad_arguments_give_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ct-degradbench: error:") and message in err and "\n" not in err


def test_cli_source_without_ct_and_unwritable_output(tmp_path, tiny_source, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli_main(["build", "--source", str(empty), "--out", str(tmp_path / "o")]) == 2
    assert "\n" not in capsys.readouterr().err.strip()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli_main(["build", "--source", str(tiny_source), "--image-size", str(IMAGE_SIZE),
                     "--allow-uncalibrated-grid", "--out", str(blocker / "sub" / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(blocker) in err


def test_existing_output_needs_overwrite(built, tiny_source, capsys):
    out, _ = built
    assert cli_main(["build", "--source", str(tiny_source), "--image-size", str(IMAGE_SIZE),
                     "--allow-uncalibrated-grid", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_cli_sources_lists_the_default_ct_and_writes_a_preview(tmp_path, capsys):
    preview = tmp_path / "preview.png"
    assert cli_main(["sources", "--preview", str(preview), "--image-size", "128"]) == 0
    out = capsys.readouterr().out
    assert out.count("pydicom/") == 5 and "5 slices, 5 patients" in out
    assert preview.stat().st_size > 10_000


@pytest.mark.parametrize("options, message", [
    ({"threads": 0}, "threads"), ({"settings": ("S9",)}, "unknown setting 'S9'"),
    ({"split_fractions": (0.5, 0.5, 0.5)}, "fractions"), ({"source": "default"}, "SourceOptions"),
])
def test_builder_config_rejects_bad_options(options, message, tmp_path):
    from ct_degradbench import CTDegradBench

    with pytest.raises(ValueError, match=message):
        CTDegradBench(config_name="single_noise", cache_dir=str(tmp_path), **options)
