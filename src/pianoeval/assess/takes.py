"""Practice takes: performances with restarts, repeated passages, skipped bars, wrong notes.

A practice take is not one clean pass through the score: the player stops and starts again
from the top, plays a passage twice, skips bars. ``align`` (one monotone DTW over the whole
take) can follow only one pass: after a restart it aligns the abandoned first attempt to the
score's opening and leaves the opening of the complete pass unmatched (benchmarks/takes.md).

``align_passes`` cuts the take into *passes* (stretches that move forward through the score)
and aligns each pass on its own:

1. **Jump DTW** (``jump_dtw``). The onset-level DTW of ``align.match.SetDTW`` (each performed
   note against the pitch set of each score onset: cost 0 if its pitch is in the set, else
   1; steps: next note on the next onset, next note on the same onset, same note on the next
   onset), plus one step: from the previous note's cheapest cell to the first onset of any
   bar, for ``jump_cost`` (4 mismatched notes). A jump back (to an onset at or before the one
   it leaves) is a restart or a repeat, and cuts the take into passes there; a jump forward is
   a skip inside a pass. The path may also start at any bar and stop anywhere for the same
   cost (a take of a passage, a take that breaks off). Four small costs make the path follow
   how a take is played, where pitches alone tie:

   * next note on the same onset after a pause (> ``CHORD_SEC``): +0.5, next note on the next
     onset within ``TOGETHER_SEC`` (a chord): +0.5. Without them a first attempt whose
     notes are all in the opening chord "stays" on it for free, and a chord at a stop is
     spread over the next onsets that repeat it;
   * passing a score onset without a note: +1 (with pitch cost 0 where a held bass note
     recurs, skipped bars were otherwise cheaper to walk through than to jump);
   * a jump after a pause is cheaper by 0.25 per second (at most 0.5): a restart follows a
     pause, so among jump points the pitches cannot tell apart, the one after the pause.

   Ties go to the later jump and, when a pass is abandoned, to the furthest onset reached.
   Cost O(performed notes x score onsets) time, one byte per cell for the backtracking.
2. **Per-pass alignment**: each pass is aligned with ``align`` (the usual matchers) to the
   score notes of the bars its path covers (``_pass_onsets``), so a first attempt that stopped
   in bar 3 is aligned to bars 1-3 only, a complete pass to the whole score, and a pass with
   a skip to the score without the skipped bars.

A take without a jump back is one pass; over the whole score its result is exactly ``align``
on the whole take (a clean take). Several performed notes can share a score note, one per
pass; within a pass each score note is matched at most once (``align``'s own guarantee).

Tried and dropped (benchmarks/takes.md): parangonar's ``RepeatIdentifier`` (chooses among
the repeat paths *notated* in a score; score MIDI has none and a restart is no notated path);
``SwitchingOuterHMMMatcher`` (made for practice performances, but did not finish a 250-note
segment in 90 s, stuck in its pure-Python score self-similarity search); cutting where the
matched score position of a one-pass alignment jumps back (a monotone DTW never jumps back:
a restart shows as a stretch of unmatched notes, not as a jump).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from pianoeval.align.match import PERF_DTYPE, align
from pianoeval.align.score import ScoreInfo

TAKE_KINDS = ("clean", "wrong_notes", "skip_bars", "repeat_bars", "restart", "restart_wrong")
WRONG_SHARE = 0.05  # wrong notes in a take
N_BARS = 2  # bars skipped or repeated

# jump DTW costs, in mismatched notes (module docstring)
JUMP_COST = 4.0
STAY_COST = 0.5
CHORD_SEC = 0.15
TOGETHER_SEC = 0.035
SKIP_COST = 1.0
PAUSE_DISCOUNT = 0.25  # per second of pause before a jump
MAX_PAUSE_SEC = 2.0

MIN_BAR_SHARE = 0.5  # a bar with fewer of its notes matched in a pass is unreliable
MAX_SKIP_PATH_COST = 0.35  # per note: a costlier one-pass path is not trusted with skips
MIN_AMBIGUOUS_ONSETS = 2


# --- synthetic takes -------------------------------------------------------------------------

def render_performance(score_notes: np.ndarray, rng, deleted: float = 0.03,
                       inserted: float = 0.03, tempo_sd: float = 0.10, jitter: float = 0.010
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(performance note array, truth) of a synthetic clean performance of ``score_notes``
    (benchmarks/align_bench.py's known answers too): tempo 0.6 s/beat x U(0.7, 1.4)
    with a log-tempo random walk, Gaussian onset jitter, a share of score notes dropped and of
    extra notes (a score pitch +-1-2 semitones at a random time) added; the "mild" level by
    default. ``truth``: the score note index of each performed note, -1 for an extra note."""
    beats = score_notes["onset_beat"].astype(float)
    n = len(score_notes)
    grid = np.arange(np.floor(beats.min()),
                     np.ceil(beats.max() + score_notes["duration_beat"].max()) + 2)
    sec_per_beat = 0.6 * rng.uniform(0.7, 1.4) * np.exp(
        np.cumsum(rng.normal(0, tempo_sd, len(grid))))
    start_of_beat = np.concatenate(([0.0], np.cumsum(sec_per_beat[:-1])))
    warp = lambda b: np.interp(b, grid, start_of_beat)
    onset = warp(beats) + rng.normal(0, jitter, n)
    onset -= min(0.0, onset.min())  # a MIDI file starts at 0
    duration = (warp(beats + score_notes["duration_beat"]) - warp(beats)) \
        * rng.uniform(0.6, 1.1, n)
    keep = rng.random(n) >= deleted
    n_extra = rng.binomial(n, inserted)
    perf = np.empty(keep.sum() + n_extra, dtype=PERF_DTYPE)
    perf["onset_sec"] = np.concatenate([onset[keep],
                                        rng.uniform(onset.min(), onset.max(), n_extra)])
    perf["duration_sec"] = np.concatenate([np.maximum(duration[keep], 0.03),
                                           np.full(n_extra, 0.2)])
    perf["pitch"] = np.concatenate([score_notes["pitch"][keep],
                                    rng.choice(score_notes["pitch"], n_extra)
                                    + rng.choice([-2, -1, 1, 2], n_extra)])
    perf["velocity"] = 64
    truth = np.concatenate([np.flatnonzero(keep), np.full(n_extra, -1)])
    return _sorted(perf, truth)


