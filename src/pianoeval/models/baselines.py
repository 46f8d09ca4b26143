"""Baselines every later model must beat: the training-fold mean and ridge regression."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.dummy import DummyRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pianoeval.data.dimensions import DIMENSIONS
from pianoeval.models.protocols import cross_fit_protocols


class ClipToTrainingRange(RegressorMixin, BaseEstimator):
    """Clip predictions to each target's range in the training rows.

    The labels are bounded means of 1..7 ratings; a linear model extrapolates far outside that
    range on music unlike its training set (a held-out work). sklearn has no clipping
    meta-estimator, hence this one.
    """

    def __init__(self, estimator):
        self.estimator = estimator

    def fit(self, X, y):
        self.estimator_ = clone(self.estimator).fit(X, y)
        self.low_, self.high_ = np.min(y, axis=0), np.max(y, axis=0)
        return self

    def predict(self, X):
        return np.clip(self.estimator_.predict(X), self.low_, self.high_)


def make_baseline(name: str, config: dict):
    """A fresh, unfitted sklearn estimator for baseline ``name``.

    ridge: median imputation (some score features are undefined, e.g. a score with one constant
    velocity), standardisation, and RidgeCV choosing alpha per dimension by efficient
    leave-one-out on the training rows only (``alpha_per_target``), so no held-out row influences
    the choice; predictions optionally clipped to the training label range.
    """
    if name == "mean":
        return DummyRegressor(strategy="mean")
    if name == "ridge":
        ridge = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                              RidgeCV(alphas=config["ridge"]["alphas"], alpha_per_target=True))
        return ClipToTrainingRange(ridge) if config["ridge"]["clip_to_training_range"] else ridge
    raise ValueError(f"unknown baseline {name!r} (have: mean, ridge)")


def cross_fit(name: str, config: dict, data: pd.DataFrame, feature_cols: list[str],
              splits: pd.DataFrame, split_names=("piece", "performer", "work", "lopo")
              ) -> tuple[dict[str, pd.DataFrame], dict]:
    """Fit one model per fold of every split; return predictions per protocol and the models.

    ``data`` holds ``segment``, the features and the 19 label columns; ``splits`` the split
    columns by segment. Protocols: ``<split>_cv`` (out-of-fold predictions, one row per segment)
    and ``<split>_test`` (the test set scored by every fold model) where the split has a test set.
    """
    merged = data.merge(splits, on="segment", validate="one_to_one")
    X = merged[feature_cols].to_numpy(float)
    Y = merged[list(DIMENSIONS)].to_numpy(float)
    return cross_fit_protocols(
        merged["segment"].to_numpy(), merged,
        fit=lambda split, k, train, val: make_baseline(name, config).fit(X[train], Y[train]),
        predict=lambda model, mask: model.predict(X[mask]), split_names=split_names)
