import pandas as pd
import pytest

from pianoeval.data.lopo import lopo_fold_masks, lopo_group, lopo_split, with_lopo
from pianoeval.data.splits import make_splits
from test_splits import synthetic_names


def test_lopo_split_one_fold_per_performer_scores_merged():
    names = synthetic_names()
    split = lopo_split(names)
    by_fold = {}
    for name, value in zip(names, split):
        by_fold.setdefault(value, set()).add(lopo_group(name))
    assert all(len(groups) == 1 for groups in by_fold.values()), "a fold holds two performers"
    # 12 Beethoven performers (indices 0..11; Schubert 0..10 share them) + one score group
    assert sorted(by_fold, key=int) == [str(k) for k in range(13)]
    score_folds = {v for n, v in zip(names, split) if "_Score" in n}
    assert score_folds == {"0"}  # Score and Score2 together, first in sorted order
    # Score has performer_index 0 like Beethoven 1 / Schubert 0, yet is not in their fold
    assert split[names.index("Schubert_D960_mv2_8bars_0_1")] == "1"
    assert split[names.index("Beethoven_WoO80_thema_8bars_1_1")] == "1"


def test_lopo_split_codes_follow_sorted_performer_index():
    names = ["Schubert_D960_mv3_8bars_7_1", "Beethoven_WoO80_var3_8bars_26_1",  # index 7, 11
             "Schubert_D960_mv3_8bars_Score2_1", "Beethoven_WoO80_var3_8bars_7_2",  # -, 4
             "Schubert_D960_mv3_8bars_Score_3", "Schubert_D960_mv3_8bars_4_2"]  # -, 4
    assert lopo_split(names) == ["2", "3", "0", "1", "0", "1"]
    assert lopo_split([]) == []


def test_with_lopo_adds_a_column_to_a_copy():
    splits = make_splits(synthetic_names(), seed=0, test_fraction=0.15, n_folds=4)
    out = with_lopo(splits)
    assert list(splits.columns) == ["segment", "piece_split", "performer_split", "work_split"]
    assert out["lopo_split"].tolist() == lopo_split(splits["segment"].tolist())
    pd.testing.assert_frame_equal(out[splits.columns], splits)
    with pytest.raises(ValueError, match="'segment' column"):
        with_lopo(splits.drop(columns="segment"))


def test_lopo_fold_masks_hold_out_each_group_once():
    values = pd.Series(["2", "0", "1", "2", "0"])
    folds = list(lopo_fold_masks(values))
    assert [k for k, *_ in folds] == [0, 1, 2]
    k, train, held, test = folds[2]
    assert held.tolist() == [True, False, False, True, False]
    assert (train == ~held).all() and not test.any()
    with pytest.raises(ValueError, match="lopo fold values"):
        list(lopo_fold_masks(pd.Series(["0", "2"])))
