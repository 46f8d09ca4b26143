"""The PercePiano evaluation protocols, re-implemented by rule (upstream fold files were never
published). Each split maps a segment to a fold ``"0"``..``"G-1"``, ``"test"`` or ``"train_only"``.

Columns of data/splits.csv (``make_splits``):

- ``group``: the music group of a segment (``music_groups``): every segment of a piece whose notes
  overlap, across bar counts and performers. The piece split never separates a group.
- ``piece_split_s<seed>``: piece split drawn with ``seed`` (one column per seed).
- ``performer_split``, ``work_split``: the upstream performer rule; whole works held out.
- ``lopo_split``: leave one performer out, one fold per performer group, no test set.

Upstream grouped the piece split by passage id (piece + bar count + index). That leaks: PercePiano
cuts 8- and 16-bar segments from the same recordings (an 8-bar segment of a performer lies
note for note inside a 16-bar segment of that performer), and repeated music (da capo) has
note-identical score renderings under different indices. ``music_groups`` joins those by note
content, so no recording reaches two folds, or test and training.
"""
from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from itertools import combinations
from numbers import Real

import numpy as np
import pandas as pd

from pianoeval.data.segments import parse_segment

log = logging.getLogger(__name__)

BEETHOVEN_PERFORMERS = (1, 2, 3, 4, 7, 11, 14, 18, 19, 22, 24, 26)
TEST, TRAIN_ONLY = "test", "train_only"
SCORE_PERFORMERS = ("Score", "Score2")
NGRAM = 8  # pitch n-gram length of content_overlap (see its docstring for the data behind it)
MIN_OVERLAP = 0.5  # default music_groups threshold (params.yaml splits.min_overlap)
PIECE_PREFIX = "piece_split_s"
PROTOCOL_COLUMNS = {"performer": "performer_split", "work": "work_split", "lopo": "lopo_split"}
_PIECE_SEED = re.compile(r"^piece_s(\d+)$")


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


# ----------------------------------------------------------------------------- note content

def _pitches(notes: np.ndarray, label: str) -> list[int]:
    notes = np.asarray(notes)
    if notes.dtype.names is not None:
        if "pitch" not in notes.dtype.names:
            raise ValueError(f"{label}: note array has no 'pitch' field "
                             f"(fields: {notes.dtype.names})")
        notes = notes["pitch"]
    if notes.ndim != 1:
        raise ValueError(f"{label}: notes must be 1-D, got shape {notes.shape}")
    if notes.size and not np.issubdtype(notes.dtype, np.integer):
        raise ValueError(f"{label}: pitches must be integers, got dtype {notes.dtype}")
    return notes.tolist()


