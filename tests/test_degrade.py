"""Degradations measured back on the generated notes, tiers, pairs and the tier scorer."""
import numpy as np
import pandas as pd
import pytest

from midi_factory import perf
from pianoeval.data.edit import window, write_midi
from pianoeval.data.midi import SUSTAIN_CC, read_midi
from pianoeval.degrade import transforms as T
from pianoeval.degrade.generate import (CleanAlignment, CleanItem, GenerateConfig, generate,
                                        generate_item, plain, same_key_overlap_rate,
                                        score_index_from_alignment,
                                        velocity_entropy_bits, with_origin)
from pianoeval.degrade.preserving import augment, scale_tempo, transpose
from pianoeval.degrade.tiers import Sample, degrade_midi, draw_variant, tier_pairs
from pianoeval.evaluate.ranking import mean_kendall_tau, pairwise_accuracy
from config_factory import make_ranker_config
from pianoeval.tier_ranker.model import fit_tier_scorer

LEVELS = {
    "timing": {"jitter_ms": [20, 50, 100], "drift_depth": [0.03, 0.06, 0.12]},
    "accuracy": {"substitution_rate": [0.05, 0.10, 0.15], "deletion_rate": [0.10, 0.15, 0.20]},
    "dynamics": {"compression": [0.3, 0.5, 0.7], "randomization_sigma": [6, 12, 20]},
    "pedal": {"removal_fraction": [0.33, 0.67, 1.0], "over_pedal_fraction": [0.25, 0.5, 1.0]},
    "articulation": {"shorten_factor": [0.7, 0.5, 0.3], "lengthen_factor": [1.4, 1.8, 2.5]},
}


def scale_run(n=2000, seed=0, pedal_every=4.0):
    """n notes from t = 1 s, 4 per second, random pitches and velocities; a sustain press every
    ``pedal_every`` seconds (down 0.1 s after the bar line, up 0.1 s before the next)."""
    rng = np.random.default_rng(seed)
    notes = [(1.0 + i * 0.25, 0.2, int(rng.integers(40, 90)), int(rng.integers(30, 110)))
             for i in range(n)]
    end = 1.0 + n * 0.25
    controls = []
    for t in np.arange(1.0, end, pedal_every):
        controls += [(t + 0.1, SUSTAIN_CC, 127), (t + pedal_every - 0.1, SUSTAIN_CC, 0)]
    return perf(notes, controls)


def test_timing_jitter_sigma_is_measured_back_within_10_percent():
    clean = with_origin(scale_run())
    for sigma in (0.02, 0.05, 0.1):
        out = T.timing_jitter(clean, sigma, np.random.default_rng(1))
        shift = out.notes["onset_sec"] - clean.notes["onset_sec"][out.notes["origin"]]
        assert abs(shift.std() / sigma - 1) < 0.1
        # whole notes move: durations unchanged, notes still sorted
        np.testing.assert_allclose(out.notes["duration_sec"],
                                   clean.notes["duration_sec"][out.notes["origin"]])
        assert np.all(np.diff(out.notes["onset_sec"]) >= 0)


def test_tempo_drift_warps_monotonically_and_zero_depth_is_identity():
    clean = scale_run(200)
    same = T.tempo_drift(clean, 0.0, np.random.default_rng(0))
    np.testing.assert_allclose(same.notes["onset_sec"], clean.notes["onset_sec"], atol=1e-6)
    out = T.tempo_drift(clean, 0.12, np.random.default_rng(0))
    ioi = np.diff(out.notes["onset_sec"])
    assert np.all(ioi > 0)
    assert np.std(np.log(ioi / 0.25)) > 0.05  # the tempo really moves
    knots, log_tempo = T.tempo_curve(10.0, 0.1, np.random.default_rng(0), knot_sec=2.0)
    # a constant tempo exp(g) = 2 halves every time
    assert T.warp_times(np.array([4.0]), knots, np.full_like(log_tempo, np.log(2.0)))[0] == \
        pytest.approx(2.0, abs=1e-3)


def test_deletion_and_substitution_rates_are_exact():
    clean = with_origin(scale_run(1000))
    deleted = T.delete_notes(clean, 0.15, np.random.default_rng(0))
    assert len(deleted.notes) == 850
    assert len(np.unique(deleted.notes["origin"])) == 850
    wrong = T.substitute_notes(clean, 0.1, np.random.default_rng(0), flag="wrong")
    changed = wrong.notes["pitch"] != clean.notes["pitch"][wrong.notes["origin"]]
    assert changed.sum() == 100 and np.array_equal(changed, wrong.notes["wrong"])
    steps = (wrong.notes["pitch"] - clean.notes["pitch"][wrong.notes["origin"]])[changed]
    assert set(np.abs(steps)) <= {1, 2}
    with pytest.raises(ValueError, match="rate"):
        T.delete_notes(clean, 1.5, np.random.default_rng(0))


