"""Practice takes: synthetic takes with known truth, and their alignment pass by pass.

Thresholds come from measurement (benchmarks/takes.md and 20 seeds x these three renderings):
`align_passes` gave F1 >= 0.972 on every take of every kind (mean >= 0.991 per kind) and the
expected number of passes on all of them; `align` (one pass) averaged 0.74-0.88 on repeats
and restarts. The tests ask for F1 >= 0.95 per take, >= 0.98 on average, and at least 0.05
over `align` on average for repeats and restarts.
"""
import os
from pathlib import Path

import numpy as np
import pytest

from pianoeval.align.match import align, performance_note_array
from pianoeval.align.score import load_score
from pianoeval.assess import takes
from pianoeval.assess.takes import TAKE_KINDS, align_passes, make_take, pair_f1

ROOT = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("PIANOEVAL_DATA_MIRROR", ROOT.parent / "shared" / "data"))
RENDERINGS = ("Beethoven_WoO80_thema_8bars_Score_1.mid", "Schubert_D935_no.3_4bars_Score_1.mid",
              "Schubert_D960_mv2_8bars_Score_01.mid")
SEEDS = (0, 1)


def _score_dir() -> Path | None:
    for folder in (MIRROR / "percepiano" / "score_midi",
                   ROOT / "data" / "raw" / "percepiano" / "score_midi"):
        if all((folder / name).is_file() for name in RENDERINGS):
            return folder
    return None


SCORE_DIR = _score_dir()
needs_data = pytest.mark.skipif(SCORE_DIR is None,
                                reason=f"no PercePiano score MIDI under {MIRROR} or data/raw")


@pytest.fixture(scope="module")
def cases():
    """(score, clean performance, truth, seed) per rendering and seed."""
    out = []
    for name in RENDERINGS:
        score = load_score(SCORE_DIR / name)
        for seed in SEEDS:
            perf, truth = takes.render_performance(score.notes, np.random.default_rng(seed))
            out.append((score, perf, truth, seed))
    return out


@pytest.fixture(scope="module")
def results(cases):
    """kind -> list of (score, take, truth, align_passes result, align result, notes in the
    clean performance)."""
    out = {kind: [] for kind in TAKE_KINDS}
    for score, perf, truth, seed in cases:
        for k, kind in enumerate(TAKE_KINDS):
            take, take_truth = make_take(score, perf, truth, kind,
                                         np.random.default_rng(100 * seed + k))
            out[kind].append((score, take, take_truth, align_passes(score, take),
                              align(score.notes, take, ("dualdtw",)), len(perf)))
    return out


# --- synthetic takes --------------------------------------------------------------------------

@needs_data
def test_takes_keep_time_order_ids_and_truth(cases):
    score, perf, truth, _ = cases[0]
    n_score = len(score.notes)
    bars = score.bar_idx(score.notes["onset_beat"])
    for k, kind in enumerate(TAKE_KINDS):
        take, take_truth = make_take(score, perf, truth, kind, np.random.default_rng(k))
        assert take.dtype == perf.dtype and len(take) == len(take_truth)
        assert np.all(np.diff(take["onset_sec"]) >= 0), kind
        assert take["onset_sec"].min() >= 0 and np.all(take["duration_sec"] > 0), kind
        assert take["id"].tolist() == [f"p{i}" for i in range(len(take))]
        assert take_truth.min() >= -1 and take_truth.max() < n_score
        played = np.bincount(take_truth[take_truth >= 0], minlength=n_score)
        clean = np.bincount(truth[truth >= 0], minlength=n_score)
        if kind == "clean":
            assert np.array_equal(take_truth, truth)
        elif kind == "wrong_notes":
            assert len(take) == len(perf)
            n_wrong = (take_truth < 0).sum() - (truth < 0).sum()
            assert abs(n_wrong - 0.05 * len(perf)) <= 2
        elif kind == "skip_bars":  # two whole bars gone, nothing else
            gone = np.unique(bars[(clean > 0) & (played == 0)])
            assert len(gone) == 2 and gone[1] == gone[0] + 1
        elif kind == "repeat_bars":  # two bars twice, nothing else
            twice = np.unique(bars[played == 2])
            assert len(twice) == 2 and twice[1] == twice[0] + 1 and played.max() == 2
        else:  # restart: the opening twice (about a quarter), then the rest once
            twice = played == 2  # (a wrong note of restart_wrong is played once or not at all)
            assert 0.1 < twice.sum() / (clean > 0).sum() < 0.45
            assert kind == "restart_wrong" or twice[np.flatnonzero(clean)[0]]
            onset = score.notes["onset_beat"]
            assert onset[twice].max() < onset[~twice & (clean > 0)].max()
            # the first attempt, then a pause, then the whole performance again
            restart = len(take) - len(perf)
            assert take["onset_sec"][restart] - take["onset_sec"][restart - 1] >= 0.9
            same = take_truth[restart:] == truth
            assert same.all() if kind == "restart" else same.mean() > 0.9


@needs_data
def test_make_take_rejects_unknown_kinds(cases):
    score, perf, truth, _ = cases[0]
    with pytest.raises(ValueError, match="unknown take kind"):
        make_take(score, perf, truth, "encore", np.random.default_rng(0))


def test_pair_f1():
    assert pair_f1(np.array([0, 1, -1]), np.array([0, 1, -1])) == 1.0
    assert pair_f1(np.array([0, 2, -1]), np.array([0, 1, 2])) == pytest.approx(2 * 1 / 5)
    assert pair_f1(np.array([-1]), np.array([-1])) == 1.0


