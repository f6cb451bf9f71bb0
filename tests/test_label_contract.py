"""One label contract for the dataset and the model: the paper's ten classes keep ids 0..9
(Table 8 order), ``clean`` is 10, the opt-in ``S6_ring`` 11; the dataset's ClassLabel and the
shipped checkpoint's ``id2label`` read from the same list."""

import pytest

from ctdegradbench.core.errors import OptionError
from ctdegradbench.builder.simulate.settings import CLASS_NAMES, CLEAN_CLASS_NAME, PAPER_CLASS_NAMES, class_id

PAPER_TABLE_8 = ("S1_noise", "S2_blur", "S3_streak", "S4_aliasing", "S5_metal",
                 "M1_b+n", "M2_s+n", "M3_m+n", "M4_a+n", "M5_m+b+n")


def test_ids_of_the_contract():
    assert PAPER_CLASS_NAMES == PAPER_TABLE_8 == CLASS_NAMES[:10]
    assert class_id(CLEAN_CLASS_NAME) == 10 and class_id("S6_ring") == 11
    assert len(set(CLASS_NAMES)) == len(CLASS_NAMES)
    with pytest.raises(OptionError, match="unknown class 'S7_x'"):
        class_id("S7_x")


def test_dataset_classlabel_is_the_contract():
    from ctdegradbench.builder.dataset.features import reference_features, sample_features

    assert sample_features(64)["label"].names == list(CLASS_NAMES)
    assert "label" not in reference_features(64)


def test_shipped_model_labels_agree_with_the_dataset_ids():
    """Every id the model predicts means the same class as that id in the dataset."""
    from transformers import AutoConfig

    import ctdegradbench.model as sespect

    config = AutoConfig.from_pretrained(sespect.default_checkpoint())
    assert config.id2label and all(CLASS_NAMES[int(i)] == name for i, name in config.id2label.items())
