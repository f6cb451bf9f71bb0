"""Issue 16: no command overwrites a user's files, bad files and checkpoints are one line,
predict accepts nothing silently, the command answers --version / --help without torch.

A temporary folder stands in for the user's folder in every case; each data-loss test checks
that nothing of the user's changed.
"""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ct_degradbench import main as cli_main
from ctdegradbench.core.errors import InputError, OutputError
from ctdegradbench.core.outputs import (FOLDER_MARKER, OutputFolder, check_file_output, is_ours,
                                                write_json_output)

IMAGE_SIZE = 64


def user_files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its content."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(capsys) -> str:
    """The error line the command ended with (no traceback)."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    last = err.splitlines()[-1]
    assert last.startswith("ct-degradbench: error:"), err
    return last


@pytest.fixture
def users_folder(tmp_path) -> Path:
    """A folder of the user's, with files named like the ones the commands write."""
    folder = tmp_path / "mine"
    folder.mkdir()
    for name in ("README.md", "config.json", "results.json", "tables.md"):
        (folder / name).write_text(f"the user's {name}\n")
    return folder


# ------------------------------------------------------------------ the ownership rule
def test_output_folder_reuses_its_own_files_and_never_replaces_a_users(tmp_path):
    out = OutputFolder(tmp_path / "run", "train").open()
    out.write_json("a.json", {"x": 1})
    staged = out.staging()
    (staged / "b.txt").write_text("ours")
    assert out.commit(staged) == ["b.txt"]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [FOLDER_MARKER, "a.json", "b.txt"]
    (tmp_path / "run" / "notes.txt").write_text("the user's")
    again = OutputFolder(tmp_path / "run", "train")          # a marked folder is reused
    again.write_json("a.json", {"x": 2})                     # its own file is replaced
    assert json.loads((tmp_path / "run" / "a.json").read_text()) == {"x": 2}
    staged = again.staging()
    (staged / "notes.txt").write_text("ours")
    with pytest.raises(OutputError, match="notes.txt exists and was not written by ct-degradbench"):
        again.commit(staged)
    assert (tmp_path / "run" / "notes.txt").read_text() == "the user's"
    assert not list((tmp_path / "run").glob(".staging-*"))   # nothing left behind


@pytest.mark.parametrize("where", ["cwd", "ancestor", "home"])
def test_output_folder_refuses_cwd_ancestors_and_home(where, tmp_path, monkeypatch):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    path = {"cwd": Path("."), "ancestor": tmp_path / "a", "home": tmp_path / "home"}[where]
    with pytest.raises(OutputError, match="current directory|home folder"):
        OutputFolder(path, "train")


def test_single_files_are_replaced_only_when_ours(tmp_path):
    mine = tmp_path / "metrics.json"
    mine.write_text('{"accuracy": 1}')
    with pytest.raises(OutputError, match="not written by ct-degradbench"):
        write_json_output(mine, {"accuracy": 0.5})
    assert mine.read_text() == '{"accuracy": 1}'
    ours = tmp_path / "ours.json"
    write_json_output(ours, {"accuracy": 0.5})
    assert is_ours(ours)
    write_json_output(ours, {"accuracy": 0.7})               # a rerun replaces its own file
    assert json.loads(ours.read_text())["accuracy"] == 0.7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "ours.json"]   # no temporary left


def test_a_png_of_ours_carries_its_mark_and_a_users_png_is_kept(tmp_path):
    from matplotlib.figure import Figure
    from PIL import Image

    from ctdegradbench.core.plotting import save_png

    theirs = tmp_path / "photo.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(theirs)
    with pytest.raises(OutputError, match="--preview .*photo.png exists and was not written"):
        check_file_output(theirs, "--preview")
    ours = save_png(Figure(figsize=(1, 1)), tmp_path / "fig.png", dpi=20)
    assert is_ours(ours) and not is_ours(theirs)


