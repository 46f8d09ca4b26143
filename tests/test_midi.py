"""read_midi on hand-built files: values, tempo map, and every kind of broken file."""
import mido
import numpy as np
import pytest

from midi_factory import (simple_notes, write_corrupt, write_empty, write_midi, write_no_notes,
                          write_truncated)
from pianoeval.data.midi import SOFT_CC, SUSTAIN_CC, MidiError, read_midi


def test_notes_and_controls_round_trip(tmp_path):
    notes = [(0.0, 0.5, 60, 30), (0.0, 1.0, 64, 90), (1.25, 0.125, 67, 127)]
    controls = [(0.5, SUSTAIN_CC, 127), (1.5, SUSTAIN_CC, 0), (0.0, SOFT_CC, 100)]
    p = read_midi(write_midi(tmp_path / "a.mid", notes, controls))
    assert p.notes["pitch"].tolist() == [60, 64, 67]  # sorted by onset, then pitch
    assert p.notes["velocity"].tolist() == [30, 90, 127]
    np.testing.assert_allclose(p.notes["onset_sec"], [0.0, 0.0, 1.25], atol=1e-6)
    np.testing.assert_allclose(p.notes["duration_sec"], [0.5, 1.0, 0.125], atol=1e-6)
    assert p.controls["number"].tolist() == [SOFT_CC, SUSTAIN_CC, SUSTAIN_CC]
    assert p.controls["value"].tolist() == [100, 127, 0]
    np.testing.assert_allclose(p.controls["time_sec"], [0.0, 0.5, 1.5], atol=1e-6)
    assert p.duration_sec == pytest.approx(1.375)


def test_tempo_change_is_applied(tmp_path):
    # 60 bpm for two beats, then 120 bpm: beats 2 and 3 land at 2.0 s and 2.5 s
    path = write_midi(tmp_path / "t.mid", simple_notes(4, ioi=1.0, dur=0.5),
                      tempos=[(0.0, 60.0), (2.0, 120.0)])
    p = read_midi(path)
    np.testing.assert_allclose(p.notes["onset_sec"], [0.0, 1.0, 2.0, 2.5], atol=1e-6)
    np.testing.assert_allclose(p.notes["duration_sec"], [0.5, 0.5, 0.25, 0.25], atol=1e-6)


def test_no_notes_file_reads_as_empty(tmp_path):
    """symusic (0.6) drops every track without notes, so the file's pedal events go too."""
    p = read_midi(write_no_notes(tmp_path / "silent.mid"))
    assert len(p.notes) == 0 and p.duration_sec == 0.0
    assert len(p.controls) == 0


def test_pedal_in_a_track_of_its_own_is_lost(tmp_path):
    """Known gap, same cause: pedal events in a track without notes never reach read_midi.
    All PercePiano files keep pedal and notes in one track (checked against mido), so the
    real data is not affected; other sources may be."""
    path = write_midi(tmp_path / "sep.mid", simple_notes(), [(0.0, SUSTAIN_CC, 127)],
                      separate_controls=True)
    assert sum(msg.type == "control_change" for msg in mido.MidiFile(path).tracks[2]) == 1
    p = read_midi(path)
    assert len(p.notes) == 4 and len(p.controls) == 0


@pytest.mark.parametrize("make", [
    lambda d: write_corrupt(d / "corrupt.mid"),
    lambda d: write_empty(d / "empty.mid"),
    lambda d: write_truncated(d / "truncated.mid",
                              write_midi(d / "whole.mid", simple_notes(20))),
    lambda d: d / "missing.mid",
], ids=["corrupt", "empty", "truncated", "missing"])
def test_unreadable_files_raise_midierror_naming_the_file(tmp_path, make):
    path = make(tmp_path)
    with pytest.raises(MidiError, match=path.name):
        read_midi(path)


def test_truncated_at_a_track_boundary_is_silently_partial(tmp_path):
    """Known gap: symusic (0.6) reads a file whose header promises 2 tracks but that stops
    right after the first one without complaint, so read_midi returns partial data.
    A cut inside a track, as in the test above, does raise."""
    whole = write_midi(tmp_path / "whole.mid", simple_notes(4))
    data = whole.read_bytes()
    second_track = data.index(b"MTrk", 14 + 8)  # skip the header and the first track's tag
    cut = tmp_path / "cut.mid"
    cut.write_bytes(data[:second_track])
    assert len(mido.MidiFile(whole).tracks) == 2
    p = read_midi(cut)  # only the tempo track survives: no notes, no error
    assert len(p.notes) == 0
