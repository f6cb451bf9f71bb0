"""Nothing of a user's is lost, verify proves what it says, errors come before work (issue 8).

A temporary folder stands in for the user's working directory in every case; each test checks
that nothing of the user's is touched.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ct_degradbench import main as cli_main
from ctdegradbench.core.errors import OptionError
from ctdegradbench.builder.dataset.build import build_dataset
from ctdegradbench.builder.dataset.export import MANIFEST, export_lock, write_manifest
from ctdegradbench.builder.dataset.options import BuildOptions
from ctdegradbench.builder.dataset.verify import verify_folder
from ctdegradbench.builder.simulate.config import SimulationConfig
from ctdegradbench.builder.simulate.simulator import Simulator
from ctdegradbench.builder.sources import SourceOptions
from ctdegradbench.builder.sources.phantoms import reference_phantom

IMAGE_SIZE = 64
PIXEL_MM = 2.0


@pytest.fixture(scope="module")
def source(nifti_body_source) -> Path:
    return nifti_body_source(3, 1, IMAGE_SIZE, PIXEL_MM)


def build_args(source, out, *extra) -> list[str]:
    return ["build", "--source", str(source), "--image-size", str(IMAGE_SIZE), "--allow-uncalibrated-grid",
            "--configs", "single_noise", "mixture_m3", "--out", str(out), *extra]


@pytest.fixture(scope="module")
def export(source, tmp_path_factory) -> Path:
    """A small export (two settings) built once; tests tamper with copies."""
    out = tmp_path_factory.mktemp("export") / "bench"
    build_dataset(BuildOptions(out=out, configs=("single_noise", "mixture_m3"), allow_uncalibrated_grid=True,
                               source=SourceOptions(sources=(str(source),), image_size=IMAGE_SIZE)))
    return out


def user_files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its content."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(capsys) -> str:
    """The error line the command ended with (progress bars may precede it on stderr; no traceback)."""
    err = capsys.readouterr().err.strip()
    last = err.splitlines()[-1]
    assert last.startswith("ct-degradbench: error:") and "Traceback" not in err, err
    return last


# ---------------------------------------------------------------- data loss
def test_overwrite_refuses_the_current_directory(source, tmp_path, monkeypatch, capsys):
    work = tmp_path / "project"
    (work / "src").mkdir(parents=True)
    (work / "src" / "main.py").write_text("print('mine')")
    (work / "keep.txt").write_text("keep")
    before = user_files(work)
    monkeypatch.chdir(work)
    for out in (str(work), "."):
        assert cli_main(build_args(source, out, "--overwrite")) == 2
        assert "current directory" in one_error_line(capsys)
    assert user_files(work) == before
    assert sorted(p.name for p in work.parent.iterdir()) == ["project"]   # no ..partial, no ..cache


@pytest.mark.parametrize("where", ["ancestor", "home", "root"])
def test_overwrite_refuses_ancestors_home_and_root(where, source, tmp_path, monkeypatch, capsys):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    out = {"ancestor": tmp_path / "a", "home": tmp_path / "home", "root": Path("/")}[where]
    assert cli_main(build_args(source, out, "--overwrite")) == 2
    assert {"ancestor": "holds the current directory", "home": "home folder",
            "root": "file-system root"}[where] in one_error_line(capsys)


def test_overwrite_refuses_a_folder_that_is_not_an_export(source, tmp_path, capsys):
    folder = tmp_path / "some-folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("notes")
    (folder / "sub" / "thesis.tex").write_text("\\documentclass{article}")
    before = user_files(folder)
    assert cli_main(build_args(source, folder, "--overwrite")) == 2
    assert "not a CT-DegradBench export" in one_error_line(capsys)
    assert user_files(folder) == before


def test_overwrite_refuses_an_export_holding_a_users_file(export, source, tmp_path, capsys):
    copy = tmp_path / "bench"
    shutil.copytree(export, copy)
    (copy / "my-notes.txt").write_text("mine")
    assert cli_main(build_args(source, copy, "--overwrite")) == 2
    assert "my-notes.txt" in one_error_line(capsys)
    assert (copy / "my-notes.txt").read_text() == "mine"


def test_overwrite_replaces_an_export_of_ours_and_an_empty_folder(export, source, tmp_path, capsys):
    copy = tmp_path / "bench"
    shutil.copytree(export, copy)
    assert cli_main(build_args(source, copy, "--overwrite", "--seed", "3")) == 0
    assert verify_folder(copy, n_samples=0).ok
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli_main(build_args(source, empty, "--overwrite")) == 0
    assert (empty / MANIFEST).is_file()


def test_a_second_build_to_the_same_output_is_refused(source, tmp_path, capsys):
    out = tmp_path / "bench"
    with export_lock(out):     # a build in progress (this process holds the lock)
        partial = tmp_path / ".bench.partial"
        partial.mkdir()
        (partial / ".incomplete").write_text("export in progress\n")
        assert cli_main(build_args(source, out)) == 2
        assert "another build is writing" in one_error_line(capsys)
        assert (partial / ".incomplete").is_file()           # the first build's work is untouched


# ------------------------------------------------------------------- verify
def copy_of(export: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "bench"
    shutil.copytree(export, copy)
    return copy


def rewrite_column(path: Path, column: str, change) -> None:
    """Rewrite one Parquet file with ``change(values)`` applied to ``column``."""
    table = pq.read_table(path)
    values = change(table.column(column).to_pylist())
    index = table.schema.get_field_index(column)
    table = table.set_column(index, table.schema.field(column), pa.array(values, type=table.schema.field(column).type))
    pq.write_table(table, path)


def first_parquet(folder: Path, config: str) -> Path:
    return sorted((folder / "data" / config).glob("*.parquet"))[0]


def test_verify_passes_an_untouched_export(export):
    report = verify_folder(export)
    assert report.ok, report.text()


def test_a_changed_pixel_block_is_found_without_replaying_it(export, tmp_path):
    copy = copy_of(export, tmp_path)
    path = first_parquet(copy, "single_noise")

    def plus_50(images):
        images[0] = [[v + 50 if 10 <= r < 13 and 10 <= c < 13 else v for c, v in enumerate(row)]
                     for r, row in enumerate(images[0])]
        return images

    rewrite_column(path, "image", plus_50)
    report = verify_folder(copy, n_samples=0)          # no image replayed at all
    assert not report.ok
    assert any(p.where == str(path.relative_to(copy)) and "changed since export" in p.what for p in report.problems)


def test_an_edited_level_or_prompt_is_found_even_with_a_rewritten_manifest(export, tmp_path):
    from ctdegradbench.builder.dataset.export import ExportSummary

    copy = copy_of(export, tmp_path)
    path = first_parquet(copy, "mixture_m3")
    rewrite_column(path, "level", lambda levels: [3 if i == 0 else lv for i, lv in enumerate(levels)])
    rewrite_column(path, "prompt", lambda prompts: [p + " (edited)" if i == 1 else p for i, p in enumerate(prompts)])
    manifest = __import__("json").loads((copy / MANIFEST).read_text())
    summary = ExportSummary(copy)
    for rel, entry in manifest["files"].items():       # a tamperer who also rewrites the manifest
        if "rows" in entry:
            summary.files.setdefault(entry["config"], {}).setdefault(entry["split"], []).append(rel)
    write_manifest(copy, summary)
    report = verify_folder(copy, n_samples=0)
    where = str(path.relative_to(copy))
    problems = [p for p in report.problems if p.where.startswith(where)]
    assert any(p.where.startswith(f"{where} row 0") and "mixture draw" in p.what for p in problems), report.text()
    assert any(p.where.startswith(f"{where} row 1") and "prompt" in p.what for p in problems), report.text()


def test_zeroed_clean_fbp_is_found_by_the_reference_replay(export, tmp_path):
    copy = copy_of(export, tmp_path)
    path = first_parquet(copy, "references")
    rewrite_column(path, "clean_fbp", lambda images: [np.zeros_like(np.asarray(images[0])).tolist()] + images[1:])
    report = verify_folder(copy, n_samples=0)
    assert any(p.where.startswith(f"{path.relative_to(copy)} row 0") and "pixels differ" in p.what
               for p in report.problems), report.text()


def test_a_deleted_file_or_config_folder_is_found(export, tmp_path, capsys):
    copy = copy_of(export, tmp_path)
    first_parquet(copy, "single_noise").unlink()
    shutil.rmtree(copy / "data" / "mixture_m3")
    assert cli_main(["verify", str(copy), "--samples", "0"]) == 1
    out = capsys.readouterr().out
    assert "listed in the manifest but missing" in out and "data/mixture_m3" in out
    assert "match no file" in out and "FAILED" in out


def test_samples_cover_every_config_and_level(export):
    report = verify_folder(export, n_samples=8)
    assert any("8 images re-simulated over 8 (config, level) strata, 8 identical" in line for line in report.checked)


# ---------------------------------------------------------- errors before work
@pytest.mark.parametrize("flags, message", [
    (["--device", "tpu9"], "--device"),
    (["--device", "cuda"], "no CUDA GPU") if not __import__("torch").cuda.is_available() else
    (["--device", "cuda:99"], "CUDA device"),
    (["--metal-material", "unobtanium"], "--metal-material"),
    (["--dose-fraction", "0"], "--dose-fraction"),
])
def test_bad_options_fail_before_any_work(flags, message, source, tmp_path, capsys):
    out = tmp_path / "bench"
    try:
        code = cli_main(build_args(source, out, *flags))
    except SystemExit as exc:       # argparse's own check of a choice: usage, then one error line
        code = exc.code
    assert code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error:" in last and message in last
    assert list(tmp_path.iterdir()) == []              # no output, no partial folder, no hidden cache


def test_a_missing_source_is_reported_before_torch_is_imported(tmp_path):
    code = ("import sys, ct_degradbench; rc = ct_degradbench.main(['build', '--source', '/no/such/ct']); "
            "print(rc, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.stdout.split() == ["2", "False"], done
    assert "/no/such/ct" in done.stderr


def test_a_full_disk_is_one_line_and_leaves_nothing(source, tmp_path, monkeypatch, capsys):
    import ctdegradbench.builder.dataset.export as export_module

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "bench"))

    monkeypatch.setattr(export_module.pq, "write_table", full)
    assert cli_main(build_args(source, tmp_path / "bench")) == 2
    assert "the disk is full" in one_error_line(capsys)
    assert not (tmp_path / "bench").exists() and not (tmp_path / ".bench.partial").exists()


def test_unwritable_preview_and_figure_are_one_line(tmp_path, monkeypatch, capsys):
    from matplotlib.figure import Figure

    def read_only(self, path, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(Figure, "savefig", read_only)
    assert cli_main(["sources", "--preview", str(tmp_path / "p.png"), "--image-size", "128"]) == 2
    assert "cannot write the figure" in one_error_line(capsys) and not (tmp_path / "p.png").exists()


def test_figure_and_preview_print_the_path_they_wrote(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "figs").mkdir()
    assert cli_main(["figure", "--out", "figs", "--image-size", "128"]) == 0
    assert capsys.readouterr().out.strip() == "figure written to figs/figure4.png"
    assert (tmp_path / "figs" / "figure4.png").is_file()
    assert cli_main(["sources", "--preview", "prev", "--image-size", "128"]) == 0
    assert capsys.readouterr().out.strip().endswith("preview written to prev.png")
    assert (tmp_path / "prev.png").is_file()


def test_ctrl_c_with_workers_is_one_clean_line(nifti_body_source, tmp_path):
    """SIGINT to the whole process group, as a terminal's Ctrl-C: the workers stay quiet. Three
    slices per split, so that each split has several shards and really runs in the workers."""
    source = nifti_body_source(3, 3, IMAGE_SIZE, PIXEL_MM)
    command = [sys.executable, "-c", "import ct_degradbench, sys; sys.exit(ct_degradbench.main(sys.argv[1:]))",
               *build_args(source, tmp_path / "bench", "--num-proc", "2")]
    # start_new_session: its own process group, as a terminal's foreground job; SIGINT reset to
    # its default there, since a test runner started in the background inherits it ignored
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    cache = tmp_path / ".bench.cache"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and not any(cache.rglob("*.arrow")):
        time.sleep(0.2)           # wait until the workers are generating
    if process.poll() is not None:
        pytest.skip("the build finished before it could be interrupted")
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "KeyboardInterrupt" not in err and "TimeoutError" not in err, err     # no worker or pool traceback
    assert err.strip().splitlines()[-1].startswith("ct-degradbench: interrupted; no partial output was left")
    assert not (tmp_path / "bench").exists()


LEAKED_SEMAPHORES = """
import multiprocessing, os, sys
from ctdegradbench.core.interrupts import quiet_resource_tracker

