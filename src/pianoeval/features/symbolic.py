"""Per-segment symbolic features of a performance, alone and relative to its score rendering.

Every feature is a float whose name carries its unit. A feature that is undefined for a segment
is NaN, never an exception, so downstream imputation decides what to do:

* no notes: everything NaN except ``n_notes`` (0);
* one onset group (a single note or a single chord): the IOI, legato, articulation and
  velocity-step features are NaN, because there is no next onset;
* zero duration (every note has zero length and they all start together): the per-second rates,
  pedal and polyphony-mean features are NaN; ``duration_cv`` is NaN when the mean note length is 0.

The segment's time span runs from its first onset to its last note-off: leading silence before
the first note is an artefact of how segments were cut, not part of the playing.
"""
from __future__ import annotations

import logging
import math
import os
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np
import pandas as pd
from tqdm import tqdm

from pianoeval.data.midi import SOFT_CC, SUSTAIN_CC, MidiError, Performance, read_midi

log = logging.getLogger(__name__)

CHORD_WINDOW_SEC = 0.03
PEDAL_DOWN = 64  # the MIDI convention: CC value >= 64 is "on"

PERFORMANCE_FEATURES = (
    "n_notes", "duration_sec", "onset_span_sec",
    "velocity_mean", "velocity_std", "velocity_p10", "velocity_p90", "velocity_range",
    "velocity_step_mean_abs",
    "ioi_median_sec", "ioi_cv", "log_ioi_std", "onsets_per_sec", "notes_per_sec",
    "duration_median_sec", "duration_cv", "legato_overlap_ratio", "articulation_ratio",
    "sustain_down_ratio", "sustain_changes_per_sec", "sustain_mean_value", "pedal_half_ratio",
    "soft_down_ratio",
    "polyphony_mean", "polyphony_max",
    "pitch_mean", "pitch_std", "pitch_range", "pitch_low", "pitch_high",
)
SCORE_FEATURES = (
    "score_duration_ratio", "score_tempo_ratio", "score_note_count_ratio",
    "score_velocity_mean_diff", "score_velocity_std_ratio", "score_ioi_cv_diff",
    "score_pitch_range_diff", "score_sustain_ratio_diff",
)
FEATURES = tuple(sorted(PERFORMANCE_FEATURES + SCORE_FEATURES))

NAN = float("nan")


def _ratio(num: float, den: float) -> float:
    """num / den, NaN where the quotient is undefined (zero or NaN denominator)."""
    if not (math.isfinite(num) and math.isfinite(den)) or den == 0:
        return NAN
    return num / den


def onset_groups(onsets: np.ndarray, window_sec: float = CHORD_WINDOW_SEC) -> np.ndarray:
    """Group index per onset (``onsets`` sorted): a group is a chord as the listener hears it.

    A new group starts when an onset is more than ``window_sec`` after the *first* onset of the
    current group. Anchoring on the first onset (rather than chaining neighbour gaps) keeps a
    fast run of notes 20 ms apart from collapsing into one giant "chord".
    """
    if not window_sec >= 0:  # a negative window would split unisons into 0-s IOIs
        raise ValueError(f"chord window must be >= 0 seconds, got {window_sec}")
    group = np.empty(len(onsets), dtype=np.int64)
    current, start = -1, -math.inf
    for i, t in enumerate(onsets):
        if t - start > window_sec:
            current, start = current + 1, t
        group[i] = current
    return group


def _cc_steps(controls: np.ndarray, number: int, t0: float, t1: float):
    """The step function of one controller on [t0, t1]: (values, durations).

    The value in force at t0 is the last event at or before t0 (0 if none: pedal up). Of several
    events at the same instant only the last counts, as a receiver would end up there.
    """
    c = controls[controls["number"] == number]
    times, values = c["time_sec"], c["value"].astype(float)
    before = times <= t0
    initial = values[before][-1] if before.any() else 0.0
    inside = (times > t0) & (times < t1)
    times, values = times[inside], values[inside]
    last_at_time = np.append(times[1:] != times[:-1], True) if len(times) else np.empty(0, bool)
    times, values = times[last_at_time], values[last_at_time]
    starts = np.concatenate(([t0], times))
    ends = np.concatenate((times, [t1]))
    return np.concatenate(([initial], values)), ends - starts