def _sorted(perf: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted by onset then pitch (the order of ``read_midi``), ids renumbered ``p{i}``."""
    order = np.lexsort((perf["pitch"], perf["onset_sec"]))
    perf, truth = perf[order].copy(), np.asarray(truth, np.int64)[order]
    perf["id"] = [f"p{i}" for i in range(len(perf))]
    return perf, truth


def _score_beats(score: ScoreInfo, perf: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Score position (beats) of every performed note: its score note's onset, or for an
    extra note the position interpolated from the matched notes' times."""
    matched = truth >= 0
    beats = np.full(len(perf), np.nan)
    beats[matched] = score.notes["onset_beat"][truth[matched]]
    if matched.any():
        order = np.argsort(perf["onset_sec"][matched], kind="stable")
        beats[~matched] = np.interp(perf["onset_sec"][~matched],
                                    perf["onset_sec"][matched][order], beats[matched][order])
    return np.nan_to_num(beats)


def _bar_start_time(score: ScoreInfo, perf: np.ndarray, beats: np.ndarray, bar: int) -> float:
    """Performance time at which score bar ``bar`` starts: the first onset of a note there or
    later (a note of an earlier bar played late cannot make it start early)."""
    later = beats >= score.bar_starts[bar] - 1e-6
    return float(perf["onset_sec"][later].min()) if later.any() else float(perf["onset_sec"].max())


def _wrong_notes(perf, truth, rng, share=WRONG_SHARE):
    """A ``share`` of the notes (at least one) moved by +-1-2 semitones: no longer score notes."""
    perf, truth = perf.copy(), truth.copy()
    pick = rng.choice(len(perf), max(1, int(round(share * len(perf)))), replace=False)
    perf["pitch"][pick] = np.clip(perf["pitch"][pick] + rng.choice([-2, -1, 1, 2], len(pick)),
                                  0, 127)
    truth[pick] = -1
    return perf, truth


def _passage(score: ScoreInfo, beats: np.ndarray, rng, n_bars: int = N_BARS) -> int:
    """First bar of a random ``n_bars`` passage that holds performed notes, away from the first
    and last bar when the score is long enough."""
    bars = score.bar_idx(beats)
    first, last = int(bars.min()), int(bars.max())
    if last - first + 1 >= n_bars + 2:
        lo, hi = first + 1, last - n_bars
    else:
        lo, hi = first, last - n_bars + 1
    return int(rng.integers(lo, max(lo, hi) + 1))


def make_take(score: ScoreInfo, perf: np.ndarray, truth: np.ndarray, kind: str, rng
              ) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic practice take with known truth, made from a clean performance.

    ``perf``: a performance note array (``PERF_DTYPE``) of ``score``; ``truth``: the score note
    index of each performed note (-1: none). Kinds (``TAKE_KINDS``):

    * ``clean``: unchanged;
    * ``wrong_notes``: 5% of the notes moved by +-1-2 semitones (truth -1);
    * ``skip_bars``: the notes of 2 consecutive bars left out, later notes moved earlier by the
      time those bars took;
    * ``repeat_bars``: 2 consecutive bars played again right after themselves (a 0-0.5 s
      hesitation before the second time, onsets jittered by 10 ms), later notes moved later;
    * ``restart``: the first U(20, 30)% of the performance's time (notes still sounding cut
      off there), a 1-3 s pause, then the whole performance again; the first attempt is
      played U(0.9, 1.1) times as fast, onsets jittered by 10 ms;
    * ``restart_wrong``: ``restart``, then ``wrong_notes`` over the whole take.

    Returns (take, truth per take note), sorted by onset then pitch, ids ``p0, p1, ...``.
    Passages are whole score bars (notes placed by their score note, extra notes by the score
    position of their time). Notes of a repeated passage keep their score note.
    """
    if kind not in TAKE_KINDS:
        raise ValueError(f"unknown take kind {kind!r} (have: {', '.join(TAKE_KINDS)})")
    perf, truth = _sorted(perf, truth)
    if kind == "clean" or len(perf) < 2:
        return perf, truth
    if kind == "wrong_notes":
        return _sorted(*_wrong_notes(perf, truth, rng))
    if kind in ("restart", "restart_wrong"):
        t0 = float(perf["onset_sec"].min())
        end = t0 + rng.uniform(0.2, 0.3) * (float(perf["onset_sec"].max()) - t0)
        first = perf[perf["onset_sec"] < end].copy()
        first_truth = truth[perf["onset_sec"] < end]
        speed = rng.uniform(0.9, 1.1)
        first["onset_sec"] = (t0 + (first["onset_sec"] - t0) / speed
                              + rng.normal(0, 0.01, len(first)))
        first["onset_sec"] = np.maximum(first["onset_sec"], t0)
        stop = t0 + (end - t0) / speed
        first["duration_sec"] = np.clip(np.minimum(first["duration_sec"] / speed,
                                                   stop - first["onset_sec"]), 0.03, None)
        second = perf.copy()
        second["onset_sec"] += stop + rng.uniform(1.0, 3.0) - t0
        take, take_truth = _sorted(np.concatenate([first, second]),
                                   np.concatenate([first_truth, truth]))
        return _sorted(*_wrong_notes(take, take_truth, rng)) if kind == "restart_wrong" \
            else (take, take_truth)
    beats = _score_beats(score, perf, truth)
    bars = score.bar_idx(beats)
    b0 = _passage(score, beats, rng)
    inside = (bars >= b0) & (bars < b0 + N_BARS)
    after = bars >= b0 + N_BARS
    t_start = _bar_start_time(score, perf, beats, b0)
    t_end = _bar_start_time(score, perf, beats, b0 + N_BARS) if after.any() else \
        float((perf["onset_sec"] + perf["duration_sec"])[inside].max())
    out = perf.copy()
    if kind == "skip_bars":
        out["onset_sec"][after] -= t_end - t_start
        keep = ~inside
        return _sorted(out[keep], truth[keep])
    if kind == "repeat_bars":
        shift = t_end - t_start + rng.uniform(0.0, 0.5)
        again = perf[inside].copy()
        again["onset_sec"] += shift + rng.normal(0, 0.01, len(again))
        out["onset_sec"][after] += shift
        return _sorted(np.concatenate([out, again]), np.concatenate([truth, truth[inside]]))
    raise AssertionError(kind)


def pair_f1(predicted: np.ndarray, truth: np.ndarray) -> float:
    """F1 of the (performed note, score note) pairs of ``predicted`` against ``truth`` (both:
    score note index per performed note, -1 for none). 1.0 when both have no pairs."""
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    n_pred, n_true = int((predicted >= 0).sum()), int((truth >= 0).sum())
    correct = int(((predicted == truth) & (truth >= 0)).sum())
    if n_pred == 0 and n_true == 0:
        return 1.0
    return 2 * correct / (n_pred + n_true)


# --- alignment of a take ---------------------------------------------------------------------

def _jump_dtw_kernel():
    """The numba kernel, compiled on first use (numba is imported late, as by parangonar)."""
    global _KERNEL
    if _KERNEL is not None:
        return _KERNEL
    import numba

    @numba.njit(cache=False)
    def kernel(pitches, stay_cost, advance_cost, member, is_target, jump_cost, start_cost,
               skip_cost):
        n, m = len(pitches), member.shape[1]
        inf = np.inf
        step = np.zeros((n, m), np.int8)  # 0 diagonal, 1 same onset, 2 next onset, 3 jump/start
        jump_from = np.zeros(n, np.int64)  # row i's jump source: best onset of row i - 1
        prev = np.empty(m)
        cur = np.empty(m)
        for j in range(m):
            best, code = inf, 3
            if j == 0:
                best = 0.0
            elif is_target[j]:
                best = start_cost
            if j > 0 and cur[j - 1] + skip_cost < best:
                best, code = cur[j - 1] + skip_cost, 2
            cur[j] = best + (0.0 if member[pitches[0], j] else 1.0)
            step[0, j] = code
        for i in range(1, n):
            prev, cur = cur, prev
            k_best = 0
            for j in range(1, m):
                if prev[j] <= prev[k_best]:  # ties: the furthest onset reached
                    k_best = j
            jump_from[i] = k_best
            jump = prev[k_best] + jump_cost[i]
            p = pitches[i]
            for j in range(m):
                c = 0.0 if member[p, j] else 1.0
                # ties: diagonal, then jump, then same onset (a jump as late as the
                # notes allow: a note shared by the end of one pass and the start of the
                # next stays with the first), then next onset
                best, code = prev[j] + stay_cost[i], 1
                if is_target[j] and jump <= best:
                    best, code = jump, 3
                if j > 0:
                    if prev[j - 1] + advance_cost[i] <= best:
                        best, code = prev[j - 1] + advance_cost[i], 0
                    if cur[j - 1] + skip_cost < best:
                        best, code = cur[j - 1] + skip_cost, 2
                cur[j] = best + c
                step[i, j] = code
        return cur, step, jump_from

    _KERNEL = kernel
    return kernel


_KERNEL = None


@dataclass
class JumpPath:
    """The jump DTW's path: per performed note the first and last score onset index its row of
    the path visits (``onset``, ``onset_hi``: they differ where the path skips score onsets),
    ``passes`` as (first, last + 1) performed-note ranges, and the path's cost."""

    onset: np.ndarray
    onset_hi: np.ndarray
    passes: list[tuple[int, int]]
    cost: float


