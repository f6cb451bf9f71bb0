"""SeSpeCT's ``image-classification`` pipeline: CT slices in, degradation type, score and severity out.

Self-contained (imports transformers only): copied next to a saved checkpoint, whose
``config.json`` names it under ``custom_pipelines``, so that

    pipeline("image-classification", model=folder, trust_remote_code=True)

builds this class. It differs from transformers' ``ImageClassificationPipeline`` only where CT
needs it: inputs are HU arrays with ``pixel_spacing=`` (mm per pixel) or DICOM datasets (which
carry their spacing), never 8-bit pictures; each entry also carries the model's severity ``s_hat``
(Eq. 23, clipped to ``0..max_level``, ``None`` for the clean class); a slice the model cannot judge
gives one entry with its ``status`` (``no_body``, ``non_finite``, ``non_ct_values``,
``spacing_out_of_range``) and no label.
"""

from __future__ import annotations

from transformers.pipelines.image_classification import ImageClassificationPipeline


class SeSpeCTImageClassificationPipeline(ImageClassificationPipeline):
    """``image-classification`` for CT slices (see the module docstring)."""

    def _sanitize_parameters(self, top_k=None, function_to_apply=None, timeout=None, pixel_spacing=None):
        preprocess, forward, postprocess = super()._sanitize_parameters(top_k, function_to_apply, timeout)
        preprocess.pop("timeout", None)          # nothing is downloaded: inputs are arrays or datasets
        if pixel_spacing is not None:
            preprocess["pixel_spacing"] = pixel_spacing
        return preprocess, forward, postprocess

    def preprocess(self, image, pixel_spacing=None):
        return self.image_processor(images=image, pixel_spacing=pixel_spacing, return_tensors="pt")

    def postprocess(self, model_outputs, function_to_apply=None, top_k=5):
        status = (model_outputs.get("status") or ["ok"])[0]
        if status != "ok":
            return [{"label": None, "score": None, "severity": None, "status": status}]
        entries = super().postprocess(model_outputs, function_to_apply=function_to_apply, top_k=top_k)
        config = self.model.config
        severity = float(model_outputs["severity"][0].clamp(0, config.max_level))
        for entry in entries:
            entry["severity"] = None if entry["label"] == config.clean_label else severity
        return entries