# --- alignment --------------------------------------------------------------------------------

@needs_data
@pytest.mark.parametrize("kind", TAKE_KINDS)
def test_each_kind_of_take_aligns(results, kind):
    f1_new = [pair_f1(new.score_index, truth) for _, _, truth, new, _, _ in results[kind]]
    f1_old = [pair_f1(old.score_index, truth) for _, _, truth, _, old, _ in results[kind]]
    assert min(f1_new) >= 0.95, f1_new
    assert np.mean(f1_new) >= 0.98, f1_new
    if kind in ("repeat_bars", "restart", "restart_wrong"):
        assert np.mean(f1_new) >= np.mean(f1_old) + 0.05, (f1_new, f1_old)
    expected = 2 if kind in ("repeat_bars", "restart", "restart_wrong") else 1
    for score, take, _, new, _, _ in results[kind]:
        assert new.n_passes == expected
        assert new.status == ("low_match" if kind == "skip_bars" and new.coverage < 0.85 else "ok")
        assert set(np.unique(new.pass_id)) == set(range(expected))
        assert np.all(np.diff(new.pass_id) >= 0)  # passes follow each other in time
        for p in range(new.n_passes):  # within a pass a score note is matched at most once
            idx = new.score_index[(new.pass_id == p) & (new.score_index >= 0)]
            assert len(idx) == len(np.unique(idx))


@needs_data
def test_clean_take_is_one_pass_and_exactly_align(results):
    for score, take, _, new, old, _ in results["clean"] + results["wrong_notes"]:
        assert new.n_passes == 1 and np.all(new.pass_id == 0)
        assert np.array_equal(new.score_index, old.score_index)
        assert new.status == old.status
        assert new.match_rate == pytest.approx(old.match_rate)
        assert new.coverage == pytest.approx(old.match_rate)


@needs_data
def test_restart_first_attempt_goes_to_the_opening(results):
    for score, take, truth, new, _, n_clean in results["restart"] + results["restart_wrong"]:
        first, full = new.passes
        assert first["first_bar"] == 0 and full["first_bar"] == 0
        assert full["last_bar"] == len(score.bar_starts) - 1 > first["last_bar"]
        assert first["stop"] == full["start"]
        # the cut falls at the restart, give or take a note
        restart = len(take) - n_clean
        assert abs(first["stop"] - restart) <= 1
        onset = score.notes["onset_beat"]
        in_first = new.score_index[(new.pass_id == 0) & (new.score_index >= 0)]
        stop_beat = onset[truth[:restart][truth[:restart] >= 0]].max()
        assert onset[in_first].max() <= stop_beat
        # the opening is matched twice: once per pass
        opening = onset[in_first].min()
        both = [new.score_index[(new.pass_id == p) & (new.score_index >= 0)] for p in (0, 1)]
        assert all(np.any(onset[idx] == opening) for idx in both)
        assert new.match_rate == pytest.approx(full["n_matched"] / len(score.notes))
        assert new.match_rate >= 0.85


@needs_data
def test_repeat_covers_the_score_in_two_passes(results):
    for score, take, truth, new, _, _ in results["repeat_bars"]:
        first, second = new.passes
        assert first["first_bar"] == 0 and second["last_bar"] == len(score.bar_starts) - 1
        assert second["first_bar"] <= first["last_bar"]  # they overlap on the repeated bars
        assert new.coverage >= 0.9 and new.match_rate < new.coverage


# --- hand-made takes (no data needed) ---------------------------------------------------------

def _toy_score(tmp_path):
    """Four 4/4 bars of quarter notes, a different pitch on every beat."""
    from midi_factory import write_midi

    notes = [(b, 1.0, 60 + b, 64) for b in range(16)]
    return load_score(write_midi(tmp_path / "toy.mid", notes, time_signatures=[(0, 4, 4)]))


def _play(beats, sec_per_beat=0.5, start=0.0):
    from pianoeval.data.midi import NOTE_DTYPE

    notes = np.zeros(len(beats), NOTE_DTYPE)
    notes["onset_sec"] = start + sec_per_beat * np.arange(len(beats))
    notes["duration_sec"] = 0.4
    notes["pitch"] = 60 + np.asarray(beats)
    notes["velocity"] = 64
    return notes


def test_restart_and_skip_on_a_hand_made_score(tmp_path):
    score = _toy_score(tmp_path)
    first = _play(range(6))  # bars 1 and half of 2, then a pause and the whole piece
    whole = _play(range(16), start=first["onset_sec"][-1] + 2.0)
    perf = performance_note_array(np.concatenate([first, whole]))
    result = align_passes(score, perf)
    assert result.n_passes == 2 and result.status == "ok"
    assert result.pass_id.tolist() == [0] * 6 + [1] * 16
    assert result.score_index.tolist() == list(range(6)) + list(range(16))
    assert result.match_rate == 1.0 and result.coverage == 1.0
    assert 1 in result.unreliable_bars  # the first attempt stopped inside bar 2

    skipped = performance_note_array(_play(list(range(4)) + list(range(12, 16))))
    result = align_passes(score, skipped)
    assert result.n_passes == 1
    assert result.score_index.tolist() == list(range(4)) + list(range(12, 16))
    assert result.match_rate == 0.5 and result.status == "low_match"


def test_empty_take_fails_cleanly(tmp_path):
    score = _toy_score(tmp_path)
    result = align_passes(score, performance_note_array(_play([])))
    assert result.status == "failed" and result.n_passes == 0 and len(result.score_index) == 0
