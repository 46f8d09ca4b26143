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
from functools import partial

import numpy as np
import pandas as pd
from tqdm import tqdm

from pianoeval.data.midi import CONTROL_DTYPE, NOTE_DTYPE, MidiError, Performance, read_midi
from pianoeval.fanout import fan_out
from pianoeval.features import kernel

log = logging.getLogger(__name__)

CHORD_WINDOW_SEC = 0.03

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
    return kernel.onset_groups(np.asarray(onsets, dtype=np.float64), float(window_sec))


def performance_features(perf: Performance, *, chord_window_sec: float = CHORD_WINDOW_SEC
                         ) -> dict[str, float]:
    """Velocity, timing, articulation, pedal, polyphony and pitch summaries of one segment.

    Notes are taken in (onset, pitch) order; the span runs from the first onset t0 to the last
    note-off t1, and every rate divides by t1 - t0. Standard deviations use ddof=0,
    percentiles interpolate linearly (numpy's default).

    * ``velocity_*``, ``pitch_*``: mean, std, 10th and 90th percentile, range, lowest, highest.
    * Timing uses onset groups (``onset_groups``): IOIs run between successive group onsets
      (``ioi_median_sec``; ``ioi_cv`` = std / mean; ``log_ioi_std`` = std of log IOI);
      ``onsets_per_sec`` counts groups; ``velocity_step_mean_abs`` is the mean absolute change
      of group-mean velocity.
    * ``legato_overlap_ratio``: the share of notes still down at the next group's onset;
      ``articulation_ratio``: the median of duration / time to the next group's onset (notes of
      the last group are left out of both).
    * ``duration_median_sec``, ``duration_cv`` (std / mean); ``polyphony_mean`` = total note
      duration / span, the time-average of keys down; ``polyphony_max``: most keys down at
      once, a note ending exactly when another starts not overlapping it and zero-length notes
      never sounding. Polyphony ignores the sustain pedal.
    * Pedal, as step functions of CC64 and CC67 on [t0, t1] (the value in force at t0 is the
      last event at or before it, 0 if none; of several events at one instant the last counts):
      ``sustain_down_ratio`` (share of time >= 64), ``pedal_half_ratio`` (1 to 63),
      ``sustain_mean_value`` (time-weighted value), ``sustain_changes_per_sec`` (crossings of
      64, not CC events: continuous-pedal recordings send hundreds of events per segment,
      binary ones a few, for the same foot movement), ``soft_down_ratio`` (CC67 >= 64).
    """
    return feature_rows([perf], chord_window_sec)[0]


def feature_rows(performances: list[Performance], chord_window_sec: float = CHORD_WINDOW_SEC
                 ) -> list[dict[str, float]]:
    """``performance_features`` of each performance, in one compiled pass over them all
    (``features.kernel``: the formulas above, bit-identical to computing them with numpy)."""
    notes = np.concatenate([p.notes for p in performances] or [np.empty(0, NOTE_DTYPE)])
    controls = np.concatenate([p.controls for p in performances] or [np.empty(0, CONTROL_DTYPE)])
    starts = lambda parts: np.cumsum([0] + [len(x) for x in parts])  # noqa: E731
    matrix = kernel.feature_matrix(notes, starts(p.notes for p in performances), controls,
                                   starts(p.controls for p in performances), chord_window_sec)
    return [dict(zip(PERFORMANCE_FEATURES, row)) for row in matrix.tolist()]


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


def _cache_scores(paths: set[str], window: float) -> None:
    """Read the scores of ``paths`` not cached yet and cache their features (or the reason
    they cannot be used)."""
    readable = []
    for path in sorted(p for p in paths if (p, window) not in _SCORE_CACHE):
        try:
            score = read_midi(path)
            if len(score.notes):
                readable.append((path, score))
            else:
                _SCORE_CACHE[path, window] = f"score {path}: no notes"
        except MidiError as exc:
            _SCORE_CACHE[path, window] = f"score {exc}"
    for (path, _), features in zip(readable, feature_rows([s for _, s in readable], window)):
        _SCORE_CACHE[path, window] = features


def _extract_chunk(chunk: list[tuple[str, str, str | None]], window: float):
    """Worker: (rows, failures, warnings) for a list of (segment, perf_path, score_path)."""
    read, failures, warnings = [], [], []
    for segment, perf_path, score_path in chunk:
        try:
            perf = read_midi(perf_path)
            if len(perf.notes) == 0:
                raise MidiError(f"{perf_path}: no notes")
        except Exception as exc:  # one bad file must never stop the batch; it is reported
            error = str(exc) if isinstance(exc, MidiError) else f"{type(exc).__name__}: {exc}"
            failures.append({"segment": segment, "file": perf_path, "error": error})
            continue
        read.append((segment, perf, score_path))
    _cache_scores({score for _, _, score in read if score is not None}, window)
    rows = []
    for (segment, _, score_path), perf_f in zip(read, feature_rows([p for _, p, _ in read],
                                                                   window)):
        score_f = None if score_path is None else _SCORE_CACHE[score_path, window]
        if isinstance(score_f, str):
            warnings.append(f"{score_f}; score features set to NaN")
            score_f = None
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
    extract = partial(_extract_chunk, window=chord_window_sec)
    with tqdm(total=len(items), desc="features", unit="seg", disable=not progress) as bar:
        for chunk, (r, f, w) in zip(chunks, fan_out(extract, chunks, workers,
                                                    initializer=_reset_cache)):
            rows += r
            failures += f
            warnings += w
            bar.update(len(chunk))
    _reset_cache()
    for warning in sorted(set(warnings)):
        log.warning(warning)
    for failure in failures:
        log.warning("skipped %s: %s", failure["segment"], failure["error"])
    frame = pd.DataFrame(rows, columns=["segment", *FEATURES])
    frame = frame.sort_values("segment", ignore_index=True)
    return frame, sorted(failures, key=lambda f: f["segment"])
