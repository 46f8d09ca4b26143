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
from pianoeval.evaluate import views as V

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


def seeded_splits(labels, seeds=(0, 1)):
    """Passage groups = passages; per seed, one passage is test and the others are dealt."""
    segments = labels["segment"]
    passage = segments.str.rsplit("_", n=2).str[0] + "_" + segments.str.rsplit("_", n=1).str[1]
    frame = pd.DataFrame({"segment": segments, "group": passage})
    order = sorted(passage.unique())
    for seed in seeds:
        rot = order[seed:] + order[:seed]
        fold_of = {g: "test" if i == 0 else str((i - 1) % 4) for i, g in enumerate(rot)}
        frame[f"piece_split_s{seed}"] = passage.map(fold_of)
    frame["performer_split"] = [str(i % 4) for i in range(len(frame))]
    return frame


def seeded_predictions(labels, splits, noise, rng):
    """cv and test files of every seed, made on ``splits``' folds."""
    y = labels[DIMS].to_numpy()
    out = {}
    for column in [c for c in splits.columns if c.startswith("piece_split_s")]:
        name = column.replace("piece_split_s", "piece_s")
        fold = splits[column].to_numpy()
        cv = ~(fold == "test")
        df = pd.DataFrame(y[cv] + rng.normal(0, noise, y[cv].shape), columns=DIMS)
        df.insert(0, "fold", fold[cv].astype(int))
        df.insert(0, "segment", labels["segment"].to_numpy()[cv])
        out[f"{name}_cv"] = df
        test = labels[fold == "test"]
        out[f"{name}_test"] = fold_model_frame(test, [test[DIMS].to_numpy() + rng.normal(0, noise, (len(test), len(DIMS)))
                                                      for _ in range(4)])
    return out


def write_stage_inputs(tmp_path, labels, splits, predictions):
    labels.to_csv(tmp_path / "labels.csv", index=False)
    splits.to_csv(tmp_path / "splits.csv", index=False)
    for model, by_protocol in predictions.items():
        (tmp_path / "pred" / model).mkdir(parents=True, exist_ok=True)
        for protocol, df in by_protocol.items():
            df.to_csv(tmp_path / "pred" / model / f"{protocol}.csv", index=False)


def run_stage(tmp_path, params):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"evaluate": params}))
    return subprocess.run(
        [sys.executable, str(ROOT / "stages" / "evaluate.py"), "--params", str(tmp_path / "params.yaml"),
         "--labels", str(tmp_path / "labels.csv"), "--splits", str(tmp_path / "splits.csv"),
         "--predictions", str(tmp_path / "pred"), "--out", str(tmp_path / "metrics")],
        capture_output=True, text=True, timeout=120)


STAGE_PARAMS = {"models": ["mean", "ridge", "good"], "baselines": ["mean", "ridge"],
                "protocols": ["piece_cv", "piece_test", "performer_cv"], "n_resamples": 200,
                "seed": 0, "confidence": 0.9, "single_modality": ["ridge"], "default_model": "good",
                "comparisons": {"baseline": "ridge", "ablations": [], "pairs": [["ridge", "mean"]]},
                "plot_protocol": "piece_cv"}


def test_stage_scores_every_seed_by_passage_and_compares_pairs(tmp_path):
    labels = make_labels()
    splits = seeded_splits(labels)
    rng = np.random.default_rng(3)
    predictions = {m: seeded_predictions(labels, splits, noise, rng)
                   for m, noise in (("mean", 0.3), ("ridge", 0.07), ("good", 0.03))}
    performer = pd.DataFrame(labels[DIMS].to_numpy() + 0.01, columns=DIMS)
    performer.insert(0, "fold", splits["performer_split"].astype(int))
    performer.insert(0, "segment", labels["segment"])
    predictions["good"]["performer_cv"] = performer
    write_stage_inputs(tmp_path, labels, splits, predictions)
    proc = run_stage(tmp_path, STAGE_PARAMS)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "metrics" / "eval.json").read_text())
    assert set(result["good"]) == {"piece_cv", "piece_test", "performer_cv"}
    piece = result["good"]["piece_test"]
    assert piece["ci_unit"] == "passage" and piece["n_seeds"] == 2
    by_seed = piece["r2_by_seed"]
    assert set(by_seed) == {"0", "1"}
    assert piece["r2_seed_mean"] == pytest.approx(np.mean(list(by_seed.values())), abs=1e-6)
    assert piece["r2_seed_sd"] == pytest.approx(np.std(list(by_seed.values()), ddof=1), abs=1e-6)
    assert piece["r2_ci"][0] <= piece["r2"] <= piece["r2_ci"][1]
    assert piece["by_seed"]["1"]["williams"]["baseline"] == "ridge"
    assert "n_better_holm" in piece["by_seed"]["1"]["williams"]
    comparisons = json.loads((tmp_path / "metrics" / "comparisons.json").read_text())
    vs_ridge = next(c for c in comparisons["piece_cv"] if c["b"] == "ridge")
    assert vs_ridge["a"] == "good" and vs_ridge["seeds"] == [0, 1] and vs_ridge["significant"]
    assert vs_ridge["difference"] == pytest.approx(vs_ridge["r2_a"] - vs_ridge["r2_b"], abs=1e-6)
    assert vs_ridge["verdict"] == "good better"
    assert [c["b"] for c in comparisons["piece_test"]] == ["ridge", "ridge", "mean"]  # single, baseline, pair
    assert "R² [90% CI]" in (tmp_path / "metrics" / "results.md").read_text()
    summary = json.loads((tmp_path / "metrics" / "summary.json").read_text())
    assert summary["good"]["piece_test"]["r2"] == piece["r2"]
    assert summary["good"]["piece_test"]["r2_seed_sd"] == piece["r2_seed_sd"]
    plotted = pd.read_csv(tmp_path / "metrics" / "plots" / "per_dim_r.csv")
    assert sorted(set(plotted["model"])) == ["good", "ridge"] and len(plotted) == 2 * len(DIMS)
    assert len(pd.read_csv(tmp_path / "metrics" / "plots" / "pred_vs_true.csv")) == \
        len(predictions["good"]["piece_s0_cv"]) * len(DIMS)  # piece_cv: the first seed's


