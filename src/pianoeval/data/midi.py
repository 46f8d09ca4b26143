"""The one data model passed between functions: structured note and control arrays.

Field names follow partitura's ``note_array`` (``onset_sec``, ``duration_sec``, ``pitch``,
``velocity``) so later alignment code can consume them unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import symusic

NOTE_DTYPE = np.dtype(
    [("onset_sec", "f8"), ("duration_sec", "f8"), ("pitch", "i4"), ("velocity", "i4")]
)
CONTROL_DTYPE = np.dtype([("time_sec", "f8"), ("number", "i4"), ("value", "i4")])

SUSTAIN_CC = 64
SOFT_CC = 67


class MidiError(ValueError):
    """A MIDI file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Performance:
    """All notes and control changes of one MIDI file, merged over tracks, sorted by time."""

    notes: np.ndarray  # NOTE_DTYPE, sorted by onset then pitch
    controls: np.ndarray  # CONTROL_DTYPE, sorted by time

    @property
    def duration_sec(self) -> float:
        if len(self.notes) == 0:
            return 0.0
        return float(np.max(self.notes["onset_sec"] + self.notes["duration_sec"]))


def read_midi(path: str | Path) -> Performance:
    """Parse a MIDI file with symusic (times in seconds, tempo map applied).

    Raises MidiError naming the file when it is missing, empty or unparseable. Known limits of
    the parser (pinned in tests/test_midi.py): control changes in a track without notes are
    dropped with that track (sustain counts match mido on all PercePiano files and an 80-file
    ASAP sample), and a
    file cut exactly at a track boundary reads as the tracks that remain.
    """
    path = Path(path)
    if not path.is_file():
        raise MidiError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise MidiError(f"{path}: empty file (0 bytes)")
    try:
        score = symusic.Score(str(path), ttype="second")
    except Exception as exc:  # symusic raises RuntimeError/ValueError variants
        raise MidiError(f"{path}: cannot parse MIDI ({exc})") from exc
    note_parts, control_parts = [], []
    for track in score.tracks:
        n = track.notes.numpy()
        part = np.empty(len(n["time"]), dtype=NOTE_DTYPE)
        part["onset_sec"], part["duration_sec"] = n["time"], n["duration"]
        part["pitch"], part["velocity"] = n["pitch"], n["velocity"]
        note_parts.append(part)
        c = track.controls.numpy()
        cpart = np.empty(len(c["time"]), dtype=CONTROL_DTYPE)
        cpart["time_sec"], cpart["number"], cpart["value"] = c["time"], c["number"], c["value"]
        control_parts.append(cpart)
    notes = np.concatenate(note_parts) if note_parts else np.empty(0, NOTE_DTYPE)
    controls = np.concatenate(control_parts) if control_parts else np.empty(0, CONTROL_DTYPE)
    notes = notes[np.lexsort((notes["pitch"], notes["onset_sec"]))]
    controls = controls[np.argsort(controls["time_sec"], kind="stable")]
    return Performance(notes=notes, controls=controls)
