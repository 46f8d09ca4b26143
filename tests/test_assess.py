"""`pianoeval assess`: the release model's numbers, the per-bar calibration, the report, the CLI."""
import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import symusic
import yaml

from pianoeval.assess.analysis import SCALE_ENDS, AssessError, Release, assess, read_score
from pianoeval.assess.bars import BarReference, bar_table, melody_lead, passages_to_practise
from pianoeval.assess.release import (LinearModel, conformal_halfwidth, coverage_by_fold,
                                      fit_variant)
from pianoeval.cli import main as cli
from pianoeval.data.dimensions import DIMENSIONS
from pianoeval.models.baselines import make_baseline

ROOT = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("PIANOEVAL_DATA_MIRROR", ROOT.parent / "shared" / "data"))
RELEASE = ROOT / "models" / "release"
PERF = MIRROR / "percepiano" / "midi" / "Beethoven_WoO80_thema_8bars_11_1.mid"
SCORE = MIRROR / "percepiano" / "score_midi" / "Beethoven_WoO80_thema_8bars_Score_1.mid"
OTHER_SCORE = MIRROR / "asap" / "Bach" / "Fugue" / "bwv_846" / "xml_score.mxl"
RIDGE = {"ridge": {"alphas": [0.1, 1.0, 10.0], "clip_to_training_range": True}}


@pytest.fixture(scope="module")
def release():
    return Release.load(RELEASE)


# --- the release model's numbers ---------------------------------------------------------

def test_exported_ridge_predicts_like_sklearn():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 6))
    X[rng.random(X.shape) < 0.05] = np.nan
    Y = np.clip(0.5 + 0.1 * np.nan_to_num(X) @ rng.normal(size=(6, len(DIMENSIONS))) / 3, 0, 1)
    estimator = make_baseline("ridge", RIDGE).fit(X, Y)
    model = LinearModel.from_sklearn(estimator, [f"f{i}" for i in range(6)])
    Xn = rng.normal(size=(30, 6)) * 3  # far outside: the clip must act the same way
    Xn[0, 2] = np.nan
    np.testing.assert_allclose(model.predict(Xn), estimator.predict(Xn), atol=1e-10)
    with pytest.raises(ValueError, match="expected 6 features"):
        model.predict(np.zeros((1, 5)))


def test_conformal_halfwidth_is_the_finite_sample_rank():
    residuals = np.arange(1.0, 10.0)[:, None]  # n = 9: rank ceil(10 * 0.8) = 8
    assert conformal_halfwidth(residuals, 0.8)[0] == 8.0
    assert np.isinf(conformal_halfwidth(residuals, 0.95)[0])  # rank 10 > n
    with pytest.raises(ValueError, match="coverage"):
        conformal_halfwidth(residuals, 1.0)


def test_coverage_out_of_fold_is_nominal_on_exchangeable_residuals():
    rng = np.random.default_rng(1)
    residuals = np.abs(rng.standard_t(4, size=(8000, 3)))
    folds = rng.integers(0, 4, size=8000)
    covered = np.array(list(coverage_by_fold(residuals, folds, 0.9).values()))
    assert np.abs(covered - 0.9).max() < 0.02


def test_fit_variant_intervals_hold_on_a_new_draw():
    rng = np.random.default_rng(2)
    n = 600
    data = pd.DataFrame(rng.normal(size=(n, 4)), columns=list("abcd"))
    for j, d in enumerate(DIMENSIONS):
        data[d] = 0.5 + 0.05 * data["a"] * (j % 3 - 1) + 0.03 * rng.normal(size=n)
    variant = fit_variant("v", data, list("abcd"), rng.integers(0, 4, n), RIDGE, 0.9)
    new = pd.DataFrame(rng.normal(size=(2000, 4)), columns=list("abcd"))
    truth = np.column_stack([0.5 + 0.05 * new["a"] * (j % 3 - 1) + 0.03 * rng.normal(size=2000)
                             for j in range(len(DIMENSIONS))])
    pred = variant.model.predict(new[list("abcd")].to_numpy())
    inside = np.abs(truth - pred) <= np.asarray(variant.halfwidth)
    assert 0.86 < inside.mean() < 0.94


# --- bars and passages --------------------------------------------------------------------

def _notes(bars, rng, n_per_bar=8):
    rows = []
    for bar in bars:
        for i in range(n_per_bar):
            rows.append({"onset_sec": bar * 2.0 + i * 0.25, "duration_sec": 0.2, "pitch": 60 + i,
                         "velocity": 64 + rng.integers(-5, 6), "sustain_cc": 0,
                         "matched": 1, "bar_idx": bar,
                         "local_tempo_ratio": 1.0 + 0.02 * rng.normal(),
                         "onset_dev_ms": 10 * rng.normal(), "velocity_rel_local": rng.normal(),
                         "articulation_ratio": 0.9})
    return pd.DataFrame(rows)


