"""Cross-fitted tier scorers and their ranking report."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold

from pianoeval.evaluate.ranking import mean_kendall_tau, pairwise_accuracy
from pianoeval.models.tiers import RankerConfig, fit_tier_scorer


def pair_indices(rows: pd.DataFrame, pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of (better, worse) for the pairs whose two samples are both in ``rows``."""
    pos = pd.Series(np.arange(len(rows)), index=rows["sample"].to_numpy())
    inside = pairs["better"].isin(pos.index) & pairs["worse"].isin(pos.index)
    return (pos[pairs.loc[inside, "better"]].to_numpy(),
            pos[pairs.loc[inside, "worse"]].to_numpy())


def cross_fit_scores(rows: pd.DataFrame, pairs: pd.DataFrame, features: list[str],
                     config: RankerConfig, n_folds: int = 4) -> np.ndarray:
    """Out-of-fold score of every row: ``n_folds`` GroupKFold folds over ``rows["work"]`` (fewer
    when there are fewer works), a scorer fitted on the pairs inside the other folds scores
    the held-out works."""
    n_works = rows["work"].nunique()
    if n_works < 2:
        raise ValueError(f"need at least 2 works to hold one out, got {n_works}")
    X = rows[features].to_numpy(float)
    scores = np.full(len(rows), np.nan)
    for train, test in GroupKFold(n_splits=min(n_folds, n_works)).split(X, groups=rows["work"]):
        better, worse = pair_indices(rows.iloc[train], pairs)
        scorer = fit_tier_scorer(X[train], better, worse, config)
        scores[test] = scorer.score(X[test])
    return scores


def ranking_report(scored: pd.DataFrame, pairs: pd.DataFrame) -> dict:
    """Pairwise accuracy (overall, per family, per variant, per tier gap) and mean Kendall tau
    per tier ladder (one passage x family), over the pairs whose samples are both scored."""
    score = scored.set_index("sample")["score"]
    variant = scored.set_index("sample")["variant"]
    p = pairs[pairs["better"].isin(score.index) & pairs["worse"].isin(score.index)].copy()
    if p.empty:
        raise ValueError("no scored pairs")
    p["s_better"], p["s_worse"] = score[p["better"]].to_numpy(), score[p["worse"]].to_numpy()
    p["variant"] = variant[p["worse"]].to_numpy()  # the worse one is always degraded
    p["gap"] = p["tier_worse"] - p["tier_better"]
    acc = lambda g: pairwise_accuracy(g["s_better"], g["s_worse"])
    ladders = pd.concat([
        p[["item", "family", "better", "tier_better"]].set_axis(["item", "family", "sample", "tier"], axis=1),
        p[["item", "family", "worse", "tier_worse"]].set_axis(["item", "family", "sample", "tier"], axis=1),
    ]).drop_duplicates()
    ladders["score"] = score[ladders["sample"]].to_numpy()
    return {
        "pairwise_accuracy": acc(p),
        "pairwise_accuracy_by_family": {f: acc(g) for f, g in p.groupby("family")},
        "pairwise_accuracy_by_variant": {f"{f}/{v}": acc(g) for (f, v), g
                                         in p.groupby(["family", "variant"])},
        "pairwise_accuracy_by_tier_gap": {int(k): acc(g) for k, g in p.groupby("gap")},
        "pairwise_accuracy_by_tiers": {f"{a}<{b}": acc(g) for (a, b), g
                                       in p.groupby(["tier_better", "tier_worse"])},
        "kendall_tau": mean_kendall_tau(ladders, ["item", "family"]),
        "kendall_tau_by_family": {f: mean_kendall_tau(g, ["item"]) for f, g
                                  in ladders.groupby("family")},
        "n_pairs": len(p),
        "n_pairs_by_family": p["family"].value_counts().sort_index().to_dict(),
    }