def _ngrams(pitches: list[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(pitches[i:i + n]) for i in range(len(pitches) - n + 1)] if n else []


def _check_ngram(ngram: int) -> None:
    if not (_is_int(ngram) and ngram >= 1):
        raise ValueError(f"ngram must be a positive integer, got {ngram!r}")


def _share(grams_a: list, grams_b: list, set_a: set, set_b: set) -> float:
    """Share of the shorter n-gram list found in the other's n-gram set (equal lengths: the
    larger of the two shares, so the result does not depend on argument order)."""
    if not grams_a or not grams_b:
        return 0.0
    a_in_b = sum(g in set_b for g in grams_a) / len(grams_a)
    if len(grams_a) < len(grams_b):
        return a_in_b
    b_in_a = sum(g in set_a for g in grams_b) / len(grams_b)
    return b_in_a if len(grams_b) < len(grams_a) else max(a_in_b, b_in_a)


def content_overlap(a: np.ndarray, b: np.ndarray, ngram: int = NGRAM) -> float:
    """Share of the shorter note sequence's pitch n-grams that occur in the other's, in [0, 1].

    ``a`` and ``b``: note arrays sorted by onset then pitch (``read_midi(path).notes``, or plain
    1-D integer pitch arrays). An n-gram is ``ngram`` consecutive pitches (both sequences use
    the shorter one's length when it has fewer than ``ngram`` notes). Pitches only, no times:
    invariant to time shifts (a segment cut from a longer recording starts at another onset).

    1.0 when the shorter sequence is a slice of the longer one; near 0 for unrelated music.
    On PercePiano (same piece, same performer, n = 8): an 8-bar segment inside a 16-bar segment of
    the same recording scores 0.97..1.0, different recordings of the same music (repeats) at most
    0.77 and mostly below 0.1, unrelated passages below 0.05. Different pianists playing the same
    passage score low (chord notes arrive in a different order), so compare within one performer.
    An empty sequence overlaps nothing (0.0).
    """
    _check_ngram(ngram)
    pa, pb = _pitches(a, "a"), _pitches(b, "b")
    n = min(ngram, len(pa), len(pb))
    ga, gb = _ngrams(pa, n), _ngrams(pb, n)
    return _share(ga, gb, set(ga), set(gb))


# ----------------------------------------------------------------------------- music groups

class _UnionFind:
    def __init__(self, items: Iterable[str]):
        self.parent = {x: x for x in items}

    def find(self, x: str) -> str:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _check_names(names: list[str]) -> list:
    names = list(names)
    dupes = sorted(n for n, c in Counter(names).items() if c > 1)
    if dupes:
        raise ValueError(f"duplicate segment names: {dupes[:5]}")
    return [parse_segment(n) for n in names]


def music_groups(names: list[str], notes: Mapping[str, np.ndarray],
                 min_overlap: float = MIN_OVERLAP, ngram: int = NGRAM) -> list[str]:
    """One music-group id per name: the segments that must never be split between folds.

    Union-find over
    (a) the passage id (``parse_segment(n).passage``: piece + bar count + index), which joins all
        performers and both score renderings of one passage;
    (b) note content within one piece: ``content_overlap(notes[x], notes[y], ngram) >=
        min_overlap`` for two segments of the same performer (any bar counts: an 8-bar segment
        inside a 16-bar segment of the same recording; a performer's note-identical repeat), and
        for two score renderings (``Score``/``Score2``) of different bar counts, so an 8-bar and a
        16-bar passage of the same music are joined through the score even where a performer
        played only one of them.
    Different pianists are never compared directly (their note order differs within chords).

    A name missing from ``notes`` (an unreadable MIDI file) keeps its passage grouping only; a
    warning names it. The group id is the alphabetically first passage id in the group.
    """
    names = list(names)
    segs = _check_names(names)
    if isinstance(min_overlap, bool) or not isinstance(min_overlap, Real) \
            or not 0 < min_overlap <= 1:
        raise ValueError(f"min_overlap must be in (0, 1], got {min_overlap!r}")
    _check_ngram(ngram)
    missing = [n for n in names if n not in notes]
    if missing:
        log.warning("%d segment(s) without notes keep their passage grouping only: %s",
                    len(missing), ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
    passages = _UnionFind(sorted({s.passage for s in segs}))  # union-find over passage ids
    pitches = {name: _pitches(notes[name], name) for name in names if name in notes}
    grams = {name: _ngrams(p, ngram) for name, p in pitches.items()}
    gram_sets = {name: set(g) for name, g in grams.items()}
    by_piece = defaultdict(list)
    for name, seg in zip(names, segs):
        if name in grams:
            by_piece[seg.piece].append((name, seg))
    for members in by_piece.values():
        for (x, sx), (y, sy) in combinations(members, 2):
            both_scores = sx.performer in SCORE_PERFORMERS and sy.performer in SCORE_PERFORMERS
            if sx.performer != sy.performer and not (both_scores and sx.bars != sy.bars):
                continue
            if passages.find(sx.passage) == passages.find(sy.passage):
                continue
            if min(len(pitches[x]), len(pitches[y])) < ngram:  # a very short segment
                overlap = content_overlap(pitches[x], pitches[y], ngram)
            else:
                overlap = _share(grams[x], grams[y], gram_sets[x], gram_sets[y])
            if overlap >= min_overlap:
                passages.union(sx.passage, sy.passage)
    return [passages.find(s.passage) for s in segs]


# ----------------------------------------------------------------------------- the protocols

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


def piece_split(names: list[str], groups: list[str], seed: int, test_fraction: float = 0.15,
                n_folds: int = 4) -> list[str]:
    """Piece split over music groups (``music_groups``): draw whole groups of more than one
    segment at random (``np.random.default_rng(seed)``) until at least ``test_fraction`` of the
    segments are test; deal the remaining groups, in drawn order, each to the smallest fold.
    A group is never split between folds, or between test and a fold."""
    if len(names) != len(groups):
        raise ValueError(f"{len(names)} names but {len(groups)} groups")
    _check_fraction_folds(test_fraction, n_folds)
    sizes = Counter(groups)
    rng = np.random.default_rng(seed)
    ordered = sorted(sizes)
    order = [ordered[i] for i in rng.permutation(len(ordered))]
    test, n_test = set(), 0
    for group in order:
        if n_test >= test_fraction * len(names):
            break
        if sizes[group] > 1:
            test.add(group)
            n_test += sizes[group]
    fold_of = _deal([g for g in order if g not in test], sizes, n_folds)
    return [TEST if g in test else fold_of[g] for g in groups]


def work_split(names: list[str], n_folds: int = 4) -> list[str]:
    """Whole works held out, no test set: with PercePiano's four works, one work per fold."""
    works = [parse_segment(n).work for n in names]
    sizes = Counter(works)
    fold_of = _deal(sorted(sizes, key=lambda w: (-sizes[w], w)), sizes, n_folds)
    return [fold_of[w] for w in works]


def lopo_group(name: str) -> int:
    """Performer group key of a segment: ``performer_index`` for a pianist, -1 for both score
    renderings (``Score`` and ``Score2``).

    Both renderings are the same deadpan rendition of the score, not a pianist, so they form one
    group. They are keyed by name rather than by index because ``performer_index`` gives
    ``Score`` the index 0, which it shares with a real pianist (Schubert ``0`` / Beethoven ``1``).
    """
    if parse_segment(name).performer in SCORE_PERFORMERS:
        return -1
    return performer_index(name)


def lopo_split(names: list[str]) -> list[str]:
    """Leave one performer out: fold = rank of ``lopo_group(name)`` among the groups present,
    ``"0"``..``"G-1"`` in sorted group order (the score renderings, if present, are ``"0"``).
    Every segment is held out exactly once; no test set."""
    keys = [lopo_group(n) for n in names]
    fold_of = {g: str(k) for k, g in enumerate(sorted(set(keys)))}
    return [fold_of[g] for g in keys]


def _check_fraction_folds(test_fraction: float, n_folds: int) -> None:
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, Real) \
            or not 0 < test_fraction < 1:
        raise ValueError(f"splits.test_fraction must be in (0, 1), got {test_fraction!r}")
    if not (_is_int(n_folds) and n_folds >= 2):
        raise ValueError(f"splits.n_folds must be an integer >= 2, got {n_folds!r}")


def _check_seeds(seeds) -> list[int]:
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise ValueError(f"splits.seeds must be a list of integers, got {seeds!r}")
    seeds = list(seeds)
    if not seeds:
        raise ValueError("splits.seeds is empty: give at least one seed")
    bad = [s for s in seeds if not (_is_int(s) and s >= 0)]
    if bad:
        raise ValueError(f"splits.seeds must be non-negative integers, got {bad}")
    dupes = sorted(s for s, c in Counter(seeds).items() if c > 1)
    if dupes:
        raise ValueError(f"splits.seeds repeats {dupes}")
    return [int(s) for s in seeds]


def make_splits(names: list[str], groups: list[str], seeds: list[int], test_fraction: float,
                n_folds: int) -> pd.DataFrame:
    """Every protocol, one row per segment sorted by name. Columns, in this order: ``segment``,
    ``group``, ``piece_split_s<seed>`` for each seed (in the given order), ``performer_split``,
    ``work_split``, ``lopo_split``. ``groups[i]`` is the music group of ``names[i]``."""
    if len(names) != len(groups):
        raise ValueError(f"{len(names)} names but {len(groups)} groups")
    seeds = _check_seeds(seeds)
    _check_fraction_folds(test_fraction, n_folds)
    _check_names(names)
    pairs = sorted(zip(names, groups))
    names, groups = [n for n, _ in pairs], [g for _, g in pairs]
    columns = {"segment": names, "group": groups}
    for seed in seeds:
        columns[f"{PIECE_PREFIX}{seed}"] = piece_split(names, groups, seed, test_fraction, n_folds)
    columns["performer_split"] = performer_split(names, n_folds)
    columns["work_split"] = work_split(names, n_folds)
    columns["lopo_split"] = lopo_split(names)
    return pd.DataFrame(columns)


# ----------------------------------------------------------------------------- using the splits

def _folds(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """String values and the fold labels present, ordered numerically."""
    values = np.array([str(v) for v in values], dtype=object)
    labels = set(values) - {TEST, TRAIN_ONLY}
    bad = sorted(v for v in labels if not v.isdigit())
    if bad:
        raise ValueError(f"split values must be fold numbers, {TEST!r} or {TRAIN_ONLY!r}; "
                         f"got {bad[:5]}")
    return values, sorted(labels, key=int)


def fold_masks(values: pd.Series, n_folds: int | None = None
               ) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(k, train, held_out, test)`` boolean masks for each fold of one split column.

    The folds are the values other than ``"test"`` and ``"train_only"``, in numeric order, and
    ``k`` is the fold number. Fold model k trains on every row that is neither fold k nor test
    (``train_only`` rows included), is scored on fold k (cross-validation) and on the test rows,
    if the split has any. Serves every split column, ``lopo_split`` included (one fold per
    performer group, no test). ``n_folds``, if given, must equal the folds found: ``0..n_folds-1``.
    """
    values, labels = _folds(values)
    if n_folds is not None and labels != [str(k) for k in range(n_folds)]:
        raise ValueError(f"n_folds={n_folds} but the split column has folds {labels}")
    test = values == TEST
    for label in labels:
        held_out = values == label
        yield int(label), ~held_out & ~test, held_out, test


def inner_validation(values: pd.Series, k: int, train: np.ndarray) -> np.ndarray:
    """Early-stopping rows of fold model k, drawn from its training rows only: the training rows
    of the fold after k (``(k + 1) mod G`` over the G folds in ``values``); if that fold has
    none, the one after it, and so on. ValueError if no other fold has training rows.

    The caller fits on ``train & ~val``: held-out and test rows are never returned, because they
    are never in ``train``."""
    values, labels = _folds(values)
    train = np.asarray(train)
    if train.dtype != bool or train.shape != values.shape:
        raise ValueError(f"train must be a boolean mask of {values.shape}, got {train.dtype} "
                         f"{train.shape}")
    if str(k) not in labels:
        raise ValueError(f"fold {k} not among the split's folds {labels}")
    at = labels.index(str(k))
    for step in range(1, len(labels)):
        val = train & (values == labels[(at + step) % len(labels)])
        if val.any():
            return val
    raise ValueError(f"fold model {k}: no other fold has training rows for early stopping "
                     f"(folds {labels}, {int(train.sum())} training rows)")


def piece_seed_of(split_name: str) -> int | None:
    """The seed of a piece-split protocol name: ``"piece_s3"`` -> 3; anything else -> None."""
    m = _PIECE_SEED.match(split_name)
    return int(m.group(1)) if m else None


def split_columns(splits: pd.DataFrame, names: Iterable[str], piece_seeds: int | None = None
                  ) -> dict[str, str]:
    """Protocol split name -> column of ``splits``, in the order asked.

    ``"piece"`` expands to ``"piece_s<seed>" -> "piece_split_s<seed>"`` for every piece seed
    column, in column order (only the first ``piece_seeds`` of them, if given); ``"piece_s<seed>"``
    names one seed. ``"performer"``, ``"work"``, ``"lopo"`` -> ``performer_split``,
    ``work_split``, ``lopo_split``. ValueError names an unknown split or a missing column and
    lists what is available.
    """
    if isinstance(names, str):
        names = [names]
    piece_cols = [c for c in splits.columns
                  if c.startswith(PIECE_PREFIX) and c[len(PIECE_PREFIX):].isdigit()]
    available = [f"piece_s{c[len(PIECE_PREFIX):]}" for c in piece_cols] + [
        n for n, c in PROTOCOL_COLUMNS.items() if c in splits.columns]
    if piece_seeds is not None and not (_is_int(piece_seeds) and piece_seeds >= 1):
        raise ValueError(f"piece_seeds must be a positive integer, got {piece_seeds!r}")
    out = {}
    for name in names:
        if name == "piece":
            if not piece_cols:
                raise ValueError(f"split 'piece': no {PIECE_PREFIX}<seed> column (columns: "
                                 f"{list(splits.columns)})")
            if piece_seeds is not None and piece_seeds > len(piece_cols):
                raise ValueError(f"piece_seeds={piece_seeds} but the splits have "
                                 f"{len(piece_cols)} piece seed column(s): {piece_cols}")
            for column in piece_cols[:piece_seeds]:
                out[f"piece_s{column[len(PIECE_PREFIX):]}"] = column
        elif piece_seed_of(name) is not None or name in PROTOCOL_COLUMNS:
            seed = piece_seed_of(name)
            column = PROTOCOL_COLUMNS[name] if seed is None else f"{PIECE_PREFIX}{seed}"
            if column not in splits.columns:
                raise ValueError(f"split {name!r}: no column {column!r} (available splits: "
                                 f"{available})")
            out[name] = column
        else:
            raise ValueError(f"unknown split {name!r} (available: piece, {', '.join(available)})")
    return out
