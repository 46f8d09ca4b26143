"""features.kernel computes the performance features bit for bit as numpy does.

The oracle below is the plain numpy implementation the kernel replaced (features.symbolic before
the kernel), kept verbatim: every value must be equal (NaN where it is NaN), on random segments
built to hit the edge cases (chords, unisons, zero-length notes, pedal events at one instant or
before the first note, one note, one group) and on real PercePiano performances.
"""
import math
import os
from pathlib import Path

import numpy as np
import pytest

from pianoeval.data.midi import (CONTROL_DTYPE, NOTE_DTYPE, SOFT_CC, SUSTAIN_CC, Performance,
                                 read_midi)
from pianoeval.features.symbolic import (CHORD_WINDOW_SEC, PERFORMANCE_FEATURES, feature_rows,
                                         performance_features)

ROOT = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("PIANOEVAL_DATA_MIRROR", ROOT.parent / "shared" / "data"))


# --- the numpy oracle -------------------------------------------------------------------------

def _ratio(num, den):
    if not (math.isfinite(num) and math.isfinite(den)) or den == 0:
        return math.nan
    return num / den


def _groups(onsets, window_sec):
    group = np.empty(len(onsets), dtype=np.int64)
    current, start = -1, -math.inf
    for i, t in enumerate(onsets):
        if t - start > window_sec:
            current, start = current + 1, t
        group[i] = current
    return group


def _cc_steps(controls, number, t0, t1):
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


def _pedal(controls, t0, t1):
    span = t1 - t0
    sustain, w = _cc_steps(controls, SUSTAIN_CC, t0, t1)
    down = sustain >= 64
    soft, w_soft = _cc_steps(controls, SOFT_CC, t0, t1)
    return {
        "sustain_down_ratio": float(w[down].sum() / span),
        "pedal_half_ratio": float(w[(sustain >= 1) & ~down].sum() / span),
        "sustain_mean_value": float((sustain * w).sum() / span),
        "sustain_changes_per_sec": float(np.count_nonzero(down[1:] != down[:-1]) / span),
        "soft_down_ratio": float(w_soft[soft >= 64].sum() / span),
    }


def _polyphony_max(onsets, offsets):
    sounding = offsets > onsets
    times = np.concatenate((onsets[sounding], offsets[sounding]))
    deltas = np.concatenate((np.ones(sounding.sum()), -np.ones(sounding.sum())))
    order = np.lexsort((deltas, times))
    return float(np.cumsum(deltas[order]).max()) if len(times) else 0.0


def numpy_features(perf, window):
    f = dict.fromkeys(PERFORMANCE_FEATURES, math.nan)
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
    group = _groups(onset, window)
    n_groups = int(group[-1]) + 1
    group_onset = onset[np.flatnonzero(np.diff(group, prepend=-1))]
    if n_groups >= 2:
        ioi = np.diff(group_onset)
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
        f["polyphony_mean"] = float(dur.sum() / span)
        f.update(_pedal(perf.controls, t0, t1))
    return {k: float(v) for k, v in f.items()}


# --- the comparison ---------------------------------------------------------------------------

def mismatches(performances, window=CHORD_WINDOW_SEC):
    """(performance index, feature, numpy, kernel) wherever the two differ in any bit."""
    out = []
    for i, (row, perf) in enumerate(zip(feature_rows(performances, window), performances)):
        for name, want in numpy_features(perf, window).items():
            got = row[name]
            if not (math.isnan(want) and math.isnan(got)) and \
                    np.float64(want).tobytes() != np.float64(got).tobytes():
                out.append((i, name, want, got))
    return out


def random_performance(rng: np.random.Generator) -> Performance:
    n = int(rng.choice([0, 1, 2, 3, 9, 40, 150, 400]))
    notes = np.empty(n, NOTE_DTYPE)
    grid = rng.choice([0.001, 0.01, 0.0371])  # coarse grids give chords, unisons, equal times
    onsets = rng.exponential(0.15, n).cumsum()
    notes["onset_sec"] = np.round(onsets / grid) * grid + rng.uniform(0, 3)
    notes["duration_sec"] = np.where(rng.random(n) < 0.1, 0.0, rng.gamma(2, 0.2, n))
    notes["pitch"] = rng.integers(30, 90, n)
    notes["velocity"] = rng.integers(1, 128, n)
    if n > 4:  # exact duplicates in (onset, pitch), differing in duration and velocity
        notes[-2:]["onset_sec"] = notes[0]["onset_sec"]
        notes[-2:]["pitch"] = notes[0]["pitch"]
    m = int(rng.choice([0, 3, 30, 300]))
    controls = np.empty(m, CONTROL_DTYPE)
    controls["time_sec"] = np.sort(np.round(rng.uniform(-1, 60, m) / grid) * grid)
    controls["number"] = rng.choice([SUSTAIN_CC, SOFT_CC, 7], m)
    controls["value"] = rng.choice([0, 1, 30, 63, 64, 100, 127], m)
    return Performance(notes=notes[rng.permutation(n)], controls=controls)


@pytest.mark.parametrize("window", [CHORD_WINDOW_SEC, 0.0, 0.2])
def test_kernel_equals_numpy_bit_for_bit_on_random_segments(window):
    rng = np.random.default_rng(7)
    performances = [random_performance(rng) for _ in range(300)]
    assert mismatches(performances, window) == []
    one = performances[5]  # and one at a time, as degrade and assess call it
    assert performance_features(one, chord_window_sec=window) == \
        pytest.approx(numpy_features(one, window), nan_ok=True, rel=0, abs=0)


def test_the_comparison_can_fail():
    rng = np.random.default_rng(1)
    perf = random_performance(rng)
    while len(perf.notes) < 40:
        perf = random_performance(rng)
    shifted = Performance(notes=perf.notes.copy(), controls=perf.controls)
    shifted.notes["duration_sec"] *= 1 + 1e-15  # one ulp or so: the check must see it
    row = feature_rows([shifted])[0]
    want = numpy_features(perf, CHORD_WINDOW_SEC)
    assert any(np.float64(row[k]).tobytes() != np.float64(want[k]).tobytes()
               for k in ("duration_cv", "polyphony_mean", "duration_median_sec"))


@pytest.mark.skipif(not (MIRROR / "percepiano").is_dir(), reason="no PercePiano in the mirror")
def test_kernel_equals_numpy_bit_for_bit_on_real_performances():
    paths = sorted((MIRROR / "percepiano").rglob("*.mid"))  # every segment and score
    performances = [p for p in map(read_midi, paths) if len(p.notes)]
    assert len(performances) > 1202
    assert mismatches(performances) == []