def test_an_unwritable_figure_is_one_line_even_when_cleanup_fails(tmp_path, monkeypatch):
    """A read-only file system: savefig and the cleanup both raise EROFS."""
    from matplotlib.figure import Figure

    from ctdegradbench.core.plotting import save_png

    def read_only(self, path, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    real_unlink = Path.unlink

    def unlink(self, missing_ok=False):
        if self.name.endswith(".tmp.png"):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Figure, "savefig", read_only)
    monkeypatch.setattr(Path, "unlink", unlink)
    with pytest.raises(OutputError, match="cannot write the figure .*fig.png: Read-only file system"):
        save_png(Figure(), tmp_path / "fig.png", dpi=20)


# ----------------------------------------------------------- commands refuse a user's files
def test_train_refuses_a_users_folder_and_the_current_directory(users_folder, tmp_path, monkeypatch, capsys):
    before = user_files(users_folder)
    assert cli_main(["train", "--dataset", str(tmp_path), "--out", str(users_folder)]) == 2
    assert "did not write" in one_error_line(capsys)
    monkeypatch.chdir(users_folder)
    assert cli_main(["train", "--dataset", str(tmp_path), "--out", "."]) == 2
    assert "current directory" in one_error_line(capsys)
    assert user_files(users_folder) == before


@pytest.mark.parametrize("kind", ["iqa", "drift"])
def test_bench_refuses_a_users_folder(kind, users_folder, tmp_path, capsys):
    before = user_files(users_folder)
    assert cli_main(["bench", kind, "--dataset", str(tmp_path), "--out", str(users_folder)]) == 2
    assert "did not write" in one_error_line(capsys)
    assert user_files(users_folder) == before


def test_bench_refuses_a_users_results_json_in_a_folder_of_ours(tmp_path, capsys):
    out = tmp_path / "bench"
    OutputFolder(out, "bench iqa").open()
    (out / "results.json").write_text("the user's")
    assert cli_main(["bench", "iqa", "--dataset", str(tmp_path), "--out", str(out), "--no-figures"]) == 2
    assert "results.json exists and was not written" in one_error_line(capsys)
    assert (out / "results.json").read_text() == "the user's"


def test_evaluate_and_bench_tasks_refuse_a_users_file_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sespect_eval_test.json").write_text("the user's")
    (tmp_path / "scores.json").write_text("the user's")
    before = user_files(tmp_path)
    assert cli_main(["evaluate", "--dataset", "nowhere"]) == 2
    assert "sespect_eval_test.json exists and was not written by ct-degradbench" in one_error_line(capsys)
    assert cli_main(["bench", "tasks", "--dataset", "x", "--predictions", "p.jsonl", "--out", "scores.json"]) == 2
    assert "scores.json exists" in one_error_line(capsys)
    assert user_files(tmp_path) == before


def test_sources_preview_refuses_a_users_png(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sources_preview.png").write_bytes(b"the user's picture")
    assert cli_main(["sources", "--image-size", "128"]) == 2
    assert "--preview sources_preview.png exists and was not written" in one_error_line(capsys)
    assert (tmp_path / "sources_preview.png").read_bytes() == b"the user's picture"


# ------------------------------------------------------------ files beside a build's output
@pytest.fixture(scope="module")
def source(nifti_body_source) -> Path:
    return nifti_body_source(3, 1, IMAGE_SIZE, 2.0)


def build_args(source, out, *extra) -> list[str]:
    return ["build", "--source", str(source), "--image-size", str(IMAGE_SIZE), "--allow-uncalibrated-grid",
            "--configs", "single_noise", "--out", str(out), *extra]


def test_build_keeps_a_users_cache_old_and_lock_and_leaves_no_lock(source, tmp_path, capsys):
    (tmp_path / ".ds.cache").mkdir()
    (tmp_path / ".ds.cache" / "kept.arrow").write_text("the user's cache")
    (tmp_path / ".ds.lock").write_text("the user's lock notes")
    before = user_files(tmp_path)
    assert cli_main(build_args(source, tmp_path / "ds")) == 2
    assert ".ds.cache exists and was not made by a build" in one_error_line(capsys)
    shutil.rmtree(tmp_path / ".ds.cache")
    assert cli_main(build_args(source, tmp_path / "ds")) == 2
    assert ".ds.lock exists and is not a ct-degradbench build lock" in one_error_line(capsys)
    (tmp_path / ".ds.lock").unlink()
    assert cli_main(build_args(source, tmp_path / "ds")) == 0
    (tmp_path / ".ds.old").mkdir()
    (tmp_path / ".ds.old" / "thesis.tex").write_text("the user's")
    assert cli_main(build_args(source, tmp_path / "ds", "--overwrite", "--seed", "1")) == 0
    assert (tmp_path / ".ds.old" / "thesis.tex").read_text() == "the user's"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ds.old", "ds"]    # no lock, cache, partial left
    del before


def test_a_full_disk_in_the_cache_phase_is_one_line(source, tmp_path, monkeypatch, capsys):
    from datasets.arrow_writer import ArrowWriter

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ArrowWriter, "write", full)
    monkeypatch.setattr(ArrowWriter, "write_examples_on_file", full)
    assert cli_main(build_args(source, tmp_path / "ds")) == 2
    assert "the disk is full" in one_error_line(capsys)
    assert not (tmp_path / "ds").exists() and not (tmp_path / ".ds.partial").exists()


