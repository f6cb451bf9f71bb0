"""SeSpeCT, the semantic-spectral CT degradation type and severity estimator (paper Section 3).

Using any of its names (or :func:`default_checkpoint`) registers the model with
``transformers``' auto classes; importing the package alone loads nothing heavy (so the
``ct-degradbench`` command starts without torch)::

    import ctdegradbench.model
    from transformers import AutoModelForImageClassification   # AutoModel: the trunk (embedding)
    model = AutoModelForImageClassification.from_pretrained(ctdegradbench.model.default_checkpoint())

Layout: ``configuration_sespect.py``, ``modeling_sespect.py``, ``backbones.py``, ``losses.py``,
``image_processing_sespect.py`` and ``pipeline_sespect.py`` are self-contained (copied next to
every saved checkpoint for ``trust_remote_code``); ``data.py`` (datasets, frozen-feature cache), ``train.py``,
``predict.py``, ``metrics.py``, ``card.py`` and ``cli.py`` (``train`` / ``predict`` /
``evaluate`` commands) use the builder's names. ``checkpoint/`` is the shipped default model;
``app/`` the web demo (``ct-degradbench app``, Gradio, optional extra ``[app]``).
"""

from __future__ import annotations

import importlib
from importlib import resources
from pathlib import Path

# name -> module that defines it (imported, with torch and transformers, on first use)
_EXPORTS = {"SeSpeCTConfig": "configuration_sespect", "SeSpeCTModel": "modeling_sespect",
            "SeSpeCTForDegradationEstimation": "modeling_sespect", "SeSpeCTModelOutput": "modeling_sespect",
            "SeSpeCTOutput": "modeling_sespect", "SeSpeCTPreTrainedModel": "modeling_sespect",
            "SeSpeCTImageProcessor": "image_processing_sespect"}
_registered = False


def _register() -> None:
    """Register SeSpeCT with ``transformers``' auto classes (once)."""
    global _registered
    if _registered:
        return
    from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification

    from ctdegradbench.model.configuration_sespect import SeSpeCTConfig
    from ctdegradbench.model.image_processing_sespect import SeSpeCTImageProcessor
    from ctdegradbench.model.modeling_sespect import SeSpeCTForDegradationEstimation, SeSpeCTModel

    AutoConfig.register(SeSpeCTConfig.model_type, SeSpeCTConfig, exist_ok=True)
    AutoModel.register(SeSpeCTConfig, SeSpeCTModel, exist_ok=True)
    AutoModelForImageClassification.register(SeSpeCTConfig, SeSpeCTForDegradationEstimation, exist_ok=True)
    AutoImageProcessor.register(SeSpeCTConfig, slow_image_processor_class=SeSpeCTImageProcessor, exist_ok=True)
    # Saved checkpoints carry ``auto_map`` and copies of the code files (trust_remote_code):
    # see SeSpeCTPreTrainedModel.save_pretrained.
    SeSpeCTConfig.register_for_auto_class()
    _registered = True


def __getattr__(name: str):
    if name in _EXPORTS:
        _register()
        return getattr(importlib.import_module(f"ctdegradbench.model.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'ctdegradbench.model' has no attribute {name!r}")


def default_checkpoint() -> Path:
    """Folder of the checkpoint that ships with the package (config.json + model.safetensors)."""
    _register()
    return Path(str(resources.files("ctdegradbench.model") / "checkpoint"))


__all__ = [*_EXPORTS, "default_checkpoint"]
