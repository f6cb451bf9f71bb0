"""``ct-degradbench app``: the demo's work (no browser) and the page driven in headless Chromium.

The browser tests need the ``[app]`` extra (Gradio, Playwright) and a Chromium binary (Debian's
``chromium`` package; nothing is downloaded at run time); they are skipped, with the reason, when
one is missing. Each tab's screenshot is saved in the test's tmp folder and, when the environment
variable ``CTDB_APP_SCREENSHOTS`` names a folder, copied there.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from ctdegradbench.core.errors import InputError, OptionError

CHROMIUM = os.environ.get("CTDB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 240_000          # a loaded CI machine: first model load + default CT + simulation
DEMO_SIZE = 128               # grid of the Degrade tab in the tests (px)
CHEST_FILE = "CT_small.dcm"   # default reference slice the browser uploads (128 x 128 chest CT)


def default_file(name: str) -> Path:
    from ctdegradbench.builder.sources import default_source_paths

    return next(p for p in default_source_paths() if p.name == name)


# ------------------------------------------------------------------------------ without a browser
def test_window_maps_its_bounds_to_black_and_white():
    from ctdegradbench.model.app.core import WINDOWS, window_image

    for name, (low, high) in WINDOWS.items():
        out = window_image(np.array([[low - 100, low, (low + high) / 2, high, high + 100]]), name)
        assert out.dtype == np.uint8 and out.tolist() == [[0, 0, 128, 255, 255]], name
    with pytest.raises(OptionError, match="unknown window 'brain'"):
        window_image(np.zeros((2, 2)), "brain")


def test_text_upload_is_one_input_error(tmp_path):
    from ctdegradbench.model.app.core import read_upload

    bad = tmp_path / "notes.txt"
    bad.write_text("not a CT\n")
    with pytest.raises(InputError) as info:
        read_upload([bad])
    message = str(info.value)
    assert "\n" not in message and message.startswith("notes.txt: not readable as CT") and str(tmp_path) not in message


def test_dicom_upload_keeps_the_header_spacing():
    import pydicom

    from ctdegradbench.model.app.core import read_upload

    path = default_file(CHEST_FILE)
    (s,) = read_upload([path])
    header = float(pydicom.dcmread(path, stop_before_pixels=True).PixelSpacing[0])
    assert s.name == CHEST_FILE and s.hu.shape[0] == s.hu.shape[1]
    assert s.pixel_spacing_mm == pytest.approx(header, rel=1e-6)


def test_zipped_series_reads_as_the_file_itself(tmp_path):
    import zipfile

    from ctdegradbench.model.app.core import read_upload

    path = default_file(CHEST_FILE)
    with zipfile.ZipFile(tmp_path / "series.zip", "w") as zf:
        zf.write(path, f"series/{path.name}")
    (direct,), (zipped,) = read_upload([path]), read_upload([tmp_path / "series.zip"])
    np.testing.assert_array_equal(zipped.hu, direct.hu)
    assert zipped.pixel_spacing_mm == direct.pixel_spacing_mm


def test_uploaded_slice_keeps_its_field_of_view(tmp_path):
    """Resampling an upload to the demo grid keeps the field of view: N x spacing is unchanged (mm)."""
    from ctdegradbench.model.app.core import read_upload, uploaded_reference

    np.save(tmp_path / "slice.npy", np.full((100, 80), 40.0, dtype=np.float32))
    (unknown,) = read_upload([tmp_path / "slice.npy"])
    assert unknown.hu.shape == (100, 100) and unknown.pixel_spacing_mm is None
    with pytest.raises(InputError, match="pixel spacing unknown"):
        uploaded_reference(unknown, DEMO_SIZE)
    (s,) = read_upload([tmp_path / "slice.npy"], pixel_spacing_mm=0.8)
    ref = uploaded_reference(s, DEMO_SIZE)
    assert ref.image_size == DEMO_SIZE
    assert ref.image_size * ref.pixel_spacing_mm == pytest.approx(100 * 0.8, rel=1e-9)
    with pytest.raises(InputError, match="expected a positive number"):
        read_upload([tmp_path / "slice.npy"], pixel_spacing_mm=-1)


def test_answer_text_shows_the_status_when_there_is_no_class():
    from ctdegradbench.model.app.core import answer_text

    assert answer_text({"status": "no_body", "label": None, "severity": None}) == "no answer: no_body"
    assert answer_text({"status": "ok", "label": "clean", "severity": None, "level": None}) == "clean"
    assert answer_text({"status": "ok", "label": "S1_noise", "severity": 1.26, "level": 1}) == \
        "S1_noise, severity 1.26 (L1)"


def test_row_png_reads_back_as_the_degraded_hu(tmp_path):
    """The downloaded PNG is the degraded image exactly (HU + 1024), readable by ``predict``."""
    from ctdegradbench.model.app.core import default_references, degrade, write_row
    from ctdegradbench.model.predict import read_slices

    ref = default_references(DEMO_SIZE)[4]
    row = degrade(ref, "S1", 2)
    json_path, png_path = write_row(row, tmp_path)
    record = json.loads(json_path.read_text())
    assert record["sample_id"] == row["sample_id"] and record["metadata"]["level"] == 2
    (back,) = read_slices(png_path)
    np.testing.assert_array_equal(back.hu, row["degraded_hu"].astype(np.float32))


def test_noise_difference_grows_with_level():
    """S1 (photon noise): the SD of degraded - clean FBP rises from L0 to L3 (lower dose each level)."""
    from ctdegradbench.model.app.core import default_references, degrade

    ref = default_references(DEMO_SIZE)[4]
    sd = [float(np.std(degrade(ref, "S1", level)["difference_hu"])) for level in range(4)]
    assert all(a < b for a, b in zip(sd, sd[1:])), sd


def test_space_writer_never_overwrites(tmp_path):
    from ctdegradbench.model.app.space import package_requirement, write_space

    written = write_space(tmp_path / "space")
    assert sorted(p.name for p in written) == ["README.md", "app.py", "requirements.txt"]
    assert (tmp_path / "space" / "requirements.txt").read_text().strip() == package_requirement()
    compile((tmp_path / "space" / "app.py").read_text(), "app.py", "exec")
    with pytest.raises(OptionError, match="already there"):
        write_space(tmp_path / "space", "ct-degradbench[app]")


def test_space_app_builds_the_demo(tmp_path):
    """The Space's ``app.py``, run as the Space's runtime imports it, defines ``demo`` (Blocks)."""
    gr = pytest.importorskip("gradio", reason="the [app] extra is not installed")
    import runpy

    from ctdegradbench.model.app.space import write_space

    write_space(tmp_path)
    assert isinstance(runpy.run_path(str(tmp_path / "app.py"))["demo"], gr.Blocks)


def test_app_command_writes_a_space_and_refuses_a_missing_results_folder(tmp_path, capsys):
    from ct_degradbench import main

    line = "ct-degradbench[app] @ git+https://example.org/ct-degradbench"
    assert main(["app", "--write-space", str(tmp_path / "space"), "--requirement", line]) == 0
    assert (tmp_path / "space" / "requirements.txt").read_text() == line + "\n"
    assert main(["app", "--results", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--results" in err and "not a folder" in err


# ------------------------------------------------------------------------------ in a browser
def _browser_skip_reason() -> str | None:
    for module in ("gradio", "playwright.sync_api"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} not installed (pip install -e '.[app]')"
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CTDB_CHROMIUM)"
    return None


REQUIRED = bool(os.environ.get("CTDB_APP_REQUIRE_BROWSER"))   # CI: a missing browser is a failure
browser = pytest.mark.skipif(_browser_skip_reason() is not None and not REQUIRED, reason=str(_browser_skip_reason()))


@pytest.mark.skipif(not REQUIRED, reason="CTDB_APP_REQUIRE_BROWSER not set")
def test_browser_is_there_when_required():
    assert _browser_skip_reason() is None, _browser_skip_reason()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    """A results folder as ``bench iqa`` writes it: tables.md and a figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = tmp_path_factory.mktemp("results")
    (folder / "tables.md").write_text("## Leaderboard: oriented Spearman\n\n| metric | S1 |\n|---|---|\n"
                                      "| PSNR | 0.97 |\n", encoding="utf-8")
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2, 3], [40, 35, 31, 27], marker="o")
    ax.set_xlabel("level")
    fig.savefig(folder / "severity_image.png", dpi=60)
    plt.close(fig)
    return folder


