import logging
import os
import re
from collections import defaultdict
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pianoeval.data.midi import NOTE_DTYPE, read_midi
from pianoeval.data.segments import parse_segment, score_paths
from pianoeval.data.splits import (
    BEETHOVEN_PERFORMERS, content_overlap, fold_masks, inner_validation, lopo_group, lopo_split,
    make_splits, music_groups, performer_index, performer_split, piece_seed_of, piece_split,
    split_columns, work_split,
)

ROOT = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("PIANOEVAL_DATA_MIRROR", ROOT.parent / "shared" / "data"))


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


def passage_groups(names):
    return [parse_segment(n).passage for n in names]


def note_array(pitches, start=0.0, step=0.25):
    notes = np.zeros(len(pitches), NOTE_DTYPE)
    notes["pitch"] = pitches
    notes["onset_sec"] = start + step * np.arange(len(pitches))
    notes["duration_sec"], notes["velocity"] = step, 64
    return notes


def cut(notes, first, last, start):
    """Notes first..last-1 of a recording, re-timed to begin at ``start`` (a cut segment)."""
    part = notes[first:last].copy()
    part["onset_sec"] += start - part["onset_sec"][0]
    return part


# ----------------------------------------------------------------------------- names, protocols

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


def test_piece_split_keeps_groups_together_and_draws_test_share():
    names = synthetic_names()
    groups = passage_groups(names)
    groups = ["joined" if g in ("Schubert_D960_mv3_8bars_1", "Schubert_D960_mv3_8bars_2") else g
              for g in groups]  # two passages joined by content
    for seed in range(20):
        split = piece_split(names, groups, seed=seed, test_fraction=0.15)
        by_group = defaultdict(set)
        for group, value in zip(groups, split):
            by_group[group].add(value)
        assert all(len(v) == 1 for v in by_group.values()), "a group landed in two folds"
        assert split.count("test") >= 0.15 * len(names)
        assert set(split) == {"test", "0", "1", "2", "3"}
        assert by_group["Schubert_D935_no.3_4bars_1"] != {"test"}  # singletons never test


def test_piece_split_seeds_give_different_draws():
    names = synthetic_names()
    groups = passage_groups(names)
    assert piece_split(names, groups, seed=1) == piece_split(names, groups, seed=1)
    tests = {tuple(v == "test" for v in piece_split(names, groups, seed=s)) for s in range(5)}
    assert len(tests) == 5
    with pytest.raises(ValueError, match="3 names but 2 groups"):
        piece_split(names[:3], groups[:2], seed=0)


def test_work_split_holds_out_whole_works():
    names = synthetic_names()
    split = work_split(names)
    by_work = {}
    for name, value in zip(names, split):
        by_work.setdefault(parse_segment(name).work, set()).add(value)
    assert sorted(v.pop() for v in by_work.values()) == ["0", "1", "2", "3"]


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


def test_make_splits_columns_and_sorted_rows():
    names = synthetic_names()[::-1]
    groups = passage_groups(names)
    splits = make_splits(names, groups, seeds=[3, 0], test_fraction=0.15, n_folds=4)
    assert splits.columns.tolist() == ["segment", "group", "piece_split_s3", "piece_split_s0",
                                       "performer_split", "work_split", "lopo_split"]
    assert splits["segment"].tolist() == sorted(names)
    assert splits["group"].tolist() == passage_groups(sorted(names))  # kept aligned when sorted
    assert splits["piece_split_s0"].tolist() == piece_split(sorted(names),
                                                            splits["group"].tolist(), 0)
    assert splits["lopo_split"].tolist() == lopo_split(sorted(names))


