"""Alignment and deviation features on hand-built score/performance pairs with known answers."""
import json
import math

import numpy as np
import pandas as pd
import pytest

from midi_factory import perf, write_empty, write_midi
from pianoeval.align import match as match_module
from pianoeval.align.aggregate import (SEGMENT_FEATURES, alignment_summary,
                                       merge_alignment_features, segment_features)
from pianoeval.align.batch import (AlignConfig, Item, align_items, limit_items,
                                   maestro_items, percepiano_items)
from pianoeval.align.deviations import (NOTE_COLUMNS, DeviationConfig, cc_value_at,
                                        local_tempo_lines, note_deviations)
from pianoeval.align.match import align, performance_note_array
from pianoeval.align.score import ScoreError, load_score

approx = pytest.approx

# 16 beats of 4/4 at 60 bpm (1 beat = 1 s): a melody on every beat, a bass note every bar.
MELODY = [60, 62, 64, 65, 67, 65, 64, 62, 60, 64, 67, 72, 71, 69, 67, 65]
BASS = [48, 43, 45, 41]
SCORE_NOTES = ([(b, 1.0, p, 64) for b, p in enumerate(MELODY)]
               + [(4 * i, 4.0, p, 64) for i, p in enumerate(BASS)])


@pytest.fixture(scope="module")
def score(tmp_path_factory):
    path = write_midi(tmp_path_factory.mktemp("score") / "score.mid", SCORE_NOTES,
                      time_signatures=[(0, 4, 4)])
    return load_score(path)


def played(tempo_sec_per_beat=lambda b: 0.5 * b, legato=0.8, drop=(), extra=(), late=None):
    """A performance of SCORE_NOTES: onset = tempo map of the beat, duration = ``legato`` x the
    notated length at the local tempo; ``drop`` pitches/beats left out, ``extra`` notes added."""
    notes = []
    for beat, dur, pitch, vel in SCORE_NOTES:
        if (beat, pitch) in drop:
            continue
        t0, t1 = tempo_sec_per_beat(beat), tempo_sec_per_beat(beat + dur)
        shift = late[1] if late and late[0] == (beat, pitch) else 0.0
        notes.append((t0 + shift, legato * (t1 - t0), pitch, vel))
    return perf(notes + list(extra))


def run(score, performance, **config):
    result = align(score.notes, performance_note_array(performance.notes))
    rows = note_deviations(performance.notes, performance.controls, score, result.score_index,
                           DeviationConfig(**config))
    return result, rows


# --- score ----------------------------------------------------------------------------------

def test_score_midi_beats_bars_and_doubled_notes(tmp_path):
    # a 1/8 pickup bar, then 2/2 (MuseScore's way of writing an anacrusis); a doubled note
    notes = [(0.0, 0.5, 72, 64), (0.5, 2.0, 60, 64), (0.5, 0.0, 60, 64), (2.5, 2.0, 64, 64),
             (4.5, 2.0, 67, 64)]
    path = write_midi(tmp_path / "s.mid", notes, time_signatures=[(0, 1, 8), (0.5, 2, 2)])
    s = load_score(path)
    assert s.beats_per_quarter == 0.5  # 2/2 governs most of the score: a beat is a half note
    assert s.notes["onset_beat"].tolist() == [0.0, 0.25, 1.25, 2.25]  # the double is gone
    assert s.notes["duration_beat"].tolist() == [0.25, 1.0, 1.0, 1.0]
    assert s.bar_starts.tolist() == [0.0, 0.25, 2.25]  # pickup, then bars of two half notes
    assert s.bar_beats.tolist() == [1, 2, 2]
    assert s.bar_idx(s.notes["onset_beat"]).tolist() == [0, 1, 1, 2]
    # the pickup counts as one beat, then two per bar
    assert s.beat_idx(s.notes["onset_beat"]).tolist() == [0, 1, 2, 3]
    assert s.beat_idx(np.array([0.3, 0.9])).tolist() == [1, 1]


