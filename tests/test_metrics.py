"""Tests of pianoeval.evaluate.metrics against hand-computed values and the library versions."""
import json
import math

import numpy as np
import pytest
from scipy import stats

from pianoeval.evaluate import metrics as M

# A 3 x 2 case small enough to score by hand.
Y = np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]])
P = np.array([[1.0, 3.0], [2.0, 4.0], [4.0, 5.0]])


def synthetic(n, k, d=4, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.uniform(0.2, 0.8, (n, d))
    return y, y + rng.normal(0, noise, (k, n, d))


# --------------------------------------------------------------------------- point measures


def test_r2_hand_computed():
    # dim 0: mean 2, SS_tot = 1+0+1 = 2, residuals (0, 0, -1) -> SS_res = 1, R^2 = 1 - 1/2 = 0.5
    # dim 1: mean 4, SS_tot = 4+0+4 = 8, residuals (-1, 0, 1) -> SS_res = 2, R^2 = 1 - 2/8 = 0.75
    np.testing.assert_allclose(M.r2_per_dim(Y, P), [0.5, 0.75])
    assert M.r2(Y, P) == pytest.approx(0.625)


def test_mse_hand_computed():
    # squared errors: 0, 1, 0, 0, 1, 1 -> 3 / 6
    assert M.mse(Y, P) == pytest.approx(0.5)


def test_pearson_hand_computed():
    # dim 0: y dev (-1, 0, 1), p = (1, 2, 4) dev (-4/3, -1/3, 5/3): cov sum 3, Syy 2, Spp 14/3
    #        r = 3 / sqrt(2 * 14/3) = sqrt(27/28)
    # dim 1: p = (3, 4, 5) is y/2 + 2, r = 1
    np.testing.assert_allclose(M.pearson_per_dim(Y, P), [math.sqrt(27 / 28), 1.0])
    assert M.mean_pearson_r(Y, P) == pytest.approx((math.sqrt(27 / 28) + 1) / 2)


def test_spearman_hand_computed():
    # both columns of P rank the rows like Y; a reversed prediction ranks them backwards
    np.testing.assert_allclose(M.spearman_per_dim(Y, P), [1.0, 1.0])
    assert M.mean_spearman(Y, P[::-1]) == pytest.approx(-1.0)


def test_pearson_of_constant_prediction_is_nan():
    r = M.pearson_per_dim(Y, np.column_stack([np.full(3, 0.5), P[:, 1]]))
    assert np.isnan(r[0]) and r[1] == pytest.approx(1.0)


def test_one_dimensional_input_is_one_dimension():
    assert M.r2(Y[:, 0], P[:, 0]) == pytest.approx(0.5)


@pytest.mark.parametrize("y_true, y_pred, message", [
    (Y, P[:, :1], "shape"),
    (Y[:1], P[:1], "at least 2 rows"),
    (np.where(Y == 2.0, np.nan, Y), P, "NaN"),
    (Y, np.where(P == 4.0, np.inf, P), "NaN or infinite"),
    (Y[None], P[None], "1-D or 2-D"),
])
def test_invalid_inputs_raise(y_true, y_pred, message):
    for f in (M.r2, M.mse, M.pearson_per_dim, M.spearman_per_dim):
        with pytest.raises(ValueError, match=message):
            f(y_true, y_pred)


# --------------------------------------------------------------------------- within passage


def test_within_passage_r_constructed():
    up, down = np.arange(1.0, 6.0), np.arange(5.0, 0.0, -1)
    swapped = np.array([1.0, 2.0, 3.0, 5.0, 4.0])  # r with 1..5: cov 9 / var 10 = 0.9
    y = np.column_stack([np.concatenate([up, up, up, [1.0, 2.0]])] * 2)
    p = np.column_stack([
        np.concatenate([up, down, swapped, [2.0, 1.0]]),  # r = 1, -1, 0.9 -> mean 0.3
        np.concatenate([np.full(5, 3.0), up, 2 * up, [2.0, 1.0]]),  # NaN (skipped), 1, 1 -> 1
    ])
    passages = ["A"] * 5 + ["B"] * 5 + ["D"] * 5 + ["C"] * 2  # C is below min_size
    np.testing.assert_allclose(M.within_passage_r(y, p, passages), [0.3, 1.0])


def test_within_passage_r_without_big_passages_is_nan():
    assert np.isnan(M.within_passage_r(Y, P, ["a", "a", "b"], min_size=3)).all()


def test_within_passage_r_checks_passages():
    with pytest.raises(ValueError, match="one id per row"):
        M.within_passage_r(Y, P, ["a", "b"])
    with pytest.raises(ValueError, match="min_size"):
        M.within_passage_r(Y, P, ["a", "a", "a"], min_size=2)


# --------------------------------------------------------------------------- Williams


def test_williams_hand_computed():
    # r12 = .5, r13 = .3, r23 = .4, n = 103:
    # |R| = 1 - .25 - .09 - .16 + 2(.5)(.3)(.4) = .62
    # denominator = 2 (102/100)(.62) + ((.8)^2 / 4)(.6)^3 = 1.2648 + .03456 = 1.29936
    # t = .2 sqrt(102 * 1.4 / 1.29936) = .2 sqrt(109.90026) = 2.0966665, df = 100
    t, p = M.williams_test(0.5, 0.3, 0.4, 103)
    assert t == pytest.approx(2.0966665, abs=1e-6)
    assert p == pytest.approx(2 * stats.t.sf(2.0966665, 100), rel=1e-5)
    assert 0.03 < p < 0.05


def test_williams_vectorised_antisymmetric_and_nan():
    t, p = M.williams_test([0.5, 0.3, np.nan], [0.3, 0.5, 0.2], 0.4, 103)
    assert t[0] == pytest.approx(-t[1]) and p[0] == pytest.approx(p[1])
    assert np.isnan(t[2]) and np.isnan(p[2])


def test_williams_invalid():
    with pytest.raises(ValueError, match="n must be"):
        M.williams_test(0.5, 0.3, 0.4, 3)
    with pytest.raises(ValueError, match=r"r12 must lie in \[-1, 1\]"):
        M.williams_test(1.5, 0.3, 0.4, 50)


def test_cohens_q_hand_computed():
    # atanh(.5) = .5 ln(1.5/.5) = .5 ln 3 = .5493061; atanh(.3) = .5 ln(1.3/.7) = .3095196
    assert M.cohens_q(0.5, 0.3) == pytest.approx(0.5493061 - 0.3095196, abs=1e-6)
    assert M.cohens_q(0.5, 0.3) == pytest.approx(0.2397865, abs=1e-6)
    assert isinstance(M.cohens_q(0.5, 0.3), float)


def test_cohens_q_broadcasts_antisymmetric_nan_and_clipped():
    q = M.cohens_q([0.5, 0.3, np.nan, -0.2], 0.3)
    assert q.shape == (4,)
    assert q[0] == pytest.approx(-M.cohens_q(0.3, 0.5)) and q[1] == 0.0
    assert np.isnan(q[2])
    assert q[3] == pytest.approx(-math.atanh(0.2) - math.atanh(0.3))
    perfect = M.cohens_q(1.0, 0.0)  # clipped to 1 - 1e-9: finite, about 10.7
    assert math.isfinite(perfect) and perfect == pytest.approx(math.atanh(1 - 1e-9))
    assert M.cohens_q(-1.0, 1.0) == pytest.approx(-2 * perfect)


def test_cohens_q_invalid():
    with pytest.raises(ValueError, match=r"r2 must lie in \[-1, 1\]"):
        M.cohens_q(0.5, [0.3, -1.2])


# --------------------------------------------------------------------------- bootstrap


def test_resampled_scores_equal_sklearn_and_scipy():
    y, p = synthetic(40, 3)
    idx = np.random.default_rng(1).integers(0, 40, (5, 40))
    r2_dims, r = M.resampled_scores(y, p, idx)
    assert r2_dims.shape == r.shape == (5, 3, 4)
    for b in range(5):
        for m in range(3):
            np.testing.assert_allclose(r2_dims[b, m], M.r2_per_dim(y[idx[b]], p[m][idx[b]]), atol=1e-12)
            np.testing.assert_allclose(r[b, m], M.pearson_per_dim(y[idx[b]], p[m][idx[b]]), atol=1e-12)


def test_resampled_scores_constant_prediction_is_nan():
    y, _ = synthetic(30, 1)
    _, r = M.resampled_scores(y, np.full_like(y, 0.37), np.arange(30)[None])
    assert np.isnan(r).all()


def test_bootstrap_equals_scipy_with_library_statistics():
    # Same seed -> scipy draws the same index resamples, so a plain (slow) scipy bootstrap of
    # sklearn's r2 / scipy's pearsonr must give the same BCa interval as the vectorised one.
    y, p = synthetic(30, 1)
    ci = M.bootstrap_ci(y, p, n_resamples=200, seed=3)
    for key, f in (("r2", M.r2), ("pearson_r", M.mean_pearson_r)):
        ref = stats.bootstrap((np.arange(30),), lambda i: f(y[i], p[0][i]), n_resamples=200,
                              vectorized=False, method="BCa", rng=np.random.default_rng(3))
        np.testing.assert_allclose(ci[key], tuple(ref.confidence_interval), rtol=1e-9)


def test_bootstrap_deterministic_for_seed():
    y, p = synthetic(60, 2)
    a = M.bootstrap_ci(y, p, n_resamples=300, seed=7)
    b = M.bootstrap_ci(y, p, n_resamples=300, seed=7)
    c = M.bootstrap_ci(y, p, n_resamples=300, seed=8)
    assert a["r2"] == b["r2"] and np.array_equal(a["per_dim_r"], b["per_dim_r"])
    assert a["ensemble"]["pearson_r"] == b["ensemble"]["pearson_r"]
    assert a["r2"] != c["r2"]


def test_bootstrap_ci_contains_estimate():
    y, p = synthetic(150, 1, d=3, noise=0.15)
    ci = M.bootstrap_ci(y, p, n_resamples=1000, seed=0)
    est_r2, est_r = M.r2(y, p[0]), M.pearson_per_dim(y, p[0])
    assert ci["r2"][0] < est_r2 < ci["r2"][1]
    assert ci["r2"][1] - ci["r2"][0] < 0.3  # informative, not [-inf, inf]
    assert np.all((ci["per_dim_r"][0] < est_r) & (est_r < ci["per_dim_r"][1]))
    assert "ensemble" not in ci


def test_bootstrap_invalid():
    y, p = synthetic(20, 1)
    with pytest.raises(ValueError, match="n_resamples"):
        M.bootstrap_ci(y, p, n_resamples=10)
    with pytest.raises(ValueError, match="confidence"):
        M.bootstrap_ci(y, p, confidence=95)
    with pytest.raises(ValueError, match=r"expected \(k, 20, 4\)"):
        M.bootstrap_ci(y, p[:, :10])


# --------------------------------------------------------------------------- score_protocol


def test_score_protocol_k4_averages_fold_models():
    y, p = synthetic(80, 4, d=3, noise=0.15)
    passages = np.repeat(np.arange(8), 10)
    out = M.score_protocol(y, p, passages, n_resamples=300, seed=0, dims=["a", "b", "c"])
    assert out["n"] == 80 and out["k"] == 4
    assert out["r2"] == pytest.approx(np.mean([M.r2(y, q) for q in p]), abs=1e-6)
    assert out["pearson_r"] == pytest.approx(np.mean([M.mean_pearson_r(y, q) for q in p]), abs=1e-6)
    assert out["mse"] == pytest.approx(np.mean([M.mse(y, q) for q in p]), abs=1e-6)
    assert out["per_dim"]["b"]["r2"] == pytest.approx(np.mean([M.r2_per_dim(y, q)[1] for q in p]), abs=1e-6)
    ens = p.mean(axis=0)
    assert out["ensemble"]["r2"] == pytest.approx(M.r2(y, ens), abs=1e-6)
    assert out["ensemble"]["r2"] > out["r2"]  # averaging independent noise helps
    assert out["r2_ci"][0] <= out["r2"] <= out["r2_ci"][1]
    json.dumps(out, allow_nan=False)


def test_score_protocol_schema_and_nan_to_none():
    y, _ = synthetic(40, 1, d=2)
    constant = np.full((1, 40, 2), 0.5)  # the mean baseline on a test set: r undefined
    out = M.score_protocol(y, constant, ["x"] * 40, n_resamples=200, dims=["a", "b"])
    assert set(out) == {"r2", "r2_ci", "pearson_r", "pearson_r_ci", "spearman", "mse",
                        "within_passage_r", "n", "k", "per_dim", "ci_unit"}
    assert out["ci_unit"] == "segment"
    assert set(out["per_dim"]["a"]) == {"r", "r_ci", "r2", "within_passage_r"}
    assert out["pearson_r"] is None and out["per_dim"]["a"]["r_ci"] == [None, None]
    assert isinstance(out["r2"], float) and out["r2"] == round(out["r2"], 6)
    json.dumps(out, allow_nan=False)


def test_score_protocol_checks_dimension_names():
    y, p = synthetic(20, 1, d=2)
    with pytest.raises(ValueError, match="dimension names"):
        M.score_protocol(y, p, ["x"] * 20, n_resamples=200, dims=["a", "b", "c"])


def test_jsonable():
    assert M.jsonable({"a": np.float64(np.nan), "b": [np.float32(0.1234567891), np.int64(3)],
                       "c": (np.inf, True)}) == {"a": None, "b": [0.123457, 3], "c": [None, True]}


# --------------------------------------------------------------------------- cluster bootstrap


def test_cluster_bootstrap_with_singleton_clusters_is_the_row_bootstrap():
    y, p = synthetic(40, 2)
    rows = M.bootstrap_ci(y, p, n_resamples=200, seed=1)
    singletons = M.bootstrap_ci(y, p, clusters=[f"c{i:02d}" for i in range(40)], n_resamples=200, seed=1)
    assert rows["r2"] == singletons["r2"]
    np.testing.assert_array_equal(rows["ensemble"]["per_dim_r"], singletons["ensemble"]["per_dim_r"])


def test_cluster_bootstrap_is_wider_when_rows_of_a_cluster_share_their_error():
    rng = np.random.default_rng(0)
    n_clusters, size = 20, 10
    y = rng.normal(size=(n_clusters * size, 2))
    shared = np.repeat(rng.normal(scale=0.8, size=(n_clusters, 2)), size, axis=0)  # a passage's bias
    p = (y + shared + rng.normal(scale=0.1, size=y.shape))[None]
    clusters = np.repeat(np.arange(n_clusters), size)
    by_row = M.bootstrap_ci(y, p, n_resamples=500, seed=0)["r2"]
    by_cluster = M.bootstrap_ci(y, p, clusters=clusters, n_resamples=500, seed=0)["r2"]
    assert by_cluster[1] - by_cluster[0] > 1.5 * (by_row[1] - by_row[0])
    with pytest.raises(ValueError, match="one entry per row"):
        M.bootstrap_ci(y, p, clusters=clusters[:-1])


def test_seed_mean_ci_brackets_the_mean_over_draws():
    y, p = synthetic(60, 1, d=3, noise=0.3)
    names = np.repeat([f"g{i}" for i in range(12)], 5)
    sets = [(y[:30], p[:, :30]), (y[30:], p[:, 30:])]
    ci = M.seed_mean_ci(sets, [names[:30], names[30:]], n_resamples=300, seed=0)
    mean = np.mean([M.r2(y[:30], p[0, :30]), M.r2(y[30:], p[0, 30:])])
    assert ci["r2"][0] < mean < ci["r2"][1]


def test_paired_difference_sees_a_real_gap_and_not_an_absent_one():
    y, _ = synthetic(120, 1, d=3)
    rng = np.random.default_rng(5)
    good = (y + rng.normal(scale=0.2, size=y.shape))[None]
    bad = (y + rng.normal(scale=0.6, size=y.shape))[None]
    twin = (y + rng.normal(scale=0.2, size=y.shape))[None]
    groups = np.repeat(np.arange(24), 5)
    gap = M.paired_r2_difference([(y, good)], [(y, bad)], [groups], n_resamples=500)
    assert gap["difference"] == pytest.approx(M.r2(y, good[0]) - M.r2(y, bad[0]))
    assert gap["significant"] and gap["ci"][0] > 0
    level = M.paired_r2_difference([(y, good)], [(y, twin)], [groups], n_resamples=500)
    assert level["ci"][0] < level["difference"] < level["ci"][1]
    with pytest.raises(ValueError, match="same rows"):
        M.paired_r2_difference([(y, good)], [(y[::-1], bad)], [groups], n_resamples=500)


def test_holm_matches_the_step_down_rule():
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.2])
    adj = M.holm(p)
    # sorted 0.01, 0.03, 0.04, 0.2 over m = 4: 0.04, 0.09, max(0.09, 0.08) = 0.09, 0.2
    np.testing.assert_allclose(adj, [0.04, 0.09, 0.09, np.nan, 0.2])
    with pytest.raises(ValueError, match="p-values"):
        M.holm([1.5])


def test_joint_percentile_discards_resamples_that_empty_a_draw():
    y, p = synthetic(60, 1, d=2, noise=0.2)
    names = np.repeat([f"g{i}" for i in range(20)], 3)
    small = (y[:3], p[:, :3])  # one group: often absent from a resample
    ci = M.seed_mean_ci([(y, p), small], [names, names[:3]], n_resamples=400, seed=1)
    assert 0 < ci["resamples"] < 400  # about (19/20)^20 of the draws keep g0
    assert np.isfinite(ci["r2"]).all()
