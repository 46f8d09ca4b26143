"""A tier scorer: quality score s(x) of a sample, trained so a cleaner sample of the same
passage scores higher, with the pairwise margin ranking loss

    L = mean over pairs (b, w) of max(0, margin - (s(x_b) - s(x_w)))

(``torch.nn.MarginRankingLoss``). s is linear (``hidden: 0``) or a one-hidden-layer MLP over
features standardised on the training rows (NaN -> 0 = the training mean, plus one
missing-value indicator per feature that has any).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class RankerConfig:
    """train_tiers of params.yaml (no defaults here)."""
    hidden: int
    margin: float
    lr: float
    weight_decay: float
    epochs: int
    seed: int


@dataclass
class Standardizer:
    mean: np.ndarray
    std: np.ndarray
    indicators: np.ndarray  # feature columns that get a missing-value indicator

    @classmethod
    def fit(cls, X: np.ndarray) -> "Standardizer":
        mean = np.nanmean(X, axis=0)
        std = np.nanstd(X, axis=0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
        return cls(mean, std, np.flatnonzero(np.isnan(X).any(axis=0)))

    def __call__(self, X: np.ndarray) -> np.ndarray:
        Z = np.nan_to_num((X - self.mean) / self.std, nan=0.0, posinf=0.0, neginf=0.0)
        return np.hstack([np.clip(Z, -10, 10), np.isnan(X[:, self.indicators])]).astype(np.float32)


def make_scorer(n_in: int, hidden: int) -> nn.Module:
    if hidden <= 0:
        return nn.Linear(n_in, 1)
    return nn.Sequential(nn.Linear(n_in, hidden), nn.GELU(), nn.Linear(hidden, 1))


@dataclass
class TierScorer:
    standardizer: Standardizer
    model: nn.Module

    def score(self, X: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.model(torch.from_numpy(self.standardizer(X))).squeeze(1).numpy()


def fit_tier_scorer(X: np.ndarray, better: np.ndarray, worse: np.ndarray,
                    config: RankerConfig) -> TierScorer:
    """Fit s on rows ``X`` and pairs of row indices (``better[i]`` should outscore
    ``worse[i]``); full-batch AdamW, seeded."""
    if len(better) == 0 or len(better) != len(worse):
        raise ValueError(f"need equal, non-empty pair index arrays, got {len(better)}/{len(worse)}")
    torch.manual_seed(config.seed)
    std = Standardizer.fit(X)
    Z = torch.from_numpy(std(X))
    model = make_scorer(Z.shape[1], config.hidden)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = nn.MarginRankingLoss(margin=config.margin)
    b, w = torch.as_tensor(np.array(better, np.int64)), torch.as_tensor(np.array(worse, np.int64))
    target = torch.ones(len(b))
    for _ in range(config.epochs):
        s = model(Z).squeeze(1)
        loss = loss_fn(s[b], s[w], target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return TierScorer(std, model)