# ------------------------------------------------------------------- predict's inputs
def body(size=256) -> np.ndarray:
    y, x = np.mgrid[:size, :size]
    return np.where((x - size / 2) ** 2 / (0.4 * size) ** 2 + (y - size / 2) ** 2 / (0.3 * size) ** 2 < 1,
                    40.0, -1000.0)


BAD_SLICES = {
    "nan.npy": (lambda a: np.where(a > 0, np.nan, a), "NaN or inf"),
    "inf.npy": (lambda a: np.where(a > 0, np.inf, a), "NaN or inf"),
    "huge.npy": (lambda a: a * 1e30, "outside the CT range"),
    "complex.npy": (lambda a: a + 1j, "complex values"),
    "small.npy": (lambda a: a[:16, :16], "16 x 16 px"),
    "tiny.npy": (lambda a: a[:10, :10], "10 x 10 px"),
}


def test_predict_names_each_bad_slice_and_still_prints_the_good_ones(tmp_path, capsys):
    np.save(tmp_path / "good.npy", body())
    for name, (make, _) in BAD_SLICES.items():
        np.save(tmp_path / name, make(body()))
    files = [str(tmp_path / n) for n in ["good.npy", *BAD_SLICES]]
    assert cli_main(["predict", "--pixel-spacing", "0.8", *files]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert [line.split()[0] for line in captured.out.splitlines()[1:]] == ["good.npy"]
    errors = [line for line in captured.err.splitlines() if line.startswith("ct-degradbench: error:")]
    assert len(errors) == len(BAD_SLICES)
    for line, (name, (_, why)) in zip(errors, BAD_SLICES.items()):
        assert name in line and why in line, line


def test_predict_reads_a_folder_like_files_and_names_what_it_skipped(tmp_path, capsys):
    from PIL import Image
    from pydicom.data import get_testdata_file

    folder = tmp_path / "scans"
    folder.mkdir()
    dicom = Path(get_testdata_file("CT_small.dcm"))
    shutil.copy(dicom, folder / "good.dcm")
    (folder / "truncated.dcm").write_bytes(dicom.read_bytes()[:2000])
    (folder / "notes.txt").write_text("my notes")
    np.save(folder / "slice.npy", body())
    Image.fromarray((body() + 1024).astype(np.uint16)).save(folder / "slice16.png")
    Image.fromarray(np.zeros((100, 100), np.uint8)).save(folder / "photo.png")
    assert cli_main(["predict", "--pixel-spacing", "0.8", str(folder)]) == 1   # spacing of the .npy / .png
    captured = capsys.readouterr()
    rows = [line.split()[0] for line in captured.out.splitlines()[1:]]
    assert "slice.npy" in rows and "slice16.png" in rows and len(rows) == 3       # + the DICOM slice
    errors = [line for line in captured.err.splitlines() if line.startswith("ct-degradbench: error:")]
    for name, why in (("truncated.dcm", "skipped"), ("photo.png", "got PIL mode L (100 x 100 px, uint8)")):
        assert any(name in line and why in line for line in errors), (name, captured.err)
    assert not any("notes.txt" in line for line in errors)      # no CT slice meant: a note, below
    assert "note: left out 1 file holding no axial CT image slice: not a DICOM file: 1 (e.g. " \
        f"{folder / 'notes.txt'})" in captured.err


def test_predict_leaves_out_what_a_scanner_folder_holds_beside_its_slices(tmp_path, capsys):
    """A DICOM folder as exported: its CT slice, a licence, a report without pixels and a
    localizer. The slice is predicted, the rest is a counted note and the exit status is 0; a folder
    holding nothing but such files is an error naming it (exit 2)."""
    import pydicom
    from pydicom.data import get_testdata_file

    folder = tmp_path / "series"
    folder.mkdir()
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ct.save_as(folder / "slice.dcm")
    report = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del report.PixelData
    report.SOPClassUID, report.Modality = "1.2.840.10008.5.1.4.1.1.88.11", "SR"     # Basic Text SR
    report.save_as(folder / "report.dcm")
    localizer = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    localizer.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]       # coronal: a scout
    localizer.save_as(folder / "scout.dcm")
    (folder / "LICENSE").write_text("CC BY 4.0")
    assert cli_main(["predict", "--json", str(folder)]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert len(result["predictions"]) == 1 and result["errors"] == {}
    assert result["left_out"] == {str(folder / "LICENSE"): "not a DICOM file",
                                  str(folder / "report.dcm"): "no pixel data (non-image object)",
                                  str(folder / "scout.dcm"): "non-axial orientation"}
    assert "error" not in captured.err and "left out 3 files" in captured.err

    empty = tmp_path / "docs"
    empty.mkdir()
    (empty / "LICENSE").write_text("CC BY 4.0")
    assert cli_main(["predict", str(empty)]) == 2
    assert f"error: {empty}: the folder holds no CT image slice (not a DICOM file: 1)" in capsys.readouterr().err


def bad_checkpoint(tmp_path, name, edit=None, weights="copy") -> Path:
    from ctdegradbench.model import default_checkpoint

    src, folder = default_checkpoint(), tmp_path / name
    folder.mkdir()
    config = json.loads((src / "config.json").read_text())
    text = edit(config) if edit else None
    (folder / "config.json").write_text(text if isinstance(text, str) else json.dumps(config))
    data = (src / "model.safetensors").read_bytes()
    if weights is not None:
        (folder / "model.safetensors").write_bytes({"copy": data, "truncated": data[:len(data) // 2],
                                                    "garbage": b"\x00garbage" * 100}[weights])
    return folder


def _set(key, value):
    def edit(config):
        config[key] = value
    return edit


def _five_labels(config):
    config["id2label"] = {i: config["id2label"][i] for i in list(config["id2label"])[:5]}
    config.pop("label2id")
    if config.get("metal_gate_labels"):      # still classes of the config: only the weights disagree
        config["metal_gate_labels"] = [n for n in config["metal_gate_labels"] if n in config["id2label"].values()]


BAD_CHECKPOINTS = {
    "truncated": (dict(weights="truncated"), "model.safetensors: not a complete safetensors file"),
    "garbage": (dict(weights="garbage"), "model.safetensors: not a complete safetensors file"),
    "no-weights": (dict(weights=None), "model.safetensors is missing"),
    "bad-json": (dict(edit=lambda c: "{not json"), "config.json: not a readable JSON file"),
    "json-list": (dict(edit=lambda c: "[1, 2]"), "config.json: expected a JSON object"),
    "wrong-type": (dict(edit=_set("fusion_dim", "big")), "config.json: ValueError"),
    "dimension": (dict(edit=_set("fusion_dim", 64)), "tensor shapes do not fit"),
    "five-labels": (dict(edit=_five_labels), "tensor shapes do not fit"),
    "backbone": (dict(edit=_set("backbone", "resnet9000")), "backbone must be one of"),
    "other-model": (dict(edit=_set("model_type", "bert")), "model_type is 'bert', expected 'sespect'"),
}


@pytest.mark.parametrize("case", list(BAD_CHECKPOINTS))
def test_a_bad_checkpoint_is_one_line_naming_the_file(case, tmp_path, capsys):
    np.save(tmp_path / "good.npy", body())
    kwargs, message = BAD_CHECKPOINTS[case]
    folder = bad_checkpoint(tmp_path, case, **kwargs)
    assert cli_main(["predict", str(tmp_path / "good.npy"), "--model", str(folder)]) == 2
    line = one_error_line(capsys)
    assert str(folder) in line and message in line, line


# ------------------------------------------------------------------ evaluate / train inputs
def write_export_without(tmp_path, column=None) -> Path:
    """A folder shaped like an export whose ``all`` config lacks ``column`` (no data files with None)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "export"
    (folder / "data" / "single_noise").mkdir(parents=True)
    (folder / "README.md").write_text("---\nconfigs:\n- config_name: all\n  data_files:\n  - split: test\n"
                                      "    path: data/single_noise/test-*.parquet\n---\n")
    if column is not None:
        columns = {"image": [np.zeros((4, 4), np.float32).tolist()], "label": [0], "level": [1],
                   "setting": ["S1"], "patient_key": ["p"], "reference_id": ["r"]}
        columns.pop(column)
        pq.write_table(pa.table(columns), folder / "data" / "single_noise" / "test-00000-of-00001.parquet")
    return folder


def write_export_with_splits(folder: Path, rows: dict[str, int], counted: dict[str, int] | None = None,
                             config: str = "all") -> Path:
    """A folder shaped like an export whose ``config`` has ``rows[split]`` rows in each split
    (files only for those), its card counting ``counted`` (default: the same) per split."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "data" / config).mkdir(parents=True)
    files = "".join(f"  - split: {split}\n    path: data/{config}/{split}-*.parquet\n" for split in rows)
    counts = "".join(f"  - name: {split}\n    num_examples: {n}\n" for split, n in (counted or rows).items())
    (folder / "README.md").write_text(f"---\nconfigs:\n- config_name: {config}\n  data_files:\n{files}"
                                      f"dataset_info:\n- config_name: {config}\n  splits:\n{counts}---\n")
    for split, n in rows.items():
        table = pa.table({"label": list(range(n)), "patient_key": [f"{folder.name}/{split}"] * n})
        pq.write_table(table, folder / "data" / config / f"{split}-00000-of-00001.parquet")
    return folder


def test_a_split_that_one_of_several_exports_lacks_adds_no_rows(tmp_path):
    """A one-patient export has only a train split: beside a full build it adds no validation rows
    (train / evaluate on several folders); a split its card counts but whose files are gone, a
    folder without the config, and a split no folder holds are one-line errors."""
    from ctdegradbench.builder.dataset.reader import load_many

    full = write_export_with_splits(tmp_path / "full", {"train": 3, "validation": 2})
    one_patient = write_export_with_splits(tmp_path / "one", {"train": 4})
    assert len(load_many([full, one_patient], "all", "train")[0]) == 7
    ds, parts = load_many([full, one_patient], "all", "validation")
    assert len(ds) == 2 and len(parts) == 1 and set(ds["patient_key"]) == {"full/validation"}
    with pytest.raises(InputError, match="holds no readable 'all' data .no 'test' files"):
        load_many([full, one_patient], "all", "test")
    lost = write_export_with_splits(tmp_path / "lost", {"train": 4}, counted={"train": 4, "validation": 5})
    with pytest.raises(InputError, match=r"lost: its card counts 5 rows in split 'validation' of config 'all' but "
                                         "it holds no files of them"):
        load_many([full, lost], "all", "validation")
    other = write_export_with_splits(tmp_path / "other", {"train": 1}, config="single_noise")
    with pytest.raises(InputError, match="config 'all' is not in .*other"):
        load_many([full, other], "all", "validation")


@pytest.mark.parametrize("command", ["evaluate", "train"])
def test_an_empty_or_unlabelled_export_is_one_line(command, tmp_path, capsys):
    out = ["--out", str(tmp_path / ("eval.json" if command == "evaluate" else "model"))]
    empty = write_export_without(tmp_path)
    assert cli_main([command, "--dataset", str(empty), *out]) == 2
    assert "holds no readable 'all' data" in one_error_line(capsys)
    if command == "evaluate":
        shutil.rmtree(empty)
        unlabelled = write_export_without(tmp_path, "label")
        assert cli_main([command, "--dataset", str(unlabelled), *out]) == 2
        assert "lacks the column(s) label" in one_error_line(capsys)


# ------------------------------------------------------------------- fast command line
@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["predict", "--help"], ["build", "--image-size", "10"],
                                  ["bench", "iqa", "--dataset", ".", "--out", "o", "--batch-size", "0"]])