def _pedal_features(controls: np.ndarray, t0: float, t1: float) -> dict[str, float]:
    span = t1 - t0
    sustain, w = _cc_steps(controls, SUSTAIN_CC, t0, t1)
    down = sustain >= PEDAL_DOWN
    soft, w_soft = _cc_steps(controls, SOFT_CC, t0, t1)
    return {
        "sustain_down_ratio": float(w[down].sum() / span),
        "pedal_half_ratio": float(w[(sustain >= 1) & ~down].sum() / span),
        "sustain_mean_value": float((sustain * w).sum() / span),
        # Counting threshold crossings, not CC events: continuous-pedal recordings send hundreds
        # of CC64 events per segment, binary ones a few, for the same foot movement.
        "sustain_changes_per_sec": float(np.count_nonzero(down[1:] != down[:-1]) / span),
        "soft_down_ratio": float(w_soft[soft >= PEDAL_DOWN].sum() / span),
    }


def _polyphony_max(onsets: np.ndarray, offsets: np.ndarray) -> float:
    """Most keys down at once; a note ending exactly when another starts does not overlap it."""
    sounding = offsets > onsets  # zero-length notes never sound
    times = np.concatenate((onsets[sounding], offsets[sounding]))
    deltas = np.concatenate((np.ones(sounding.sum()), -np.ones(sounding.sum())))
    order = np.lexsort((deltas, times))  # at equal times -1 sorts before +1
    return float(np.cumsum(deltas[order]).max()) if len(times) else 0.0


def performance_features(perf: Performance, *, chord_window_sec: float = CHORD_WINDOW_SEC
                         ) -> dict[str, float]:
    """Velocity, timing, articulation, pedal, polyphony and pitch summaries of one segment.

    Timing uses onset groups (see ``onset_groups``): IOIs are between successive group onsets,
    ``velocity_step_mean_abs`` is the mean absolute change of group-mean velocity. Legato and
    articulation compare each note with the next group's onset (notes of the last group are left
    out). Polyphony counts keys down, ignoring the sustain pedal. Standard deviations use ddof=0.
    """
    f = dict.fromkeys(PERFORMANCE_FEATURES, NAN)
    notes = np.sort(perf.notes, order=["onset_sec", "pitch"])
    n = len(notes)
    f["n_notes"] = float(n)
    if n == 0:
        return f
    onset, dur = notes["onset_sec"], notes["duration_sec"]
    vel, pitch = notes["velocity"].astype(float), notes["pitch"].astype(float)
    offset = onset + dur
    t0, t1 = float(onset[0]), float(offset.max())
    span = t1 - t0
    f["duration_sec"], f["onset_span_sec"] = span, float(onset[-1] - t0)

    f["velocity_mean"], f["velocity_std"] = vel.mean(), vel.std()
    f["velocity_p10"], f["velocity_p90"] = np.percentile(vel, [10, 90])
    f["velocity_range"] = vel.max() - vel.min()
    f["pitch_mean"], f["pitch_std"] = pitch.mean(), pitch.std()
    f["pitch_low"], f["pitch_high"] = pitch.min(), pitch.max()
    f["pitch_range"] = pitch.max() - pitch.min()
    f["duration_median_sec"] = float(np.median(dur))
    f["duration_cv"] = _ratio(dur.std(), dur.mean())
    f["polyphony_max"] = _polyphony_max(onset, offset)

    group = onset_groups(onset, chord_window_sec)
    n_groups = int(group[-1]) + 1
    group_onset = onset[np.flatnonzero(np.diff(group, prepend=-1))]
    if n_groups >= 2:
        ioi = np.diff(group_onset)  # > chord_window_sec >= 0 by construction, so log is safe
        f["ioi_median_sec"] = float(np.median(ioi))
        f["ioi_cv"] = _ratio(ioi.std(), ioi.mean())
        f["log_ioi_std"] = float(np.log(ioi).std())
        group_vel = np.bincount(group, weights=vel) / np.bincount(group)
        f["velocity_step_mean_abs"] = float(np.abs(np.diff(group_vel)).mean())
        has_next = group < n_groups - 1
        next_onset = group_onset[group[has_next] + 1]
        f["legato_overlap_ratio"] = float((offset[has_next] > next_onset).mean())
        f["articulation_ratio"] = float(np.median(dur[has_next] / (next_onset - onset[has_next])))
    if span > 0:
        f["onsets_per_sec"], f["notes_per_sec"] = n_groups / span, n / span
        f["polyphony_mean"] = float(dur.sum() / span)  # time-average of keys down
        f.update(_pedal_features(perf.controls, t0, t1))
    return {k: float(v) for k, v in f.items()}