def jump_dtw(onset_pitch_sets: list, pitches: np.ndarray, onset_sec: np.ndarray,
             jump_targets: np.ndarray, jump_cost: float = JUMP_COST,
             stay_cost: float = STAY_COST, chord_sec: float = CHORD_SEC,
             together_sec: float = TOGETHER_SEC,
             skip_cost: float = SKIP_COST) -> JumpPath:
    """Jump DTW of performed ``pitches`` against score onsets (see the module docstring).

    ``onset_pitch_sets[j]``: the pitches of score onset ``j``; ``jump_targets``: onset indices
    a jump (or the start) may land on. Ending before the last onset costs ``jump_cost``.
    """
    m = len(onset_pitch_sets)
    member = np.zeros((128, m), dtype=np.bool_)
    for j, pitch_set in enumerate(onset_pitch_sets):
        member[list(pitch_set), j] = True
    is_target = np.zeros(m, dtype=np.bool_)
    is_target[jump_targets] = True
    pitches = np.asarray(pitches, np.int64)
    ioi = np.diff(np.asarray(onset_sec, float), prepend=-np.inf)
    # notes played apart are different onsets, notes played together one onset (set
    # DTW alone spreads a chord over the next onsets when they hold the same pitches)
    stays = np.where(ioi > chord_sec, float(stay_cost), 0.0)
    advances = np.where(ioi < together_sec, float(stay_cost), 0.0)
    # a restart follows a pause: among jump points the notes cannot tell apart (a pitch
    # that is in both the next onset and the restart's), the one after the longest pause
    jumps = float(jump_cost) - PAUSE_DISCOUNT * np.clip(ioi, 0.0, MAX_PAUSE_SEC)
    last, step, jump_from = _jump_dtw_kernel()(pitches, stays, advances, member, is_target,
                                               jumps, float(jump_cost), float(skip_cost))
    end_cost = last + jump_cost
    end_cost[-1] = last[-1]
    j = int(np.argmin(end_cost))
    cost = float(end_cost[j])
    onset = np.full(len(pitches), -1, np.int64)
    onset_hi = np.full(len(pitches), -1, np.int64)
    cuts = []
    i = len(pitches) - 1
    while i >= 0:
        onset[i] = j
        if onset_hi[i] < 0:
            onset_hi[i] = j
        code = step[i, j]
        if code == 2:
            j -= 1
            continue
        if code == 3:
            if i == 0:
                break
            k = int(jump_from[i])
            if k >= j:
                cuts.append(i)
            j = k
        elif code == 0:
            j -= 1
        i -= 1
    bounds = [0] + sorted(cuts) + [len(pitches)]
    return JumpPath(onset, onset_hi, list(zip(bounds[:-1], bounds[1:])), cost)


