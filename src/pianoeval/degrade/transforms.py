"""Quality-degrading transforms of a performance, one function per degradation.

Every function takes a ``Performance`` and returns a new one (notes sorted by onset then pitch).
Note arrays may carry extra fields (the tier generator tracks each note's ``origin``); every
transform keeps them with their note.
"""
from __future__ import annotations

import numpy as np

from pianoeval.data.midi import SUSTAIN_CC, Performance
from pianoeval.degrade.preserving import MIN_DURATION_SEC, jitter_timing, jitter_velocity, sort_notes

PEDAL_DOWN = 64  # CC64 value >= 64 is "on"
PIANO_LOW, PIANO_HIGH = 21, 108
SUBSTITUTION_STEPS = np.array([-2, -1, 1, 2])  # a slip to a neighbouring key


def _count(rate: float, n: int) -> int:
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    return int(round(rate * n))


def timing_jitter(perf: Performance, sigma_sec: float, rng: np.random.Generator) -> Performance:
    """Every note moved (onset and offset together) by Gaussian noise of std ``sigma_sec``."""
    return jitter_timing(perf, sigma_sec, rng, keep_offsets=False)


def tempo_curve(duration_sec: float, depth: float, rng: np.random.Generator,
                knot_sec: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """A random log-tempo curve: a Gaussian random walk with step std ``depth`` at knots every
    ``knot_sec`` (starting at 0), linear between knots. Returns (knot times, log tempo)."""
    n = max(int(np.ceil(duration_sec / knot_sec)) + 1, 2)
    knots = np.arange(n) * knot_sec
    log_tempo = np.concatenate(([0.0], np.cumsum(rng.normal(0.0, depth, n - 1))))
    return knots, log_tempo


def warp_times(times: np.ndarray, knots: np.ndarray, log_tempo: np.ndarray,
               step_sec: float = 0.005) -> np.ndarray:
    """New time of each original time under tempo ``exp(g(t))``: ``t' = int_0^t exp(-g(u)) du``
    (faster where g > 0), integrated on a ``step_sec`` grid and interpolated."""
    end = max(float(np.max(times, initial=0.0)), float(knots[-1])) + step_sec
    grid = np.arange(0.0, end + step_sec, step_sec)
    rate = np.exp(-np.interp(grid, knots, log_tempo))
    warped = np.concatenate(([0.0], np.cumsum((rate[1:] + rate[:-1]) / 2 * step_sec)))
    return np.interp(times, grid, warped)


def tempo_drift(perf: Performance, depth: float, rng: np.random.Generator,
                knot_sec: float = 2.0) -> Performance:
    """Unsteady tempo: every time (onsets, offsets, controls) warped by ``tempo_curve``."""
    notes, controls = perf.notes.copy(), perf.controls.copy()
    knots, log_tempo = tempo_curve(perf.duration_sec, depth, rng, knot_sec)
    onsets = warp_times(notes["onset_sec"], knots, log_tempo)
    offsets = warp_times(notes["onset_sec"] + notes["duration_sec"], knots, log_tempo)
    notes["onset_sec"] = onsets
    notes["duration_sec"] = np.maximum(offsets - onsets, MIN_DURATION_SEC)
    controls["time_sec"] = warp_times(controls["time_sec"], knots, log_tempo)
    return Performance(sort_notes(notes), controls)


def substitute_notes(perf: Performance, rate: float, rng: np.random.Generator,
                     flag: str | None = None) -> Performance:
    """Wrong notes: ``round(rate * n)`` notes, drawn without replacement, moved by -2, -1, +1
    or +2 semitones (the other way when that leaves the piano). ``flag``: a boolean note field
    set on the substituted notes."""
    notes = perf.notes.copy()
    chosen = rng.choice(len(notes), _count(rate, len(notes)), replace=False)
    step = rng.choice(SUBSTITUTION_STEPS, len(chosen))
    pitch = notes["pitch"][chosen] + step
    off = (pitch < PIANO_LOW) | (pitch > PIANO_HIGH)
    pitch[off] -= 2 * step[off]
    notes["pitch"][chosen] = pitch
    if flag is not None:
        notes[flag][chosen] = True
    return Performance(sort_notes(notes), perf.controls.copy())


def delete_notes(perf: Performance, rate: float, rng: np.random.Generator) -> Performance:
    """Dropped notes: ``round(rate * n)`` notes drawn without replacement are removed."""
    n = len(perf.notes)
    keep = np.ones(n, bool)
    keep[rng.choice(n, _count(rate, n), replace=False)] = False
    return Performance(perf.notes[keep].copy(), perf.controls.copy())


def compress_velocity(perf: Performance, fraction: float) -> Performance:
    """Flattened dynamics: ``v' = round(m + (v - m) (1 - fraction))`` with ``m`` the mean
    velocity, so the velocity range shrinks by ``fraction`` (up to rounding)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"compression fraction must be in [0, 1], got {fraction}")
    notes = perf.notes.copy()
    v = notes["velocity"].astype(float)
    m = v.mean() if len(v) else 0.0
    notes["velocity"] = np.clip(np.rint(m + (v - m) * (1.0 - fraction)), 1, 127)
    return Performance(notes, perf.controls.copy())


def randomize_velocity(perf: Performance, sigma: float, rng: np.random.Generator) -> Performance:
    """Uncontrolled dynamics: Gaussian velocity noise of std ``sigma`` (MIDI units)."""
    return jitter_velocity(perf, sigma, rng)


def sustain_spans(controls: np.ndarray, end_sec: float) -> list[tuple[float, float]]:
    """(down, up) times of each sustain press: CC64 crossing to >= 64 until it drops below;
    a press still down at the end lasts until ``end_sec``."""
    c = controls[controls["number"] == SUSTAIN_CC]
    spans, start = [], None
    for t, v in zip(c["time_sec"], c["value"]):
        if v >= PEDAL_DOWN and start is None:
            start = float(t)
        elif v < PEDAL_DOWN and start is not None:
            spans.append((start, float(t)))
            start = None
    if start is not None:
        spans.append((start, max(end_sec, start)))
    return spans


def remove_pedal(perf: Performance, fraction: float, rng: np.random.Generator) -> Performance:
    """Missing pedal: ``round(fraction * presses)`` sustain presses (at least one when
    ``fraction`` > 0 and there is any) are removed with every CC64 event inside them."""
    spans = sustain_spans(perf.controls, perf.duration_sec)
    k = _count(fraction, len(spans))
    if fraction > 0 and spans:
        k = max(k, 1)
    controls = perf.controls
    drop = np.zeros(len(controls), bool)
    for i in rng.choice(len(spans), k, replace=False):
        start, end = spans[i]
        drop |= ((controls["number"] == SUSTAIN_CC) & (controls["time_sec"] >= start)
                 & (controls["time_sec"] < end))
    return Performance(perf.notes.copy(), controls[~drop].copy())


def over_pedal(perf: Performance, fraction: float, rng: np.random.Generator) -> Performance:
    """Blurred pedalling: the sustain pedal held fully down, without a change, over one span of
    ``fraction`` of the performance's length at a random place; the pedal state in force at its
    end resumes afterwards."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"over-pedal fraction must be in [0, 1], got {fraction}")
    duration = perf.duration_sec
    start = float(rng.uniform(0.0, duration * (1.0 - fraction)))
    end = start + fraction * duration
    controls = perf.controls
    sustain = controls[controls["number"] == SUSTAIN_CC]
    before_end = sustain[sustain["time_sec"] <= end]
    resume = int(before_end["value"][-1]) if len(before_end) else 0
    inside = ((controls["number"] == SUSTAIN_CC) & (controls["time_sec"] >= start)
              & (controls["time_sec"] <= end))
    added = np.array([(start, SUSTAIN_CC, 127), (end, SUSTAIN_CC, resume)], controls.dtype)
    out = np.concatenate([controls[~inside], added])
    return Performance(perf.notes.copy(), out[np.argsort(out["time_sec"], kind="stable")])


def scale_durations(perf: Performance, factor: float) -> Performance:
    """Articulation: every duration times ``factor`` (< 1 shorter / detached, > 1 longer /
    smeared), never below 5 ms."""
    if factor <= 0:
        raise ValueError(f"duration factor must be > 0, got {factor}")
    notes = perf.notes.copy()
    notes["duration_sec"] = np.maximum(notes["duration_sec"] * factor, MIN_DURATION_SEC)
    return Performance(notes, perf.controls.copy())
