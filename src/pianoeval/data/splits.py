"""The PercePiano evaluation protocols, re-implemented by rule (upstream fold files were never
published). Each split maps a segment to a fold ``"0"``..``"3"``, ``"test"`` or ``"train_only"``.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from pianoeval.data.segments import parse_segment

BEETHOVEN_PERFORMERS = (1, 2, 3, 4, 7, 11, 14, 18, 19, 22, 24, 26)
TEST, TRAIN_ONLY = "test", "train_only"


def performer_index(name: str) -> int:
    """Upstream performer index: Beethoven numbers -> position in BEETHOVEN_PERFORMERS,
    Schubert numbers as they are, ``Score`` = 0, ``Score2`` = -1."""
    seg = parse_segment(name)
    if seg.performer == "Score":
        return 0
    if seg.performer == "Score2":
        return -1
    number = int(seg.performer)
    if seg.piece.startswith("Beethoven"):
        if number not in BEETHOVEN_PERFORMERS:
            raise ValueError(f"{name}: Beethoven performer {number} not in {BEETHOVEN_PERFORMERS}")
        return BEETHOVEN_PERFORMERS.index(number)
    return number


def performer_split(names: list[str], n_folds: int = 4) -> list[str]:
    """Test = indices 1 and 2; fold k = indices 2k+3 and 2k+4; everything else train_only."""
    out = []
    for name in names:
        idx = performer_index(name)
        if idx in (1, 2):
            out.append(TEST)
        elif 3 <= idx < 3 + 2 * n_folds:
            out.append(str((idx - 3) // 2))
        else:
            out.append(TRAIN_ONLY)
    return out


def _deal(groups: list[str], sizes: Counter, n_folds: int) -> dict[str, str]:
    """Deal groups, in the given order, each to the currently smallest fold (ties: lowest fold)."""
    load = [0] * n_folds
    fold_of = {}
    for group in groups:
        k = int(np.argmin(load))
        fold_of[group] = str(k)
        load[k] += sizes[group]
    return fold_of


def piece_split(names: list[str], seed: int, test_fraction: float = 0.15, n_folds: int = 4
                ) -> list[str]:
    """Group by passage (all performers of the same music); draw whole groups of more than one
    segment at random until at least ``test_fraction`` of segments are test; deal the rest."""
    passages = [parse_segment(n).passage for n in names]
    sizes = Counter(passages)
    rng = np.random.default_rng(seed)
    order = [sorted(sizes)[i] for i in rng.permutation(len(sizes))]
    test, n_test = set(), 0
    for group in order:
        if n_test >= test_fraction * len(names):
            break
        if sizes[group] > 1:
            test.add(group)
            n_test += sizes[group]
    fold_of = _deal([g for g in order if g not in test], sizes, n_folds)
    return [TEST if p in test else fold_of[p] for p in passages]


def work_split(names: list[str], n_folds: int = 4) -> list[str]:
    """Whole works held out, no test set: with PercePiano's four works, one work per fold."""
    works = [parse_segment(n).work for n in names]
    sizes = Counter(works)
    fold_of = _deal(sorted(sizes, key=lambda w: (-sizes[w], w)), sizes, n_folds)
    return [fold_of[w] for w in works]


def make_splits(names: list[str], seed: int, test_fraction: float, n_folds: int) -> pd.DataFrame:
    names = sorted(names)
    return pd.DataFrame({
        "segment": names,
        "piece_split": piece_split(names, seed, test_fraction, n_folds),
        "performer_split": performer_split(names, n_folds),
        "work_split": work_split(names, n_folds),
    })


SPLIT_COLUMNS = {"piece": "piece_split", "performer": "performer_split", "work": "work_split"}


def fold_masks(split: pd.Series, n_folds: int = 4):
    """Yield (k, train, held_out, test) boolean masks for fold model k of one split column.

    Model k trains on every segment that is neither fold k nor test (``train_only`` included),
    is scored on fold k (cross-validation) and on the fixed test set, if the split has one.
    """
    values = split.astype(str)
    test = (values == TEST).to_numpy()
    for k in range(n_folds):
        held_out = (values == str(k)).to_numpy()
        yield k, ~held_out & ~test, held_out, test
