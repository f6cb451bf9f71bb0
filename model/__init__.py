"""SeSpeCT, the semantic-spectral CT degradation type and severity estimator (paper Section 3).

Importing this package registers the model with ``transformers``' auto classes::

    import ctdegradbench.model
    from transformers import AutoModel
    model = AutoModel.from_pretrained(ctdegradbench.model.default_checkpoint())

Layout: ``configuration_sespect.py``, ``modeling_sespect.py``, ``backbones.py`` and
``losses.py`` are self-contained (copied next to every saved checkpoint for
``trust_remote_code``); ``data.py`` (datasets, frozen-feature cache), ``train.py``,
``predict.py``, ``metrics.py``, ``card.py`` and ``cli.py`` (``train`` / ``predict`` /
``evaluate`` commands) use the builder's names. ``checkpoint/`` is the shipped default model.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from transformers import AutoConfig, AutoModel

from ctdegradbench.model.configuration_sespect import SeSpeCTConfig
from ctdegradbench.model.modeling_sespect import SeSpeCTModel, SeSpeCTOutput, SeSpeCTPreTrainedModel

AutoConfig.register(SeSpeCTConfig.model_type, SeSpeCTConfig, exist_ok=True)
AutoModel.register(SeSpeCTConfig, SeSpeCTModel, exist_ok=True)
# Saved checkpoints carry ``auto_map`` and copies of the modeling files (trust_remote_code).
SeSpeCTConfig.register_for_auto_class()
SeSpeCTModel.register_for_auto_class("AutoModel")


def default_checkpoint() -> Path:
    """Folder of the checkpoint that ships with the package (config.json + model.safetensors)."""
    return Path(str(resources.files("ctdegradbench.model") / "checkpoint"))


__all__ = ["SeSpeCTConfig", "SeSpeCTModel", "SeSpeCTOutput", "SeSpeCTPreTrainedModel", "default_checkpoint"]
