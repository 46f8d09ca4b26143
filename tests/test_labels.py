import json

import numpy as np
import pandas as pd
import pytest

from pianoeval.data.dimensions import DIMENSIONS
from pianoeval.data.labels import (
    compare_labels, load_published_labels, rating_segment_name, recompute_labels,
)

HEADER = ["user", "dataID", "filename", *[f"Q{i}" for i in range(19)], "message", "extra"]


def ratings_frame(rows):
    return pd.DataFrame(rows, columns=HEADER)


def row(user, filename, answers):
    return [user, 0, filename, *answers, "", ""]


def test_recompute_drops_zeros_and_outlier_rows_and_divides_by_seven():
    a = [7.0] * 19
    b = [np.nan] + [0.0] * 18 + []  # empty answer and zeros: ignored per dimension
    b[1] = 0.0
    c = [8.0] + [1.0] * 18  # an answer above 7.1: the whole row is dropped
    d = [3.5] * 19
    frame = ratings_frame([row(1, "P_8bars_1_1.wav", a), row(2, "P_8bars_1_1.wav", b),
                           row(3, "P_8bars_1_1.wav", c), row(4, "P_8bars_1_1.wav", d)])
    out = recompute_labels(frame)
    assert out["segment"].tolist() == ["P_8bars_1_1"]
    assert out["n_raters"].tolist() == [3]  # rows 1, 2, 4 kept
    np.testing.assert_allclose(out[list(DIMENSIONS)].to_numpy(), [[(7 + 3.5) / 2 / 7] * 19])


def test_segment_without_an_answer_in_some_dimension_is_dropped():
    answers = [4.0] * 18 + [0.0]
    out = recompute_labels(ratings_frame([row(1, "P_8bars_1_1.wav", answers)]))
    assert out.empty


def test_rating_segment_name_rules():
    assert rating_segment_name("X_8bars_score_3.wav") == "X_8bars_Score_3"
    assert rating_segment_name("Beethoven_WoO80_var3_8bars_Score_5.wav") == \
        "Beethoven_WoO80_var3_8bars_Score_5"
    assert rating_segment_name("Beethoven_WoO80_var3_8bars_Score_5.wav", merge_score2=True) == \
        "Beethoven_WoO80_var3_8bars_Score2_5"
    assert rating_segment_name("Beethoven_WoO80_var3_8bars_Score_4.wav", merge_score2=True) == \
        "Beethoven_WoO80_var3_8bars_Score_4"
    assert rating_segment_name("Schubert_D935_no.3_4bars_Score_1.wav", merge_score2=True) == \
        "Schubert_D935_no.3_4bars_Score2_1"


def test_published_labels_drop_performer_index_and_strip_names(tmp_path):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({" A_8bars_1_1": [0.5] * 19 + [3]}))
    frame = load_published_labels(path)
    assert frame.columns.tolist() == ["segment", *DIMENSIONS]
    assert frame["segment"].tolist() == ["A_8bars_1_1"]
    path.write_text(json.dumps({"A_8bars_1_1": [0.5] * 19}))
    with pytest.raises(ValueError, match="labels.json: 1 entries without 20 values"):
        load_published_labels(path)


def test_compare_labels_counts_mismatches():
    pub = pd.DataFrame({"segment": ["a", "b"], **{d: [0.5, 0.5] for d in DIMENSIONS}})
    rec = pub.copy()
    rec.loc[1, DIMENSIONS[3]] = 0.6
    check = compare_labels(pub, rec, tolerance=1e-6)
    assert check["n_mismatch"] == 1 and check["mismatched"] == ["b"]
    assert check["max_abs_diff"] == pytest.approx(0.1)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1.5, -0.1, "x"])
def test_published_labels_reject_a_label_outside_0_1_naming_file_and_segment(tmp_path, bad):
    path = tmp_path / "labels.json"
    # json.dumps writes NaN/Infinity tokens, as a broken export would; json.load reads them
    path.write_text(json.dumps({"A_8bars_1_1": [0.5] * 19 + [3],
                                "B_8bars_1_1": [0.5] * 4 + [bad] + [0.5] * 14 + [3]}))
    with pytest.raises(ValueError, match=r"labels\.json: 1 entries with a label that is not a "
                                         r"number in 0\.\.1, e\.g\. 'B_8bars_1_1' "
                                         + DIMENSIONS[4]):
        load_published_labels(path)


def test_compare_labels_counts_a_nan_as_a_mismatch():
    pub = pd.DataFrame({"segment": ["a", "b"], **{d: [0.5, 0.5] for d in DIMENSIONS}})
    rec = pub.copy()
    rec.loc[0, DIMENSIONS[0]] = np.nan
    check = compare_labels(pub, rec, tolerance=1e-6)
    assert check["n_mismatch"] == 1 and check["mismatched"] == ["a"]
