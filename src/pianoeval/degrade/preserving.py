"""Quality-preserving augmentations: a performance that should keep its quality labels.

Not a tier: transposition, a global tempo change, small velocity and timing jitter change how a
performance sounds, not how well it is played. Every function takes and returns a
``Performance`` (notes stay sorted by onset then pitch) and draws from the given generator.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pianoeval.data.midi import Performance

MIN_DURATION_SEC = 0.005  # a jittered note never becomes shorter than this


def sort_notes(notes: np.ndarray) -> np.ndarray:
    """Notes sorted by onset, then pitch (the data model's order)."""
    return notes[np.lexsort((notes["pitch"], notes["onset_sec"]))]


def transpose(perf: Performance, semitones: int) -> Performance:
    """Every pitch moved by ``semitones``; notes pushed off the piano (21..108) are dropped."""
    notes = perf.notes.copy()
    notes["pitch"] += int(semitones)
    keep = (notes["pitch"] >= 21) & (notes["pitch"] <= 108)
    return Performance(notes[keep], perf.controls.copy())


def scale_tempo(perf: Performance, factor: float) -> Performance:
    """Played ``factor`` times faster (>1) or slower (<1): every time divided by ``factor``."""
    if factor <= 0:
        raise ValueError(f"tempo factor must be > 0, got {factor}")
    notes, controls = perf.notes.copy(), perf.controls.copy()
    notes["onset_sec"] /= factor
    notes["duration_sec"] /= factor
    controls["time_sec"] /= factor
    return Performance(notes, controls)


def jitter_velocity(perf: Performance, sigma: float, rng: np.random.Generator) -> Performance:
    """Gaussian velocity noise of std ``sigma`` (MIDI units), rounded and kept in 1..127."""
    notes = perf.notes.copy()
    noise = rng.normal(0.0, sigma, len(notes))
    notes["velocity"] = np.clip(np.rint(notes["velocity"] + noise), 1, 127)
    return Performance(notes, perf.controls.copy())


def jitter_timing(perf: Performance, sigma_sec: float, rng: np.random.Generator,
                  keep_offsets: bool = True) -> Performance:
    """Gaussian onset noise of std ``sigma_sec`` per note, onsets kept >= 0. With
    ``keep_offsets`` the note ends stay in place (durations absorb the shift); without, the
    whole note moves (a mistimed keystroke)."""
    notes = perf.notes.copy()
    offsets = notes["onset_sec"] + notes["duration_sec"]
    onsets = np.maximum(notes["onset_sec"] + rng.normal(0.0, sigma_sec, len(notes)), 0.0)
    notes["onset_sec"] = onsets
    if keep_offsets:
        notes["duration_sec"] = np.maximum(offsets - onsets, MIN_DURATION_SEC)
    return Performance(sort_notes(notes), perf.controls.copy())


@dataclass(frozen=True)
class PreservingConfig:
    """Ranges the augmentations are drawn from (uniformly)."""

    transpose: tuple[int, int] = (-6, 6)          # semitones, inclusive
    tempo: tuple[float, float] = (0.8, 1.2)       # tempo factor
    velocity_sigma: tuple[float, float] = (5.0, 10.0)  # MIDI velocity units
    timing_sigma_ms: tuple[float, float] = (10.0, 20.0)

    @classmethod
    def from_params(cls, params: dict) -> "PreservingConfig":
        return cls(**{k: tuple(v) for k, v in params.items()})


def augment(perf: Performance, rng: np.random.Generator,
            config: PreservingConfig = PreservingConfig()) -> tuple[Performance, dict]:
    """All four augmentations with magnitudes drawn from ``config``; returns the augmented
    performance and the drawn magnitudes."""
    drawn = {"transpose": int(rng.integers(config.transpose[0], config.transpose[1] + 1)),
             "tempo": float(rng.uniform(*config.tempo)),
             "velocity_sigma": float(rng.uniform(*config.velocity_sigma)),
             "timing_sigma_ms": float(rng.uniform(*config.timing_sigma_ms))}
    perf = transpose(perf, drawn["transpose"])
    perf = scale_tempo(perf, drawn["tempo"])
    perf = jitter_velocity(perf, drawn["velocity_sigma"], rng)
    perf = jitter_timing(perf, drawn["timing_sigma_ms"] / 1000.0, rng)
    return perf, drawn