def test_version_help_and_bad_options_answer_without_torch(argv, tmp_path):
    code = ("import sys, ct_degradbench\ntry:\n    rc = ct_degradbench.main(sys.argv[1:])\n"
            "except SystemExit as exc:\n    rc = exc.code\n"
            "print('RESULT', rc, *sorted(m for m in ('torch', 'datasets', 'transformers', 'scipy') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    result = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
    assert result and result[0].split()[2:] == [], done
    assert result[0].split()[1] in ("0", "2"), done


# ----------------------------------------------------------------------- verify
@pytest.fixture(scope="module")
def export(source, tmp_path_factory) -> Path:
    from ctdegradbench.builder.dataset.build import build_dataset
    from ctdegradbench.builder.dataset.options import BuildOptions
    from ctdegradbench.builder.sources import SourceOptions

    out = tmp_path_factory.mktemp("export") / "bench"
    build_dataset(BuildOptions(out=out, configs=("single_noise", "mixture_m3"), allow_uncalibrated_grid=True,
                               source=SourceOptions(sources=(str(source),), image_size=IMAGE_SIZE)))
    return out


def tampered(export: Path, tmp_path: Path, config: str, change, rewrite_manifest: bool) -> tuple[Path, str]:
    """A copy of ``export`` whose first ``config`` Parquet file went through ``change(table) -> table``."""
    import pyarrow.parquet as pq

    from ctdegradbench.builder.dataset.export import MANIFEST, ExportSummary, write_manifest

    copy = tmp_path / "bench"
    shutil.copytree(export, copy)
    path = sorted((copy / "data" / config).glob("*.parquet"))[0]
    pq.write_table(change(pq.read_table(path)), path)
    if rewrite_manifest:                          # a tamperer who also rewrites the manifest
        manifest = json.loads((copy / MANIFEST).read_text())
        summary = ExportSummary(copy)
        for rel, entry in manifest["files"].items():
            if "rows" in entry:
                summary.files.setdefault(entry["config"], {}).setdefault(entry["split"], []).append(rel)
        write_manifest(copy, summary)
    return copy, str(path.relative_to(copy))


def swap_images(table, i=0, j=3):
    import pyarrow as pa

    images = table.column("image").to_pylist()
    images[i], images[j] = images[j], images[i]
    return table.set_column(table.schema.get_field_index("image"), table.schema.field("image"),
                            pa.array(images, type=table.schema.field("image").type))


def test_verify_report_says_what_it_proves_and_how_many_rows_it_replayed(export):
    from ctdegradbench.builder.dataset.verify import verify_folder

    report = verify_folder(export)
    assert report.ok, report.text()
    text = report.text()
    assert "each present exactly once" in text and "against the card's num_examples" in text
    assert f"for the {report.replayed} of {report.rows} degraded images replayed" in text
    assert "unless the manifest was rewritten" in text


def test_an_edited_unsampled_row_is_named_by_its_hash(export, tmp_path):
    from ctdegradbench.builder.dataset.verify import verify_folder

    def brighter_row_2(table):
        import pyarrow as pa

        images = table.column("image").to_pylist()
        images[2] = (np.asarray(images[2]) + 1).tolist()
        return table.set_column(table.schema.get_field_index("image"), table.schema.field("image"),
                                pa.array(images, type=table.schema.field("image").type))

    copy, rel = tampered(export, tmp_path, "single_noise", brighter_row_2, rewrite_manifest=False)
    report = verify_folder(copy, n_samples=0)                 # nothing replayed
    named = [p.where for p in report.problems if p.what == "row content changed since export"]
    assert len(named) == 1 and named[0].startswith(f"{rel} row 2 ("), report.text()


def test_swapped_images_are_named_and_caught_by_the_replay_when_the_manifest_is_rewritten(export, tmp_path):
    from ctdegradbench.builder.dataset.verify import verify_folder

    copy, rel = tampered(export, tmp_path, "single_noise", swap_images, rewrite_manifest=False)
    named = {p.where.split(" (")[0] for p in verify_folder(copy, n_samples=0).problems
             if p.what == "row content changed since export"}
    assert named == {f"{rel} row 0", f"{rel} row 3"}
    shutil.rmtree(copy)
    copy, rel = tampered(export, tmp_path, "single_noise", swap_images, rewrite_manifest=True)
    assert verify_folder(copy, n_samples=0).ok                 # what a rewritten manifest hides ...
    report = verify_folder(copy, replay_all=True)              # ... the replay of every row finds
    differ = {p.where.split(" (")[0] for p in report.problems if "differ from the replay" in p.what}
    assert differ == {f"{rel} row 0", f"{rel} row 3"}, report.text()
    assert report.replayed == report.rows


@pytest.mark.parametrize("change, message", [
    (lambda t: t.slice(1), "is missing (no row)"),
    (lambda t: __import__("pyarrow").concat_tables([t, t.slice(0, 1)]), "appears 2 times"),
])
def test_a_dropped_or_repeated_row_is_found_with_a_rewritten_manifest(change, message, export, tmp_path):
    from ctdegradbench.builder.dataset.verify import verify_folder

    copy, _ = tampered(export, tmp_path, "single_noise", change, rewrite_manifest=True)
    report = verify_folder(copy, n_samples=0)
    assert any(message in p.what for p in report.problems), report.text()
    assert any("but the card's num_examples is" in p.what for p in report.problems), report.text()


def test_verify_all_prints_its_time_estimate_first(export, capsys):
    assert cli_main(["verify", str(export), "--all"]) == 0
    captured = capsys.readouterr()
    assert "replaying 24 images of 3 references: about" in captured.err
    assert "24 images re-simulated" in captured.out


# ------------------------------------------------------------------ verify --all, per reference slice
def test_replay_many_gives_the_images_of_replay_one_at_a_time(export):
    """All of a reference's rows (both configs, every level) from one prepared state equal the
    one-at-a-time replay and the stored images."""
    from ctdegradbench.builder.dataset.features import row_to_metadata
    from ctdegradbench.builder.dataset.reader import ExportedFolder
    from ctdegradbench.builder.dataset.verify import _decoded_rows, reference_from_row
    from ctdegradbench.builder.simulate.config import SimulationConfig
    from ctdegradbench.builder.simulate.simulator import Simulator

    folder = ExportedFolder(export)
    reference = reference_from_row(_decoded_rows(folder.reference_files()[0])[0])
    rows = [row for config in folder.setting_configs() for paths in folder.files[config].values() for path in paths
            for row in _decoded_rows(path) if row["reference_id"] == reference.reference_id]
    metas = [row_to_metadata(row) for row in rows]
    assert len({m["setting"] for m in metas}) == 2 and len(metas) == 8
    simulator = Simulator(SimulationConfig(**dict(metas[0]["config"], backend=metas[0]["backend"])))
    prepared = simulator.prepare(reference)
    many = simulator.replay_many(prepared, metas)
    for image, meta, row in zip(many, metas, rows):
        assert np.array_equal(image, simulator.replay(prepared, meta)), meta["sample_id"]
        assert np.array_equal(image, np.asarray(row["image"], dtype=np.int16)), meta["sample_id"]


def test_verify_all_on_two_processes_finds_a_changed_pixel_the_default_sampling_skips(export, tmp_path, capsys):
    from ctdegradbench.builder.dataset.reader import ExportedFolder
    from ctdegradbench.builder.dataset.verify import VerifyReport, check_rows, choose_replays

    folder = ExportedFolder(export)
    parquet = {rel: e for rel, e in folder.manifest["files"].items() if "rows" in e}
    _, _, samples = check_rows(export, parquet, VerifyReport(export))
    chosen = {(rel, index) for rel, index, *_ in choose_replays(samples, None, False, 0)}
    first = str(sorted((export / "data" / "single_noise").glob("*.parquet"))[0].relative_to(export))
    row = next(index for rel, index, *_ in samples if rel == first and (rel, index) not in chosen)

    def one_pixel(table):
        import pyarrow as pa

        images = table.column("image").to_pylist()
        images[row][3][5] += 1
        return table.set_column(table.schema.get_field_index("image"), table.schema.field("image"),
                                pa.array(images, type=table.schema.field("image").type))

    copy, rel = tampered(export, tmp_path, "single_noise", one_pixel, rewrite_manifest=True)
    assert rel == first
    assert cli_main(["verify", str(copy)]) == 0                   # the default sampling misses it
    capsys.readouterr()
    assert cli_main(["verify", str(copy), "--all", "--num-proc", "2"]) == 1
    out = capsys.readouterr()
    assert "replaying 24 images of 3 references: about" in out.err
    assert f"{rel} row {row} (" in out.out and "1 pixels differ from the replay, max |difference| 1 HU" in out.out
    assert "24 images re-simulated" in out.out and "2 process(es)" in out.out


def test_verify_num_proc_zero_is_one_line(export, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["verify", str(export), "--num-proc", "0"])
    assert exit_.value.code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--num-proc" in line and "got 0" in line, line


# ------------------------------------------------------------------ the one reader of an export
def test_exported_folder_reads_card_rows_references_and_the_join(export, caplog):
    import logging

    from ctdegradbench.builder.dataset.reader import ExportedFolder

    folder = ExportedFolder(export)
    assert {"single_noise", "mixture_m3", "references", "all"} <= set(folder.configs)
    assert folder.setting_configs() == ["single_noise", "mixture_m3"]
    assert folder.manifest is not None and "README.md" in folder.manifest["files"]
    for split in folder.splits("single_noise"):
        rows = folder.rows("single_noise", split, columns=["sample_id", "reference_id", "image"])
        assert len(rows["sample_id"]) == folder.num_examples("single_noise", split)
        assert rows["image"].dtype == np.int16 and rows["image"].shape[1:] == (IMAGE_SIZE, IMAGE_SIZE)
        assert sum(len(b["sample_id"]) for b in folder.batches("single_noise", split, 2, ["sample_id"])) == \
            len(rows["sample_id"])
    refs = folder.references(set(rows["reference_id"]))
    with caplog.at_level(logging.INFO):
        pairs = folder.with_references("single_noise", split)
    assert "metadata block" not in caplog.text
    first = pairs[0]
    assert np.array_equal(first["image"], rows["image"][0])
    assert np.array_equal(first["reference"], refs[first["reference_id"]]["reference"])
    assert folder.features("single_noise", split)["label"].names[0] == "S1_noise"


def test_an_export_of_zero_row_files_or_null_labels_is_one_line(export, tmp_path, capsys):
    """What a user gets from an export whose Parquet files were emptied, or whose labels are null
    (the card still declares the column, so ``datasets`` fills it with None)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def null_label(table):
        labels = table.column("label").to_pylist()
        labels[0] = None
        return table.set_column(table.schema.get_field_index("label"), table.schema.field("label"),
                                pa.array(labels, type=table.schema.field("label").type))

    copy, _ = tampered(export, tmp_path / "null", "single_noise", null_label, rewrite_manifest=False)
    out = ["--out", str(tmp_path / "eval.json"), "--split", "test"]     # the first file: test
    assert cli_main(["evaluate", "--dataset", str(copy), *out]) == 2
    assert "rows without 'label' (1 of" in one_error_line(capsys)
    copy, _ = tampered(export, tmp_path / "empty", "single_noise", lambda table: table, False)
    for path in (copy / "data").rglob("*.parquet"):
        pq.write_table(pq.read_table(path).slice(0, 0), path)
    assert cli_main(["evaluate", "--dataset", str(copy), *out]) == 2
    assert "has no rows in split 'test'" in one_error_line(capsys)