def test_substitution_stays_on_the_piano():
    edge = perf([(i * 0.1, 0.1, 21 if i % 2 else 108, 64) for i in range(200)])
    out = T.substitute_notes(edge, 1.0, np.random.default_rng(0))
    assert out.notes["pitch"].min() >= 21 and out.notes["pitch"].max() <= 108
    assert np.all(out.notes["pitch"] != np.sort(edge.notes, order=["onset_sec"])["pitch"])


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.7])
def test_velocity_compression_shrinks_the_range_by_the_fraction(fraction):
    clean = scale_run(500)
    out = T.compress_velocity(clean, fraction)
    before = np.ptp(clean.notes["velocity"])
    after = np.ptp(out.notes["velocity"])
    assert abs(after - (1 - fraction) * before) <= 1.0  # rounding to integer velocities
    assert abs(out.notes["velocity"].mean() - clean.notes["velocity"].mean()) < 0.5


def test_velocity_randomisation_sigma():
    clean = scale_run(4000)
    out = T.randomize_velocity(clean, 12.0, np.random.default_rng(0))
    diff = out.notes["velocity"].astype(float) - clean.notes["velocity"]
    assert abs(diff.std() / 12.0 - 1) < 0.1
    assert out.notes["velocity"].min() >= 1 and out.notes["velocity"].max() <= 127


def test_pedal_removal_and_over_pedalling():
    clean = scale_run(160)  # 41 s: ten presses
    spans = T.sustain_spans(clean.controls, clean.duration_sec)
    assert len(spans) == 10
    for fraction, expect in ((0.3, 7), (1.0, 0)):
        out = T.remove_pedal(clean, fraction, np.random.default_rng(0))
        assert len(T.sustain_spans(out.controls, out.duration_sec)) == expect
    dry = perf([(i * 0.5, 0.4, 60, 64) for i in range(40)])  # 20 s, no pedal
    out = T.over_pedal(dry, 0.5, np.random.default_rng(0))
    (down, up), = T.sustain_spans(out.controls, out.duration_sec)
    assert up - down == pytest.approx(0.5 * dry.duration_sec)
    held = T.over_pedal(clean, 1.0, np.random.default_rng(0))
    (down, up), = T.sustain_spans(held.controls, held.duration_sec)
    assert (down, up) == pytest.approx((0.0, clean.duration_sec))
    assert draw_variant("pedal", dry, np.random.default_rng(0)) == "over_pedal"


def test_articulation_scales_durations():
    clean = scale_run(50)
    assert np.allclose(T.scale_durations(clean, 0.5).notes["duration_sec"], 0.1)
    assert np.allclose(T.scale_durations(clean, 2.0).notes["duration_sec"], 0.4)


def test_degraded_performance_is_a_valid_midi(tmp_path):
    clean = with_origin(scale_run(300))
    for family, variant in (("timing", "jitter_drift"), ("accuracy", "substitution_deletion"),
                            ("pedal", "over_pedal"), ("dynamics", "compression_randomization")):
        out, meta = degrade_midi(clean, family, variant, 3, LEVELS[family], np.random.default_rng(0))
        assert meta
        path = write_midi(plain(out), tmp_path / f"{family}.mid")
        back = read_midi(path)
        assert len(back.notes) == len(out.notes)
        np.testing.assert_allclose(back.notes["onset_sec"], out.notes["onset_sec"], atol=2e-3)
        assert np.array_equal(back.notes["pitch"], out.notes["pitch"])
        assert np.array_equal(back.notes["velocity"], out.notes["velocity"])
        assert len(back.controls) == len(out.controls)


def test_window_restates_the_pedal_and_shifts_times():
    p = perf([(0.0, 1.0, 60, 64), (2.0, 1.0, 62, 64), (5.0, 1.0, 64, 64)],
             [(0.5, SUSTAIN_CC, 127), (3.0, SUSTAIN_CC, 0), (4.5, SUSTAIN_CC, 100)])
    w, kept = window(p, 1.5, 4.0)
    assert kept.tolist() == [1]
    assert w.notes["onset_sec"].tolist() == [0.5]
    assert w.controls.tolist() == [(0.0, SUSTAIN_CC, 127), (1.5, SUSTAIN_CC, 0)]


def test_quality_preserving_augmentations():
    clean = scale_run(400)
    assert transpose(clean, 6).notes["pitch"].tolist() == (clean.notes["pitch"] + 6).tolist()
    edge = perf([(0.0, 1.0, 105, 64), (1.0, 1.0, 60, 64)])
    assert transpose(edge, 6).notes["pitch"].tolist() == [66]  # 111 is off the piano
    np.testing.assert_allclose(scale_tempo(clean, 1.25).notes["onset_sec"],
                               clean.notes["onset_sec"] / 1.25)
    out, drawn = augment(clean, np.random.default_rng(0))
    assert -6 <= drawn["transpose"] <= 6 and 0.8 <= drawn["tempo"] <= 1.2
    assert 5 <= drawn["velocity_sigma"] <= 10 and 10 <= drawn["timing_sigma_ms"] <= 20
    assert len(out.notes) == len(clean.notes)  # nothing dropped in the middle register


