"""Symbolic features against hand-computed values, and batch extraction's failure handling."""
import json
import logging
import math
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from midi_factory import perf, simple_notes, write_corrupt, write_empty, write_midi, write_no_notes
from pianoeval.data.midi import SOFT_CC, SUSTAIN_CC
from pianoeval.features import symbolic
from pianoeval.features.symbolic import (FEATURES, PERFORMANCE_FEATURES, SCORE_FEATURES,
                                         extract_features, onset_groups, performance_features,
                                         score_relative_features)

REPO = Path(__file__).resolve().parents[1]
approx = pytest.approx


def no_inf(features: dict) -> bool:
    return not any(math.isinf(v) for v in features.values())


# --- performance_features -----------------------------------------------------------------

def test_timing_velocity_and_pitch_of_four_notes():
    # onsets 0, 0.5, 1.5, 2.0 -> IOIs 0.5, 1.0, 0.5; every note 0.25 s long
    p = perf([(0.0, 0.25, 60, 40), (0.5, 0.25, 62, 60), (1.5, 0.25, 67, 80), (2.0, 0.25, 72, 100)])
    f = performance_features(p)
    assert set(f) == set(PERFORMANCE_FEATURES)
    assert f["n_notes"] == 4 and f["duration_sec"] == approx(2.25)
    assert f["onset_span_sec"] == approx(2.0)
    assert f["ioi_median_sec"] == approx(0.5)
    assert f["ioi_cv"] == approx(1 / (2 * math.sqrt(2)))  # std sqrt(1/18) / mean 2/3
    assert f["log_ioi_std"] == approx(math.log(2) * math.sqrt(2) / 3)
    assert f["onsets_per_sec"] == approx(4 / 2.25) and f["notes_per_sec"] == approx(4 / 2.25)
    assert f["velocity_mean"] == 70 and f["velocity_std"] == approx(math.sqrt(500))
    assert f["velocity_p10"] == approx(46) and f["velocity_p90"] == approx(94)
    assert f["velocity_range"] == 60 and f["velocity_step_mean_abs"] == approx(20)
    assert f["duration_median_sec"] == approx(0.25) and f["duration_cv"] == 0
    assert f["legato_overlap_ratio"] == 0  # every note ends before the next onset
    assert f["articulation_ratio"] == approx(0.5)  # 0.25/0.5, 0.25/1.0, 0.25/0.5
    assert f["polyphony_mean"] == approx(1 / 2.25) and f["polyphony_max"] == 1
    assert (f["pitch_low"], f["pitch_high"], f["pitch_range"]) == (60, 72, 12)
    assert f["pitch_mean"] == approx(65.25)
    assert f["sustain_down_ratio"] == 0 and f["soft_down_ratio"] == 0  # no controls: pedal up


def test_onset_groups_anchor_on_the_first_onset_of_a_chord():
    # chaining 20 ms gaps would make one group; anchoring splits at 0.04 (> 0.03 after 0.0)
    assert onset_groups(np.array([0.0, 0.02, 0.04, 0.06, 1.0]), 0.03).tolist() == [0, 0, 1, 1, 2]
    assert onset_groups(np.array([0.0, 0.01, 0.02]), 0.005).tolist() == [0, 1, 2]
    assert onset_groups(np.array([0.0, 0.0, 0.5]), 0.0).tolist() == [0, 0, 1]  # unisons stay
    with pytest.raises(ValueError, match="chord window"):
        onset_groups(np.array([0.0, 1.0]), -0.01)


def test_rolled_chord_is_one_onset_and_window_is_a_parameter():
    p = perf([(0.0, 1.0, 48, 50), (0.01, 1.0, 55, 60), (0.02, 1.0, 64, 70), (1.0, 1.0, 60, 80)])
    f = performance_features(p)  # default 30 ms window: two groups
    assert f["ioi_median_sec"] == approx(1.0)
    assert f["velocity_step_mean_abs"] == approx(20)  # group means 60 -> 80
    assert f["onsets_per_sec"] == approx(2 / 2.0)
    tight = performance_features(p, chord_window_sec=0.005)
    assert tight["ioi_median_sec"] == approx(0.01)  # IOIs 0.01, 0.01, 0.98


