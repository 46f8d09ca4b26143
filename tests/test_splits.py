import pandas as pd
import pytest

from pianoeval.data.segments import parse_segment, score_paths
from pianoeval.data.splits import (
    BEETHOVEN_PERFORMERS, fold_masks, make_splits, performer_index, performer_split, piece_split,
    work_split,
)


def synthetic_names():
    """A PercePiano-shaped corpus: 4 works, passages played by several performers."""
    names = []
    for var in ("thema", "var3", "var4"):
        for perf in (*BEETHOVEN_PERFORMERS, "Score"):
            names.append(f"Beethoven_WoO80_{var}_8bars_{perf}_1")
    for piece, n_passages in (("Schubert_D960_mv2", 6), ("Schubert_D960_mv3", 9),
                              ("Schubert_D935_no.3", 3)):
        for p in range(1, n_passages + 1):
            for perf in (*range(11), "Score"):
                names.append(f"{piece}_8bars_{perf}_{p}")
    names.append("Schubert_D935_no.3_4bars_Score2_1")  # a passage with a single segment
    return names


def test_parse_segment_and_passage():
    seg = parse_segment(" Schubert_D960_mv2_8bars_3_12")
    assert (seg.piece, seg.bars, seg.performer, seg.index) == ("Schubert_D960_mv2", 8, "3", 12)
    assert seg.passage == "Schubert_D960_mv2_8bars_12"
    assert seg.work == "Schubert_D960_mv2"
    assert parse_segment("Beethoven_WoO80_var15_8bars_Score2_10").work == "Beethoven_WoO80"
    with pytest.raises(ValueError, match="not a PercePiano segment name"):
        parse_segment("beethoven_woo80_score2")


def test_score_paths_match_zero_padded_index_and_prefer_score(tmp_path):
    for name in ("X_8bars_Score_01", "X_8bars_Score2_01", "X_8bars_Score2_2", "whole_piece"):
        (tmp_path / f"{name}.mid").write_bytes(b"")
    found = score_paths(tmp_path)
    assert found == {"X_8bars_1": tmp_path / "X_8bars_Score_01.mid",
                     "X_8bars_2": tmp_path / "X_8bars_Score2_2.mid"}


def test_performer_index_follows_upstream_rule_exactly():
    assert performer_index("Beethoven_WoO80_var3_8bars_1_1") == 0
    assert performer_index("Beethoven_WoO80_var3_8bars_7_1") == 4
    assert performer_index("Beethoven_WoO80_var3_8bars_26_1") == 11
    assert performer_index("Schubert_D960_mv3_8bars_7_1") == 7
    assert performer_index("Schubert_D960_mv3_8bars_Score_1") == 0
    assert performer_index("Schubert_D960_mv3_8bars_Score2_1") == -1
    with pytest.raises(ValueError, match="Beethoven performer 5"):
        performer_index("Beethoven_WoO80_var3_8bars_5_1")


def test_performer_split_values():
    names = [f"Schubert_D960_mv3_8bars_{i}_1" for i in range(13)] + [
        "Schubert_D960_mv3_8bars_Score_1", "Schubert_D960_mv3_8bars_Score2_1",
        "Beethoven_WoO80_var3_8bars_2_1", "Beethoven_WoO80_var3_8bars_3_1",
        "Beethoven_WoO80_var3_8bars_4_1"]
    expected = ["train_only", "test", "test", "0", "0", "1", "1", "2", "2", "3", "3",
                "train_only", "train_only", "train_only", "train_only",
                "test", "test", "0"]  # Beethoven 2 -> index 1, 3 -> 2, 4 -> 3
    assert performer_split(names) == expected


def test_piece_split_keeps_passages_together_and_draws_test_share():
    names = synthetic_names()
    split = piece_split(names, seed=7, test_fraction=0.15)
    by_passage = {}
    for name, value in zip(names, split):
        by_passage.setdefault(parse_segment(name).passage, set()).add(value)
    assert all(len(v) == 1 for v in by_passage.values()), "a passage landed in two folds"
    n_test = split.count("test")
    assert n_test >= 0.15 * len(names)
    assert set(split) == {"test", "0", "1", "2", "3"}
    # the singleton passage is never drawn for the test set
    assert by_passage["Schubert_D935_no.3_4bars_1"] != {"test"}


def test_piece_split_is_seeded():
    names = synthetic_names()
    assert piece_split(names, seed=1) == piece_split(names, seed=1)
    assert piece_split(names, seed=1) != piece_split(names, seed=2)


def test_work_split_holds_out_whole_works():
    names = synthetic_names()
    split = work_split(names)
    by_work = {}
    for name, value in zip(names, split):
        by_work.setdefault(parse_segment(name).work, set()).add(value)
    assert sorted(v.pop() for v in by_work.values()) == ["0", "1", "2", "3"]


def test_fold_masks_train_excludes_held_out_and_test():
    splits = make_splits(synthetic_names(), seed=0, test_fraction=0.15, n_folds=4)
    for column in ("piece_split", "performer_split", "work_split"):
        seen = pd.Series(False, index=splits.index)
        for k, train, held_out, test in fold_masks(splits[column]):
            assert not (train & held_out).any() and not (train & test).any()
            assert (splits[column][held_out] == str(k)).all()
            seen |= held_out
        assert (seen == splits[column].isin(["0", "1", "2", "3"])).all()