def compare_to_score(perf_f: dict[str, float], score_f: dict[str, float] | None
                     ) -> dict[str, float]:
    """``score_*`` features from two ``performance_features`` dicts; all NaN without a score."""
    if score_f is None or not score_f["n_notes"] > 0:
        return dict.fromkeys(SCORE_FEATURES, NAN)
    return {
        "score_duration_ratio": _ratio(perf_f["duration_sec"], score_f["duration_sec"]),
        # > 1: played faster than the score's notated tempo
        "score_tempo_ratio": _ratio(score_f["onset_span_sec"], perf_f["onset_span_sec"]),
        "score_note_count_ratio": _ratio(perf_f["n_notes"], score_f["n_notes"]),
        "score_velocity_mean_diff": perf_f["velocity_mean"] - score_f["velocity_mean"],
        "score_velocity_std_ratio": _ratio(perf_f["velocity_std"], score_f["velocity_std"]),
        "score_ioi_cv_diff": perf_f["ioi_cv"] - score_f["ioi_cv"],
        "score_pitch_range_diff": perf_f["pitch_range"] - score_f["pitch_range"],
        "score_sustain_ratio_diff": perf_f["sustain_down_ratio"] - score_f["sustain_down_ratio"],
    }


def score_relative_features(perf: Performance, score: Performance | None, *,
                            chord_window_sec: float = CHORD_WINDOW_SEC) -> dict[str, float]:
    """The performance measured against its score rendering (see ``compare_to_score``).

    All NaN when ``score`` is None or has no notes; a single ratio is NaN where its
    denominator is 0 (e.g. a score with constant velocity has no velocity_std to divide by).
    """
    score_f = None if score is None else performance_features(
        score, chord_window_sec=chord_window_sec)
    return compare_to_score(performance_features(perf, chord_window_sec=chord_window_sec), score_f)


# --- batch extraction -----------------------------------------------------------------------

# Per-process cache of score features: 13 performances typically share one score file.
# Value: the feature dict, or the error message when the score could not be used.
_SCORE_CACHE: dict[tuple[str, float], dict[str, float] | str] = {}


def _score_features(path: str | None, window: float) -> tuple[dict[str, float] | None, str | None]:
    if path is None:
        return None, None
    key = (path, window)
    if key not in _SCORE_CACHE:
        try:
            score = read_midi(path)
            _SCORE_CACHE[key] = (performance_features(score, chord_window_sec=window)
                                 if len(score.notes) else f"score {path}: no notes")
        except MidiError as exc:
            _SCORE_CACHE[key] = f"score {exc}"
    cached = _SCORE_CACHE[key]
    if isinstance(cached, str):
        return None, f"{cached}; score features set to NaN"
    return cached, None