def test_bar_table_counts_extra_and_missing_notes():
    notes = _notes([0, 1, 2], np.random.default_rng(3))
    notes.loc[notes.index[:2], "matched"] = 0
    bars = bar_table(notes, pd.DataFrame({"pass": 0, "bar": [1, 1, 4]}))
    assert bars["bar"].tolist() == [0, 1, 2, 4]
    assert bars["n_extra"].tolist() == [2, 0, 0, 0]
    assert bars["n_missing"].tolist() == [0, 2, 0, 1]
    assert bars.loc[0, "error_rate"] == pytest.approx(2 / 8)
    assert bars.loc[1, "error_rate"] == pytest.approx(2 / 10)
    assert bars.loc[3, "error_rate"] == 1.0 and bars.loc[3, "n_notes"] == 0


def test_melody_lead_is_the_top_note_over_the_rest_of_its_chord():
    notes = pd.DataFrame({"onset_sec": [2.0, 0.0, 0.01, 0.02, 1.0, 2.0],
                          "pitch": [50, 60, 72, 64, 65, 55],
                          "velocity": [30, 40, 80, 50, 70, 60]})
    lead = melody_lead(notes)
    assert lead[2] == 80 - (40 + 50) / 2 and lead[5] == 60 - 30
    assert lead.drop([2, 5]).isna().all()  # lower notes of a chord and single notes


def test_bar_reference_flags_the_calibrated_share_and_joins_runs():
    rng = np.random.default_rng(4)
    ref_bars = bar_table(_notes(range(400), rng))
    reference = BarReference.fit(ref_bars)
    flagged = reference.unusualness(ref_bars) >= 95.0
    assert 0.03 <= flagged.mean() <= 0.07
    bars = bar_table(_notes(range(10), rng))
    bars.loc[[4, 5], "timing_spread"] = 500.0  # two consecutive bars far outside the reference
    bars["unusualness"] = reference.unusualness(bars)
    passages = passages_to_practise(bars, reference, 0.05, 5)
    top = passages[0]
    assert (top["first_bar"], top["last_bar"]) == (4, 5)
    assert top["reasons"] == ["uneven timing against the beat"]


# --- the report -------------------------------------------------------------------------

def test_release_in_git_is_small_and_matches_params(release):
    size = sum(p.stat().st_size for p in RELEASE.iterdir())
    assert size <= 20 * 2**20
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key in ("variants", "score_min_note_f", "practise_fraction", "max_passages",
                "outlier_z"):
        assert release.settings[key] == params["release"][key], key
    for key, value in release.settings["align"].items():
        assert value == params["align"][key], key


def test_scale_ends_cover_every_dimension():
    assert tuple(SCALE_ENDS) == DIMENSIONS


def test_assess_with_score(release):
    report = assess(PERF, release, SCORE)
    json.dumps(report, allow_nan=False)
    assert report["variant"] == "with_score" and report["alignment"]["reliable"]
    assert [d["name"] for d in report["dimensions"]] == list(DIMENSIONS)
    for d in report["dimensions"]:
        assert d["interval"][0] <= d["score"] <= d["interval"][1]
        assert 0 <= d["percentile"] <= 100
    assert len(report["notes"]) == report["summary"]["n_notes"]
    assert sum(b["n_notes"] for b in report["bars"]) == report["summary"]["n_notes"]
    assert all(b["unusualness"] is not None for b in report["bars"] if b["n_notes"] > 1)
    assert report["score_would_add"] == []


def test_assess_without_score_and_with_the_wrong_score(release):
    alone = assess(PERF, release)
    assert alone["variant"] == "performance_only" and alone["score_would_add"]
    assert all(n["matched"] is None for n in alone["notes"])
    assert alone["passages_to_practise"] == []
    wrong = assess(PERF, release, OTHER_SCORE)
    assert wrong["variant"] == "performance_only"
    assert not wrong["alignment"]["reliable"]
    assert "does not match" in wrong["warnings"][0]
    assert [d["score"] for d in wrong["dimensions"]] == [d["score"] for d in alone["dimensions"]]


def test_unknown_score_format_is_named(release, tmp_path):
    bad = tmp_path / "score.txt"
    bad.write_text("not a score")
    with pytest.raises(AssessError, match="score.txt"):
        assess(PERF, release, bad)


# --- the command ----------------------------------------------------------------------------

