"""Expressive deviations of every performed note from its score (one row per performed note).

Notation: a matched note i has performed onset ``t_i`` (s), duration ``d_i`` (s), score onset
``b_i`` and notated duration ``n_i`` (beats). Score onset groups k (all notes notated at the
same beat ``B_k``) are placed at ``T_k`` = the median performed onset of their matched notes.

* local tempo: least-squares line ``T = a_k + s_k * B`` through the groups with
  ``|B - B_k| <= window / 2``; ``s_k`` is seconds per beat (NaN with fewer than two groups in
  the window or a non-positive slope). ``local_tempo_ratio = (1 / s_k) / median_k(1 / s_k)``:
  beats per second against the segment's median.
* ``onset_dev_ms = 1000 * (t_i - (a_k + s_k * b_i))``: early (<0) or late (>0) against the local
  tempo line (chord asynchrony included); ``onset_dev_beats`` = the same over ``s_k``.
* ``articulation_ratio = d_i / (n_i * s_k)``: performed over notated duration at the local
  tempo (1 = full value; NaN for grace notes, n_i = 0).
* ``legato_overlap_sec = t_i + d_i - T(b_i + n_i)``: how far the note is held past the moment
  its notated end is played, ``T(.)`` interpolated between groups (>0 overlaps the next
  event, <0 a gap; NaN past the last group).
* ``velocity_rel_local``: velocity minus the mean velocity of all performed notes within
  ``velocity_local_beats`` beats (beat_idx distance); ``velocity_rel_phrase``: minus the mean
  over the phrase = ``phrase_bars`` bars (``bar_idx // phrase_bars``). Both in MIDI velocity.
* ``sustain_cc``, ``soft_cc``: CC64 / CC67 value in force at the onset (0..127; 0 before any).

Inserted notes (no score note) get NaN score-aligned features; their beat and bar come from
their onset mapped to the score through the groups (``B(t)`` interpolated, clamped to the ends).
Without a usable alignment the grid is the performance's own: ``beat_idx = floor((t - t_0) /
median onset-group IOI)`` and ``bar_idx = beat_idx // 4``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pianoeval.data.midi import SOFT_CC, SUSTAIN_CC
from pianoeval.features.symbolic import onset_groups

EPS = 1e-9
FALLBACK_BEATS_PER_BAR = 4

NOTE_COLUMNS = (
    "onset_sec", "duration_sec", "pitch", "velocity", "sustain_cc", "soft_cc", "matched",
    "score_onset_beat", "score_duration_beat", "beat_idx", "bar_idx",
    "local_tempo_ratio", "onset_dev_ms", "onset_dev_beats", "velocity_rel_local",
    "velocity_rel_phrase", "articulation_ratio", "legato_overlap_sec",
)


@dataclass(frozen=True)
class DeviationConfig:
    tempo_window_beats: float = 4.0
    velocity_local_beats: int = 1
    phrase_bars: int = 4


def cc_value_at(controls: np.ndarray, number: int, times: np.ndarray) -> np.ndarray:
    """Value of controller ``number`` in force at each time: the last event at or before it
    (of several at one instant the last listed), 0 before the first event (pedal up)."""
    c = controls[controls["number"] == number]
    c = c[np.argsort(c["time_sec"], kind="stable")]
    k = np.searchsorted(c["time_sec"], times, side="right") - 1
    values = np.concatenate(([0], c["value"]))
    return values[k + 1].astype(np.int64)


def onset_map(score_beats: np.ndarray, perf_onsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Score onset groups of matched notes: (B_k ascending, T_k = median performed onset)."""
    B, inverse = np.unique(score_beats, return_inverse=True)
    T = pd.Series(perf_onsets).groupby(inverse.ravel()).median().to_numpy()
    return B, T