@pytest.mark.parametrize("kwargs, message", [
    ({"seeds": []}, "splits.seeds is empty"),
    ({"seeds": [1, 2, 1]}, r"splits.seeds repeats \[1\]"),
    ({"seeds": 0}, "splits.seeds must be a list"),
    ({"seeds": "01"}, "splits.seeds must be a list"),
    ({"seeds": [1.5, True]}, r"non-negative integers, got \[1.5, True\]"),
    ({"test_fraction": 0.0}, "splits.test_fraction must be in"),
    ({"test_fraction": 1}, "splits.test_fraction must be in"),
    ({"n_folds": 1}, "splits.n_folds must be an integer >= 2"),
    ({"n_folds": 2.0}, "splits.n_folds must be an integer >= 2"),
])
def test_make_splits_validates_params(kwargs, message):
    names = synthetic_names()
    args = {"seeds": [0], "test_fraction": 0.15, "n_folds": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        make_splits(names, passage_groups(names), **args)


def test_make_splits_validates_names():
    names = synthetic_names()
    with pytest.raises(ValueError, match="duplicate segment names"):
        make_splits(names + names[:1], passage_groups(names + names[:1]), [0], 0.15, 4)
    with pytest.raises(ValueError, match="names but"):
        make_splits(names, passage_groups(names)[1:], [0], 0.15, 4)


# ----------------------------------------------------------------------------- note content

def test_content_overlap_contained_slice_with_time_offset_is_one():
    rng = np.random.default_rng(0)
    recording = note_array(rng.integers(40, 90, 200), start=3.0)
    inner = cut(recording, 60, 140, start=0.0)  # another start time, as a cut segment has
    assert content_overlap(inner, recording) == 1.0
    assert content_overlap(recording, inner) == 1.0  # symmetric: the shorter one counts
    assert content_overlap(inner["pitch"], recording["pitch"]) == 1.0  # plain pitch arrays
    half = cut(recording, 100, 180, start=1.0)  # half of it inside the other
    assert content_overlap(half, cut(recording, 0, 140, 0.0)) == pytest.approx(33 / 73)


def test_content_overlap_unrelated_is_near_zero_and_edge_cases():
    rng = np.random.default_rng(1)
    a, b = note_array(rng.integers(40, 90, 150)), note_array(rng.integers(40, 90, 150))
    assert content_overlap(a, b) < 0.05
    assert content_overlap(a, a) == 1.0
    assert content_overlap(a, np.empty(0, NOTE_DTYPE)) == 0.0
    assert content_overlap(a[10:14], a) == 1.0  # shorter than ngram: one 4-note gram
    assert content_overlap(a[:30], a[:30], ngram=1) == 1.0
    with pytest.raises(ValueError, match="ngram must be a positive integer"):
        content_overlap(a, b, ngram=0)
    with pytest.raises(ValueError, match="no 'pitch' field"):
        content_overlap(np.zeros(3, [("onset_sec", "f8")]), b)
    with pytest.raises(ValueError, match="pitches must be integers"):
        content_overlap(np.array([60.5, 62.0]), b)


def synthetic_recordings(piece="Schubert_D960_mv3", n_bars_notes=10, seed=0):
    """Per performer one recording of 32 bars; 8-bar segment k = bars 8(k-1)..8k, 16-bar segment
    j = bars 16(j-1)..16j (so 8-bar k lies in 16-bar ceil(k/2)), each re-timed from 0."""
    rng = np.random.default_rng(seed)
    music = rng.integers(40, 90, 32 * n_bars_notes)  # one piece of music
    notes = {}
    plays = {"0": [(8, k) for k in (1, 2, 3, 4)] + [(16, 1), (16, 2)],
             "1": [(8, 1), (8, 2), (16, 1)],  # the same recording, both cuts: joined by content
             "2": [(8, 3)],  # plays only 8-bar 3 ...
             "3": [(16, 2)],  # ... only 16-bar 2: joined through passages and the score
             "Score": [(8, k) for k in (1, 2, 3, 4)] + [(16, 1), (16, 2)]}
    for performer, segments in plays.items():
        recording = note_array(music, step=0.2 + 0.01 * len(notes))
        if performer != "Score":  # pianists: chords and ornaments reorder some notes
            swap = rng.choice(len(music) - 1, len(music) // 4, replace=False)
            pitches = recording["pitch"].copy()
            pitches[swap] = recording["pitch"][swap + 1]
            pitches[swap + 1] = recording["pitch"][swap]
            recording["pitch"] = pitches
        for bars, index in segments:
            first = (index - 1) * bars * n_bars_notes
            notes[f"{piece}_{bars}bars_{performer}_{index}"] = cut(
                recording, first, first + bars * n_bars_notes, start=0.5)
    return notes


def test_music_groups_join_8_bar_k_with_16_bar_ceil_k_half_via_content():
    notes = synthetic_recordings()
    names = sorted(notes)
    other = "Schubert_D960_mv2_8bars_0_1"  # another piece, same music: never compared
    names.append(other)
    notes[other] = notes["Schubert_D960_mv3_8bars_0_1"]
    group_of = dict(zip(names, music_groups(names, notes, min_overlap=0.5)))
    first = {group_of[n] for n in names if re.search(r"(8bars_.*_[12]|16bars_.*_1)$", n)
             and "mv3" in n}
    second = {group_of[n] for n in names if re.search(r"(8bars_.*_[34]|16bars_.*_2)$", n)}
    assert first == {"Schubert_D960_mv3_16bars_1"}  # the alphabetically first passage id
    assert second == {"Schubert_D960_mv3_16bars_2"}  # performers 2 and 3 joined via the score
    assert group_of[other] == "Schubert_D960_mv2_8bars_1"


def test_music_groups_different_pianists_alone_do_not_join():
    notes = synthetic_recordings()
    # 8-bar 3 of pianist 2 and 16-bar 2 of pianist 3 are the same music, but nothing else ties
    # their passages (no score rendering, no single pianist playing both)
    names = ["Schubert_D960_mv3_8bars_2_3", "Schubert_D960_mv3_16bars_3_2"]
    assert music_groups(names, notes) == ["Schubert_D960_mv3_8bars_3", "Schubert_D960_mv3_16bars_2"]
    # the score renderings of different bar counts join them
    names += ["Schubert_D960_mv3_8bars_Score_3", "Schubert_D960_mv3_16bars_Score_2"]
    assert set(music_groups(names, notes)) == {"Schubert_D960_mv3_16bars_2"}


def test_music_groups_missing_notes_keep_passage_grouping(caplog):
    notes = synthetic_recordings()
    names = sorted(notes)
    del notes["Schubert_D960_mv3_16bars_1_1"]
    with caplog.at_level(logging.WARNING, logger="pianoeval.data.splits"):
        groups = dict(zip(names, music_groups(names, notes)))
    assert "Schubert_D960_mv3_16bars_1_1" in caplog.text
    # still joined: its passage (16-bar 1) is joined through performer 0 and the score
    assert groups["Schubert_D960_mv3_16bars_1_1"] == groups["Schubert_D960_mv3_8bars_1_1"]
    with pytest.raises(ValueError, match="min_overlap must be in"):
        music_groups(names, notes, min_overlap=0)
    with pytest.raises(ValueError, match="duplicate segment names"):
        music_groups(names + names[:1], notes)


def test_piece_split_never_separates_content_groups():
    notes = synthetic_recordings()
    for seed, piece in enumerate(("Schubert_D960_mv3", "Schubert_D960_mv2", "Schubert_D935_no.3")):
        notes.update({n.replace("Schubert_D960_mv3", piece): v
                      for n, v in synthetic_recordings(seed=seed).items()})
    names = sorted(notes)
    groups = music_groups(names, notes)
    assert len(set(groups)) == 6
    splits = make_splits(names, groups, seeds=list(range(10)), test_fraction=0.15, n_folds=2)
    for column in [c for c in splits.columns if c.startswith("piece_split_s")]:
        assert (splits.groupby("group")[column].nunique() == 1).all()


# ----------------------------------------------------------------------------- using the splits

def test_fold_masks_train_excludes_held_out_and_test():
    names = synthetic_names()
    splits = make_splits(names, passage_groups(names), seeds=[0], test_fraction=0.15, n_folds=4)
    for column in ("piece_split_s0", "performer_split", "work_split"):
        seen = np.zeros(len(splits), bool)
        folds = list(fold_masks(splits[column], 4))
        assert [k for k, *_ in folds] == [0, 1, 2, 3]
        for k, train, held_out, test in folds:
            assert not (train & held_out).any() and not (train & test).any()
            assert (splits[column][held_out] == str(k)).all()
            assert (train | held_out | test).all()  # train_only rows train
            seen |= held_out
        assert (seen == splits[column].isin(["0", "1", "2", "3"])).all()


def test_fold_masks_serve_lopo_columns():
    values = pd.Series(["2", "0", "10", "1", "2"] + [str(k) for k in range(3, 10)])
    folds = list(fold_masks(values))
    assert [k for k, *_ in folds] == list(range(11))  # numeric order: "10" last
    k, train, held, test = folds[2]
    assert held.tolist()[:5] == [True, False, False, False, True]
    assert (train == ~held).all() and not test.any()
    as_ints = list(fold_masks(pd.Series([0, 1, 1, 2])))  # read from CSV without dtype=str
    assert [k for k, *_ in as_ints] == [0, 1, 2]
    with pytest.raises(ValueError, match=r"n_folds=4 but the split column has folds \['0', '2'\]"):
        list(fold_masks(pd.Series(["0", "2", "test"]), n_folds=4))
    with pytest.raises(ValueError, match=r"fold numbers, 'test' or 'train_only'; got \['nan'\]"):
        list(fold_masks(pd.Series(["0", None])))


def test_inner_validation_uses_training_rows_of_the_next_fold():
    values = pd.Series(["0", "1", "1", "2", "test", "train_only", "0", "2"])
    for k, train, held_out, test in fold_masks(values):
        val = inner_validation(values, k, train)
        assert val.any() and not (val & held_out).any() and not (val & test).any()
        assert (val <= train).all()
        assert set(values[val]) == {str((k + 1) % 3)}
    # a fold without training rows (here: rows of fold 1 removed from train) is skipped
    train = (values != "0").to_numpy() & (values != "test").to_numpy()
    train[[1, 2]] = False
    assert values[inner_validation(values, 0, train)].tolist() == ["2", "2"]
    with pytest.raises(ValueError, match="no other fold has training rows"):
        inner_validation(values, 0, (values == "train_only").to_numpy())
    with pytest.raises(ValueError, match=r"fold 5 not among the split's folds \['0', '1', '2'\]"):
        inner_validation(values, 5, train)
    with pytest.raises(ValueError, match="train must be a boolean mask"):
        inner_validation(values, 0, train[:3])


def test_inner_validation_on_lopo_like_column_wraps_around():
    values = pd.Series([str(k) for k in range(23)] * 2)
    for k, train, held_out, test in fold_masks(values, 23):
        val = inner_validation(values, k, train)
        assert values[val].unique().tolist() == [str((k + 1) % 23)]


def test_split_columns_expand_piece_seeds_and_name_problems():
    names = synthetic_names()
    splits = make_splits(names, passage_groups(names), seeds=[4, 0, 7], test_fraction=0.15,
                         n_folds=4)
    assert split_columns(splits, ["piece", "performer"]) == {
        "piece_s4": "piece_split_s4", "piece_s0": "piece_split_s0", "piece_s7": "piece_split_s7",
        "performer": "performer_split"}
    assert list(split_columns(splits, ["lopo", "piece"], piece_seeds=2)) == [
        "lopo", "piece_s4", "piece_s0"]
    assert split_columns(splits, ["piece_s7", "work"]) == {"piece_s7": "piece_split_s7",
                                                          "work": "work_split"}
    assert split_columns(splits, "work") == {"work": "work_split"}
    with pytest.raises(ValueError, match=r"unknown split 'fold' \(available: piece, piece_s4"):
        split_columns(splits, ["fold"])
    with pytest.raises(ValueError, match="split 'piece_s1': no column 'piece_split_s1'"):
        split_columns(splits, ["piece_s1"])
    with pytest.raises(ValueError, match="split 'lopo': no column 'lopo_split'"):
        split_columns(splits.drop(columns="lopo_split"), ["lopo"])
    with pytest.raises(ValueError, match="split 'piece': no piece_split_s<seed> column"):
        split_columns(splits[["segment", "performer_split"]], ["piece"])
    with pytest.raises(ValueError, match="piece_seeds=4 but the splits have 3 piece seed"):
        split_columns(splits, ["piece"], piece_seeds=4)
    with pytest.raises(ValueError, match="piece_seeds must be a positive integer"):
        split_columns(splits, ["piece"], piece_seeds=0)
    assert piece_seed_of("piece_s3") == 3
    assert piece_seed_of("piece") is None and piece_seed_of("performer") is None


# ----------------------------------------------------------------------------- the real data

def shift_overlap(a: np.ndarray, b: np.ndarray, tol: float = 0.002) -> float:
    """Share of the shorter segment's notes that recur in the other with the same pitch at one
    common time shift (within ``tol`` seconds): independent of ``content_overlap``, and specific
    to one recording (a pianist never repeats a passage's timing to the millisecond)."""
    if len(a) > len(b):
        a, b = b, a
    same = a["pitch"][:, None] == b["pitch"][None, :]
    shifts = np.sort((b["onset_sec"][None, :] - a["onset_sec"][:, None])[same])
    if len(a) == 0 or shifts.size == 0:
        return 0.0
    in_window = np.searchsorted(shifts, shifts + 2 * tol, side="right") - np.arange(len(shifts))
    return min(int(in_window.max()), len(a)) / len(a)


@pytest.mark.skipif(not (MIRROR / "percepiano" / "midi").is_dir(),
                    reason=f"no data mirror at {MIRROR}")
def test_committed_splits_keep_every_recording_in_one_fold():
    """data/splits.csv on the real PercePiano MIDI: any two segments of one pianist and one piece
    whose notes overlap (half of the shorter one's notes at one time shift) share their value in
    every split column (so never test vs a fold, never two folds).

    Score renderings are left out: they are deadpan renderings, not recordings, and repeated
    music (a varied reprise) renders with identical timing, which this check cannot tell apart.
    """
    splits = pd.read_csv(ROOT / "data" / "splits.csv", dtype=str).set_index("segment")
    piece_columns = [c for c in splits.columns if c.startswith("piece_split_s")]
    assert len(piece_columns) >= 5, f"expected >= 5 piece split seeds, have {piece_columns}"
    paths = {p.stem.strip(): p for p in (MIRROR / "percepiano" / "midi").glob("*.mid")}
    assert set(splits.index) <= set(paths), sorted(set(splits.index) - set(paths))[:5]
    by_player = defaultdict(list)
    for name in splits.index:
        seg = parse_segment(name)
        if seg.performer not in ("Score", "Score2"):
            by_player[seg.piece, seg.performer].append(name)
    notes = {n: read_midi(paths[n]).notes for names in by_player.values() for n in names}
    overlapping = [(a, b) for names in by_player.values() for a, b in combinations(names, 2)
                   if shift_overlap(notes[a], notes[b]) >= 0.5]
    # not vacuous: the 8-bar segments inside 16-bar segments of the same recording
    across = [(a, b) for a, b in overlapping
              if parse_segment(a).passage != parse_segment(b).passage]
    assert len(across) >= 200, len(across)
    leaks = [(column, a, b, splits.at[a, column], splits.at[b, column])
             for column in splits.columns for a, b in overlapping
             if splits.at[a, column] != splits.at[b, column]]
    assert not leaks, f"{len(leaks)} overlapping pairs split, e.g. {leaks[:3]}"
