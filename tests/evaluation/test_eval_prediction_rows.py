"""The per-row predictions format (``evaluate --predictions``, ``predict --json``) as ``bench tasks`` reads it."""

import json

import pytest

from ctdegradbench.core.errors import InputError
from ctdegradbench.evaluation.tasks import _scores, prediction_row, read_predictions, write_predictions


def test_rows_round_trip_with_full_precision(tmp_path):
    severity = 1.2345678901234567                     # rounding would tie nearly equal severities
    row = prediction_row("p/s/0/S1/L2/r0", "S1_noise", severity, {"S1_noise": 0.7, "clean": 0.3})
    (back,) = read_predictions(write_predictions(tmp_path / "p.jsonl", [row]))
    assert back["severity"] == severity and back["level"] == severity          # severity is the level read
    assert back["probabilities"] == {"S1_noise": 0.7, "clean": 0.3}


def test_probabilities_become_scores_in_the_dataset_order():
    row = {"probabilities": {"S2_blur": 0.6, "S1_noise": 0.3, "clean": 0.1}}
    assert _scores(row, ["S1_noise", "S2_blur", "S3_streak"], 3) == [0.3, 0.6, 0.0]
    assert _scores({"scores": [0.1, 0.9, 0.0, 0.5]}, ["a", "b", "c", "d"], 2) == [0.1, 0.9]
    assert _scores({"label": "a"}, ["a"], 1) is None


@pytest.mark.parametrize("content, message", [
    ('{"rows": []}', "a 'predictions' list"),
    ('{"predictions": [', "not valid JSON"),
    ('{"predictions": [{"label": "S1_noise"}]}', "every row needs a sample_id"),
])
def test_bad_prediction_files_give_one_line(tmp_path, content, message):
    path = tmp_path / "predict.json"
    path.write_text(content)
    with pytest.raises(InputError, match=message) as err:
        read_predictions(path)
    assert "\n" not in str(err.value)


def test_predict_json_document_is_read(tmp_path):
    path = tmp_path / "predict.json"
    path.write_text(json.dumps({"predictions": [prediction_row("a.npy", "S2_blur", 2.0, {"S2_blur": 1.0})],
                                "errors": {}}))
    assert [r["sample_id"] for r in read_predictions(path)] == ["a.npy"]