def test_legato_and_articulation_against_the_next_onset_group():
    # chord at 0 (0.4 s and 0.6 s long), next note at 0.5, last note at 1.0
    p = perf([(0.0, 0.4, 60, 64), (0.0, 0.6, 64, 64), (0.5, 0.4, 62, 64), (1.0, 0.5, 60, 64)])
    f = performance_features(p)
    # has a next group: 0.4 (no overlap), 0.6 (overlap), 0.4 ending at 0.9 < 1.0 (no overlap)
    assert f["legato_overlap_ratio"] == approx(1 / 3)
    assert f["articulation_ratio"] == approx(0.8)  # median of 0.8, 1.2, 0.8


def test_polyphony_counts_keys_down_and_touching_notes_do_not_overlap():
    p = perf([(0.0, 1.0, 60, 64), (0.5, 1.0, 64, 64), (1.0, 1.0, 67, 64)])
    f = performance_features(p)
    assert f["polyphony_max"] == 2  # the first note ends exactly when the third starts
    assert f["polyphony_mean"] == approx(3.0 / 2.0)


def test_sustain_and_soft_pedal_time_fractions():
    notes = [(0.0, 4.0, 60, 64)]  # the segment spans 0..4 s
    controls = [(1.0, SUSTAIN_CC, 127), (3.0, SUSTAIN_CC, 0), (0.0, SOFT_CC, 127),
                (1.0, SOFT_CC, 0), (6.0, SUSTAIN_CC, 127)]  # the last one is after the segment
    f = performance_features(perf(notes, controls))
    assert f["sustain_down_ratio"] == approx(0.5)
    assert f["sustain_changes_per_sec"] == approx(2 / 4)
    assert f["sustain_mean_value"] == approx(127 * 2 / 4)
    assert f["pedal_half_ratio"] == 0
    assert f["soft_down_ratio"] == approx(0.25)


def test_continuous_pedal_counts_threshold_crossings_and_half_pedal():
    ramp = [(1.0 + 0.1 * i, SUSTAIN_CC, v) for i, v in enumerate([10, 30, 50, 70, 90, 127])]
    controls = ramp + [(3.0, SUSTAIN_CC, 40)]  # half pedal 1.0..1.3 and 3.0..4.0
    f = performance_features(perf([(0.0, 4.0, 60, 64)], controls))
    assert f["sustain_changes_per_sec"] == approx(2 / 4)  # one press, one release: not 7 events
    assert f["pedal_half_ratio"] == approx((0.3 + 1.0) / 4)
    assert f["sustain_down_ratio"] == approx((3.0 - 1.3) / 4)


def test_pedal_pressed_before_the_first_note_and_simultaneous_events():
    # down at 0 s, first note at 1 s: the pedal is down for the whole segment
    f = performance_features(perf([(1.0, 2.0, 60, 64)], [(0.0, SUSTAIN_CC, 127)]))
    assert f["sustain_down_ratio"] == 1 and f["sustain_changes_per_sec"] == 0
    # up and down at the same instant: the last event wins, no change counted
    g = performance_features(perf([(0.0, 2.0, 60, 64)],
                                  [(1.0, SUSTAIN_CC, 127), (1.0, SUSTAIN_CC, 0)]))
    assert g["sustain_down_ratio"] == 0 and g["sustain_changes_per_sec"] == 0


def test_no_notes_gives_nan_except_count():
    f = performance_features(perf([], [(0.0, SUSTAIN_CC, 127)]))
    assert f["n_notes"] == 0
    assert all(math.isnan(v) for k, v in f.items() if k != "n_notes")


def test_one_note_defines_what_it_can():
    f = performance_features(perf([(0.5, 1.0, 60, 80)]))
    assert no_inf(f)
    assert f["velocity_std"] == 0 and f["duration_sec"] == 1.0 and f["notes_per_sec"] == 1.0
    for name in ("ioi_median_sec", "ioi_cv", "log_ioi_std", "legato_overlap_ratio",
                 "articulation_ratio", "velocity_step_mean_abs"):
        assert math.isnan(f[name]), name


