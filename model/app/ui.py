"""The Gradio demo: Inspect / Degrade / Benchmark tabs over :mod:`ctdegradbench.model.app.core`.

Every handler turns a problem the user can fix (:class:`CTDegradBenchError`) into one message in
the page (``gr.Error``), never a traceback. Long work (loading the model, the reference CT,
simulating metal) reports through Gradio's progress indicator.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from ctdegradbench.core.errors import CTDegradBenchError
from ctdegradbench.builder.sources.loaders import DEFAULT_SOURCE_FILES
from ctdegradbench.builder.simulate.settings import SETTINGS
from ctdegradbench.model.app import core

TITLE = "CT-DegradBench: what is wrong with this CT slice, and how badly?"
DEFAULT_REFERENCE = "bad_sequence.dcm"     # the abdomen slice (ribs, vertebra, lung base)
SOURCE_DEFAULT, SOURCE_UPLOAD = "default reference CT", "uploaded slice (Inspect tab)"


def _user_error(err: Exception) -> gr.Error:
    return gr.Error(str(err), duration=None, title="Cannot do that")


def build_demo(results=None, model_dir=None, image_size: int = core.DEMO_IMAGE_SIZE) -> gr.Blocks:
    """The demo app. ``results``: a ``bench iqa`` results folder for the Benchmark tab (None: the tab
    says how to give one); ``model_dir``: a SeSpeCT checkpoint (None: the shipped one);
    ``image_size``: grid side in px of the Degrade tab's simulations."""
    tables, figures = (None, []) if results is None else core.read_results(results)

    with gr.Blocks(title="CT-DegradBench demo") as demo:
        gr.Markdown(f"## {TITLE}")
        slices = gr.State([])
        row = gr.State(None)
        with gr.Tab("Inspect", id="inspect"):
            with gr.Row():
                with gr.Column(scale=1):
                    upload = gr.File(label="CT: DICOM file(s), zipped series, NIfTI, 16-bit PNG (HU + 1024), .npy",
                                     file_count="multiple", type="filepath", elem_id="inspect-upload")
                    spacing = gr.Number(label="pixel spacing (mm) of a PNG / .npy (DICOM and NIfTI carry theirs)",
                                        value=None, minimum=0, elem_id="inspect-spacing-input")
                    axes = gr.Dropdown([("from the file's header", ""), ("LPS (DICOM convention)", "LPS"),
                                        ("RAS (NIfTI convention)", "RAS")], value="",
                                       label="orientation of a NIfTI whose header has none (patient direction of "
                                             "each array axis)", elem_id="inspect-nifti-axes")
                    index = gr.Slider(0, 1, value=0, step=1, label="slice (of a series)", interactive=False,
                                      elem_id="inspect-slice")
                    window = gr.Radio(list(core.WINDOWS), value="soft tissue", label="window",
                                      elem_id="inspect-window")
                with gr.Column(scale=1):
                    image = gr.Image(label="slice", type="numpy", elem_id="inspect-image", interactive=False,
                                     height=420)
                with gr.Column(scale=1):
                    answer = gr.Textbox(label="SeSpeCT's answer", elem_id="inspect-answer", interactive=False)
                    probabilities = gr.Label(label="class probabilities", num_top_classes=12,
                                             elem_id="inspect-probabilities")
                    spacing_info = gr.Markdown(elem_id="inspect-spacing")

        with gr.Tab("Degrade", id="degrade"):
            with gr.Row():
                source = gr.Radio([SOURCE_DEFAULT, SOURCE_UPLOAD], value=SOURCE_DEFAULT, label="reference",
                                  elem_id="degrade-source")
                reference = gr.Dropdown([(f"{e.body_part.lower()}: {e.file_name}", e.file_name)
                                         for e in DEFAULT_SOURCE_FILES], value=DEFAULT_REFERENCE,
                                        label="default reference slice", elem_id="degrade-reference")
                setting = gr.Dropdown([(f"{s.code} {s.description}", s.code) for s in SETTINGS], value="S1",
                                      label="setting", elem_id="degrade-setting")
                level = gr.Slider(0, 3, value=1, step=1, label="severity level (L0 mild .. L3 severe)",
                                  elem_id="degrade-level")
                degrade_window = gr.Radio(list(core.WINDOWS), value="soft tissue", label="window",
                                          elem_id="degrade-window")
            run = gr.Button("Degrade", variant="primary", elem_id="degrade-run")
            with gr.Row():
                ref_image = gr.Image(label="reference", type="numpy", interactive=False, height=360,
                                     elem_id="degrade-reference-image")
                out_image = gr.Image(label="degraded", type="numpy", interactive=False, height=360,
                                     elem_id="degrade-image")
                diff_image = gr.Image(label=f"degraded - clean FBP (blue -{core.DIFF_RANGE_HU:g} .. red "
                                            f"+{core.DIFF_RANGE_HU:g} HU)",
                                      type="numpy", interactive=False, height=360, elem_id="degrade-difference")
            prompt = gr.Textbox(label="prompt", elem_id="degrade-prompt", interactive=False)
            with gr.Row():
                metadata = gr.JSON(label="metadata", elem_id="degrade-metadata")
                download = gr.File(label="download the row (JSON + 16-bit PNG of HU + 1024)", file_count="multiple",
                                   elem_id="degrade-download", interactive=False)

        with gr.Tab("Benchmark", id="benchmark"):
            if tables is None:
                gr.Markdown("No results folder given: start the demo with `ct-degradbench app --results DIR`, "
                            "DIR written by `ct-degradbench bench iqa --dataset ... --out DIR`.",
                            elem_id="benchmark-tables")
            else:
                gr.Markdown(f"Results folder: `{Path(results).name}`", elem_id="benchmark-folder")
                with gr.Row(elem_id="benchmark-figures"):
                    for path in figures:      # severity curves and Spearman heat maps, one image each
                        gr.Image(str(path), label=path.stem, type="filepath", interactive=False, min_width=480)
                gr.Markdown(tables, elem_id="benchmark-tables")

        # ------------------------------------------------------------------ Inspect handlers
        def on_upload(files, spacing_mm, nifti_axes, window_name, progress=gr.Progress()):
            if not files:
                return [], gr.update(maximum=1, value=0, interactive=False), None, "", None, ""
            progress(0.1, desc="reading the upload")
            try:
                # an empty number field arrives as 0 or None, the header choice as ""
                read = core.read_upload(files, spacing_mm or None, nifti_axes or None)
            except CTDegradBenchError as err:
                raise _user_error(err) from None
            middle = len(read) // 2
            shown = _inspect(read, middle, window_name, progress)
            return (read, gr.update(maximum=max(len(read) - 1, 1), value=middle, interactive=len(read) > 1), *shown)

        def _inspect(read, i, window_name, progress):
            if not read:
                return None, "", None, ""
            s = read[min(int(i), len(read) - 1)]
            progress(0.4, desc="loading SeSpeCT")
            try:
                model = core.get_model(model_dir)
                progress(0.7, desc="predicting")
                result = core.inspect_slice(model, s)
            except CTDegradBenchError as err:
                raise _user_error(err) from None
            return (core.display_size(core.window_image(s.hu, window_name)), core.answer_text(result),
                    result["probabilities"] or None, core.spacing_text(result))

        def on_slice(read, i, window_name, progress=gr.Progress()):
            return _inspect(read, i, window_name, progress)

        def on_window(read, i, window_name):
            if not read:
                return None
            return core.display_size(core.window_image(read[min(int(i), len(read) - 1)].hu, window_name))

        inspect_outputs = [image, answer, probabilities, spacing_info]
        upload.upload(on_upload, [upload, spacing, axes, window], [slices, index, *inspect_outputs])
        index.release(on_slice, [slices, index, window], inspect_outputs)
        window.change(on_window, [slices, index, window], image)

        # ------------------------------------------------------------------ Degrade handlers
        def on_degrade(source_name, file_name, code, lv, window_name, read, i, progress=gr.Progress()):
            try:
                if source_name == SOURCE_UPLOAD:
                    if not read:
                        raise CTDegradBenchError("no uploaded slice: upload a CT in the Inspect tab first, or "
                                                 "choose the default reference CT")
                    ref = core.uploaded_reference(read[min(int(i), len(read) - 1)], image_size)
                else:
                    progress(0.1, desc="loading the default reference CT")
                    refs = core.default_references(image_size)
                    ref = next(r for r in refs if r.info.get("file") == file_name)
                progress(0.4, desc=f"simulating {code} L{int(lv)} (metal settings take tens of seconds on a CPU)")
                result = core.degrade(ref, code, int(lv))
                progress(0.9, desc="writing the row")
                files = core.write_row(result, tempfile.mkdtemp(prefix="ctdb-row-"))
            except CTDegradBenchError as err:
                raise _user_error(err) from None
            return (result, *_degrade_images(result, window_name), result["prompt"], result["metadata"],
                    [str(f) for f in files])

        def _degrade_images(result, window_name):
            if result is None:
                return None, None, None
            return (core.display_size(core.window_image(result["reference_hu"], window_name)),
                    core.display_size(core.window_image(result["degraded_hu"], window_name)),
                    core.display_size(core.difference_image(result["difference_hu"])))

        degrade_inputs = [source, reference, setting, level, degrade_window, slices, index]
        degrade_outputs = [row, ref_image, out_image, diff_image, prompt, metadata, download]
        run.click(on_degrade, degrade_inputs, degrade_outputs)
        level.change(on_degrade, degrade_inputs, degrade_outputs, trigger_mode="always_last")
        degrade_window.change(_degrade_images, [row, degrade_window], [ref_image, out_image, diff_image])
    return demo