@dataclass
class TakeAlignment:
    """A take against a score.

    ``score_index``: per performed note its score note's index, or -1 (an extra note, or a note
    in no pass); ``pass_id``: per performed note its pass (0, 1, ... in performance order), -1
    for notes in no pass (a stretch that matched too little of the score to be aligned);
    ``n_passes``; ``passes``: per pass a dict (``start``, ``stop``: its performed-note range;
    ``first_bar``, ``last_bar``: the score bars it covers; ``match_rate``: its matched score
    notes / the score notes in those bars; ``status``: ``align``'s status for it);
    ``match_rate``: matched score notes of the most complete pass / all score notes;
    ``coverage``: score notes matched in at least one pass / all score notes (a passage
    repeated in the middle splits the piece into two partial passes: ``match_rate`` then
    falls, ``coverage`` does not); ``status``: ``ok`` (coverage >= min_match_rate),
    ``low_match`` or ``failed`` (as ``align``, on ``coverage``); ``unreliable_bars``: sorted
    score bars whose alignment is doubtful (see ``align_passes``).
    """

    score_index: np.ndarray
    pass_id: np.ndarray
    n_passes: int
    status: str
    match_rate: float
    coverage: float
    unreliable_bars: list[int]
    passes: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def _onset_grid(score: ScoreInfo):
    """(onset index of each score note, pitch set per onset, jump targets: the first onset of
    every bar)."""
    onsets, inv = np.unique(score.notes["onset_beat"], return_inverse=True)
    order = np.argsort(inv, kind="stable")
    bounds = np.searchsorted(inv[order], np.arange(len(onsets) + 1))
    pitches = score.notes["pitch"][order]
    sets = [frozenset(pitches[bounds[j]:bounds[j + 1]].tolist()) for j in range(len(onsets))]
    targets = np.unique(np.searchsorted(onsets, score.bar_starts - 1e-6))
    return inv, sets, targets[targets < len(onsets)]


