"""Note matching with parangonar, a fallback matcher, and the alignment counts.

Matchers (parangonar 3.x, offline symbolic ones that take note arrays):

* ``dualdtw``: ``DualDTWNoteMatcher``: onset-level DTW run forwards and backwards, then
  pitch-wise matching around the mapped times. Default: the most accurate on our data and
  several times faster than ``automatic`` (benchmarks/align.md), with its onset DTW swapped
  for ``SetDTW`` (same result, numba instead of pure Python).
* ``automatic``: ``AutomaticNoteMatcher``: coarse piano-roll DTW, windowed fine DTW, greedy
  matching, mending. The fallback.

Definitions used everywhere: ``n_matched`` score/performance pairs, ``n_inserted`` performed
notes without a score note, ``n_deleted`` score notes without a performed note, and
``match_rate = n_matched / n_score_notes`` (the share of the score that was found in the
performance; insertions do not lower it, ``n_inserted`` reports them).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

MATCHERS = ("dualdtw", "automatic")

PERF_DTYPE = np.dtype([("onset_sec", "f8"), ("duration_sec", "f8"), ("pitch", "i4"),
                       ("velocity", "i4"), ("id", "U16")])


def performance_note_array(notes: np.ndarray) -> np.ndarray:
    """partitura-style performance note array from NOTE_DTYPE notes; note ``i`` gets id ``p{i}``."""
    out = np.empty(len(notes), dtype=PERF_DTYPE)
    for name in ("onset_sec", "duration_sec", "pitch", "velocity"):
        out[name] = notes[name]
    out["id"] = [f"p{i}" for i in range(len(notes))]
    return out


class SetDTW:
    """Drop-in for parangonar's ``DTWSL`` in ``OnsetMatcherDTW``: DTW of performed pitches
    against the pitch sets of the score onsets, cost 0 if the pitch is in the set, else 1.

    ``DTWSL`` evaluates that cost and the recursion in a pure-Python double loop (about 2/3 of
    ``DualDTWNoteMatcher``'s time on a PercePiano segment, and quadratic: 430 s for a 16,000-note
    ASAP piece). Here the cost matrix is one vectorised lookup and the recursion is parangonar's
    own numba ``weighted_dtw_forward_and_backward``, with the steps ordered (diagonal, then
    performance, then score) so that ties break as ``DTWSL``'s backtracking does: the alignments
    are identical (150 of 150 PercePiano segments compared, benchmarks/align.md).
    """

    STEPS = np.array([[1, 1], [1, 0], [0, 1]])
    WEIGHTS = np.ones(3)

    def __call__(self, pitches, pitch_sets, return_path: bool = True):
        from parangonar.dp.dtw import weighted_dtw_forward_and_backward

        pitches = np.asarray(pitches, dtype=np.int64)
        member = np.zeros((128, len(pitch_sets)), dtype=bool)
        for k, pitch_set in enumerate(pitch_sets):
            member[np.fromiter(pitch_set, dtype=np.int64, count=len(pitch_set)), k] = True
        cost = 1.0 - member[pitches]
        accumulated, path = weighted_dtw_forward_and_backward(cost, self.WEIGHTS, self.STEPS)
        return (accumulated[-1, -1], path) if return_path else (accumulated[-1, -1],)


def make_matcher(name: str):
    """A fresh parangonar matcher by name (see the module docstring)."""
    import parangonar
    from parangonar.match.matchers import OnsetMatcherDTW

    if name == "dualdtw":
        return parangonar.DualDTWNoteMatcher(onset_matcher=OnsetMatcherDTW(dtw=SetDTW()))
    if name == "automatic":
        return parangonar.AutomaticNoteMatcher()
    raise ValueError(f"unknown matcher {name!r} (have: {', '.join(MATCHERS)})")


def score_index(alignment: list[dict], score_ids: np.ndarray, perf_ids: np.ndarray) -> np.ndarray:
    """Per performed note, the index of its matched score note, or -1 (an insertion).

    Each score and each performed note is used at most once (the first match listed wins), so a
    matcher that lists a note twice cannot inflate the counts.
    """
    s_pos = {str(sid): i for i, sid in enumerate(score_ids)}
    p_pos = {str(pid): i for i, pid in enumerate(perf_ids)}
    out = np.full(len(perf_ids), -1, dtype=np.int64)
    used = set()
    for a in alignment:
        if a.get("label") != "match":
            continue
        s, p = s_pos.get(str(a["score_id"])), p_pos.get(str(a["performance_id"]))
        if s is None or p is None or s in used or out[p] >= 0:
            continue
        out[p] = s
        used.add(s)
    return out


@dataclass
class Alignment:
    """One performance against one score: ``score_index`` per performed note (-1: inserted)."""

    score_index: np.ndarray
    n_score: int
    matcher: str = ""
    status: str = "ok"
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def n_matched(self) -> int:
        return int((self.score_index >= 0).sum())

    @property
    def n_inserted(self) -> int:
        return int((self.score_index < 0).sum())

    @property
    def n_deleted(self) -> int:
        return self.n_score - self.n_matched

    @property
    def match_rate(self) -> float:
        """n_matched / n_score_notes (NaN without score notes)."""
        return self.n_matched / self.n_score if self.n_score else float("nan")


def run_matcher(name: str, score_notes: np.ndarray, perf: np.ndarray, seed: int = 0
                ) -> np.ndarray:
    """``score_index`` from matcher ``name`` (exceptions propagate).

    ``automatic`` samples note combinations with numpy's global RNG
    (``SequenceAugmentedGreedyMatcher``), so the global state is seeded for the call and
    restored after it: the same input gives the same alignment whatever ran before.
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        alignment = make_matcher(name)(score_notes, perf)
    finally:
        np.random.set_state(state)
    return score_index(alignment, score_notes["id"], perf["id"])


def align(score_notes: np.ndarray, perf: np.ndarray, matchers=MATCHERS,
          min_match_rate: float = 0.85, min_usable_rate: float = 0.3) -> Alignment:
    """Align with ``matchers[0]``; try the next one when it raises or its match rate is below
    ``min_match_rate``; keep the best match rate seen.

    Status: ``ok`` (best rate >= min_match_rate), ``low_match`` (kept, but below it),
    ``failed`` (every matcher raised, or the best rate is below ``min_usable_rate``: the
    alignment is discarded and every note counts as inserted). Never raises on bad input.
    """
    if not matchers:
        raise ValueError("align: no matchers given")
    start = time.perf_counter()
    best: Alignment | None = None
    errors = []
    for name in matchers:
        try:
            idx = run_matcher(name, score_notes, perf)
        except Exception as exc:  # a matcher bug on one item must not stop the batch
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        result = Alignment(idx, len(score_notes), matcher=name)
        if best is None or result.match_rate > best.match_rate:
            best = result
        if result.match_rate >= min_match_rate:
            break
    if best is None or not best.match_rate >= min_usable_rate:
        if best is not None:
            errors.append(f"{best.matcher}: best match rate {best.match_rate:.3f} is below "
                          f"min_usable_rate {min_usable_rate}")
        best = Alignment(np.full(len(perf), -1, dtype=np.int64), len(score_notes),
                         matcher="" if best is None else best.matcher, status="failed")
    elif best.match_rate < min_match_rate:
        best.status = "low_match"
    best.errors, best.seconds = errors, time.perf_counter() - start
    return best
