"""Build small MIDI files and Performances for tests.

Times are in beats. The default tempo is 60 bpm, so a beat is a second and hand-computed
expectations stay readable; 1000 ticks per beat give 1 ms resolution at that tempo.
"""
from __future__ import annotations

from pathlib import Path

import mido
import numpy as np

from pianoeval.data.midi import CONTROL_DTYPE, NOTE_DTYPE, Performance

TPQ = 1000

Note = tuple[float, float, int, int]  # onset, duration, pitch, velocity
Control = tuple[float, int, int]  # time, controller number, value


def perf(notes: list[Note] = (), controls: list[Control] = ()) -> Performance:
    """A Performance straight from tuples (seconds), bypassing MIDI."""
    n = np.array([tuple(x) for x in notes], dtype=NOTE_DTYPE)
    c = np.array([tuple(x) for x in controls], dtype=CONTROL_DTYPE)
    return Performance(notes=np.sort(n, order=["onset_sec", "pitch"]),
                       controls=c[np.argsort(c["time_sec"], kind="stable")])


def write_midi(path: Path, notes: list[Note] = (), controls: list[Control] = (),
               tempos: list[tuple[float, float]] = ((0.0, 60.0),),
               separate_controls: bool = False,
               time_signatures: list[tuple[float, int, int]] = ()) -> Path:
    """A type-1 file: track 0 the tempo map [(beat, bpm)] and time signatures
    [(beat, numerator, denominator)], track 1 notes and controls (``separate_controls``:
    controls in a track 2 of their own)."""
    def tick(beats: float) -> int:
        return round(beats * TPQ)

    tempo_track = [(tick(b), 0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)))
                   for b, bpm in tempos]
    tempo_track += [(tick(b), 0, mido.MetaMessage("time_signature", numerator=num,
                                                  denominator=den))
                    for b, num, den in time_signatures]
    note_track, control_track = [], []
    for onset, dur, pitch, vel in notes:
        # note_off sorts before note_on at the same tick (key 0 < 2), so repeated notes work
        note_track.append((tick(onset), 2, mido.Message("note_on", note=pitch, velocity=vel)))
        note_track.append((tick(onset + dur), 0, mido.Message("note_off", note=pitch)))
    for time, number, value in controls:
        cc = mido.Message("control_change", control=number, value=value)
        (control_track if separate_controls else note_track).append((tick(time), 1, cc))
    mid = mido.MidiFile(type=1, ticks_per_beat=TPQ)
    for events in [tempo_track, note_track] + ([control_track] if separate_controls else []):
        track, now = mido.MidiTrack(), 0
        for t, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
            track.append(msg.copy(time=t - now))
            now = t
        mid.tracks.append(track)
    path = Path(path)
    mid.save(path)
    return path


def simple_notes(n: int = 4, ioi: float = 0.5, dur: float = 0.25, pitch: int = 60,
                 vel: int = 64) -> list[Note]:
    return [(i * ioi, dur, pitch + i, vel) for i in range(n)]


def write_corrupt(path: Path, n_bytes: int = 512, seed: int = 0) -> Path:
    """Random bytes (a fixed seed, so the file is the same on every run)."""
    path = Path(path)
    path.write_bytes(np.random.default_rng(seed).bytes(n_bytes))
    return path


def write_empty(path: Path) -> Path:
    path = Path(path)
    path.write_bytes(b"")
    return path


def write_truncated(path: Path, source: Path, fraction: float = 0.5) -> Path:
    """The first ``fraction`` of a valid file's bytes."""
    data = Path(source).read_bytes()
    path = Path(path)
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def write_no_notes(path: Path) -> Path:
    """A valid file with a tempo map and pedal events but no notes."""
    return write_midi(path, notes=[], controls=[(0.0, 64, 127), (1.0, 64, 0)])