def _pass_onsets(path: JumpPath, lo: int, hi: int, pitches: np.ndarray, sets: list,
                 onset_bar: np.ndarray, trim_ends: bool) -> np.ndarray:
    """Score onsets a pass is aligned to: all, less the whole bars its path never visits (bars
    it jumped over, a skip, or did not reach, a pass that starts or stops inside the piece):
    left in, they draw DualDTW's path off the notes around them. Only whole bars go: where
    the path jumps over part of a bar, it is usually a few notes out of order, and the
    notes at a skip's ends are the ones the path is least sure of. With ``trim_ends`` (a take
    of several passes) the pass also starts at the first and stops at the last onset it
    *plays* (a performed note whose pitch is in the onset's set, where the note enters or
    leaves its row of the path)."""
    m = len(sets)
    visited = np.zeros(m + 1, np.int64)
    np.add.at(visited, path.onset[lo:hi], 1)
    np.add.at(visited, path.onset_hi[lo:hi] + 1, -1)
    visited = np.cumsum(visited)[:m] > 0
    # a bar is left out when none of its onsets is visited
    keep = np.bincount(onset_bar, visited, onset_bar.max() + 1)[onset_bar] > 0
    if trim_ends:
        rows = np.tile(np.arange(lo, hi), 2)
        ends = np.concatenate([path.onset[lo:hi], path.onset_hi[lo:hi]])
        hits = np.fromiter((pitches[i] in sets[j] for i, j in zip(rows, ends)), bool, len(ends))
        if hits.any():
            keep[:ends[hits].min()] = False
            keep[ends[hits].max() + 1:] = False
    return np.flatnonzero(keep)