def local_tempo_lines(B: np.ndarray, T: np.ndarray, window_beats: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Per group k, (a_k, s_k) of the least-squares line T = a + s * B over the groups within
    ``window_beats / 2`` of B_k (B ascending). Running sums keep it O(K) for long pieces.
    NaN where fewer than two groups fall in the window or the slope is not positive."""
    half = window_beats / 2
    lo = np.searchsorted(B, B - half - EPS, side="left")
    hi = np.searchsorted(B, B + half + EPS, side="right")
    def window_sum(x):
        c = np.concatenate(([0.0], np.cumsum(x)))
        return c[hi] - c[lo]
    n = (hi - lo).astype(float)
    sb, st = window_sum(B), window_sum(T)
    sbb, sbt = window_sum(B * B), window_sum(B * T)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = n * sbb - sb * sb
        slope = (n * sbt - sb * st) / var
        ok = (n >= 2) & (var > EPS) & (slope > 0)
        slope = np.where(ok, slope, np.nan)
        intercept = np.where(ok, (st - slope * sb) / n, np.nan)
    return intercept, slope


def windowed_mean_by_index(idx: np.ndarray, values: np.ndarray, radius: int) -> np.ndarray:
    """Per element, the mean of ``values`` over elements whose ``idx`` is within ``radius``."""
    idx = np.asarray(idx, np.int64)
    pos = idx - idx.min()
    size = int(pos.max()) + 1
    sums = np.concatenate(([0.0], np.cumsum(np.bincount(pos, weights=values, minlength=size))))
    counts = np.concatenate(([0.0], np.cumsum(np.bincount(pos, minlength=size))))
    lo, hi = np.clip(pos - radius, 0, size), np.clip(pos + radius + 1, 0, size)
    return (sums[hi] - sums[lo]) / (counts[hi] - counts[lo])


def group_mean(groups: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per element, the mean of ``values`` over elements in the same group (ints >= 0)."""
    groups = np.asarray(groups, np.int64)
    with np.errstate(invalid="ignore"):  # unused group numbers divide 0 by 0
        return (np.bincount(groups, weights=values) / np.bincount(groups))[groups]


def performance_grid(onsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(beat_idx, bar_idx) without a score: a beat is the median IOI between onset groups
    (chords within ``features.symbolic.CHORD_WINDOW_SEC``), ``FALLBACK_BEATS_PER_BAR`` beats a bar."""
    if len(onsets) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    group = onset_groups(onsets)
    starts = onsets[np.flatnonzero(np.diff(group, prepend=-1))]
    beat_sec = float(np.median(np.diff(starts))) if len(starts) > 1 else 0.0
    if beat_sec <= 0:
        beat = np.zeros(len(onsets), np.int64)
    else:
        beat = np.floor((onsets - onsets[0]) / beat_sec + 1e-6).astype(np.int64)
    return beat, beat // FALLBACK_BEATS_PER_BAR


def note_deviations(notes: np.ndarray, controls: np.ndarray, score=None,
                    score_index: np.ndarray | None = None,
                    config: DeviationConfig = DeviationConfig()) -> pd.DataFrame:
    """One row per performed note (``notes`` sorted by onset then pitch), columns
    ``NOTE_COLUMNS`` (see the module docstring). ``score`` is a ScoreInfo (or None),
    ``score_index`` per note the matched score note's index or -1."""
    n = len(notes)
    onset = notes["onset_sec"].astype(float)
    dur = notes["duration_sec"].astype(float)
    vel = notes["velocity"].astype(float)
    nan = lambda: np.full(n, np.nan)
    out = {
        "onset_sec": onset, "duration_sec": dur, "pitch": notes["pitch"].astype(np.int64),
        "velocity": notes["velocity"].astype(np.int64),
        "sustain_cc": cc_value_at(controls, SUSTAIN_CC, onset),
        "soft_cc": cc_value_at(controls, SOFT_CC, onset),
    }
    idx = np.full(n, -1, np.int64) if score_index is None or score is None else score_index
    matched = idx >= 0
    cols = {c: nan() for c in ("score_onset_beat", "score_duration_beat", "local_tempo_ratio",
                               "onset_dev_ms", "onset_dev_beats", "articulation_ratio",
                               "legato_overlap_sec")}
    if matched.any():
        b = score.notes["onset_beat"][idx[matched]].astype(float)
        nb = score.notes["duration_beat"][idx[matched]].astype(float)
        t, d = onset[matched], dur[matched]
        B, T = onset_map(b, t)
        a, s = local_tempo_lines(B, T, config.tempo_window_beats)
        k = np.searchsorted(B, b)
        dev_sec = t - (a[k] + s[k] * b)
        tempo = 1.0 / s
        median_tempo = np.nanmedian(tempo) if np.isfinite(tempo).any() else np.nan
        with np.errstate(invalid="ignore", divide="ignore"):
            articulation = np.where(nb > 0, d / (nb * s[k]), np.nan)
            end = b + nb
            inside = (nb > 0) & (end <= B[-1] + EPS)
            legato = np.where(inside, t + d - np.interp(end, B, T), np.nan)
        cols["score_onset_beat"][matched], cols["score_duration_beat"][matched] = b, nb
        cols["local_tempo_ratio"][matched] = tempo[k] / median_tempo
        cols["onset_dev_ms"][matched] = 1000.0 * dev_sec
        cols["onset_dev_beats"][matched] = dev_sec / s[k]
        cols["articulation_ratio"][matched] = articulation
        cols["legato_overlap_sec"][matched] = legato
        # score position of every note: its own for matched notes, B(t) for inserted ones
        by_time = np.argsort(T, kind="stable")
        position = np.interp(onset, T[by_time], B[by_time])
        position[matched] = b
        beat_idx, bar_idx = score.beat_idx(position), score.bar_idx(position)
    else:
        beat_idx, bar_idx = performance_grid(onset)
    out["matched"] = matched.astype(np.int64)
    out.update({"score_onset_beat": cols["score_onset_beat"],
                "score_duration_beat": cols["score_duration_beat"],
                "beat_idx": beat_idx.astype(np.int64), "bar_idx": bar_idx.astype(np.int64)})
    for c in ("local_tempo_ratio", "onset_dev_ms", "onset_dev_beats"):
        out[c] = cols[c]
    if n:
        out["velocity_rel_local"] = vel - windowed_mean_by_index(
            beat_idx, vel, config.velocity_local_beats)
        out["velocity_rel_phrase"] = vel - group_mean(bar_idx // config.phrase_bars, vel)
    else:
        out["velocity_rel_local"], out["velocity_rel_phrase"] = nan(), nan()
    out["articulation_ratio"] = cols["articulation_ratio"]
    out["legato_overlap_sec"] = cols["legato_overlap_sec"]
    return pd.DataFrame(out, columns=list(NOTE_COLUMNS))