@pytest.fixture(scope="module")
def app_url(results_dir):
    from ctdegradbench.model.app import build_demo

    demo = build_demo(results=results_dir, image_size=DEMO_SIZE)
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def page(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        tab = chromium.new_page(viewport={"width": 1400, "height": 1000})
        tab.set_default_timeout(TIMEOUT_MS)
        tab.goto(app_url)
        yield tab
        chromium.close()


def _screenshot(page, tmp_path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    copy_to = os.environ.get("CTDB_APP_SCREENSHOTS")
    if copy_to:
        Path(copy_to).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(copy_to) / path.name)
    return path


def _textbox(page, elem_id: str):
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first


@browser
def test_inspect_shows_sespects_answer_for_a_dicom(page, tmp_path):
    from ctdegradbench.model.app import core

    path = default_file(CHEST_FILE)
    page.get_by_role("tab", name="Inspect").click()
    page.locator("#inspect-upload input[type=file]").set_input_files(str(path))
    answer = _textbox(page, "inspect-answer")
    page.wait_for_function("el => el.value.length > 0", arg=answer.element_handle(), timeout=TIMEOUT_MS)
    (s,) = core.read_upload([path])
    expected = core.inspect_slice(core.get_model(), s)
    assert answer.input_value() == core.answer_text(expected)
    assert f"{s.pixel_spacing_mm:.3f} mm" in page.locator("#inspect-spacing").inner_text()
    assert page.locator("#inspect-image img").count() == 1
    soft = page.locator("#inspect-image img").get_attribute("src")
    page.locator("#inspect-window").get_by_text("lung").click()
    page.wait_for_function("([img, old]) => img.src !== old",
                           arg=[page.locator("#inspect-image img").element_handle(), soft], timeout=60_000)
    _screenshot(page, tmp_path, "app_inspect")


@browser
def test_degrade_runs_on_the_uploaded_slice(page, tmp_path):
    """The Degrade tab simulates the slice uploaded in Inspect, at its own pixel spacing."""
    from ctdegradbench.model.app import core

    path = default_file(CHEST_FILE)
    page.reload()
    page.locator("#inspect-upload input[type=file]").set_input_files(str(path))
    answer = _textbox(page, "inspect-answer")
    page.wait_for_function("el => el.value.length > 0", arg=answer.element_handle(), timeout=TIMEOUT_MS)
    page.get_by_role("tab", name="Degrade").click()
    page.locator("#degrade-source").get_by_text("uploaded slice").click()
    page.locator("#degrade-run").click()
    ref = core.uploaded_reference(core.read_upload([path])[0], DEMO_SIZE)
    prompt = _textbox(page, "degrade-prompt")
    page.wait_for_function("el => el.value.includes('severity L1')", arg=prompt.element_handle(),
                           timeout=TIMEOUT_MS)
    assert f"pixel spacing {ref.pixel_spacing_mm:.2f} mm" in prompt.input_value()
    shown = "".join(page.locator("#degrade-metadata").inner_text().split())     # the JSON view, spaces dropped
    assert f'"reference_id":"{ref.reference_id}"' in shown


@browser
def test_text_upload_shows_one_error_in_the_page(page, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not a CT\n")
    page.reload()       # an empty upload field
    page.get_by_role("tab", name="Inspect").click()
    page.locator("#inspect-upload input[type=file]").set_input_files(str(bad))
    error = page.get_by_text("notes.txt: not readable as CT")
    error.first.wait_for(state="visible", timeout=60_000)
    assert "Traceback" not in page.content()
    _screenshot(page, tmp_path, "app_error")
    page.reload()       # the error message stays until closed


@browser
def test_degrade_level_slider_changes_the_image(page, tmp_path):
    page.get_by_role("tab", name="Degrade").click()
    page.locator("#degrade-run").click()
    prompt = _textbox(page, "degrade-prompt")
    page.wait_for_function("el => el.value.includes('severity L1')", arg=prompt.element_handle(),
                           timeout=TIMEOUT_MS)
    before = page.locator("#degrade-image img").get_attribute("src")
    page.locator("#degrade-level input[type=range]").fill("3")
    page.wait_for_function("el => el.value.includes('severity L3')", arg=prompt.element_handle(),
                           timeout=TIMEOUT_MS)
    page.wait_for_function("([img, old]) => img && img.src !== old",
                           arg=[page.locator("#degrade-image img").element_handle(), before], timeout=60_000)
    after = page.locator("#degrade-image img").get_attribute("src")
    assert before and after and after != before
    assert page.locator("#degrade-download").get_by_text(".json").count() >= 1
    _screenshot(page, tmp_path, "app_degrade")


@browser
def test_benchmark_tab_shows_the_results_folder(page, tmp_path):
    page.get_by_role("tab", name="Benchmark").click()
    tables = page.locator("#benchmark-tables")
    tables.get_by_text("Leaderboard: oriented Spearman").wait_for(state="visible")
    assert "PSNR" in tables.inner_text()
    figure = page.locator("#benchmark-figures img").first
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=figure.element_handle())
    assert page.locator("#benchmark-figures img").count() == 1
    _screenshot(page, tmp_path, "app_benchmark")