def _extract_chunk(chunk: list[tuple[str, str, str | None]], window: float):
    """Worker: (rows, failures, warnings) for a list of (segment, perf_path, score_path)."""
    rows, failures, warnings = [], [], []
    for segment, perf_path, score_path in chunk:
        try:
            perf = read_midi(perf_path)
            if len(perf.notes) == 0:
                raise MidiError(f"{perf_path}: no notes")
            perf_f = performance_features(perf, chord_window_sec=window)
        except Exception as exc:  # one bad file must never stop the batch; it is reported
            error = str(exc) if isinstance(exc, MidiError) else f"{type(exc).__name__}: {exc}"
            failures.append({"segment": segment, "file": perf_path, "error": error})
            continue
        score_f, warning = _score_features(score_path, window)
        if warning:
            warnings.append(warning)
        rows.append({"segment": segment, **perf_f, **compare_to_score(perf_f, score_f)})
    return rows, failures, warnings


def _reset_cache() -> None:
    _SCORE_CACHE.clear()


def extract_features(items, n_jobs: int = 1, *, chord_window_sec: float = CHORD_WINDOW_SEC,
                     chunksize: int | None = None, progress: bool = True
                     ) -> tuple[pd.DataFrame, list[dict]]:
    """Features for many segments in parallel.

    ``items``: iterable of (segment, performance_path, score_path or None). ``n_jobs`` worker
    processes (<= 0: all cores; 1: in this process, no pool). Returns one row per segment,
    sorted by segment, columns ``segment`` then ``FEATURES``; and the failures, sorted, as
    ``{segment, file, error}`` dicts: a performance that cannot be read or has no notes is
    skipped, never fatal. An unusable score only NaNs that row's score features (logged once).
    """
    items = [(str(s), str(p), None if sp is None else str(sp)) for s, p, sp in items]
    names = [s for s, _, _ in items]
    if len(set(names)) != len(names):
        raise ValueError("extract_features: duplicate segment names in items")
    # Ordering by score keeps a score's performances in the same chunk, so the per-worker
    # cache parses most scores exactly once.
    items.sort(key=lambda it: (it[2] or "", it[0]))
    workers = n_jobs if n_jobs > 0 else (os.cpu_count() or 1)
    if chunksize is None:
        chunksize = min(64, max(1, math.ceil(len(items) / (workers * 8))))
    chunks = [items[i:i + chunksize] for i in range(0, len(items), chunksize)]
    workers = max(1, min(workers, len(chunks)))

    rows, failures, warnings = [], [], []
    _reset_cache()  # a forked worker must not inherit scores parsed by an earlier call
    with tqdm(total=len(items), desc="features", unit="seg", disable=not progress) as bar:
        if workers == 1:
            results = (_extract_chunk(chunk, chord_window_sec) for chunk in chunks)
            for chunk, result in zip(chunks, results):
                _collect(result, rows, failures, warnings)
                bar.update(len(chunk))
        else:
            with ProcessPoolExecutor(max_workers=workers, initializer=_reset_cache) as pool:
                futures = {pool.submit(_extract_chunk, c, chord_window_sec): len(c) for c in chunks}
                for future in as_completed(futures):
                    _collect(future.result(), rows, failures, warnings)
                    bar.update(futures[future])
    _reset_cache()
    for warning in sorted(set(warnings)):
        log.warning(warning)
    for failure in failures:
        log.warning("skipped %s: %s", failure["segment"], failure["error"])
    frame = pd.DataFrame(rows, columns=["segment", *FEATURES])
    frame = frame.sort_values("segment", ignore_index=True)
    return frame, sorted(failures, key=lambda f: f["segment"])


def _collect(result, rows: list, failures: list, warnings: list) -> None:
    r, f, w = result
    rows.extend(r)
    failures.extend(f)
    warnings.extend(w)