@pytest.mark.parametrize("name, content, message", [
    ("missing.mid", None, "no such file"),
    ("notes.txt", b"x", "neither MIDI"),
    ("empty.mid", b"", "empty file"),
    ("broken.mid", b"MThd", "cannot parse"),
    ("drums.mid", "drums", "only drum notes"),
])
def test_bad_input_exits_2_with_a_message(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    if content == "drums":
        score = symusic.Score(480)
        score.tracks.append(symusic.Track("drums", 0, True))  # name, program, is_drum
        score.tracks[0].notes.extend([symusic.Note(k * 480, 240, 36, 100) for k in range(8)])
        score.dump_midi(str(path))
    elif content is not None:
        path.write_bytes(content)
    assert cli(["assess", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_cli_writes_json_and_html(tmp_path):
    assert cli(["assess", str(PERF), "--score", str(SCORE), "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / f"{PERF.stem}.json").read_text())
    assert report["variant"] == "with_score"
    html = (tmp_path / f"{PERF.stem}.html").read_text()
    assert "dim-interpretation_unsatisfactory_convincing" in html


def test_batch_keeps_going_past_bad_files(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(PERF, folder / "a.mid")
    shutil.copy(SCORE, folder / "b.mid")
    (folder / "c.mid").write_bytes(b"MThd broken")
    (folder / "readme.txt").write_text("not a performance: not even tried")
    assert cli(["assess", "--batch", str(folder), "--out", str(tmp_path / "out")]) == 0
    with open(tmp_path / "out" / "batch.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [Path(r["file"]).name for r in rows] == ["a.mid", "b.mid"]
    assert float(rows[0]["timing_stable_unstable_low"]) <= float(rows[0]["timing_stable_unstable"])
    with open(tmp_path / "out" / "batch_failed.csv") as fh:
        failed = list(csv.DictReader(fh))
    assert [Path(r["file"]).name for r in failed] == ["c.mid"] and "c.mid" in failed[0]["reason"]


@pytest.mark.parametrize("segment, bars", [("03", [0, 7]), ("04", [8, 15])])
def test_a_passage_is_found_inside_a_longer_score(release, segment, bars):
    """8-bar passage k of D960 mvt. 2 is the first or second half of 16-bar passage ceil(k/2)."""
    perf = MIRROR / "percepiano" / "midi" / f"Schubert_D960_mv2_8bars_0_{segment}.mid"
    score = MIRROR / "percepiano" / "score_midi" / "Schubert_D960_mv2_16bars_Score_02.mid"
    report = assess(perf, release, score)
    assert report["variant"] == "with_score" and report["alignment"]["score_bars"] == bars
    assert report["alignment"]["match_rate"] > 0.95
    assert all(bars[0] <= m["bar"] <= bars[1] for m in report["missing_notes"])


def test_mei_and_kern_scores_are_read(release, tmp_path):
    import partitura as pt

    xml = MIRROR / "percepiano" / "score_xml" / "Schubert_D960_mv3_16bars_Score_12.musicxml"
    mei = tmp_path / "score.mei"  # partitura writes MEI (not kern): the same passage as MEI
    pt.save_mei(pt.load_musicxml(str(xml)), str(mei))
    perf = MIRROR / "percepiano" / "midi" / "Schubert_D960_mv3_16bars_3_12.mid"
    report = assess(perf, release, mei)
    assert report["variant"] == "with_score" and report["alignment"]["note_f"] > 0.85
    info, rendered = read_score(pt.EXAMPLE_KERN)
    expected = pt.load_score(pt.EXAMPLE_KERN).note_array()  # every part
    assert sorted(info.notes["pitch"]) == sorted(expected["pitch"])
    assert sorted(rendered.notes["pitch"]) == sorted(expected["pitch"])


def test_a_restart_is_aligned_pass_by_pass(release, tmp_path):
    """A take that breaks off after a third of the passage and starts again: two passes, the
    first attempt aligned to the opening, the complete pass to the whole passage."""
    from pianoeval.data.edit import write_midi
    from pianoeval.data.midi import read_midi

    perf = read_midi(MIRROR / "percepiano" / "midi" / "Schubert_D960_mv2_16bars_0_02.mid")
    first = perf.notes[: len(perf.notes) // 3].copy()
    again = perf.notes.copy()
    again["onset_sec"] += first["onset_sec"].max() + 2.0  # a pause, then from the top
    take = write_midi(type(perf)(np.concatenate([first, again]), perf.controls[:0]),
                      tmp_path / "take.mid")
    score = MIRROR / "percepiano" / "score_midi" / "Schubert_D960_mv2_16bars_Score_02.mid"
    report = assess(take, release, score)
    alignment = report["alignment"]
    assert report["variant"] == "with_score" and alignment["n_passes"] == 2
    assert alignment["passes"][0]["first_bar"] == 0 and alignment["passes"][1]["first_bar"] == 0
    assert alignment["passes"][1]["last_bar"] == 15 and alignment["note_f"] > 0.95
    assert {n["pass"] for n in report["notes"]} == {0, 1}
