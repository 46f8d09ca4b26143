"""Scores of predicted perceptual ratings against expert labels.

Pure functions, one per measure, in the style of ``mir_eval``: every function validates its
inputs and raises ``ValueError`` with a message naming the problem. Label and prediction arrays
have shape ``(n, d)``: ``n`` performance segments (rows) by ``d`` perceptual dimensions. A 1-D
array is read as one dimension.

Point estimates come from scikit-learn and SciPy. The bootstrap needs the same scores for
thousands of resamples, so :func:`resampled_scores` recomputes R^2 and Pearson r from weighted
moments in NumPy; the tests check it against the library values.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats
from sklearn.metrics import mean_squared_error, r2_score

from pianoeval.data.dimensions import DIMENSIONS

# Predictions whose variance is below this fraction of their raw second moment count as
# constant: moment-based variances of a constant come out as rounding noise, not exactly 0.
_CONSTANT_RTOL = 1e-12


# --------------------------------------------------------------------------- validation


def validate(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(y_true, y_pred)`` as float arrays of shape ``(n, d)``; ValueError if unusable."""
    y_true = _as_2d(y_true, "y_true")
    y_pred = _as_2d(y_pred, "y_pred")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}")
    return y_true, y_pred


def _as_2d(a, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D (segments x dimensions), got {a.ndim}-D")
    if a.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 rows (segments), got {a.shape[0]}")
    if a.shape[1] < 1:
        raise ValueError(f"{name} has no dimensions (columns)")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def validate_models(y_true, y_pred_models) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(y_true (n, d), y_pred_models (k, n, d))``; a single ``(n, d)`` prediction is k=1."""
    y_true = _as_2d(y_true, "y_true")
    p = np.asarray(y_pred_models, dtype=float)
    if p.ndim == 2:
        p = p[None]
    if p.ndim != 3 or p.shape[0] < 1:
        raise ValueError(f"y_pred_models must have shape (k, n, d), got {p.shape}")
    if p.shape[1:] != y_true.shape:
        raise ValueError(f"y_pred_models has shape {p.shape}; expected (k, {y_true.shape[0]}, {y_true.shape[1]})")
    if not np.isfinite(p).all():
        raise ValueError("y_pred_models contains NaN or infinite values")
    return y_true, p


# --------------------------------------------------------------------------- point measures


def r2_per_dim(y_true, y_pred) -> np.ndarray:
    """Coefficient of determination per dimension: ``R^2_j = 1 - SS_res,j / SS_tot,j``.

    ``SS_res,j = sum_i (y_ij - p_ij)^2`` and ``SS_tot,j = sum_i (y_ij - mean_i y_ij)^2``
    (scikit-learn ``r2_score``; a constant label column scores 1 if predicted exactly, else 0).
    """
    y_true, y_pred = validate(y_true, y_pred)
    return np.asarray(r2_score(y_true, y_pred, multioutput="raw_values"), dtype=float)


def r2(y_true, y_pred) -> float:
    """R^2 averaged uniformly over dimensions: ``mean_j R^2_j`` (the PercePiano headline score)."""
    y_true, y_pred = validate(y_true, y_pred)
    return float(r2_score(y_true, y_pred, multioutput="uniform_average"))


def mse(y_true, y_pred) -> float:
    """Mean squared error over all cells: ``mean_ij (y_ij - p_ij)^2``."""
    y_true, y_pred = validate(y_true, y_pred)
    return float(mean_squared_error(y_true, y_pred))


def pearson_per_dim(y_true, y_pred) -> np.ndarray:
    """Pearson r per dimension: ``cov(y_j, p_j) / (sd(y_j) sd(p_j))``; NaN where a column is constant."""
    y_true, y_pred = validate(y_true, y_pred)
    with warnings.catch_warnings():
        # A constant prediction (the mean baseline) has no correlation; NaN says so.
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        warnings.simplefilter("ignore", stats.NearConstantInputWarning)
        return np.asarray(stats.pearsonr(y_true, y_pred, axis=0).statistic, dtype=float)


def mean_pearson_r(y_true, y_pred) -> float:
    """Mean over dimensions of the per-dimension Pearson r (NaN if any dimension's r is NaN)."""
    return float(np.mean(pearson_per_dim(y_true, y_pred)))


def spearman_per_dim(y_true, y_pred) -> np.ndarray:
    """Spearman rho per dimension: Pearson r of the ranks (ties get mean ranks); NaN if constant."""
    y_true, y_pred = validate(y_true, y_pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        # spearmanr on 2-D input correlates every column with every other, so go column by column.
        return np.array([stats.spearmanr(y_true[:, j], y_pred[:, j]).statistic
                         for j in range(y_true.shape[1])], dtype=float)


def mean_spearman(y_true, y_pred) -> float:
    """Mean over dimensions of the per-dimension Spearman rho."""
    return float(np.mean(spearman_per_dim(y_true, y_pred)))


def within_passage_r(y_true, y_pred, passages: Sequence, min_size: int = 5) -> np.ndarray:
    """Per-dimension Pearson r among performances of the same music, averaged over passages.

    For every passage ``g`` with at least ``min_size`` rows, ``r_gj = pearson(y[g, j], p[g, j])``;
    the result is ``nanmean_g r_gj`` (constant columns give NaN and are skipped; a dimension
    with no usable passage is NaN). This removes the between-piece variance that a model can
    exploit by recognising the music rather than judging the playing. Its scalar summary is
    ``np.nanmean`` of the returned array.
    """
    y_true, y_pred = validate(y_true, y_pred)
    passages = np.asarray(passages)
    if passages.shape != (y_true.shape[0],):
        raise ValueError(f"passages must have one id per row ({y_true.shape[0]}), got shape {passages.shape}")
    if min_size < 3:
        raise ValueError(f"min_size must be at least 3 (2 points always correlate perfectly), got {min_size}")
    _, group, sizes = np.unique(passages, return_inverse=True, return_counts=True)
    rs = [pearson_per_dim(y_true[group == g], y_pred[group == g])
          for g in np.flatnonzero(sizes >= min_size)]
    if not rs:
        return np.full(y_true.shape[1], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column -> NaN is the answer
        return np.nanmean(np.vstack(rs), axis=0)


def williams_test(r12, r13, r23, n: int):
    """Williams' t for two dependent correlations sharing variable 1 (Steiger 1980, eq. 15).

    Tests H0: rho12 = rho13, where 1 = labels, 2 = model A, 3 = model B, all on the same n rows:

        t = (r12 - r13) * sqrt((n-1)(1+r23) / (2 (n-1)/(n-3) |R| + ((r12+r13)^2 / 4)(1-r23)^3))
        |R| = 1 - r12^2 - r13^2 - r23^2 + 2 r12 r13 r23,   df = n - 3,   p two-sided.

    Inputs broadcast (e.g. one value per dimension); returns ``(t, p)`` as floats for scalar
    input, else arrays. NaN correlations (undefined r, e.g. a constant prediction) give NaN.
    """
    r12, r13, r23 = (np.asarray(r, dtype=float) for r in (r12, r13, r23))
    for name, r in (("r12", r12), ("r13", r13), ("r23", r23)):
        if np.any(np.abs(r[~np.isnan(r)]) > 1):
            raise ValueError(f"{name} must lie in [-1, 1], got {r}")
    if int(n) != n or n <= 3:
        raise ValueError(f"n must be an integer above 3 (df = n - 3), got {n}")
    det = 1 - r12**2 - r13**2 - r23**2 + 2 * r12 * r13 * r23
    denom = 2 * (n - 1) / (n - 3) * det + ((r12 + r13) ** 2 / 4) * (1 - r23) ** 3
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (r12 - r13) * np.sqrt((n - 1) * (1 + r23) / denom)
    p = 2 * stats.t.sf(np.abs(t), df=n - 3)
    if t.ndim == 0:
        return float(t), float(p)
    return t, p


# |r| = 1 has an infinite Fisher z; clipping keeps q finite (|atanh| <= ~10.7) for a perfect
# correlation, which real predictions never reach, instead of returning inf or NaN.
_Q_CLIP = 1 - 1e-9


def cohens_q(r1, r2):
    """Cohen's q, the effect size of a difference between two correlations (Fisher z difference):

        q = atanh(r1) - atanh(r2) = 0.5 ln((1+r1)/(1-r1)) - 0.5 ln((1+r2)/(1-r2))

    Cohen's (1988) rule of thumb for |q|: 0.1 small, 0.3 medium, 0.5 large. Inputs broadcast;
    |r| is clipped to 1 - 1e-9 (a perfect correlation gives a large finite q, not inf). Returns
    a float for scalar input, else an array. NaN r (undefined, e.g. a constant prediction)
    gives NaN; |r| > 1 raises ValueError.
    """
    r1, r2 = (np.asarray(r, dtype=float) for r in (r1, r2))
    for name, r in (("r1", r1), ("r2", r2)):
        if np.any(np.abs(r[~np.isnan(r)]) > 1):
            raise ValueError(f"{name} must lie in [-1, 1], got {r}")
    q = np.arctanh(np.clip(r1, -_Q_CLIP, _Q_CLIP)) - np.arctanh(np.clip(r2, -_Q_CLIP, _Q_CLIP))
    return float(q) if q.ndim == 0 else q


# --------------------------------------------------------------------------- bootstrap


def _moment_features(y_true: np.ndarray, y_pred_sets: np.ndarray) -> np.ndarray:
    """Per-row terms whose (weighted) column sums give R^2 and r of every prediction set."""
    # Shifting labels and predictions by the same constant leaves R^2 and r unchanged and keeps
    # the sums of squares small, so the moment formulas lose little to cancellation.
    shift = y_true.mean(axis=0)
    y = y_true - shift
    cols = [y, y * y]
    for p in y_pred_sets - shift:
        cols += [p, p * p, y * p, (y - p) ** 2]
    return np.concatenate(cols, axis=1)


def _scores_from_moments(S: np.ndarray, N: np.ndarray, m: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """``(R^2_j, r_j)`` of shape (B, m, d) from summed features S (B, F) over N (B,) rows."""
    N = N[:, None, None]
    sy, syy = S[:, None, :d], S[:, None, d:2 * d]
    sp, spp, syp, sres = (S[:, 2 * d:].reshape(len(S), m, 4, d)[:, :, i] for i in range(4))
    ss_tot = syy - sy * sy / N
    var_p = spp - sp * sp / N
    cov = syp - sy * sp / N
    with np.errstate(divide="ignore", invalid="ignore"):
        r2_dims = np.where(ss_tot > 0, 1 - sres / ss_tot, np.where(sres == 0, 1.0, 0.0))
        constant = (var_p <= _CONSTANT_RTOL * spp) | (ss_tot <= _CONSTANT_RTOL * syy)
        r = np.where(constant, np.nan, cov / np.sqrt(ss_tot * var_p))
    return r2_dims, np.clip(r, -1, 1)


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    """How often each of the n rows occurs in each resample: (B, m) indices -> (B, n) counts."""
    B = idx.shape[0]
    flat = (idx + n * np.arange(B)[:, None]).ravel()
    return np.bincount(flat, minlength=B * n).reshape(B, n).astype(float)


def resampled_scores(y_true, y_pred_models, idx) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension R^2 and Pearson r of each prediction set on each row resample.

    ``idx`` (B, m) holds row indices (repeats allowed); the result is ``(r2_dims, r)``, both
    (B, k, d). Equal to ``r2_per_dim`` / ``pearson_per_dim`` on ``y[idx[b]]`` up to rounding,
    computed as weighted moments (one matrix product) so thousands of resamples take
    milliseconds.
    """
    y_true, p = validate_models(y_true, y_pred_models)
    idx = np.atleast_2d(np.asarray(idx))
    if idx.ndim != 2 or not np.issubdtype(idx.dtype, np.integer):
        raise ValueError("idx must be a 2-D integer array of row indices")
    if idx.size and (idx.min() < 0 or idx.max() >= len(y_true)):
        raise ValueError(f"idx must index rows 0..{len(y_true) - 1}")
    w = _counts(idx, len(y_true))
    S = w @ _moment_features(y_true, p)
    return _scores_from_moments(S, w.sum(axis=1), p.shape[0], p.shape[2])


def cluster_codes(clusters, n: int) -> tuple[np.ndarray, int]:
    """Row -> cluster index (0..G-1) and G; ``None`` makes every row its own cluster."""
    if clusters is None:
        return np.arange(n), n
    clusters = np.asarray(clusters)
    if clusters.shape != (n,):
        raise ValueError(f"clusters must have one entry per row ({n}), got shape {clusters.shape}")
    _, codes = np.unique(clusters, return_inverse=True)
    return codes, int(codes.max()) + 1 if n else 0


def cluster_bootstrap(statistic, n_clusters: int, *, n_resamples: int = 1000, seed: int = 0,
                      confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """BCa interval of a vector statistic under resampling of whole clusters.

    ``statistic(counts)`` maps (B, G) draw counts of the G clusters (how often each cluster is in
    each resample) to (B, m) statistics. Clusters, not rows, are drawn with replacement, and
    the BCa jackknife leaves out one cluster at a time, so rows that share a cluster (the
    segments of one passage group) move together. Returns the (m,) lower and upper bounds
    (NaN with fewer than 2 clusters).
    """
    if int(n_resamples) != n_resamples or n_resamples < 100:
        raise ValueError(f"n_resamples must be an integer >= 100 for a BCa interval, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    if n_clusters < 2:  # nothing to resample: the interval is undefined, not zero-width
        width = np.asarray(statistic(np.ones((1, max(n_clusters, 1))))).shape[1]
        return np.full(width, np.nan), np.full(width, np.nan)

    def vectorised(idx, axis=-1):
        lead = idx.shape[:-1]
        counts = _counts(idx.reshape(-1, idx.shape[-1]), n_clusters)
        return statistic(counts).T.reshape(-1, *lead)  # (statistics, *resamples)

    with warnings.catch_warnings():
        # An undefined statistic (e.g. r of constant predictions) gives a NaN bound.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.bootstrap((np.arange(n_clusters),), vectorised, n_resamples=int(n_resamples),
                              vectorized=True, confidence_level=confidence, method="BCa",
                              rng=np.random.default_rng(seed))
    return res.confidence_interval.low, res.confidence_interval.high


def _prediction_sets(p: np.ndarray) -> np.ndarray:
    """The k fold models' predictions, plus their mean (the ensemble) when k > 1."""
    return np.concatenate([p, p.mean(axis=0, keepdims=True)]) if p.shape[0] > 1 else p


def _set_scores(y_true: np.ndarray, p: np.ndarray, codes: np.ndarray):
    """A function of cluster counts (B, G) -> ``_stat_vector`` rows of the k models and, when
    k > 1, of their ensemble: (B, 2 + d) or (B, 2 * (2 + d))."""
    k, _, d = p.shape
    sets = _prediction_sets(p)
    X = _moment_features(y_true, sets)

    def scores(counts: np.ndarray) -> np.ndarray:
        w = counts[:, codes]
        r2_dims, r = _scores_from_moments(w @ X, w.sum(axis=1), len(sets), d)
        out = [_stat_vector(r2_dims[:, :k], r[:, :k])]
        if k > 1:
            out.append(_stat_vector(r2_dims[:, k:], r[:, k:]))
        return np.concatenate(out, axis=1)
    return scores


def bootstrap_ci(y_true, y_pred_models, *, clusters=None, n_resamples: int = 1000, seed: int = 0,
                 confidence: float = 0.95) -> dict:
    """BCa bootstrap confidence intervals of R^2, mean r and per-dimension r.

    ``clusters`` (n,) names each row's cluster (the passage group of a segment): whole clusters
    are resampled with replacement (:func:`cluster_bootstrap`); ``None`` resamples rows. The k
    fold-model predictions of a row travel together, and each resample is scored as the mean
    over the k models (as the point estimates are). With k > 1 the mean of the k predictions
    (the ensemble) is scored on the same resamples. Weighted moments (``resampled_scores``)
    score all resamples and the jackknife sets in a few matrix products.

    Returns ``{"r2": (lo, hi), "pearson_r": (lo, hi), "per_dim_r": (lo[d], hi[d])}`` plus, when
    k > 1, the same three under ``"ensemble"``. Deterministic for a given ``seed``.
    """
    y_true, p = validate_models(y_true, y_pred_models)
    k, n, d = p.shape
    codes, n_clusters = cluster_codes(clusters, n)
    lo, hi = cluster_bootstrap(_set_scores(y_true, p, codes), n_clusters, n_resamples=n_resamples,
                               seed=seed, confidence=confidence)
    out = _unpack_ci(lo[: d + 2], hi[: d + 2])
    if k > 1:
        out["ensemble"] = _unpack_ci(lo[d + 2:], hi[d + 2:])
    return out


def joint_cluster_percentile(statistic, n_clusters: int, members: Sequence[np.ndarray], *,
                             n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95
                             ) -> tuple[np.ndarray, np.ndarray, int]:
    """Bias-corrected percentile interval of ``statistic(counts)`` (B, m) over resamples of whole
    clusters that leave every set of ``members`` (each an array of the cluster indices a set's
    rows belong to) with rows.

    Several split draws share one cluster vocabulary: a resample draws clusters once, for every
    draw at once. A small test set (a few music groups) is left empty by some resamples; those
    resamples are discarded (a conditional bootstrap) rather than scored without that draw,
    which would favour the draws with more groups. R^2 on a resample of a few large clusters
    is biased low, so the percentiles are bias-corrected (Efron's BC: z0 = Phi^-1(share of
    resampled values below the estimate), bounds at Phi(2 z0 +- z)); BCa's acceleration
    needs a jackknife that this conditional scheme does not have. Returns (lower, upper,
    resamples kept).
    """
    if int(n_resamples) != n_resamples or n_resamples < 100:
        raise ValueError(f"n_resamples must be an integer >= 100, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    estimate = np.asarray(statistic(np.ones((1, n_clusters))))[0]
    if n_clusters < 2:
        return np.full(len(estimate), np.nan), np.full(len(estimate), np.nan), 0
    rng = np.random.default_rng(seed)
    counts = _counts(rng.integers(0, n_clusters, (int(n_resamples), n_clusters)), n_clusters)
    kept = np.all([counts[:, np.unique(m)].sum(axis=1) > 0 for m in members], axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        values = statistic(counts[kept])
        below = np.clip(np.mean(values < estimate, axis=0), 1 / (2 * len(values)),
                        1 - 1 / (2 * len(values)))
        z0, z = stats.norm.ppf(below), stats.norm.ppf((1 + confidence) / 2)
        lo_q, hi_q = stats.norm.cdf(2 * z0 - z), stats.norm.cdf(2 * z0 + z)
        lo = np.array([np.nanquantile(values[:, j], lo_q[j]) for j in range(values.shape[1])])
        hi = np.array([np.nanquantile(values[:, j], hi_q[j]) for j in range(values.shape[1])])
    undefined = np.isnan(estimate)
    lo[undefined], hi[undefined] = np.nan, np.nan
    return lo, hi, int(kept.sum())


def _joint_sets(sets: Sequence[tuple], clusters: Sequence) -> tuple[np.ndarray, list, int]:
    """Shared cluster vocabulary, per set (y_true, p, codes), and the dimension count."""
    if len(sets) != len(clusters) or not sets:
        raise ValueError(f"need one cluster array per set, got {len(sets)} sets, {len(clusters)}")
    vocab = np.unique(np.concatenate([np.asarray(c) for c in clusters]))
    out, d = [], None
    for (y_true, y_pred), names in zip(sets, clusters):
        y_true, p = validate_models(y_true, y_pred)
        if d is not None and p.shape[2] != d:
            raise ValueError("every set must have the same dimensions")
        d = p.shape[2]
        if len(names) != p.shape[1]:
            raise ValueError(f"clusters must have one entry per row ({p.shape[1]}), got {len(names)}")
        out.append((y_true, p, np.searchsorted(vocab, np.asarray(names))))
    return vocab, out, d


def seed_mean_ci(sets: Sequence[tuple], clusters: Sequence, *, n_resamples: int = 1000,
                 seed: int = 0, confidence: float = 0.95) -> dict:
    """Intervals of R^2, mean r and per-dimension r averaged over repeated splits.

    ``sets`` holds one ``(y_true, y_pred_models)`` per split draw (e.g. each seed's piece test
    set); ``clusters`` one array of cluster names per set, from one shared vocabulary (the
    passage groups, the same in every draw). Statistic: the mean over sets of each set's score
    (itself the mean over its k fold models). Percentile intervals of
    :func:`joint_cluster_percentile`: one resample draws clusters once and weights every set's
    rows by it, so the draws' scores move together where they share music.
    Returns ``bootstrap_ci``'s keys without ``ensemble``, plus ``resamples`` (kept).
    """
    vocab, joint, d = _joint_sets(sets, clusters)
    scorers = [_set_scores(y, p, codes) for y, p, codes in joint]

    def mean_over_sets(counts):
        return np.mean([f(counts)[:, : d + 2] for f in scorers], axis=0)

    lo, hi, kept = joint_cluster_percentile(mean_over_sets, len(vocab), [c for *_, c in joint],
                                            n_resamples=n_resamples, seed=seed, confidence=confidence)
    return {**_unpack_ci(lo, hi), "resamples": kept}


def paired_r2_difference(sets_a: Sequence[tuple], sets_b: Sequence[tuple], clusters: Sequence, *,
                         n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict:
    """R^2_A - R^2_B with a percentile interval from a paired cluster bootstrap.

    ``sets_a`` and ``sets_b`` hold one ``(y_true, y_pred_models)`` per split draw, on the same
    rows in the same order (both models predicted the same segments); ``clusters`` one cluster
    array per draw. Each resample weights both models' rows identically
    (:func:`joint_cluster_percentile`), so the interval reflects only the difference between
    them. R^2 of a model on a draw is the mean over its k fold models, averaged over draws.
    Returns ``{"difference", "ci", "significant", "resamples"}``, where significant means the
    interval excludes 0.
    """
    if len(sets_a) != len(sets_b):
        raise ValueError("need the same number of sets for A and B")
    vocab, joint_a, _ = _joint_sets(sets_a, clusters)
    _, joint_b, _ = _joint_sets(sets_b, clusters)
    pairs = []
    for (ya, pa, codes), (yb, pb, _) in zip(joint_a, joint_b):
        if ya.shape != yb.shape or not np.allclose(ya, yb):
            raise ValueError("A and B must be scored on the same rows with the same labels")
        pairs.append((_set_scores(ya, pa, codes), _set_scores(yb, pb, codes)))

    def difference(counts):
        return np.mean([fa(counts)[:, :1] - fb(counts)[:, :1] for fa, fb in pairs], axis=0)

    point = float(difference(np.ones((1, len(vocab))))[0, 0])
    lo, hi, kept = joint_cluster_percentile(difference, len(vocab), [c for *_, c in joint_a],
                                            n_resamples=n_resamples, seed=seed, confidence=confidence)
    ci = (float(lo[0]), float(hi[0]))
    return {"difference": point, "ci": ci, "significant": bool(ci[0] > 0 or ci[1] < 0),
            "resamples": kept}


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (family-wise error over the given tests; NaN kept).

    p_adj(i) = max over j <= i of min(1, (m - j + 1) p(j)), p sorted ascending, m the number of
    defined p-values (scipy.stats.false_discovery_control covers FDR, not the family-wise Holm).
    """
    p = np.asarray(p_values, float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if not ok.any():
        return out
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise ValueError(f"p-values must lie in [0, 1], got {p[ok]}")
    order = np.argsort(p[ok])
    m = ok.sum()
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[ok][order]))
    vals = np.empty(m)
    vals[order] = adjusted
    out[ok] = vals
    return out


def _stat_vector(r2_dims: np.ndarray, r: np.ndarray) -> np.ndarray:
    """(B, k, d) scores -> (B, 2 + d): [R^2, mean r, r per dim], each averaged over the k models."""
    return np.concatenate([r2_dims.mean(axis=2).mean(axis=1, keepdims=True),
                           r.mean(axis=2).mean(axis=1, keepdims=True),
                           r.mean(axis=1)], axis=1)


def _unpack_ci(lo: np.ndarray, hi: np.ndarray) -> dict:
    return {"r2": (lo[0], hi[0]), "pearson_r": (lo[1], hi[1]), "per_dim_r": (lo[2:], hi[2:])}


# --------------------------------------------------------------------------- one protocol


def score_protocol(y_true, y_pred_models, passages: Sequence, n_resamples: int = 1000,
                   seed: int = 0, confidence: float = 0.95,
                   dims: Sequence[str] = DIMENSIONS, clusters: Sequence | None = None) -> dict:
    """Every measure for one model on one evaluation protocol, as a JSON-safe dict.

    ``y_pred_models`` is (k, n, d): k = 1 for pooled out-of-fold predictions of a
    cross-validation protocol; k = 4 when each fold model scored the same test set. Every
    measure is then the mean over the k models (as PercePiano averages R^2 over fold models),
    and ``ensemble`` scores the mean of the k predictions. ``clusters`` (the passage group of
    each row) makes the CIs resample whole groups (``ci_unit`` "passage"); without it rows are
    resampled (``ci_unit`` "segment"). Floats are rounded to 6 places and undefined values
    (NaN) become None.
    """
    y_true, p = validate_models(y_true, y_pred_models)
    dims = list(dims)
    if len(dims) != y_true.shape[1]:
        raise ValueError(f"got {len(dims)} dimension names for {y_true.shape[1]} columns")
    ci = bootstrap_ci(y_true, p, clusters=clusters, n_resamples=n_resamples, seed=seed,
                      confidence=confidence)
    out = _measures(y_true, list(p), passages, ci, dims)
    out["ci_unit"] = "segment" if clusters is None else "passage"
    out["n"] = int(y_true.shape[0])
    out["k"] = int(p.shape[0])
    if p.shape[0] > 1:
        out["ensemble"] = _measures(y_true, [p.mean(axis=0)], passages, ci["ensemble"], dims)
    return jsonable(out)


def _measures(y_true, preds: list, passages, ci: dict, dims: list) -> dict:
    """Measures averaged over the prediction sets in ``preds``, with their bootstrap CIs."""
    def avg(f, *args):
        return np.mean([f(y_true, yp, *args) for yp in preds], axis=0)

    r_dims, r2_dims, wp_dims = avg(pearson_per_dim), avg(r2_per_dim), avg(within_passage_r, passages)
    r_lo, r_hi = ci["per_dim_r"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no usable passage at all -> NaN
        wp = float(np.nanmean(wp_dims))
    return {
        "r2": float(avg(r2)), "r2_ci": list(ci["r2"]),
        "pearson_r": float(avg(mean_pearson_r)), "pearson_r_ci": list(ci["pearson_r"]),
        "spearman": float(avg(mean_spearman)), "mse": float(avg(mse)),
        "within_passage_r": wp,
        "per_dim": {dim: {"r": r_dims[j], "r_ci": [r_lo[j], r_hi[j]], "r2": r2_dims[j],
                          "within_passage_r": wp_dims[j]} for j, dim in enumerate(dims)},
    }


def jsonable(obj, ndigits: int = 6):
    """Recursively turn NumPy values into Python ones, round floats, and map NaN/inf to None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v, ndigits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [jsonable(v, ndigits) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return round(float(obj), ndigits) if math.isfinite(obj) else None
    return obj
