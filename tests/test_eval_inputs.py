"""Prediction files: written by every model stage, read (and checked against the splits) by
evaluate."""
import pandas as pd
import pytest

from pianoeval.evaluate.inputs import load_predictions, write_predictions

SPLITS = pd.DataFrame({"segment": ["a", "b", "c", "d"],
                       "piece_split_s0": ["0", "1", "0", "test"],
                       "performer_split": ["1", "0", "test", "0"]})


def frame(segments, folds, value=0.1234567):
    return pd.DataFrame({"segment": segments, "fold": folds, "x": [value] * len(segments)})


def test_written_predictions_read_back_and_replace_an_earlier_runs_files(tmp_path):
    folder = tmp_path / "m"
    write_predictions(folder, {"performer_cv": frame(["a", "b"], [1, 0]),
                               "performer_test": frame(["c"], [0])})
    write_predictions(folder, {"piece_s0_cv": frame(["a", "b", "c"], [0, 1, 0]),
                               "piece_s0_test": frame(["d", "d"], [0, 1])})
    assert sorted(p.name for p in folder.iterdir()) == ["piece_s0_cv.csv", "piece_s0_test.csv"]
    read = load_predictions(tmp_path, ["m"], ["piece_cv", "piece_test", "performer_cv"], SPLITS)
    assert sorted(read["m"]) == ["piece_s0_cv", "piece_s0_test"]
    assert read["m"]["piece_s0_cv"]["x"].tolist() == [0.123457] * 3  # 6 decimals


def test_a_file_made_on_another_split_is_refused_naming_it(tmp_path):
    write_predictions(tmp_path / "m", {"piece_s0_cv": frame(["a", "b"], [1, 1])})
    with pytest.raises(ValueError, match=r"m/piece_s0_cv.csv: 1 rows disagree .*piece_split_s0"):
        load_predictions(tmp_path, ["m"], ["piece_cv"], SPLITS)