def test_all_notes_in_one_chord():
    f = performance_features(perf([(0.0, 1.0, p, 60) for p in (48, 52, 55)]))
    assert no_inf(f) and math.isnan(f["ioi_median_sec"])
    assert f["polyphony_max"] == 3 and f["onsets_per_sec"] == 1.0


def test_zero_length_notes_do_not_divide_by_zero():
    f = performance_features(perf([(1.0, 0.0, 60, 60), (1.0, 0.0, 64, 60)]))
    assert no_inf(f) and f["duration_sec"] == 0 and f["polyphony_max"] == 0
    assert math.isnan(f["notes_per_sec"]) and math.isnan(f["duration_cv"])
    assert math.isnan(f["sustain_down_ratio"])


# --- score_relative_features ---------------------------------------------------------------

def test_score_relative_features_hand_computed():
    score = perf([(float(i), 1.0, 60 + i, 64) for i in range(4)])  # 4 s, constant velocity
    played = perf([(0.5 * i, 0.5, 60 + 2 * i, v) for i, v in enumerate([40, 60, 80, 100])],
                  [(0.0, SUSTAIN_CC, 127), (1.0, SUSTAIN_CC, 0)])  # 2 s, pedal half the time
    f = score_relative_features(played, score)
    assert set(f) == set(SCORE_FEATURES)
    assert f["score_duration_ratio"] == approx(0.5)
    assert f["score_tempo_ratio"] == approx(2.0)  # onset span 3 s in the score, 1.5 s played
    assert f["score_note_count_ratio"] == 1
    assert f["score_velocity_mean_diff"] == approx(6)
    assert math.isnan(f["score_velocity_std_ratio"])  # the score's velocity std is 0
    assert f["score_ioi_cv_diff"] == approx(0)
    assert f["score_pitch_range_diff"] == 3
    assert f["score_sustain_ratio_diff"] == approx(0.5)


@pytest.mark.parametrize("score", [None, perf([])], ids=["none", "no-notes"])
def test_score_relative_features_nan_without_a_score(score):
    f = score_relative_features(perf(simple_notes()), score)
    assert set(f) == set(SCORE_FEATURES) and all(math.isnan(v) for v in f.values())


# --- extract_features ------------------------------------------------------------------------

@pytest.fixture
def batch(tmp_path):
    """Three good performances sharing one score, plus a corrupt, an empty, a no-notes file."""
    score = write_midi(tmp_path / "score.mid", simple_notes(4, ioi=1.0))
    items = [(f"good_{i}", write_midi(tmp_path / f"good_{i}.mid",
                                      simple_notes(4 + i, vel=50 + 10 * i)), score)
             for i in range(3)]
    items += [("bad_corrupt", write_corrupt(tmp_path / "bad_corrupt.mid"), score),
              ("bad_empty", write_empty(tmp_path / "bad_empty.mid"), None),
              ("bad_silent", write_no_notes(tmp_path / "bad_silent.mid"), score)]
    return items


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_extract_features_skips_and_reports_bad_files(batch, n_jobs):
    random.Random(n_jobs).shuffle(batch)
    frame, failed = extract_features(batch, n_jobs=n_jobs, chunksize=2, progress=False)
    assert frame.columns.tolist() == ["segment", *sorted(FEATURES)]
    assert frame["segment"].tolist() == ["good_0", "good_1", "good_2"]
    assert frame["n_notes"].tolist() == [4, 5, 6]
    assert frame["velocity_mean"].tolist() == [50, 60, 70]
    # score onset span 3 s; performances 1.5, 2.0, 2.5 s
    assert frame["score_tempo_ratio"].tolist() == approx([2.0, 1.5, 1.2])
    assert [f["segment"] for f in failed] == ["bad_corrupt", "bad_empty", "bad_silent"]
    assert all(Path(f["file"]).stem in f["error"] for f in failed)
    assert "no notes" in failed[2]["error"]