def test_stage_refuses_predictions_made_on_another_split(tmp_path):
    labels = make_labels()
    splits = seeded_splits(labels)
    predictions = {"ridge": seeded_predictions(labels, splits, 0.05, np.random.default_rng(0))}
    stale = predictions["ridge"]["piece_s1_cv"]
    predictions["ridge"]["piece_s1_cv"] = stale.assign(fold=(stale["fold"] + 1) % 4)
    write_stage_inputs(tmp_path, labels, splits, predictions)
    proc = run_stage(tmp_path, STAGE_PARAMS)  # only ridge has prediction files
    assert proc.returncode != 0
    assert "piece_s1_cv.csv" in proc.stderr and "made on another split" in proc.stderr


# --------------------------------------------------------------------------- DVC views

def test_summary_metrics_keep_three_figures_per_model_and_protocol(setup):
    _, _, result = setup
    summary = V.summary_metrics(result)
    assert set(summary) == set(result)
    row = summary["good"]["piece_cv"]
    assert row == {"r2": result["good"]["piece_cv"]["r2"],
                   "mean_r": result["good"]["piece_cv"]["pearson_r"],
                   "within_passage_r": result["good"]["piece_cv"]["within_passage_r"]}


def test_view_tables_show_one_protocol_and_refuse_what_they_cannot_plot(setup):
    labels, predictions, result = setup
    per_dim = V.per_dim_r_plot(result, ["good", "ridge"], "piece_cv")
    assert len(per_dim) == 2 * len(DIMS) and set(per_dim["model"]) == {"good", "ridge"}
    row = per_dim.query("model == 'good' and dimension == @DIMS[2]").iloc[0]
    assert row["r"] == result["good"]["piece_cv"]["per_dim"][DIMS[2]]["r"]
    assert (per_dim["r_low"] <= per_dim["r"]).all() and (per_dim["r"] <= per_dim["r_high"]).all()
    with pytest.raises(KeyError, match="'good' result on 'lopo_cv'"):
        V.per_dim_r_plot(result, ["good"], "lopo_cv")

    pvt = V.pred_vs_true_plot(labels, predictions, "ridge", "piece_cv")
    assert len(pvt) == len(labels) * len(DIMS)
    seg = labels["segment"][7]
    got = pvt.query("segment == @seg and dimension == @DIMS[0]").iloc[0]
    assert got["true"] == pytest.approx(labels[DIMS[0]][7], abs=1e-3)
    with pytest.raises(ValueError, match="piece_test: a test protocol"):
        V.pred_vs_true_plot(labels, predictions, "ridge", "piece_test")


def test_dvc_metrics_hold_no_per_dimension_value_and_a_few_hundred_values():
    """What `dvc metrics show` prints: every metrics file dvc.yaml declares, as committed."""
    root = ROOT
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    files = [next(iter(m)) if isinstance(m, dict) else m
             for stage in stages.values() for m in stage.get("metrics", [])
             + stage.get("do", {}).get("metrics", [])]
    paths = [p for f in files for p in root.glob(f.replace("${key}", "*"))]
    assert root / "metrics" / "summary.json" in paths

    def leaves(x, keys=(), in_list=False):
        """(key path, inside a list) of every value; DVC's table leaves lists out."""
        if isinstance(x, dict):
            return [leaf for k, v in x.items() for leaf in leaves(v, (*keys, k), in_list)]
        if isinstance(x, list):
            return [leaf for v in x for leaf in leaves(v, keys, True)]
        return [(keys, in_list)]

    values = [leaf for p in paths for leaf in leaves(json.loads(p.read_text()))]
    assert not [k for k, _ in values if set(k) & set(DIMENSIONS)], "a per-dimension metric"
    shown = [k for k, in_list in values if not in_list]
    assert len(shown) <= 600, len(shown)


def test_dvc_plots_render_from_files_in_git():
    """`dvc plots show` fills both plots from committed files (no DVC cache needed): per-dimension
    r with a CI rule per bar, and predicted against true."""
    plots = {"metrics/plots/per_dim_r.csv", "metrics/plots/pred_vs_true.csv"}
    tracked = subprocess.run(["git", "ls-files", *plots], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    assert set(tracked) == plots
    dvc = Path(sys.executable).with_name("dvc")
    run = subprocess.run([str(dvc), "plots", "show", "--json", *sorted(plots)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    shown = json.loads(run.stdout)["data"]
    per_dim = shown["metrics/plots/per_dim_r.csv"][0]["content"]
    assert {"bar", "rule"} == {layer["mark"]["type"] for layer in per_dim["layer"]}
    assert per_dim["layer"][1]["encoding"]["x2"]["field"] == "r_high"
    assert len(per_dim["data"]["values"]) == 2 * len(DIMENSIONS)
    scatter = shown["metrics/plots/pred_vs_true.csv"][0]["content"]
    assert len(scatter["data"]["values"]) > 1000