def test_score_index_composition():
    notes = perf([(0.0, 0.5, 60, 64), (0.5, 0.5, 62, 64), (1.0, 0.5, 99, 64)]).notes
    score = np.array([(0.0, 60), (1.0, 62), (2.0, 64)], dtype=[("onset_beat", "f8"), ("pitch", "i4")])
    al = CleanAlignment("ok", np.array([True, True, False]), np.array([0.0, 1.0000001, np.nan]))
    assert score_index_from_alignment(notes, al, score).tolist() == [0, 1, -1]
    with pytest.raises(ValueError, match="alignment has"):
        score_index_from_alignment(notes[:2], al, score)


def test_same_key_overlap_rate():
    played = perf([(0.0, 0.4, 60, 64), (0.5, 0.4, 60, 64), (0.5, 2.0, 64, 64), (1.0, 0.4, 64, 64)])
    assert same_key_overlap_rate(played.notes) == 0.25  # the second E4 comes while the first holds
    assert same_key_overlap_rate(T.scale_durations(played, 0.2).notes) == 0.0
    assert same_key_overlap_rate(T.scale_durations(played, 2.0).notes) == 0.5


def test_velocity_entropy():
    assert velocity_entropy_bits(np.array([64] * 10)) == 0.0
    assert velocity_entropy_bits(np.array([0, 8, 16, 24])) == pytest.approx(2.0)


def test_generation_is_deterministic_and_a_bad_file_is_skipped(tmp_path):
    from midi_factory import write_midi as write_test_midi

    good = write_test_midi(tmp_path / "good.mid",
                           [(i * 0.5, 0.4, 60 + i % 12, 40 + i % 50) for i in range(60)],
                           [(1.0, SUSTAIN_CC, 127), (9.0, SUSTAIN_CC, 0)])
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not a midi file")
    items = [(CleanItem("good", "percepiano", "w1", str(good)), None),
             (CleanItem("bad", "percepiano", "w2", str(bad)), None)]
    config = GenerateConfig(LEVELS, seed=3, midi_dir=str(tmp_path / "midi"))
    results, failures = generate(items, config)
    assert [name for name, _ in failures] == ["bad"] and "bad.mid" in failures[0][1]
    assert len(results) == 1 + 5 * 3
    assert (tmp_path / "midi" / "good#timing3.mid").is_file()
    again = generate_item(items[0][0], None, GenerateConfig(LEVELS, seed=3))
    assert [s for s, _ in again] == [s for s, _ in results]
    pd.testing.assert_frame_equal(pd.DataFrame([f for _, f in again]),
                                  pd.DataFrame([f for _, f in results]))
    other = generate_item(items[0][0], None, GenerateConfig(LEVELS, seed=4))
    assert not pd.DataFrame([f for _, f in other]).equals(pd.DataFrame([f for _, f in results]))


def test_tier_pairs_share_the_clean_sample_and_audio_keeps_its_own():
    samples = [Sample("a#clean", "a", "clean", "", 0, {})]
    samples += [Sample(f"a#{f}{t}", "a", f, "v", t, {}) for f in ("timing", "pedal") for t in (1, 2, 3)]
    samples += [Sample(f"a#audio{t}", "a", "audio", "noise", t, {}) for t in range(4)]
    pairs = tier_pairs(samples)
    assert len(pairs) == 3 * 6
    timing = [p for p in pairs if p[2] == "timing"]
    assert ("a#clean", "a#timing3", "timing", "a", 0, 3) in timing
    assert all(p[0] != "a#clean" for p in pairs if p[2] == "audio")


def test_ranking_measures_by_hand():
    assert pairwise_accuracy([2, 1, 0], [1, 2, 0]) == pytest.approx((1 + 0 + 0.5) / 3)
    ladder = pd.DataFrame({"item": ["a"] * 4 + ["b"] * 4, "tier": [0, 1, 2, 3] * 2,
                           "score": [4, 3, 2, 1, 1, 2, 3, 4]})
    assert mean_kendall_tau(ladder, ["item"]) == pytest.approx(0.0)  # +1 and -1
    with pytest.raises(ValueError):
        pairwise_accuracy([], [])


def test_tier_scorer_learns_a_toy_ranking():
    rng = np.random.default_rng(0)
    n_items = 60
    tier = np.tile(np.arange(4), n_items)
    item_level = np.repeat(rng.normal(0, 3, n_items), 4)  # passages differ a lot
    X = np.column_stack([item_level + tier + rng.normal(0, 0.1, len(tier)),
                         rng.normal(0, 1, len(tier))])
    better, worse = [], []
    for i in range(n_items):
        for a in range(4):
            for b in range(a + 1, 4):
                better.append(4 * i + a)
                worse.append(4 * i + b)
    scorer = fit_tier_scorer(X, np.array(better), np.array(worse), make_ranker_config(hidden=0, epochs=200))
    s = scorer.score(X)
    assert pairwise_accuracy(s[better], s[worse]) > 0.98
