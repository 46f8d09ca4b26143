"""Tests of pianoeval.evaluate.report and the evaluate stage on a synthetic PercePiano-like set."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pianoeval.data.dimensions import DIMENSIONS
from pianoeval.evaluate import metrics as M
from pianoeval.evaluate import report as R

ROOT = Path(__file__).resolve().parents[1]
DIMS = list(DIMENSIONS)


def make_labels(n_passages=6, n_performers=8, seed=0):
    rng = np.random.default_rng(seed)
    segments = [f"Schubert_D960_mv2_8bars_{perf}_{idx}"
                for idx in range(1, n_passages + 1) for perf in range(1, n_performers + 1)]
    y = rng.uniform(0.3, 0.8, (len(segments), len(DIMS)))
    return pd.DataFrame({"segment": segments, "n_raters": 5, **dict(zip(DIMS, y.T))})


def cv_frame(labels, pred, folds=4):
    df = pd.DataFrame(pred, columns=DIMS)
    df.insert(0, "fold", np.arange(len(labels)) % folds)
    df.insert(0, "segment", labels["segment"].to_numpy())
    return df.sample(frac=1, random_state=0)  # file order must not matter


def fold_model_frame(labels, preds):
    return pd.concat([cv_frame(labels, p).assign(fold=f) for f, p in enumerate(preds)])


@pytest.fixture(scope="module")
def setup():
    labels = make_labels()
    y = labels[DIMS].to_numpy()
    rng = np.random.default_rng(1)
    n = len(y)
    noisy = lambda s: y + rng.normal(0, s, y.shape)  # noqa: E731
    fold_means = [np.tile(y.mean(0) + rng.normal(0, 0.01, len(DIMS)), (n, 1)) for _ in range(4)]
    predictions = {
        "mean": {"piece_cv": cv_frame(labels, np.vstack([fold_means[i % 4][i] for i in range(n)])),
                 "piece_test": fold_model_frame(labels, fold_means)},
        "ridge": {"piece_cv": cv_frame(labels, noisy(0.07)),
                  "piece_test": fold_model_frame(labels, [noisy(0.07) for _ in range(4)])},
        "good": {"piece_cv": cv_frame(labels, noisy(0.03)),
                 "piece_test": fold_model_frame(labels, [noisy(0.03) for _ in range(4)])},
    }
    result = R.evaluate(labels, predictions, ["mean", "ridge"], n_resamples=200, seed=0)
    return labels, predictions, result


def test_stack_predictions_aligns_by_segment(setup):
    labels, predictions, _ = setup
    s = R.stack_predictions(predictions["good"]["piece_test"], labels)
    assert s.y_pred.shape == (4, len(labels), len(DIMS)) and not s.pooled
    row = labels.set_index("segment").loc[s.segments[5], DIMS].to_numpy(float)
    np.testing.assert_array_equal(s.y_true[5], row)
    cv = R.stack_predictions(predictions["good"]["piece_cv"], labels)
    assert cv.pooled and cv.passages[0] == "Schubert_D960_mv2_8bars_1"


def test_stack_predictions_rejects_bad_input(setup):
    labels, predictions, _ = setup
    test = predictions["good"]["piece_test"]
    with pytest.raises(ValueError, match="no label"):
        R.stack_predictions(test.assign(segment=test["segment"] + "0"), labels)
    with pytest.raises(ValueError, match="different segment sets"):
        R.stack_predictions(test.iloc[1:], labels)
    with pytest.raises(ValueError, match="lack columns"):
        R.stack_predictions(test.drop(columns=DIMS[3]), labels)


def test_evaluate_scores_every_pair(setup):
    labels, predictions, result = setup
    assert set(result) == {"mean", "ridge", "good"}
    good = result["good"]["piece_test"]
    s = R.stack_predictions(predictions["good"]["piece_test"], labels)
    assert good["k"] == 4 and good["n"] == len(labels)
    assert good["r2"] == pytest.approx(np.mean([M.r2(s.y_true, p) for p in s.y_pred]), abs=1e-6)
    assert result["good"]["piece_cv"]["r2"] > result["ridge"]["piece_cv"]["r2"] > result["mean"]["piece_cv"]["r2"]
    assert result["mean"]["piece_test"]["pearson_r"] is None  # constant predictions
    json.dumps(result, allow_nan=False)


def test_williams_against_best_baseline(setup):
    _, _, result = setup
    for protocol in ("piece_cv", "piece_test"):
        assert result["ridge"][protocol]["williams"] is None  # ridge is the best baseline
        w = result["good"][protocol]["williams"]
        assert w["baseline"] == "ridge" and w["n"] == 48
        assert w["n_better_p05"] == len(DIMS) and w["n_worse_p05"] == 0
        assert all(v["t"] > 0 for v in w["per_dim"].values())
    # the ensemble of constant fold models is constant: r undefined, so t and p are too
    w_mean = result["mean"]["piece_test"]["williams"]
    assert all(v["t"] is None and v["p"] is None for v in w_mean["per_dim"].values())
    assert result["mean"]["piece_cv"]["williams"]["n_worse_p05"] > 0


def test_williams_reports_cohens_q(setup):
    labels, predictions, result = setup
    for protocol in ("piece_cv", "piece_test"):
        good = R.stack_predictions(predictions["good"][protocol], labels)
        ridge = R.stack_predictions(predictions["ridge"][protocol], labels)
        q = M.cohens_q(M.pearson_per_dim(good.y_true, good.ensemble),
                       M.pearson_per_dim(ridge.y_true, ridge.ensemble))
        w = result["good"][protocol]["williams"]
        got = [w["per_dim"][d]["cohens_q"] for d in DIMS]
        np.testing.assert_allclose(got, q, atol=1e-6)
        assert all(v > 0 for v in got)  # good correlates better on every dimension
        assert w["mean_q"] == pytest.approx(np.mean(q), abs=1e-6)
        assert "williams_single" not in result["good"][protocol]  # no single_modality given
    w_mean = result["mean"]["piece_test"]["williams"]  # constant ensemble: r, so q, undefined
    assert w_mean["mean_q"] is None
    assert all(v["cohens_q"] is None for v in w_mean["per_dim"].values())


def single_modality_setup(n_resamples=100):
    labels = make_labels()
    y = labels[DIMS].to_numpy()
    rng = np.random.default_rng(2)
    noisy = lambda s: cv_frame(labels, y + rng.normal(0, s, y.shape))  # noqa: E731
    predictions = {"ridge": {"piece_cv": noisy(0.1), "work_cv": noisy(0.1)},
                   "score_only": {"piece_cv": noisy(0.05)},
                   "audio_only": {"piece_cv": noisy(0.08)},
                   "fusion": {"piece_cv": noisy(0.02), "work_cv": noisy(0.02)}}
    return labels, predictions, R.evaluate(labels, predictions, ["ridge"], n_resamples=n_resamples,
                                           single_modality=["audio_only", "score_only"])


def test_williams_single_against_best_single_modality_model():
    labels, predictions, result = single_modality_setup()
    assert result["score_only"]["piece_cv"]["r2"] > result["audio_only"]["piece_cv"]["r2"]
    assert result["score_only"]["piece_cv"]["williams_single"] is None  # the reference itself
    for model in ("ridge", "audio_only", "fusion"):
        w = result[model]["piece_cv"]["williams_single"]
        assert w["reference"] == "score_only" and w["n"] == len(labels)
        ref = R.stack_predictions(predictions["score_only"]["piece_cv"], labels)
        own = R.stack_predictions(predictions[model]["piece_cv"], labels)
        q = M.cohens_q(M.pearson_per_dim(own.y_true, own.ensemble),
                       M.pearson_per_dim(ref.y_true, ref.ensemble))
        np.testing.assert_allclose([w["per_dim"][d]["cohens_q"] for d in DIMS], q, atol=1e-6)
        assert w["mean_q"] == pytest.approx(np.mean(q), abs=1e-6)
        assert set(w["per_dim"][DIMS[0]]) == {"t", "p", "cohens_q"}
    assert result["fusion"]["piece_cv"]["williams_single"]["mean_q"] > 0  # better than score only
    assert result["ridge"]["piece_cv"]["williams_single"]["mean_q"] < 0
    # the baseline comparison is unchanged alongside
    assert result["fusion"]["piece_cv"]["williams"]["baseline"] == "ridge"
    # no single-modality model scored on work_cv: no key there
    assert all("williams_single" not in result[m]["work_cv"] for m in ("ridge", "fusion"))
    json.dumps(result, allow_nan=False)


def test_williams_vs_reference_is_the_baseline_comparison_under_another_key(setup):
    labels, predictions, result = setup
    stacked = {m: R.stack_predictions(predictions[m]["piece_cv"], labels) for m in predictions}
    scores = {m: result[m]["piece_cv"] for m in predictions}
    by_ref = R.williams_vs_reference(stacked, scores, ["mean", "ridge"], key="reference")
    by_base = R.williams_vs_best_baseline(stacked, scores, ["mean", "ridge"])
    assert by_ref["ridge"] is None and by_base["ridge"] is None
    assert by_ref["good"].pop("reference") == by_base["good"].pop("baseline") == "ridge"
    assert by_ref["good"] == by_base["good"]
    assert all(v is None for v in R.williams_vs_reference(stacked, scores, ["absent"]).values())


def test_best_baseline_picks_highest_r2():
    scores = {"mean": {"r2": -0.01}, "ridge": {"r2": 0.2}, "big": {"r2": 0.5}}
    assert R.best_baseline(scores, ["mean", "ridge"]) == "ridge"
    assert R.best_baseline(scores, ["absent"]) is None


def test_plot_tables(setup):
    labels, predictions, result = setup
    per_dim = R.per_dim_r_table(result)
    assert len(per_dim) == 3 * 2 * len(DIMS)
    row = per_dim.query("model == 'good' and protocol == 'piece_cv' and dimension == @DIMS[2]").iloc[0]
    assert row["r"] == result["good"]["piece_cv"]["per_dim"][DIMS[2]]["r"]
    assert row["r_low"] <= row["r"] <= row["r_high"]

    pvt = R.pred_vs_true_table(labels, predictions)
    assert set(pvt["protocol"]) == {"piece_cv"}  # test protocols are left out
    assert len(pvt) == 3 * len(labels) * len(DIMS)
    seg = labels["segment"][7]
    got = pvt.query("model == 'ridge' and segment == @seg and dimension == @DIMS[0]").iloc[0]
    assert got["true"] == pytest.approx(labels[DIMS[0]][7], abs=1e-4)


def test_results_markdown(setup):
    _, _, result = setup
    md = R.results_markdown(result)
    lines = md.strip().splitlines()
    assert lines[0].startswith("| model | protocol | R² [95% CI]")
    assert len(lines) == 2 + 6
    good = result["good"]["piece_cv"]
    assert f"| good | piece_cv | {good['r2']:.3f} [{good['r2_ci'][0]:.3f}, {good['r2_ci'][1]:.3f}]" in md
    mean_test = next(line for line in lines if line.startswith("| mean | piece_test"))
    assert "| – |" in mean_test  # undefined mean r


def test_stage_end_to_end(tmp_path, setup):
    labels, predictions, _ = setup
    labels.to_csv(tmp_path / "labels.csv", index=False)
    for model, by_protocol in predictions.items():
        (tmp_path / "pred" / model).mkdir(parents=True)
        for protocol, df in by_protocol.items():
            if (model, protocol) != ("good", "piece_test"):  # a missing file is skipped
                df.to_csv(tmp_path / "pred" / model / f"{protocol}.csv", index=False)
    params = {"evaluate": {"models": ["mean", "ridge", "good"], "baselines": ["mean", "ridge"],
                           "protocols": ["piece_cv", "piece_test"], "n_resamples": 200,
                           "seed": 0, "confidence": 0.9, "single_modality": ["good"]}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "evaluate.py"), "--params", str(tmp_path / "params.yaml"),
         "--labels", str(tmp_path / "labels.csv"), "--predictions", str(tmp_path / "pred"),
         "--out", str(tmp_path / "metrics")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "skip good/piece_test" in proc.stderr
    result = json.loads((tmp_path / "metrics" / "eval.json").read_text())
    assert set(result["good"]) == {"piece_cv"} and set(result["mean"]) == {"piece_cv", "piece_test"}
    assert result["ridge"]["piece_cv"]["williams_single"]["reference"] == "good"
    assert result["good"]["piece_cv"]["williams_single"] is None
    assert "williams_single" not in result["ridge"]["piece_test"]  # good has no piece_test file
    assert "R² [90% CI]" in (tmp_path / "metrics" / "results.md").read_text()
    assert len(pd.read_csv(tmp_path / "metrics" / "plots" / "per_dim_r.csv")) == 5 * len(DIMS)
    assert len(pd.read_csv(tmp_path / "metrics" / "plots" / "pred_vs_true.csv")) == 3 * len(labels) * len(DIMS)
