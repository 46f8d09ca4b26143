"""Cross-fitted tier scorers and their ranking report."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold

from pianoeval.evaluate.ranking import mean_kendall_tau, pairwise_accuracy
from pianoeval.progress import Progress
from pianoeval.tier_ranker.model import RankerConfig, fit_tier_scorer

log = logging.getLogger(__name__)
# Columns of samples.csv that describe a sample, not its performance: never features.
META = ("sample", "item", "source", "work", "family", "variant", "tier")


def pair_indices(rows: pd.DataFrame, pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of (better, worse) for the pairs whose two samples are both in ``rows``."""
    pos = pd.Series(np.arange(len(rows)), index=rows["sample"].to_numpy())
    inside = pairs["better"].isin(pos.index) & pairs["worse"].isin(pos.index)
    return (pos[pairs.loc[inside, "better"]].to_numpy(),
            pos[pairs.loc[inside, "worse"]].to_numpy())


def cross_fit_scores(rows: pd.DataFrame, pairs: pd.DataFrame, features: list[str],
                     config: RankerConfig, n_folds: int = 4,
                     progress: Progress | None = None) -> np.ndarray:
    """Out-of-fold score of every row: ``n_folds`` GroupKFold folds over ``rows["work"]`` (fewer
    when there are fewer works), a scorer fitted on the pairs inside the other folds scores
    the held-out works. ``progress`` counts one step per fold scorer."""
    n_works = rows["work"].nunique()
    if n_works < 2:
        raise ValueError(f"need at least 2 works to hold one out, got {n_works}")
    X = rows[features].to_numpy(float)
    scores = np.full(len(rows), np.nan)
    for train, test in GroupKFold(n_splits=min(n_folds, n_works)).split(X, groups=rows["work"]):
        better, worse = pair_indices(rows.iloc[train], pairs)
        scorer = fit_tier_scorer(X[train], better, worse, config)
        scores[test] = scorer.score(X[test])
        if progress is not None:
            progress.update()
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


def ranker_config(params: dict) -> RankerConfig:
    """The ``train_tiers`` params section as a RankerConfig (YAML reads ``1`` for a float as an
    int and ``1e-3`` as a string, hence the casts)."""
    return RankerConfig(hidden=int(params["hidden"]), margin=float(params["margin"]),
                        lr=float(params["lr"]), weight_decay=float(params["weight_decay"]),
                        epochs=int(params["epochs"]), seed=int(params["seed"]))


def modality_features(columns, modality: str) -> list[str]:
    """The feature columns of ``modality`` ("midi" or "audio"): ``audio_*`` for audio, the rest
    for MIDI, never the metadata nor the ``deg_*`` degradation settings (they give the tier)."""
    return [c for c in columns if c not in META and not c.startswith("deg_")
            and c.startswith("audio_") == (modality == "audio")]


def score_modalities(samples: pd.DataFrame, pairs: pd.DataFrame, config: RankerConfig,
                     n_folds: int) -> tuple[pd.DataFrame, dict]:
    """Out-of-fold scores of the MIDI samples and of the audio samples (family "audio"), one
    scorer per modality on its own features, and their ranking report: overall pairwise
    accuracy, then one :func:`ranking_report` per modality. A modality with fewer than two
    works has nothing to hold out and is skipped. The scores are ``META`` + modality + score."""
    scored, metrics = [], {}
    is_audio = samples["family"] == "audio"
    modalities = []
    for modality, rows in (("midi", samples[~is_audio]), ("audio", samples[is_audio])):
        if rows["work"].nunique() < 2:
            log.warning("%s: %d sample(s) from %d work(s), nothing to hold out: skipped",
                        modality, len(rows), rows["work"].nunique())
        else:
            modalities.append((modality, rows.reset_index(drop=True)))
    n_scorers = sum(min(n_folds, rows["work"].nunique()) for _, rows in modalities)
    with Progress("train_tiers", n_scorers, "fold scorers") as progress:
        for modality, rows in modalities:
            features = modality_features(rows.columns, modality)
            scores = cross_fit_scores(rows, pairs, features, config, n_folds, progress)
            scored.append(rows[list(META)].assign(modality=modality, score=scores))
            metrics[modality] = ranking_report(rows.assign(score=scores), pairs)
            log.info("%s: pairwise accuracy %.3f on held-out works (%d pairs, %d features)",
                     modality, metrics[modality]["pairwise_accuracy"],
                     metrics[modality]["n_pairs"], len(features))
    all_scores = pd.concat(scored, ignore_index=True)
    overall = ranking_report(all_scores, pairs)["pairwise_accuracy"]
    return all_scores, {"pairwise_accuracy": overall, **metrics}