def _ambiguous_onsets(sets: list, end: int, resume: int) -> list[int]:
    """Onsets around a jump back from onset ``end`` to ``resume`` whose owner the pitches cannot
    tell: the stretch the jump could move over with identical pitch sets on both sides (the
    first pass going on for ``d`` more onsets and the next resuming ``d`` later, or both ``d``
    earlier), when at least ``MIN_AMBIGUOUS_ONSETS`` long."""
    m = len(sets)
    later = 0
    while end + 1 + later < m and sets[resume + later] == sets[end + 1 + later] \
            and resume + later <= end:
        later += 1
    earlier = 0
    while resume - 1 - earlier >= 0 and sets[end - earlier] == sets[resume - 1 - earlier]:
        earlier += 1
    out = []
    if later >= MIN_AMBIGUOUS_ONSETS:
        out += list(range(resume, resume + later)) + list(range(end + 1, end + 1 + later))
    if earlier >= MIN_AMBIGUOUS_ONSETS:
        out += list(range(end - earlier + 1, end + 1)) + list(range(resume - earlier, resume))
    return out


def align_passes(score: ScoreInfo, perf: np.ndarray, matchers=("dualdtw",),
                 min_match_rate: float = 0.85, min_usable_rate: float = 0.3,
                 jump_cost: float = JUMP_COST) -> TakeAlignment:
    """Align a practice take pass by pass (method: the module docstring).

    ``perf``: performance note array sorted by onset (``performance_note_array``). Each pass is
    aligned with ``align(score notes of its onsets, its notes, matchers, min_match_rate,
    min_usable_rate)`` (its onsets: ``_pass_onsets``); a pass ``align`` reports as ``failed``
    is no pass (its notes get ``pass_id`` -1 and no score note). One pass over all the score's
    onsets is ``align`` on the whole take, so a clean take gives ``align``'s result.

    A take of one pass whose path leaves out bars (a skip, a take that breaks off) is aligned
    without them only when the path mismatches at most ``MAX_SKIP_PATH_COST`` notes per
    performed note: a costlier path has lost its way somewhere (a garbled stretch), and the
    bars it jumps over are more likely played than skipped.

    ``unreliable_bars``, the bars where the alignment is doubtful:

    * low match density: in a pass, fewer than half of the bar's score notes matched (a
      stumble, a stretch placed wrongly, a pass that stops inside the bar);
    * a pass stops inside the bar, before its last onset, and a later pass follows (the
      notes before a restart; where the cut falls rests on a few notes);
    * ambiguous between passes: around a jump back, a stretch of at least two onsets whose
      pitches repeat on the other side of the jump, so which pass owns it cannot be told
      (e.g. a repeat of bars 4-5 where bar 3 equals bar 5).
    """
    start = time.perf_counter()
    notes = score.notes
    n_score = len(notes)
    onset_of, sets, targets = _onset_grid(score)
    bar_of = score.bar_idx(notes["onset_beat"])
    onset_bar = np.zeros(len(sets), np.int64)
    onset_bar[onset_of] = bar_of
    pitches = np.asarray(perf["pitch"], np.int64)
    path = jump_dtw(sets, pitches, perf["onset_sec"], targets, jump_cost) if len(perf) else \
        JumpPath(np.zeros(0, np.int64), np.zeros(0, np.int64), [], 0.0)
    score_index = np.full(len(perf), -1, np.int64)
    pass_id = np.full(len(perf), -1, np.int64)
    passes, ends, errors, unreliable = [], [], [], set()
    covered = np.zeros(n_score, bool)
    trusted = path.cost <= MAX_SKIP_PATH_COST * max(len(perf), 1)
    for lo, hi in path.passes:
        onsets = _pass_onsets(path, lo, hi, pitches, sets, onset_bar, len(path.passes) > 1)
        span = np.isin(onset_of, onsets)
        if len(path.passes) == 1 and (span.all() or not trusted):
            span = np.ones(n_score, bool)
        result = align(notes[span], perf[lo:hi], matchers, min_match_rate, min_usable_rate)
        errors += result.errors
        if result.status == "failed":
            continue
        local = result.score_index
        score_index[lo:hi] = np.where(local >= 0, np.flatnonzero(span)[np.maximum(local, 0)], -1)
        pass_id[lo:hi] = len(passes)
        matched = np.zeros(n_score, bool)
        matched[score_index[lo:hi][score_index[lo:hi] >= 0]] = True
        covered |= matched
        bars = np.unique(bar_of[span])
        share = np.bincount(bar_of[span], matched[span], bars.max() + 1)[bars] / \
            np.bincount(bar_of[span], minlength=bars.max() + 1)[bars]
        unreliable.update(bars[share < MIN_BAR_SHARE].tolist())
        passes.append({"start": lo, "stop": hi, "first_bar": int(bars.min()),
                       "last_bar": int(bars.max()), "n_matched": int(matched.sum()),
                       "match_rate": float(matched[span].mean()), "status": result.status})
        ends.append((int(onsets.min()), int(onsets.max())))
    for (_, end), (resume, _) in zip(ends[:-1], ends[1:]):
        if end < len(sets) - 1 and onset_bar[end + 1] == onset_bar[end]:  # stopped mid-bar
            unreliable.add(int(onset_bar[end]))
        if resume <= end:
            unreliable.update(onset_bar[_ambiguous_onsets(sets, end, resume)].tolist())
    best = max((p["n_matched"] for p in passes), default=0)
    match_rate = best / n_score if n_score else float("nan")
    coverage = float(covered.mean()) if n_score else float("nan")
    if not passes or not coverage >= min_usable_rate:
        status = "failed"
        score_index[:] = -1
        pass_id[:] = -1
        passes = []
    else:
        status = "ok" if coverage >= min_match_rate else "low_match"
    return TakeAlignment(score_index, pass_id, len(passes), status, float(match_rate),
                         coverage, sorted(int(b) for b in unreliable), passes,
                         time.perf_counter() - start, errors)
