"""The `weak_labels` stage's steps: label the samples with the LFs and the label model, and
report both against the known tiers."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold

from pianoeval.weak.labeling import (Aggregated, Reference, accuracy_report, aggregate,
                                     apply_lfs, lf_analysis)


@dataclass(frozen=True)
class WeakLabels:
    """The LFs' reference, their label matrix L (samples x LFs), their names, and the
    aggregation of L (label model and majority vote)."""

    reference: Reference
    L: np.ndarray
    names: list[str]
    agg: Aggregated


def design_prior(samples: pd.DataFrame) -> np.ndarray:
    """The share of each tier 0..3 in the generator's design: one clean sample and, at each
    tier 1..3, one per family of the degraded samples."""
    n_families = samples.loc[samples["tier"] > 0, "family"].nunique()
    return np.array([1.0] + [n_families] * 3) / (1 + 3 * n_families)


def weak_label(samples: pd.DataFrame, params: dict) -> WeakLabels:
    """Fit the LFs' reference on the tier-0 samples, apply the LFs to every sample and
    aggregate their votes, as the `weak_labels` section of params.yaml (``params``) says."""
    levels = [float(q) for q in params["tier_quantiles"]]
    typical = float(params["typical_quantile"])
    # the reference: the real performances themselves (tier 0), never the degraded ones
    reference = Reference.fit(samples[samples["tier"] == 0], levels + [typical])
    L, names = apply_lfs(samples, reference, levels, typical)
    lm = params["label_model"]
    agg = aggregate(L, epochs=int(lm["epochs"]), lr=float(lm["lr"]), l2=float(lm["l2"]),
                    seed=int(lm["seed"]),
                    class_balance=design_prior(samples) if lm["design_prior"] else None)
    return WeakLabels(reference, L, names, agg)


def labels_table(samples: pd.DataFrame, weak: WeakLabels) -> pd.DataFrame:
    """Per sample: its ids and tier, every LF's vote (``lf_<name>``), the label model's tier
    probabilities ``p0..p3`` (6 decimals), its tier (``label_model``) and the majority vote."""
    out = samples[["sample", "item", "family", "variant", "tier"]].copy()
    for j, name in enumerate(weak.names):
        out[f"lf_{name}"] = weak.L[:, j]
    for k in range(weak.agg.probs.shape[1]):
        out[f"p{k}"] = weak.agg.probs[:, k].round(6)
    out["label_model"], out["majority"] = weak.agg.label_model, weak.agg.majority
    return out


def development_mask(works: pd.Series) -> np.ndarray:
    """True on the development quarter of the works (the held-out fold of the first
    GroupKFold split by work, min(4, number of works) folds); all False under 2 works."""
    dev = np.zeros(len(works), bool)
    n_splits = min(4, works.nunique())
    if n_splits >= 2:
        dev[next(GroupKFold(n_splits=n_splits).split(works, groups=works))[1]] = True
    return dev


def _json_cell(value):
    """A LFAnalysis cell as JSON: strings kept, lists as ints, numbers rounded to 4 places."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return [int(x) for x in value]
    return round(float(value), 4)


def weak_metrics(labels: pd.DataFrame, weak: WeakLabels, dev: np.ndarray) -> dict:
    """The stage's metrics: label model and majority vote against the tiers overall, on the
    works outside the development quarter (``dev``) and per family; Snorkel's LFAnalysis;
    and the reference's quantiles. ``labels``: :func:`labels_table` of ``weak``."""
    truth, lm, mv = labels["tier"].to_numpy(), weak.agg.label_model, weak.agg.majority
    per_family = {family: {"label_model": accuracy_report(rows["label_model"], rows["tier"]),
                           "majority": accuracy_report(rows["majority"], rows["tier"])}
                  for family, rows in labels.groupby("family")}
    analysis = lf_analysis(weak.L, weak.names, truth)
    analysis = analysis.rename(columns=lambda c: c.lower().replace(" ", "_").replace(".", ""))
    return {
        "n_samples": len(labels), "n_lfs": len(weak.names),
        "label_model": accuracy_report(lm, truth),
        "majority_vote": accuracy_report(mv, truth),
        "holdout_works": {"n_samples": int((~dev).sum()),
                          "label_model": accuracy_report(lm[~dev], truth[~dev]),
                          "majority_vote": accuracy_report(mv[~dev], truth[~dev])},
        "by_family": per_family,
        "lf_analysis": {name: {k: _json_cell(v) for k, v in row.items()}
                        for name, row in analysis.iterrows()},
        "reference_quantiles": {f"{q:g}": {k: round(float(v), 6) for k, v in row.items()}
                                for q, row in weak.reference.quantiles.iterrows()},
    }
