"""Ranking measures for quality tiers."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def pairwise_accuracy(score_better: np.ndarray, score_worse: np.ndarray) -> float:
    """Share of pairs ranked right: ``mean(s_better > s_worse)`` (a tie counts half)."""
    sb, sw = np.asarray(score_better, float), np.asarray(score_worse, float)
    if sb.shape != sw.shape or sb.size == 0:
        raise ValueError(f"need two equal, non-empty score arrays, got {sb.shape} and {sw.shape}")
    return float(np.mean((sb > sw) + 0.5 * (sb == sw)))


def mean_kendall_tau(frame: pd.DataFrame, group: list[str], tier: str = "tier",
                     score: str = "score") -> float:
    """Mean over groups (one passage's tier ladder) of Kendall's tau-b between ``-tier`` and the
    score (1 = the score orders the ladder exactly); groups with one tier are left out."""
    taus = []
    for _, g in frame.groupby(group):
        if g[tier].nunique() > 1:
            tau = stats.kendalltau(-g[tier].to_numpy(), g[score].to_numpy()).statistic
            if np.isfinite(tau):
                taus.append(tau)
    if not taus:
        raise ValueError("no group with two or more tiers")
    return float(np.mean(taus))