def test_musicxml_score_gives_the_same_notes_and_bars(tmp_path, score):
    import partitura as pt

    path = write_midi(tmp_path / "s.mid", SCORE_NOTES, time_signatures=[(0, 4, 4)])
    pt.save_musicxml(pt.load_score_midi(str(path)), tmp_path / "s.musicxml")
    xml = load_score(tmp_path / "s.musicxml")
    assert np.array_equal(xml.notes["onset_beat"], score.notes["onset_beat"])
    assert np.array_equal(xml.notes["pitch"], score.notes["pitch"])
    assert xml.bar_starts.tolist() == [0.0, 4.0, 8.0, 12.0]


def test_unusable_scores_raise_score_error(tmp_path):
    with pytest.raises(ScoreError, match="no such file"):
        load_score(tmp_path / "missing.mid")
    with pytest.raises(ScoreError, match="empty"):
        load_score(write_empty(tmp_path / "empty.mid"))
    with pytest.raises(ScoreError, match="silent.mid"):  # partitura cannot build a part
        load_score(write_midi(tmp_path / "silent.mid", []))


# --- matching -------------------------------------------------------------------------------

def test_double_tempo_matches_everything_with_constant_tempo_and_no_deviation(score):
    result, rows = run(score, played())
    assert (result.status, result.matcher) == ("ok", "dualdtw")
    assert (result.n_matched, result.n_inserted, result.n_deleted) == (20, 0, 0)
    assert result.match_rate == 1.0
    assert rows.columns.tolist() == list(NOTE_COLUMNS)
    assert rows["matched"].tolist() == [1] * 20
    assert rows["local_tempo_ratio"].to_numpy() == approx(1.0)
    assert np.abs(rows["onset_dev_ms"]).max() < 1e-6
    assert np.abs(rows["onset_dev_beats"]).max() < 1e-9
    assert rows["articulation_ratio"].to_numpy() == approx(0.8)  # 80% of the notated length
    # each note ends 20% of its notated length (at 0.5 s/beat) before its notated end
    last_end = rows["score_onset_beat"] + rows["score_duration_beat"] >= 16
    expected = -0.2 * 0.5 * rows["score_duration_beat"][~last_end]
    assert rows["legato_overlap_sec"][~last_end].to_numpy() == approx(expected.to_numpy())
    assert rows["legato_overlap_sec"][last_end].isna().all()  # nothing is played after the end
    assert rows["beat_idx"].tolist() == rows["score_onset_beat"].astype(int).tolist()
    assert rows["bar_idx"].tolist() == (rows["beat_idx"] // 4).tolist()


def test_one_extra_note_is_inserted_and_placed_by_its_neighbours(score):
    result, rows = run(score, played(extra=[(2.75, 0.2, 90, 100)]))  # beat 5.5, an odd pitch
    assert (result.n_matched, result.n_inserted, result.n_deleted) == (20, 1, 0)
    extra = rows[rows["pitch"] == 90].iloc[0]
    assert extra["matched"] == 0
    assert all(math.isnan(extra[c]) for c in ("score_onset_beat", "local_tempo_ratio",
                                              "onset_dev_ms", "articulation_ratio"))
    assert (extra["beat_idx"], extra["bar_idx"]) == (5, 1)
    assert not math.isnan(extra["velocity_rel_local"])  # velocity needs no score note


def test_one_dropped_note_is_deleted(score):
    result, rows = run(score, played(drop={(9, 64)}))
    assert (result.n_matched, result.n_inserted, result.n_deleted) == (19, 0, 1)
    assert result.match_rate == approx(19 / 20)
    assert len(rows) == 19 and rows["onset_dev_ms"].abs().max() < 1e-6


def test_tempo_doubling_midway_shows_in_local_tempo_not_in_onset_deviation(score):
    # 0.5 s per beat up to beat 8, then 0.25 s per beat
    tempo = lambda b: 0.5 * b if b <= 8 else 4.0 + 0.25 * (b - 8)
    result, rows = run(score, played(tempo_sec_per_beat=tempo))
    assert result.match_rate == 1.0
    beat = rows["score_onset_beat"]
    slow = rows["local_tempo_ratio"][beat <= 5].to_numpy()
    fast = rows["local_tempo_ratio"][beat >= 11].to_numpy()
    assert fast / slow.mean() == approx(2.0)  # away from the change, windows see one tempo
    assert rows["onset_dev_ms"][(beat <= 5) | (beat >= 11)].abs().max() < 1e-6
    assert rows["onset_dev_ms"][(beat > 5) & (beat < 11)].abs().max() > 1  # the bend itself


def test_a_late_note_deviates_by_its_residual_from_the_local_tempo_line(score):
    # beat 6 (pitch 64) 40 ms late: the 4-beat window holds 5 equally spaced onsets around it,
    # so the fitted line moves by 40/5 ms there and the residual is 32 ms
    result, rows = run(score, played(late=((6, 64), 0.040)))
    late = rows[rows["score_onset_beat"] == 6].iloc[0]
    assert late["onset_dev_ms"] == approx(32.0, abs=1e-6)
    assert late["onset_dev_beats"] == approx(0.032 / 0.5, abs=1e-6)
    assert rows[rows["score_onset_beat"] == 0]["onset_dev_ms"].abs().max() < 1e-6


def test_local_tempo_lines_need_two_onsets_in_the_window():
    intercept, slope = local_tempo_lines(np.array([0.0, 1.0, 10.0]), np.array([0.0, 0.5, 5.0]), 2)
    assert slope[:2] == approx([0.5, 0.5]) and intercept[:2] == approx([0.0, 0.0])
    assert math.isnan(slope[2]) and math.isnan(intercept[2])  # alone in its window


def test_failing_matcher_falls_back_to_the_next(score, monkeypatch):
    real = match_module.make_matcher

    def broken_dualdtw(name):
        if name == "dualdtw":
            def boom(*_):
                raise RuntimeError("boom")
            return boom
        return real(name)

    monkeypatch.setattr(match_module, "make_matcher", broken_dualdtw)
    p = played()
    result = align(score.notes, performance_note_array(p.notes))
    assert (result.status, result.matcher, result.n_matched) == ("ok", "automatic", 20)
    assert result.errors == ["dualdtw: RuntimeError: boom"]

    monkeypatch.setattr(match_module, "make_matcher", lambda name: broken_dualdtw("dualdtw"))
    result = align(score.notes, performance_note_array(p.notes))  # every matcher raises
    assert (result.status, result.n_matched, result.n_inserted) == ("failed", 0, 20)
    assert len(result.errors) == 2


def test_unalignable_performance_fails_and_uses_its_own_beat_grid(score):
    # another piece entirely: no pitch in common with the score
    other = perf([(0.5 * i, 0.4, 90 + i % 5, 70) for i in range(12)])
    result, rows = run(score, other)
    assert result.status == "failed" and result.n_matched == 0 and result.match_rate == 0
    assert rows["matched"].sum() == 0 and rows["local_tempo_ratio"].isna().all()
    assert rows["beat_idx"].tolist() == list(range(12))  # a beat = the median IOI (0.5 s)
    assert rows["bar_idx"].tolist() == [i // 4 for i in range(12)]


# --- per-note performance values --------------------------------------------------------------

def test_velocity_relative_to_local_and_phrase_means():
    notes = perf([(0.0, 0.5, 60, 40), (0.5, 0.5, 62, 60), (1.0, 0.5, 64, 80), (1.5, 0.5, 65, 100)])
    rows = note_deviations(notes.notes, notes.controls,
                           config=DeviationConfig(velocity_local_beats=1, phrase_bars=1))
    assert rows["beat_idx"].tolist() == [0, 1, 2, 3] and rows["bar_idx"].tolist() == [0] * 4
    # local: neighbours within one beat; phrase: the one bar, mean 70
    assert rows["velocity_rel_local"].tolist() == approx([-10, 0, 0, 10])
    assert rows["velocity_rel_phrase"].tolist() == approx([-30, -10, 10, 30])


def test_pedal_values_at_note_onsets():
    controls = np.array([(0.5, 64, 127), (1.0, 64, 0), (1.0, 67, 100), (1.0, 64, 90)],
                        dtype=[("time_sec", "f8"), ("number", "i4"), ("value", "i4")])
    times = np.array([0.0, 0.5, 0.7, 1.0, 2.0])
    assert cc_value_at(controls, 64, times).tolist() == [0, 127, 127, 90, 90]  # last at 1.0 wins
    assert cc_value_at(controls, 67, times).tolist() == [0, 0, 0, 100, 100]


# --- segments, batch, outputs -----------------------------------------------------------------

def test_segment_features_rates_and_nan_without_a_score(score):
    result, rows = run(score, played(drop={(9, 64)}, extra=[(2.75, 0.2, 90, 100)]))
    f = segment_features(rows, result.n_inserted, result.n_deleted, len(score.notes), "ok")
    assert set(f) == set(SEGMENT_FEATURES)
    assert f["align_match_rate"] == approx(19 / 20)
    assert f["align_insertion_rate"] == approx(1 / 20)
    assert f["align_deletion_rate"] == approx(1 / 20)
    assert f["align_log_tempo_std"] == approx(0.0, abs=1e-9)
    assert f["align_articulation_ratio_median"] == approx(0.8)
    assert f["align_chord_spread_ms_mean"] == approx(0.0, abs=1e-6)  # chords struck together
    none = segment_features(rows, 0, 0, 0, "no_score")
    assert math.isnan(none["align_match_rate"]) and none["align_sustain_cc_mean"] == 0


def batch_files(tmp_path):
    good = write_midi(tmp_path / "good.mid", [(0.5 * b, 0.4 * d, p, v)
                                              for b, d, p, v in SCORE_NOTES])
    score_path = write_midi(tmp_path / "score.mid", SCORE_NOTES, time_signatures=[(0, 4, 4)])
    return good, score_path


def test_batch_reports_every_item_and_never_stops(tmp_path):
    good, score_path = batch_files(tmp_path)
    items = [Item("b_ok", str(good), str(score_path), "score.mid"),
             Item("a_no_score", str(good)),
             Item("c_empty_score", str(good), str(write_empty(tmp_path / "e.mid")), "e.mid"),
             Item("d_unreadable", str(tmp_path / "nothing.mid"), str(score_path), "score.mid"),
             Item("e_skipped", str(good), str(score_path), "score.mid", skip="limit")]
    out = align_items(items, AlignConfig(), n_jobs=1, progress=False)
    status = dict(zip(out.alignments["segment"], out.alignments["status"]))
    assert status == {"a_no_score": "no_score", "b_ok": "ok", "c_empty_score": "no_score",
                      "d_unreadable": "unreadable", "e_skipped": "skipped"}
    ok = out.alignments.set_index("segment").loc["b_ok"]
    assert (ok["n_matched"], ok["n_inserted"], ok["n_deleted"], ok["match_rate"]) == (20, 0, 0, 1)
    # notes for every readable, unskipped performance, sorted; no score -> the performance grid
    assert out.notes["segment"].unique().tolist() == ["a_no_score", "b_ok", "c_empty_score"]
    assert out.notes.columns.tolist() == ["segment", *NOTE_COLUMNS]
    assert out.notes.equals(out.notes.sort_values(["segment", "onset_sec", "pitch"],
                                                  ignore_index=True))
    no_score = out.notes[out.notes["segment"] == "a_no_score"]
    assert no_score["matched"].sum() == 0 and no_score["beat_idx"].max() > 0
    assert out.segment_features["segment"].tolist() == ["a_no_score", "b_ok", "c_empty_score"]
    assert any("e.mid" in m and "empty" in m for m in out.messages)
    assert any("nothing.mid" in m for m in out.messages)


def test_a_rerun_resumes_from_the_kept_results_and_a_changed_file_is_realigned(tmp_path,
                                                                             monkeypatch):
    import pianoeval.align.batch as batch

    good, score_path = batch_files(tmp_path)
    items = [Item("b_ok", str(good), str(score_path), "score.mid"), Item("a_no_score", str(good))]
    cache = tmp_path / "cache"
    first = align_items(items, AlignConfig(), n_jobs=1, progress=False, cache_dir=cache)
    assert len(list(cache.glob("*.pkl"))) == 2

    def killed(*args):  # a resumed run must not align again what it already has
        raise AssertionError("aligned again")

    monkeypatch.setattr(batch, "_align_one", killed)
    again = align_items(items, AlignConfig(), n_jobs=1, progress=False, cache_dir=cache)
    pd.testing.assert_frame_equal(again.notes, first.notes)
    pd.testing.assert_frame_equal(again.alignments, first.alignments)
    # another configuration, or other bytes in a file, is a new key: aligned afresh
    with pytest.raises(AssertionError, match="aligned again"):
        align_items(items, AlignConfig(min_match_rate=0.5), n_jobs=1, progress=False,
                    cache_dir=cache)
    write_midi(good, [(0.5 * b, 0.4 * d, p, v) for b, d, p, v in SCORE_NOTES[:-1]])
    with pytest.raises(AssertionError, match="aligned again"):
        align_items(items, AlignConfig(), n_jobs=1, progress=False, cache_dir=cache)


def test_percepiano_items_fall_back_to_musicxml_and_maestro_items_pair_by_folder(tmp_path):
    raw = tmp_path / "raw"
    for folder in ("midi", "score_midi", "score_xml", "Bach/Fugue/bwv_1"):
        (raw / folder).mkdir(parents=True)
    rows = []
    for file, role, status in [("midi/P_8bars_1_0.mid", "performance", "ok"),
                               ("midi/P_8bars_2_1.mid", "performance", "ok"),
                               ("midi/P_8bars_3_2.mid", "performance", "ok"),
                               ("score_midi/P_8bars_Score_0.mid", "score", "ok"),
                               ("score_midi/P_8bars_Score_1.mid", "score", "no_notes")]:
        (raw / file).touch()
        rows.append({"file": file, "status": status, "role": role, "n_notes": 1})
    (raw / "score_xml/P_8bars_Score_1.musicxml").touch()
    items = percepiano_items(pd.DataFrame(rows), raw)
    by_name = {it.name: it.score_file for it in items}
    assert by_name == {"P_8bars_1_0": "score_midi/P_8bars_Score_0.mid",
                       "P_8bars_2_1": "score_xml/P_8bars_Score_1.musicxml",  # MIDI rejected
                       "P_8bars_3_2": ""}  # no score at all

    maestro = pd.DataFrame([
        {"file": "Bach/Fugue/bwv_1/A01.mid", "status": "ok", "role": "performance", "n_notes": 9},
        {"file": "Bach/Fugue/bwv_1/midi_score.mid", "status": "ok", "role": "score",
         "n_notes": 3000},
        {"file": "Bach/Fugue/bwv_2/B01.mid", "status": "ok", "role": "performance", "n_notes": 9}])
    items = maestro_items(maestro, raw)
    assert [(it.name, it.score_file) for it in items] == [
        ("Bach/Fugue/bwv_1/A01", "Bach/Fugue/bwv_1/midi_score.mid"), ("Bach/Fugue/bwv_2/B01", "")]
    limited = limit_items(items, {"Bach/Fugue/bwv_1/midi_score.mid": 3000}, max_score_notes=2000)
    assert [it.skip is not None for it in limited] == [True, False]  # no score: nothing to skip


def test_limit_items_keeps_evenly_spaced_items():
    items = [Item(f"x{i}", "p.mid", "s.mid", "s.mid") for i in range(10)]
    kept = [it.name for it in limit_items(items, {}, max_items=3) if it.skip is None]
    assert kept == ["x0", "x4", "x9"]  # linspace(0, 9, 3) rounded: 0, 4.5 -> 4, 9


def test_merge_and_summary(tmp_path):
    features = pd.DataFrame({"segment": ["a", "b", "c"], "x": [1.0, 2.0, 3.0]})
    pd.DataFrame({"segment": ["a", "b"], "align_match_rate": [0.9, 1.0],
                  "not_align": [1, 2]}).to_csv(tmp_path / "seg.csv", index=False)
    merged = merge_alignment_features(features, tmp_path / "seg.csv")
    assert merged.columns.tolist() == ["segment", "x", "align_match_rate"]
    assert merged["align_match_rate"].tolist()[:2] == [0.9, 1.0]
    assert math.isnan(merged["align_match_rate"].iloc[2])
    assert merge_alignment_features(features, tmp_path / "missing.csv").equals(features)

    alignments = pd.DataFrame({
        "segment": ["a", "b", "c", "d"], "score_file": "s", "matcher": ["dualdtw", "automatic",
                                                                      "", ""],
        "status": ["ok", "low_match", "no_score", "skipped"], "n_matched": [9, 5, None, None],
        "n_inserted": [1, 0, None, None], "n_deleted": [1, 5, None, None],
        "match_rate": [0.9, 0.5, None, None], "seconds": [0.1, 0.2, None, None]})
    summary = alignment_summary(alignments)
    assert summary["n"] == 4
    assert summary["n_status"] == {"low_match": 1, "no_score": 1, "ok": 1, "skipped": 1}
    assert summary["n_matcher"] == {"automatic": 1, "dualdtw": 1}
    assert (summary["match_rate_median"], summary["match_rate_min"]) == (0.7, 0.5)
    assert summary["not_aligned"] == [{"segment": "c", "status": "no_score"}]
    assert [w["segment"] for w in summary["worst"]] == ["b", "a"]
    assert "seconds" not in json.dumps(summary)  # metrics stay deterministic


@pytest.mark.parametrize("matchers", ["[]", "[dualdtw, nosuchmatcher]"])
def test_align_stage_refuses_unknown_or_no_matchers_before_any_work(tmp_path, matchers):
    import os
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    repo = Path(__file__).resolve().parents[1]
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["align"]["matchers"] = yaml.safe_load(matchers)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"align": params["align"]}))
    run = subprocess.run([sys.executable, str(repo / "stages/align.py"), "percepiano"],
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(repo / "src")},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "params.yaml: align.matchers" in run.stderr
    assert not (tmp_path / "data").exists()


def test_the_result_cache_key_covers_every_module_the_alignment_runs():
    """A module that can change an alignment but is left out of resume.CODE_FILES would let
    a rerun reuse results the changed code no longer gives (e.g. onset_groups, now compiled in
    features/kernel.py). Modules that only move work or read parameters may be left out."""
    from pathlib import Path

    from pianoeval.align import batch, resume
    from pianoeval.pipeline_deps import module_closure

    covered = {p for pattern in resume.CODE_FILES for p in resume.PACKAGE.glob(pattern)}
    runs = set(module_closure(Path(batch.__file__), resume.PACKAGE))
    no_result = {"__init__.py", "config.py", "fanout.py", "params.py", "progress.py"}
    missing = sorted(p.relative_to(resume.PACKAGE).as_posix() for p in runs - covered
                     if p.name not in no_result)
    assert missing == []
