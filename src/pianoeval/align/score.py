"""A score as the aligner sees it: partitura notes on one beat axis, plus the bar/beat grid.

Score MIDI is loaded with ``partitura.load_score_midi`` as ONE part (``part_voice_assign_mode=2``:
with the default one-part-per-track mode, partitura builds a separate, shifted beat map for a
track without the time signature, which put PercePiano's left hand three beats early),
quantised to 1/48 quarter (``quantization_unit``, when the resolution is a multiple of 48): the
PercePiano score renderings carry 1-2 tick offsets between the hands that would otherwise split
every chord into two score onsets. 1/48 quarter holds 64ths (3/48) and triplets down to 1/24
quarter exactly.

MusicXML is loaded with ``partitura.load_musicxml`` (tied notes merged, grace notes flagged).

Beat unit: the denominator of the time signature that covers most of the score (a quarter in
3/4, a half note in 2/2). partitura's own ``onset_beat`` switches unit with every time-signature
change, and MuseScore writes a pickup as a one-bar 1/8 or 1/16 measure, which would make the
pickup's "beat" an eighth and its local tempo four times too fast; one unit per score avoids
that. ``onset_beat = onset_quarter * beat_type / 4``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

EPS = 1e-6
QUANTIZE_PER_QUARTER = 48
XML_SUFFIXES = (".musicxml", ".xml", ".mxl")


class ScoreError(ValueError):
    """A score that cannot be used (missing, empty, unparseable); the message names the file."""


@dataclass(frozen=True)
class ScoreInfo:
    """Notes (partitura note-array fields, ``onset_beat``/``duration_beat`` in the score's beat
    unit, sorted by onset then pitch) and the bar grid in the same unit.

    Bar ``k`` starts at ``bar_starts[k]`` and counts ``bar_beats[k]`` beats (a pickup or a short
    last bar counts as at least one beat), so beat numbers never collide across bars.
    """

    notes: np.ndarray
    bar_starts: np.ndarray  # float, ascending
    bar_beats: np.ndarray  # int >= 1
    beats_per_quarter: float
    path: str

    def bar_idx(self, beats: np.ndarray) -> np.ndarray:
        """0-based bar of each score position; before the first bar -> 0."""
        k = np.searchsorted(self.bar_starts, np.asarray(beats, float) + EPS, side="right") - 1
        return np.clip(k, 0, len(self.bar_starts) - 1)

    def beat_idx(self, beats: np.ndarray) -> np.ndarray:
        """0-based beat of each score position, counted through the bars:
        ``sum(bar_beats[:k]) + floor(beats - bar_starts[k])`` for bar ``k`` (>= 0). Positions
        past the last bar keep counting in its unit."""
        beats = np.asarray(beats, float)
        k = self.bar_idx(beats)
        first = np.concatenate(([0], np.cumsum(self.bar_beats)[:-1]))
        within = np.floor(beats - self.bar_starts[k] + EPS).astype(np.int64)
        return first[k] + np.maximum(within, 0)


def _load_part(path: Path):
    """(partitura Part of a score file (several parts are merged), whether it came from MIDI)."""
    import mido  # partitura's own MIDI reader; imported late, as partitura is
    import partitura as pt

    if not path.is_file():
        raise ScoreError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ScoreError(f"{path}: empty file (0 bytes)")
    is_midi = path.suffix.lower() not in XML_SUFFIXES
    try:
        if is_midi:
            mid = mido.MidiFile(str(path))
            # a grid that does not divide the resolution would distort every position
            tpq = mid.ticks_per_beat
            unit = tpq // QUANTIZE_PER_QUARTER if tpq % QUANTIZE_PER_QUARTER == 0 else None
            score = pt.load_score_midi(mid, part_voice_assign_mode=2, quantization_unit=unit,
                                       quiet=True)
        else:
            score = pt.load_musicxml(str(path), force_note_ids=True)
    except Exception as exc:  # partitura/mido raise many types on broken files
        raise ScoreError(f"{path}: cannot load score ({type(exc).__name__}: {exc})") from exc
    parts = list(score.parts)
    if not parts:
        raise ScoreError(f"{path}: no parts")
    return (parts[0] if len(parts) == 1 else pt.score.merge_parts(parts)), is_midi


def _time_signatures(part) -> list[tuple[int, int, int]]:
    """(start div, beats, beat_type), sorted; 4/4 from the start when there is none there."""
    import partitura as pt

    sigs = sorted((ts.start.t, ts.beats, ts.beat_type)
                  for ts in part.iter_all(pt.score.TimeSignature))
    if not sigs or sigs[0][0] > part.first_point.t:
        sigs.insert(0, (part.first_point.t, 4, 4))
    return sigs


def _midi_grid(part, notes: np.ndarray):
    """(note onsets, durations, bar starts, bar lengths, all in quarters; main beat type) of a
    MIDI score.

    Bars are laid out from the time signatures in ticks: a bar of b/t lasts 4b/t quarters,
    starting at each signature. Not partitura's ``measures``/``quarter_map``: its measure
    builder ends a bar at ``int(inv_beat_map(...))``, one tick early (1919 of 1920), reads the
    short first bar as a pickup and shifts every quarter of the score by a bar.
    """
    (_, tpq), *rest = part.quarter_durations()
    if rest:  # score MIDI has one resolution; anything else is not what this code expects
        raise ScoreError("MIDI score with several quarter durations")
    sigs = _time_signatures(part)
    end = max(part.last_point.t, int((notes["onset_div"] + notes["duration_div"]).max()))
    starts, lengths, span = [], [], {}
    for i, (t0, beats, beat_type) in enumerate(sigs):
        t1 = sigs[i + 1][0] if i + 1 < len(sigs) else end
        bar = beats * 4 / beat_type * tpq
        span[beat_type] = span.get(beat_type, 0) + (t1 - t0)
        bar_starts = np.arange(t0, max(t1, t0 + 1), bar)  # at least one bar per signature
        starts.extend(bar_starts)
        lengths.extend([bar] * len(bar_starts))
    main = max(span, key=span.get)
    return (notes["onset_div"] / tpq, notes["duration_div"] / tpq,
            np.array(starts, float) / tpq, np.array(lengths, float) / tpq, main)


def _xml_grid(part, notes: np.ndarray):
    """(note onsets, durations, bar starts, bar lengths in quarters; main beat type) of a
    MusicXML score: the file's own measures (true bars, a pickup included) through partitura's
    quarter map."""
    measures = sorted(part.measures, key=lambda m: m.start.t)
    starts = np.array([float(part.quarter_map(m.start.t)) for m in measures])
    ends = np.array([float(part.quarter_map(m.end.t)) for m in measures])
    if not len(starts):  # no bar lines: one bar over the whole score
        starts = np.array([float(notes["onset_quarter"].min())])
        ends = np.array([float((notes["onset_quarter"] + notes["duration_quarter"]).max())])
    return (notes["onset_quarter"].astype(float), notes["duration_quarter"].astype(float),
            starts, ends - starts, main_beat_type(part))


def main_beat_type(part) -> int:
    """Denominator of the time signature governing the most quarters of the part."""
    sigs = _time_signatures(part)
    starts = np.array([t for t, _, _ in sigs])
    span: dict[int, float] = {}
    for m in part.measures:
        _, _, beat_type = sigs[max(0, int(np.searchsorted(starts, m.start.t, side="right")) - 1)]
        length = float(part.quarter_map(m.end.t) - part.quarter_map(m.start.t))
        span[beat_type] = span.get(beat_type, 0.0) + length
    return max(span, key=span.get) if span else sigs[0][2]


def _without_doubled_notes(notes: np.ndarray) -> np.ndarray:
    """One note per (onset, pitch), the longest kept, sorted by onset then pitch.

    A doubled note (a melody note written again in an inner voice) is one key on a piano, so
    it can never be performed twice; left in, it counts as a deletion in every performance
    (the score MIDI of PercePiano's Schubert D935 no. 3 passage 9 doubles 32 of its 120 notes
    as zero-length notes) and
    DualDTWNoteMatcher, which can match only one note per pitch and time, then loses the other
    one too. partitura's ``remove_double_notes_from_score_note_array`` does it.
    """
    from partitura.utils.music import remove_double_notes_from_score_note_array

    notes = remove_double_notes_from_score_note_array(notes, choose_longer_note=True)
    return notes[np.lexsort((notes["pitch"], notes["onset_beat"]))]


def score_info(part, is_midi: bool, path: str = "") -> ScoreInfo:
    """Notes and bar grid of a partitura Part (see the module docstring for the beat unit)."""
    notes = part.note_array(include_grace_notes=True)
    if len(notes) == 0:
        raise ScoreError(f"{path}: score has no notes")
    onset_q, duration_q, bar_q, bar_len_q, beat_type = (_midi_grid if is_midi else _xml_grid)(
        part, notes)
    per_quarter = beat_type / 4
    notes = notes.copy()
    if is_midi:
        # MIDI has no grace notes: partitura files a zero-length note as one only because it
        # has no duration; as a regular note it becomes a (removable) double of its twin
        notes["is_grace"] = 0
    notes["onset_quarter"], notes["duration_quarter"] = onset_q, duration_q
    notes["onset_beat"], notes["duration_beat"] = onset_q * per_quarter, duration_q * per_quarter
    notes = _without_doubled_notes(notes)
    order = np.argsort(bar_q, kind="stable")
    starts = bar_q[order] * per_quarter
    beats = np.maximum(1, np.ceil(bar_len_q[order] * per_quarter - EPS)).astype(np.int64)
    return ScoreInfo(notes=notes, bar_starts=starts, bar_beats=beats,
                     beats_per_quarter=per_quarter, path=path)


def load_score(path: str | Path) -> ScoreInfo:
    """Load a score MIDI or MusicXML file; ScoreError names the file when it cannot be used."""
    path = Path(path)
    part, is_midi = _load_part(path)
    return score_info(part, is_midi, str(path))