if __name__ == "__main__":
    if sys.argv[1] == "quiet":
        quiet_resource_tracker()                # as ct_degradbench.main does first
    context = multiprocessing.get_context("spawn")
    semaphores = [context.Lock(), context.Semaphore(2)]   # registered with the resource tracker
    os._exit(130)                               # as a pool stopped by Ctrl-C: never released
"""


@pytest.mark.parametrize("quiet", [False, True])
def test_the_resource_trackers_leak_notice_stays_off_stderr(quiet, tmp_path):
    """The one line after Ctrl-C is the last line: the resource tracker still removes the semaphores a
    stopped pool leaves, but its notice about them (printed at its own exit, after that line) is
    filtered; without the filter the notice is there (the test can fail)."""
    script = tmp_path / "leak.py"
    script.write_text(LEAKED_SEMAPHORES)
    done = subprocess.run([sys.executable, str(script), "quiet" if quiet else "loud"], capture_output=True, text=True,
                          timeout=60)      # returns when the tracker, which holds stderr too, has exited
    notice = "leaked semaphore" in done.stderr
    assert notice is not quiet, done.stderr


HANGING_UNWIND = """
import multiprocessing, shutil, signal, sys, time
from ctdegradbench.core.interrupts import bounded_interrupt, report_interrupted

