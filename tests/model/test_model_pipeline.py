"""train -> checkpoint folder -> evaluate / predict, on a tiny synthetic dataset folder."""

import json

import numpy as np
import pytest
import yaml

from .conftest import IMAGE_SIZE, synthetic_hu

TINY = dict(image_size=IMAGE_SIZE, spectral_size=16, texture_size=16, spectral_channels=(4, 8), spectral_dim=8, image_channels=(4, 8),
            image_dim=8, backbone_image_size=32, semantic_projection_dim=8, fusion_hidden_dim=16, fusion_dim=8)


@pytest.fixture(scope="module")
def trained(tiny_dataset, tmp_path_factory):
    from ctdegradbench.model.train import train_sespect

    out = tmp_path_factory.mktemp("run") / "ckpt"
    cache = tmp_path_factory.mktemp("cache")
    result = train_sespect([tiny_dataset], out, overrides=TINY, epochs=2, batch_size=32, cache_dir=cache,
                           progress=False, log=lambda *a: None)
    return result, out, cache


def test_training_writes_a_complete_checkpoint(trained):
    result, out, _ = trained
    for name in ("config.json", "model.safetensors", "modeling_sespect.py", "configuration_sespect.py",
                 "backbones.py", "losses.py", "image_processing_sespect.py", "pipeline_sespect.py", "metrics.json",
                 "README.md"):
        assert (out / name).is_file(), name
    assert result.split_sizes == {"train": {"patients": 3, "slices": 3, "rows": 120},
                                  "validation": {"patients": 2, "slices": 2, "rows": 80},
                                  "test": {"patients": 2, "slices": 2, "rows": 80}}
    assert 1 <= result.best_epoch <= 2 and len(result.history) == 2
    card = (out / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    values = {m["type"]: m["value"] for r in meta["model-index"][0]["results"] for m in r["metrics"]}
    assert values["accuracy"] == pytest.approx(result.metrics["accuracy"], abs=1e-4)
    assert "image prototypes" in card and "deviation" in card
    lo, hi = result.metrics["accuracy_ci"]                            # the test patients' spread, in the table
    assert f"| accuracy | {result.metrics['accuracy']:.3f} (95% CI {lo:.3f}-{hi:.3f} over 2 patients) |" in card
    entries = yaml.safe_load((out / ".eval_results" / "ct-degradbench.yaml").read_text())
    by_task = {e["dataset"]["task_id"]: e for e in entries}
    from ctdegradbench.core.benchmark import TASKS
    from ctdegradbench.evaluation.leaderboard import task_values

    assert set(by_task) <= {t.id for t in TASKS}                     # the benchmark's eval.yaml task ids
    assert set(by_task) == set(task_values({"kind": "evaluate", **result.metrics}))
    assert by_task["degradation_classification_accuracy"]["value"] == pytest.approx(result.metrics["accuracy"],
                                                                                    abs=1e-4)
    assert set(entries[0]) == {"dataset", "value", "date", "source"}
    config = json.loads((out / "config.json").read_text())
    assert config["quality_axis_source"] == "image_prototypes" and config["model_type"] == "sespect"


def test_frozen_features_are_cached_and_reused(trained, tiny_dataset):
    from ctdegradbench.model.train import prepare_data

    _, _, cache = trained
    folders = sorted(p for p in cache.iterdir() if p.is_dir())
    assert len(folders) == 4                           # train, validation, test, references
    stamps = {p: (p / "complete.json").stat().st_mtime_ns for p in folders}
    prepare_data([tiny_dataset], overrides=TINY, cache_dir=cache, progress=False)
    assert {p: (p / "complete.json").stat().st_mtime_ns for p in folders} == stamps


def test_evaluate_recomputes_the_test_metrics_from_pixels(trained, tiny_dataset):
    from ctdegradbench.model.evaluate import evaluate_checkpoint

    result, out, _ = trained
    metrics = evaluate_checkpoint(out, [tiny_dataset], "test", progress=False)
    assert metrics["split"]["rows"] == 80 and metrics["split"]["patients"] == 2
    for key in ("accuracy", "macro_f1", "mae", "qwk"):
        assert metrics[key] == pytest.approx(result.metrics[key], abs=1e-6), key
    # per source of the patients: rows add up, the row-weighted accuracies give the overall one
    parts = metrics["per_source"].values()
    assert sum(p["rows"] for p in parts) == metrics["answered_rows"]
    assert sum(p["value"] * p["rows"] for p in parts) / metrics["answered_rows"] == pytest.approx(metrics["accuracy"])
    lo, hi = metrics["accuracy_ci"]
    assert 0 <= lo <= metrics["accuracy"] <= hi <= 1 and metrics["bootstrap"]["unit"] == "patient"


def test_predict_command_reports_bad_files_and_processes_the_rest(trained, tmp_path, capsys):
    from PIL import Image

    from ct_degradbench import main

    _, out, _ = trained
    rng = np.random.default_rng(3)
    np.save(tmp_path / "slice.npy", synthetic_hu(2, 3, rng).astype(np.float32))
    png = (synthetic_hu(1, 0, rng).astype(np.int32) + 1024).astype(np.uint16)
    Image.fromarray(png).save(tmp_path / "slice.png")
    (tmp_path / "broken.npy").write_bytes(b"not numpy")
    status = main(["predict", str(tmp_path / "slice.npy"), str(tmp_path / "broken.npy"), str(tmp_path / "slice.png"),
                   str(tmp_path / "missing.dcm"), "--model", str(out), "--json"])
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert status == 1
    assert [p["sample_id"] for p in report["predictions"]] == ["slice.npy", "slice.png"]
    assert set(report["errors"]) == {str(tmp_path / "broken.npy"), str(tmp_path / "missing.dcm")}
    assert captured.err.count("error:") == 2
    for p in report["predictions"]:
        assert 0.0 <= p["severity"] <= 3.0 and sum(p["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    # the table ends with the count of each answer
    assert main(["predict", str(tmp_path / "slice.npy"), str(tmp_path / "slice.png"), "--model", str(out)]) == 0
    labels = sorted(p["label"] for p in report["predictions"])
    expected = (f"2 slices: {labels[0]} 2" if labels[0] == labels[1] else f"2 slices: {labels[0]} 1, {labels[1]} 1")
    assert f"ct-degradbench: {expected}\n" in capsys.readouterr().err


def test_answer_summary_counts_answers_and_slices_without_one():
    from ctdegradbench.model.predict import Prediction, answer_summary

    ok = [Prediction(f"s{k}", label, None, None) for k, label in enumerate(["clean", "S1_noise", "clean"])]
    none = Prediction("air", None, None, None, status="no_body")
    assert answer_summary(ok) == "3 slices: clean 2, S1_noise 1"
    assert answer_summary([*ok, none]) == "4 slices: clean 2, S1_noise 1; 1 without an answer"
    assert answer_summary([none, none]) == "2 slices: no answer"


def test_png_offset_convention(tmp_path):
    from PIL import Image

    from ctdegradbench.model.predict import read_slices

    Image.fromarray(np.full((64, 64), 1064, np.uint16)).save(tmp_path / "a.png")   # MIN_IMAGE_PX
    assert read_slices(tmp_path / "a.png")[0].hu.mean() == pytest.approx(40.0)
    Image.fromarray(np.full((32, 32), 7, np.uint8)).save(tmp_path / "b.png")
    with pytest.raises(ValueError, match="16-bit"):
        read_slices(tmp_path / "b.png")
    img = np.full((64, 64), 40 + 32768, np.uint16)                 # written as HU + 32768, with metal at 3000 HU
    img[30:34, 30:34] = 3000 + 32768
    Image.fromarray(img).save(tmp_path / "c.png")
    with pytest.raises(ValueError, match="outside the CT range.*--png-offset: was the PNG written with another offset"):
        read_slices(tmp_path / "c.png")
    assert read_slices(tmp_path / "c.png", png_offset=32768)[0].hu.max() == pytest.approx(3000.0)


def test_train_command_rejects_an_unknown_ablation():
    from ct_degradbench import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--dataset", "x", "--out", "y", "--ablate", "nonsense"])


def test_the_card_shows_the_real_artifact_results_per_body_region(trained, tmp_path):
    """write_model_card with real-artifact results (as benchmarks/real_artifacts.py stores them): the
    summary table and one row per body region and group."""
    import shutil

    from ctdegradbench.model.card import write_model_card
    from ctdegradbench.model.predict import load_model

    _, out, _ = trained
    folder = tmp_path / "ckpt"
    shutil.copytree(out, folder)
    facts = json.loads((folder / "metrics.json").read_text())
    facts["real_artifacts"] = [{"model": "x", "label": "this checkpoint", "metal_recall": 0.5, "false_metal_rate": 0.25,
                                "clean_rate_body": 1.0, "clean_rate_head_neck": float("nan"),
                                "low_dose_vs_clean_auc": 0.75,
                                "regions": {"head and neck / metal": {"n": 4, "answered": 3, "clean_rate": 0.0,
                                                                      "metal_rate": 2 / 3}}}]
    card = write_model_card(folder, load_model(folder).config, facts).read_text()
    assert "| this checkpoint | 0.500 | 0.250 | 1.000 | n/a | 0.750 |" in card
    assert "| this checkpoint | head and neck / metal | 4 | 3 | 0.000 | 0.667 |" in card


def test_evaluate_counts_the_rows_the_model_cannot_judge(tiny_dataset, tmp_path):
    """evaluate on rows outside the checkpoint's pixel-spacing range: each row's status is in the
    predictions file (no label, no severity), and a split the model answers nowhere is one clear
    error instead of metrics over answers it would not give."""
    import shutil

    from ctdegradbench.core.errors import InputError
    from ctdegradbench.model import default_checkpoint
    from ctdegradbench.model.evaluate import evaluate_checkpoint

    folder = tmp_path / "ckpt"
    shutil.copytree(default_checkpoint(), folder)
    for name in ("config.json", "preprocessor_config.json"):        # trained on 2-6 mm pixels: 1 mm rows are out
        config = json.loads((folder / name).read_text())
        config["spacing_range_mm"] = [2.0, 6.0]
        (folder / name).write_text(json.dumps(config))
    with pytest.raises(InputError, match=r"answers none of the 80 rows of split 'test' \(spacing_out_of_range: 80\)"):
        evaluate_checkpoint(folder, [tiny_dataset], "test", progress=False, predictions_path=tmp_path / "p.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(rows) == 80 and all(r["status"] == "spacing_out_of_range" and r["label"] is None
                                   and r["severity"] is None for r in rows)