def test_extract_features_same_result_in_parallel(batch):
    serial, _ = extract_features(batch, n_jobs=1, progress=False)
    parallel, _ = extract_features(batch[::-1], n_jobs=2, chunksize=1, progress=False)
    pd.testing.assert_frame_equal(serial, parallel)


def test_bad_score_gives_nan_score_features_and_a_warning(tmp_path, caplog):
    bad_score = write_corrupt(tmp_path / "bad_score.mid")
    items = [(f"p{i}", write_midi(tmp_path / f"p{i}.mid", simple_notes()), bad_score)
             for i in range(2)]
    with caplog.at_level(logging.WARNING, logger="pianoeval.features.symbolic"):
        frame, failed = extract_features(items, n_jobs=1, progress=False)
    assert failed == [] and len(frame) == 2
    assert frame[list(SCORE_FEATURES)].isna().all().all()
    assert frame["velocity_mean"].notna().all()
    warnings = [r.getMessage() for r in caplog.records if "bad_score.mid" in r.getMessage()]
    assert len(warnings) == 1  # logged once, not once per performance


def test_each_score_is_parsed_once(batch, monkeypatch):
    reads = []
    real = symbolic.read_midi
    monkeypatch.setattr(symbolic, "read_midi", lambda path: reads.append(Path(path).name)
                        or real(path))
    extract_features(batch, n_jobs=1, chunksize=1, progress=False)
    assert reads.count("score.mid") == 1
    assert len(reads) == 7  # six performances and one score


def test_duplicate_segments_are_rejected(tmp_path):
    path = write_midi(tmp_path / "a.mid", simple_notes())
    with pytest.raises(ValueError, match="duplicate"):
        extract_features([("a", path, None), ("a", path, None)], progress=False)


# --- the DVC stage script --------------------------------------------------------------------

def test_stage_uses_only_ok_files_and_writes_metrics(tmp_path):
    raw = tmp_path / "data/raw/percepiano"
    (raw / "midi").mkdir(parents=True)
    (raw / "score_midi").mkdir()
    (raw / "score_xml").mkdir()
    rows = []

    def add(rel, role, status="ok", make=lambda p: write_midi(p, simple_notes())):
        make(raw / rel)
        rows.append({"file": rel, "source_file": rel, "sha256": "x", "n_notes": 4,
                     "duration_sec": 1.75, "status": status, "role": role})

    add("midi/Piece_8bars_1_0.mid", "performance")
    add("midi/Piece_8bars_2_0.mid", "performance", make=write_corrupt)
    add("midi/Piece_8bars_3_0.mid", "performance", status="no_notes")
    add("midi/Piece_8bars_1_1.mid", "performance")
    add("score_midi/Piece_8bars_Score_0.mid", "score")
    add("score_midi/Piece_8bars_Score_1.mid", "score", status="no_notes")
    add("score_xml/piece_score2.mid", "performance")  # not a segment name
    pd.DataFrame(rows).to_csv(raw / "manifest.csv", index=False)
    (tmp_path / "params.yaml").write_text("features:\n  n_jobs: 1\n  chord_window_sec: 0.03\n")

    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    run = subprocess.run([sys.executable, str(REPO / "stages/features.py")], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    frame = pd.read_csv(tmp_path / "data/features/features.csv")
    assert frame["segment"].tolist() == ["Piece_8bars_1_0", "Piece_8bars_1_1"]
    # segment 0 has an ok score; segment 1's score was rejected at ingest
    assert frame["score_tempo_ratio"].notna().tolist() == [True, False]
    metrics = json.loads((tmp_path / "metrics/features.json").read_text())
    assert metrics["n_segments"] == 2 and metrics["n_features"] == len(FEATURES)
    assert metrics["n_failed"] == 1 and metrics["failed"][0]["segment"] == "Piece_8bars_2_0"
    assert "notes_per_sec" not in metrics  # timings belong to `make bench`, not to metrics