def stuck_worker():
    signal.signal(signal.SIGINT, signal.SIG_IGN)      # as the build's workers: deaf to Ctrl-C
    time.sleep(600)

if __name__ == "__main__":
    partial = sys.argv[1]
    worker = multiprocessing.Process(target=stuck_worker)   # not a daemon: joined, forever
    try:                       # as ct_degradbench.main
        with bounded_interrupt(lambda: shutil.rmtree(partial), grace_s=float(sys.argv[2])):
            worker.start()
            try:
                print(worker.pid, flush=True)
                time.sleep(600)
            finally:
                worker.join()  # the unwinding that never ends (a pool that never joins)
    except KeyboardInterrupt:
        sys.exit(report_interrupted())
"""


def test_ctrl_c_ends_a_build_whose_unwinding_hangs(tmp_path):
    """A worker that ignores Ctrl-C and is joined forever (the build once stayed alive for hours
    after Ctrl-C): after the grace period the watchdog stops it, removes the partial output,
    prints the one interrupted line and exits with 130."""
    partial = tmp_path / ".bench.partial"
    partial.mkdir()
    (partial / "data.parquet").write_text("half written")
    process = subprocess.Popen([sys.executable, "-c", HANGING_UNWIND, str(partial), "2"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    worker = int(process.stdout.readline())
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)       # without the watchdog: a hang, and this times out
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("ct-degradbench: interrupted; no partial output"), err
    assert not partial.exists()
    state = Path(f"/proc/{worker}/status")
    assert not state.exists() or "zombie" in state.read_text(), "the stuck worker was left running"


# ------------------------------------------------------ wrong data accepted
def test_spacing_only_nifti_affine_is_refused_without_axes(tmp_path, capsys):
    import nibabel as nib

    from ctdegradbench.builder.sources.phantoms import body_volume

    folder = tmp_path / "ct"
    folder.mkdir()
    nib.save(nib.Nifti1Image(body_volume(0, 1, IMAGE_SIZE), np.diag([PIXEL_MM, PIXEL_MM, 3.0, 1.0])),
             str(folder / "p.nii.gz"))
    assert cli_main(["sources", "--source", str(folder), "--preview", str(tmp_path / "a.png")]) == 2
    err = one_error_line(capsys)
    assert "voxel spacing only" in err and "--nifti-axes" in err
    assert cli_main(["sources", "--source", str(folder), "--nifti-axes", "LPS", "--image-size", "64",
                     "--preview", str(tmp_path / "b.png")]) == 0


def test_one_patient_build_says_which_splits_are_empty(nifti_body_source, tmp_path, capsys):
    source = nifti_body_source(1, 1, IMAGE_SIZE, PIXEL_MM)
    assert cli_main(["build", "--source", str(source), "--image-size", str(IMAGE_SIZE), "--configs", "single_blur",
                     "--allow-uncalibrated-grid", "--out", str(tmp_path / "bench")]) == 0
    assert "note: the validation and test splits are empty" in capsys.readouterr().out


def test_python_api_rejects_empty_requests_and_accepts_one_setting():
    simulator = Simulator(SimulationConfig())
    reference = reference_phantom(IMAGE_SIZE, PIXEL_MM)
    assert [s.setting for s in simulator.run(reference, settings="S1", levels=0)] == ["S1"]
    for kwargs in ({"settings": []}, {"levels": ()}):
        with pytest.raises(OptionError, match="at least one"):
            simulator.run(reference, **kwargs)
    if not __import__("torch").cuda.is_available():
        with pytest.raises(OptionError, match="no CUDA GPU"):
            SimulationConfig(device="cuda")


def test_grids_coarser_than_the_calibration_are_refused_before_simulating(source, nifti_body_source, tmp_path,
                                                                          capsys):
    """--image-size 64, or pixels above 1 mm, would make the severity levels lose their meaning."""
    assert cli_main(["build", "--source", str(source), "--image-size", "64", "--out", str(tmp_path / "a")]) == 2
    assert "image size 64 px is below 256 px" in one_error_line(capsys)
    wide = nifti_body_source(1, 1, 64, 6.0)              # a 384 mm field of view: 1.5 mm pixels at 256 px
    assert cli_main(["build", "--source", str(wide), "--image-size", "256", "--out", str(tmp_path / "b")]) == 2
    assert "pixel spacing 1.5 mm is above 1 mm" in one_error_line(capsys)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
