"""Edit and write performances of the data model (``pianoeval.data.midi``): windows, MIDI files.

Kept out of ``midi.py`` so that the stages which only read MIDI do not depend on this code.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import symusic

from pianoeval.data.midi import CONTROL_DTYPE, Performance


def write_midi(perf: Performance, path: str | Path, ticks_per_quarter: int = 480) -> Path:
    """Write ``perf`` as a one-track piano MIDI file (symusic, times in seconds at the default
    120 bpm; 480 ticks per quarter = ~1 ms resolution). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    score = symusic.Score(ticks_per_quarter, ttype="second")
    track = symusic.Track(program=0, ttype="second")
    for onset, duration, pitch, velocity in zip(perf.notes["onset_sec"], perf.notes["duration_sec"],
                                                perf.notes["pitch"], perf.notes["velocity"]):
        track.notes.append(symusic.Note(float(onset), float(duration), int(pitch), int(velocity),
                                        ttype="second"))
    for time, number, value in zip(perf.controls["time_sec"], perf.controls["number"],
                                   perf.controls["value"]):
        track.controls.append(symusic.ControlChange(float(time), int(number), int(value),
                                                    ttype="second"))
    score.tracks.append(track)
    score.dump_midi(str(path))
    return path


def window(perf: Performance, start_sec: float, end_sec: float) -> tuple[Performance, np.ndarray]:
    """The notes with onsets in ``[start_sec, end_sec)``, shifted to start at 0, with every
    controller's value in force at ``start_sec`` restated at time 0. Also returns the kept
    notes' indices into ``perf.notes``."""
    keep = np.flatnonzero((perf.notes["onset_sec"] >= start_sec) & (perf.notes["onset_sec"] < end_sec))
    notes = perf.notes[keep].copy()
    notes["onset_sec"] -= start_sec
    c = perf.controls
    before = c[c["time_sec"] <= start_sec]
    state = {int(n): v for n, v in zip(before["number"], before["value"])}  # last one wins
    head = np.array([(0.0, n, v) for n, v in sorted(state.items())], CONTROL_DTYPE)
    inside = c[(c["time_sec"] > start_sec) & (c["time_sec"] < end_sec)].copy()
    inside["time_sec"] -= start_sec
    return Performance(notes, np.concatenate([head, inside])), keep
