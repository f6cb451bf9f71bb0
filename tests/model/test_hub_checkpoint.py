"""The shipped checkpoint as a Hub model repo: its code files are the package's sources (no drift),
it loads with transformers alone (``trust_remote_code``, package not importable, offline), the
processor takes HU arrays with their spacing or DICOM datasets, the model classes follow
transformers' shape (trunk / heads, ``id2label`` the only labels, typos rejected), and
checkpoints written before the trunk / head split still load with the same outputs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from .conftest import tiny_config

MODEL_SOURCES = Path(__file__).resolve().parents[2] / "model"
CHECK_SCRIPT = Path(__file__).with_name("remote_code_check.py")
PROBABILITY_ATOL = 1e-5       # float32 softmax, same weights and input, two loaders


def _code_files(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("*.py")}


def test_checkpoint_code_files_are_the_package_sources(tmp_path):
    """model/checkpoint/*.py are byte-identical copies of model/*.py, and exactly the files
    save_pretrained writes (rerun the checkpoint conversion or copy the files when this fails)."""
    from ctdegradbench.model import SeSpeCTForDegradationEstimation, default_checkpoint

    shipped = default_checkpoint()
    SeSpeCTForDegradationEstimation(tiny_config(backbone="none", use_semantic_branch=False,
                                                pixel_spacing_mm=1.0)).save_pretrained(tmp_path)
    assert _code_files(shipped) == _code_files(tmp_path) == {
        "configuration_sespect.py", "modeling_sespect.py", "image_processing_sespect.py", "backbones.py",
        "losses.py", "pipeline_sespect.py"}
    for name in sorted(_code_files(shipped)):
        assert (shipped / name).read_bytes() == (MODEL_SOURCES / name).read_bytes(), \
            f"model/checkpoint/{name} differs from model/{name}: copy model/{name} into model/checkpoint/"
    for name in ("config.json", "preprocessor_config.json", "model.safetensors", "README.md"):
        assert (shipped / name).is_file(), name
    for source in sorted(_code_files(shipped)):
        text = (shipped / source).read_text()
        assert not re.search(r"^\s*(from|import)\s+ctdegradbench", text, re.M), f"{source} imports the package"


def test_saved_folder_has_auto_map_processor_and_pipeline(tmp_path):
    from ctdegradbench.model import SeSpeCTForDegradationEstimation

    SeSpeCTForDegradationEstimation(tiny_config(backbone="none", use_semantic_branch=False,
                                                pixel_spacing_mm=1.0)).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"] == {"AutoConfig": "configuration_sespect.SeSpeCTConfig",
                                  "AutoModel": "modeling_sespect.SeSpeCTModel",
                                  "AutoModelForImageClassification": "modeling_sespect.SeSpeCTForDegradationEstimation"}
    assert config["custom_pipelines"]["image-classification"]["impl"] == \
        "pipeline_sespect.SeSpeCTImageClassificationPipeline"
    assert "label_names" not in config and "initializer_range" not in config
    processor = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert processor["auto_map"] == {"AutoImageProcessor": "image_processing_sespect.SeSpeCTImageProcessor"}
    assert processor["pixel_spacing_mm"] == 1.0 and processor["image_size"] == config["image_size"]


def test_shipped_checkpoint_loads_with_remote_code_alone(tmp_path):
    """transformers' auto classes and pipeline on the shipped folder, in a process where the
    package cannot be imported (python -I plus an import hook), offline: same probabilities as
    the package on the same phantom slice."""
    from ctdegradbench.model import default_checkpoint
    from ctdegradbench.model.predict import load_model

    sys.path.insert(0, str(CHECK_SCRIPT.parent))
    try:
        import remote_code_check
    finally:
        sys.path.pop(0)
    model = load_model()
    batch = model.image_processor()(remote_code_check.phantom(), pixel_spacing=remote_code_check.SPACING_MM)
    with torch.no_grad():
        expected = model(**batch).logits.softmax(-1)[0]
    (tmp_path / "expected.json").write_text(json.dumps({"probabilities": expected.tolist()}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HF_"))}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), TRANSFORMERS_VERBOSITY="error")
    work = tmp_path / "empty"
    work.mkdir()
    run = subprocess.run([sys.executable, "-I", str(CHECK_SCRIPT), str(default_checkpoint()),
                          str(tmp_path / "expected.json")], capture_output=True, text=True, cwd=work, env=env,
                         timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    for line in ("ok auto classes", "ok same probabilities as the package", "ok pipeline (HU array",
                 "ok pipeline (pydicom Dataset)", "ok without ctdegradbench"):
        assert line in run.stdout, run.stdout


def test_processor_takes_dicom_datasets_with_their_spacing(tmp_path):
    pytest.importorskip("pydicom")
    from ctdegradbench.model import SeSpeCTImageProcessor

    sys.path.insert(0, str(CHECK_SCRIPT.parent))
    try:
        import remote_code_check
    finally:
        sys.path.pop(0)
    hu = remote_code_check.phantom(300)
    ds = remote_code_check.dicom_of(hu)
    processor = SeSpeCTImageProcessor(image_size=256)
    from_dicom = processor(ds)
    from_array = processor(hu, pixel_spacing=remote_code_check.SPACING_MM)
    assert from_dicom["status"] == from_array["status"] == ["ok"]
    torch.testing.assert_close(from_dicom["pixel_values"], from_array["pixel_values"])   # HU = stored - 1024
    assert float(from_dicom["pixel_spacing"][0]) == pytest.approx(remote_code_check.SPACING_MM)
    with pytest.raises(ValueError, match="pixel_spacing"):
        processor(hu)                                          # an array alone has no spacing
    with pytest.raises(ValueError, match="carry their own PixelSpacing"):
        processor(ds, pixel_spacing=0.5)
    del ds.PixelSpacing
    with pytest.raises(ValueError, match="no PixelSpacing"):
        processor(ds)
    processor.save_pretrained(tmp_path)
    again = type(processor).from_pretrained(tmp_path)
    assert again.to_dict() == processor.to_dict()
    with pytest.raises(TypeError, match="image_sise"):
        SeSpeCTImageProcessor(image_sise=128)


def test_forward_rejects_unknown_arguments_and_follows_transformers_conventions():
    from ctdegradbench.model import SeSpeCTForDegradationEstimation

    model = SeSpeCTForDegradationEstimation(tiny_config(backbone="none", use_semantic_branch=False)).eval()
    x = torch.zeros(2, 64, 64)
    with pytest.raises(TypeError, match="pixel_value"):
        model(pixel_value=x)                                   # a typo is an error, not silently ignored
    out = model(pixel_values=x, output_hidden_states=True)
    assert out.logits.shape == (2, model.config.num_labels) and len(out.hidden_states) == 2
    assert out.hidden_states[1] is out.fused_embedding
    as_tuple = model(pixel_values=x, return_dict=False)
    torch.testing.assert_close(as_tuple[0], out.logits)
    with pytest.raises(ValueError, match="both labels"):
        model(pixel_values=x, labels=torch.tensor([0, 1]))


def test_id2label_is_the_only_label_source():
    from ctdegradbench.builder.simulate.settings import CLASS_NAMES
    from ctdegradbench.model import SeSpeCTConfig

    config = SeSpeCTConfig(label_names=CLASS_NAMES[:11])
    assert config.label_names == list(CLASS_NAMES[:11]) and config.num_labels == 11
    saved = config.to_dict()
    assert "label_names" not in saved and "initializer_range" not in saved
    assert SeSpeCTConfig.from_dict(saved).label_names == list(CLASS_NAMES[:11])
    with pytest.raises(ValueError, match="disagree"):
        SeSpeCTConfig(label_names=["a", "b"], id2label={0: "a", 1: "c"})


def test_checkpoint_of_the_pre_split_layout_loads_with_the_same_outputs(tmp_path):
    """A folder written before the trunk / head split (all keys unprefixed, label_names in the
    config) loads through predict.load_model with the same outputs as the converted one."""
    from safetensors.torch import load_file, save_file

    from ctdegradbench.model import default_checkpoint
    from ctdegradbench.model.predict import load_model

    import shutil

    shipped = tmp_path / "converted"     # the shipped checkpoint's first member (pre-split models had no ensembles)
    shutil.copytree(default_checkpoint(), shipped)
    state = {k: v for k, v in load_file(str(shipped / "model.safetensors")).items() if not k.startswith("members.")}
    save_file(state, str(shipped / "model.safetensors"), metadata={"format": "pt"})
    config = json.loads((shipped / "config.json").read_text())
    config["ensemble_size"] = 1
    (shipped / "config.json").write_text(json.dumps(config))
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    save_file({k.removeprefix("sespect."): v for k, v in state.items()}, str(legacy / "model.safetensors"),
              metadata={"format": "pt"})
    config["label_names"] = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    config["initializer_range"] = 0.02
    for key in ("auto_map", "custom_pipelines"):
        config.pop(key)
    (legacy / "config.json").write_text(json.dumps(config))
    rng = np.random.default_rng(0)
    hu = rng.normal(40, 20, (2, 384, 384)).astype(np.float32)
    hu[:, :40] = -1000.0
    from ctdegradbench.model.image_processing_sespect import NATIVE_STATISTICS

    extra = {"native_statistics": torch.ones(2, len(NATIVE_STATISTICS))} if config.get("use_native_statistics") else {}
    outputs = []
    for folder in (shipped, legacy):
        model = load_model(folder)
        for p in list(model.parameters()) + list(model.buffers()):
            p.data = p.data.clone()           # same memory alignment for both (mmap offsets differ)
        with torch.no_grad():
            outputs.append(model(pixel_values=torch.from_numpy(hu), pixel_spacing=torch.ones(2), **extra))
    torch.testing.assert_close(outputs[0].logits, outputs[1].logits, atol=0, rtol=0)
    torch.testing.assert_close(outputs[0].severity, outputs[1].severity, atol=0, rtol=0)


def test_readme_python_example_runs_as_written():
    """The README's Python block (package installed, shipped checkpoint) runs unchanged."""
    readme = (MODEL_SOURCES.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    block = next(b for b in blocks if "default_checkpoint()" in b)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    model, batch, out = namespace["model"], namespace["batch"], namespace["out"]
    assert type(model).__name__ == "SeSpeCTForDegradationEstimation"
    assert batch["status"] == ["ok"] and out.logits.shape == (1, model.config.num_labels)
