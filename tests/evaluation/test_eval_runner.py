"""bench iqa / drift on a tiny synthetic dataset: values against independent computations,
the paper-layout tables, figures, and resuming per config."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from scipy import stats
from skimage.metrics import peak_signal_noise_ratio

import ct_degradbench
from ctdegradbench.evaluation.encoders import Encoder
from ctdegradbench.evaluation.leaderboard import show
from ctdegradbench.evaluation.options import BenchOptions
from ctdegradbench.evaluation.runner import run_drift, spread_references

WINDOW = (-300.0, 300.0)


def windowed(hu):
    return (np.clip(np.asarray(hu, dtype=np.float64), *WINDOW) - WINDOW[0]) / (WINDOW[1] - WINDOW[0])


def test_eval_bench_iqa_values_tables_figures_and_resume(bench_folder, tmp_path, capsys):
    out = tmp_path / "iqa"
    argv = ["bench", "iqa", "--dataset", str(bench_folder), "--out", str(out), "--metrics", "psnr", "gmsd",
            "--bootstrap", "40", "--quiet"]
    assert ct_degradbench.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["counts"]["rows"] == 3 * 4 * 3 and results["counts"]["patients"] == 3
    assert results["window_hu"] == list(WINDOW) and results["targets"] == ["reference", "clean_fbp"]
    # one row recomputed independently: scikit-image PSNR of the windowed images from the Parquet files
    part = json.loads((out / "configs" / "single_noise.json").read_text())
    samples = pq.read_table(bench_folder / "data/single_noise/test-00000-of-00001.parquet").to_pylist()
    refs = {r["reference_id"]: r for r in pq.read_table(bench_folder / "data/references/test-00000-of-00001.parquet").to_pylist()}
    row = samples[5]
    i = part["rows"]["sample_id"].index(row["sample_id"])
    expected = peak_signal_noise_ratio(windowed(refs[row["reference_id"]]["reference"]), windowed(row["image"]),
                                       data_range=1.0)
    assert part["values"]["reference"]["psnr"][i] == pytest.approx(expected, abs=1e-3)
    # aggregation: mean per (setting, level) and Spearman per setting
    psnr = np.array(part["values"]["reference"]["psnr"])
    levels = np.array(part["rows"]["level"])
    assert results["level_stats"]["reference"]["psnr"]["S1"]["2"]["mean"] == pytest.approx(psnr[levels == 2].mean())
    rho = results["severity_correlation"]["reference"]["psnr"]["S1"]["spearman"]["value"]
    assert rho == pytest.approx(stats.spearmanr(psnr, levels).statistic, abs=1e-12) and rho < -0.9
    tables = (out / "tables.md").read_text()
    assert "Table 10 equivalent" in tables and "Table 1 equivalent" in tables and "S1_noise L3" in tables
    assert "Mean (single)" in tables and "Mean (mixtures)" in tables
    for name in ("severity_reference.png", "spearman_clean_fbp.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (out / name).stat().st_size > 10_000
    board = show([out])                              # the score leaderboard: which metric tracks severity best
    assert "| 1 | " in board and "Best per setting: S1:" in board
    # resume: the same run reuses every config; another metric set recomputes
    assert ct_degradbench.main(argv) == 0
    again = json.loads((out / "results.json").read_text())
    assert set(again["timing"]["per_config"].values()) == {"reused"}
    assert ct_degradbench.main(argv[:-5] + ["psnr", "--bootstrap", "0", "--quiet", "--no-figures"]) == 0
    third = json.loads((out / "results.json").read_text())
    assert "reused" not in third["timing"]["per_config"].values() and list(third["scorers"]) == ["psnr"]
    assert third["severity_correlation"]["reference"]["psnr"]["S1"]["spearman"]["ci"] is None
    capsys.readouterr()


def test_eval_bench_errors_are_one_line(bench_folder, tmp_path, capsys):
    code = ct_degradbench.main(["bench", "iqa", "--dataset", str(bench_folder), "--out", str(tmp_path / "x"),
                                "--configs", "single_metal", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "single_metal" in err and "\n" not in err
    code = ct_degradbench.main(["bench", "iqa", "--dataset", str(tmp_path / "missing"), "--out", str(tmp_path / "y")])
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_eval_bench_drift_equals_cosine_of_embeddings(bench_folder, tmp_path):
    def embed(images):                              # 8 x 8 average-pooled pixels as the embedding
        return torch.nn.functional.avg_pool2d(images, 8).flatten(1)

    encoder = Encoder("pooled_pixels", "test encoder", 64, embed)
    options = BenchOptions(dataset=bench_folder, out=tmp_path / "drift", configs=["single_blur"], n_boot=0,
                           progress=False, figures=False, max_references=2)
    results = run_drift(options, built_encoders=[encoder])
    part = json.loads((tmp_path / "drift" / "configs" / "single_blur.json").read_text())
    assert part["references"] == {"used": 2, "available": 3} and len(part["rows"]["sample_id"]) == 8
    assert len(set(part["rows"]["patient_key"])) == 2                       # spread over patients
    samples = {r["sample_id"]: r for r in pq.read_table(bench_folder / "data/single_blur/test-00000-of-00001.parquet").to_pylist()}
    refs = {r["reference_id"]: r for r in pq.read_table(bench_folder / "data/references/test-00000-of-00001.parquet").to_pylist()}
    for i, sid in enumerate(part["rows"]["sample_id"]):
        a = windowed(samples[sid]["image"]).reshape(8, 8, 8, 8).mean(axis=(1, 3)).ravel()
        b = windowed(refs[samples[sid]["reference_id"]]["clean_fbp"]).reshape(8, 8, 8, 8).mean(axis=(1, 3)).ravel()
        expected = 1 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
        assert part["values"]["clean_fbp"]["pooled_pixels"][i] == pytest.approx(expected, abs=1e-5)
    assert results["kind"] == "drift" and results["scorers"]["pooled_pixels"]["dim"] == 64
    rho = results["severity_correlation"]["reference"]["pooled_pixels"]["S2"]["spearman"]["value"]
    assert rho > 0.5                                 # more blur, further from the reference


def test_eval_spread_references_takes_each_patient_first():
    rows = {"reference_id": np.array(["a/1", "a/2", "a/3", "b/1", "c/1", "c/2", "a/1"]),
            "patient_key": np.array(["a", "a", "a", "b", "c", "c", "a"])}
    assert spread_references(rows, 4) == ["a/1", "b/1", "c/1", "a/2"]
    assert spread_references(rows, 10) == ["a/1", "b/1", "c/1", "a/2", "c/2", "a/3"]
